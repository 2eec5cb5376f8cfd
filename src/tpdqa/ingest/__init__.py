"""Files -> Documents -> chunks with stable ids.

Each supported file becomes one Document per section and page (PDF page, slide), with
metadata ``source`` (path relative to the documents folder), ``collection`` (its
top-level folder, or ``default``), ``title``, ``section``, ``page`` (PDF page, slide),
``lang``, and ``part`` for a document inside the file (an e-mail's attachment, a
mailbox's message: ``report.pdf``). A file that cannot be used is reported as a :class:`FileError` and skipped; the
others go on. Each format family is one module of this package (:mod:`tpdqa.ingest.base`
says how one registers its suffixes).

    >>> from tpdqa.ingest import load_folder, chunk_documents
    >>> loaded = load_folder("documents")
    >>> chunks = chunk_documents(loaded.documents, chunk_size=1000, chunk_overlap=150)
    >>> chunks[0].metadata["source"], len(chunks[0].id)
    ('tpd-asie-2025.txt', 32)
"""

from __future__ import annotations

import hashlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from tpdqa.ingest.base import (FORMATS, READING_LIMITS, SECTION_SEP, Section, UnusableFile, clean_text, decode_text,
                               keyed_rows)
from tpdqa.ingest.chunking import ParagraphSentenceSplitter, chunk_body, chunk_documents, chunk_id
from tpdqa.language import guess_lang
from tpdqa.sandbox import Limits, OverLimit, ParseFailure, Sandbox, check_archive, check_size, sandbox, sandboxes

for _module in pkgutil.iter_modules(__path__):  # every format module registers its suffixes
    if _module.name not in ("base", "chunking"):
        import_module(f"{__name__}.{_module.name}")

from tpdqa.ingest.pdf import reflow_pdf  # noqa: E402 - re-exported, after the registry is filled

SUPPORTED_SUFFIXES = tuple(sorted(FORMATS))
# Bump when loading or chunking changes what an unchanged file yields: the next sync reads every file again.
INGEST_VERSION = 7

__all__ = ["SUPPORTED_SUFFIXES", "INGEST_VERSION", "SECTION_SEP", "DEFAULT_COLLECTION", "FileError", "LoadedFolder",
           "ParagraphSentenceSplitter", "Section", "UnusableFile", "chunk_body", "chunk_documents",
           "chunk_id", "clean_text", "collection_of", "decode_text", "iter_files", "keyed_rows", "load_bytes",
           "load_folder", "parse_file", "parse_side_by_side", "read_file", "reflow_pdf", "sql_in_collections"]


@dataclass(frozen=True)
class FileError:
    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass
class LoadedFolder:
    documents: list[Document] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # files read successfully
    hashes: dict[str, str] = field(default_factory=dict)  # source -> sha256 of the bytes
    unchanged: list[str] = field(default_factory=list)  # files skipped: same bytes as already indexed
    chunks: list[Document] = field(default_factory=list)  # with load_folder(chunking=...)
    units: dict[str, list[str]] = field(default_factory=dict)  # chunk id -> its quotable units (sentences)


def iter_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder`` that is not hidden, sorted for stable runs."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


# a file's (documents, chunks, each chunk's quotable units by chunk id), or why not
Parsed = tuple[list[Document], list[Document], dict[str, list[str]]] | FileError
# Files parsed together by a ``parse`` hook (a cluster gets work in windows, not one file at a time).
PARSE_WINDOW_FILES, PARSE_WINDOW_BYTES = 64, 256 * 2**20


def load_folder(folder: str | Path, indexed: dict[str, str] | None = None, limits: Limits | None = None,
                chunking: tuple[int, int] | None = None,
                progress: Callable[[int, int], None] | None = None,
                parse: Callable[[list[tuple[str, bytes]], Limits, tuple[int, int] | None], Iterable[Parsed]] | None = None,
                ) -> LoadedFolder:
    """Documents of every file under ``folder``; a file whose sha256 is its ``indexed``
    one is hashed but not parsed (listed in ``unchanged``): a no-op re-index reads bytes only.

    Each file is parsed in the :mod:`tpdqa.sandbox` child under ``limits``; with ``chunking``
    (chunk_size, chunk_overlap) it is chunked there too (``chunks``), so a file whose text
    is huge costs its own budget, not the indexer's. Any failure of one file, whatever the
    parser raised, is a :class:`FileError` with the reason; the others go on. ``progress``
    gets (files done, files) after each file: reading is what OCR makes long. ``parse``
    (e.g. :meth:`tpdqa.cluster.RayCluster.parse`) parses windows of (source, bytes) elsewhere,
    yielding :func:`parse_file`'s result for each, in order."""
    folder = Path(folder)
    indexed = indexed or {}
    limits = limits or Limits()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Documents folder {folder} does not exist: create it and put {'/'.join(SUPPORTED_SUFFIXES)} files in "
            "it, or set TPDQA_DOCUMENTS_DIR."
        )
    result = LoadedFolder()
    paths = iter_files(folder)
    window: list[tuple[str, bytes]] = []
    done = 0

    def keep(source: str, sha: str, parsed: Parsed | None) -> None:
        """One file handled (None: unchanged); progress counts files read, not files queued."""
        nonlocal done
        if isinstance(parsed, FileError):
            result.errors.append(parsed)
        elif parsed is not None:
            result.documents.extend(parsed[0])
            result.chunks.extend(parsed[1])
            result.units.update(parsed[2])
            result.sources.append(source)
        if not isinstance(parsed, FileError):
            result.hashes[source] = sha
        done += 1
        if progress is not None:
            progress(done, len(paths))

    def flush() -> None:
        for (source, data), parsed in zip(window, parse(window, limits, chunking)):
            keep(source, hashlib.sha256(data).hexdigest(), parsed)
        window.clear()

    if progress is not None:
        progress(0, len(paths))
    for path in paths:
        source = path.relative_to(folder).as_posix()
        try:
            check_size(path.stat().st_size, limits)
            data = path.read_bytes()
        except OverLimit as exc:
            keep(source, "", FileError(source, str(exc)))
            continue
        except OSError as exc:
            keep(source, "", FileError(source, f"cannot be read ({exc.strerror or exc})"))
            continue
        sha = hashlib.sha256(data).hexdigest()
        if indexed.get(source) == sha:
            result.unchanged.append(source)
            keep(source, sha, None)
        elif parse is None:
            keep(source, sha, parse_file(source, data, limits, chunking))
        else:
            window.append((source, data))
            if len(window) >= PARSE_WINDOW_FILES or sum(len(d) for _, d in window) >= PARSE_WINDOW_BYTES:
                flush()
    if window:
        flush()
    return result


def parse_file(source: str, data: bytes, limits: Limits, chunking: tuple[int, int] | None = None,
               box: Sandbox = sandbox) -> Parsed:
    """:func:`read_file` in a sandbox's child, or the :class:`FileError` that says why the file
    cannot be used (whatever the parser raised)."""
    try:
        return box.run(read_file, (data, source, limits, chunking), limits)
    except (UnusableFile, OverLimit) as exc:
        return FileError(source, str(exc))
    except OSError as exc:
        return FileError(source, f"cannot be read ({exc.strerror or exc})")
    except RecursionError:
        return FileError(source, "nested too deeply to read (a malformed or hostile file)")
    except Exception as exc:  # noqa: BLE001 - a parser's own error: the file is reported, the rest indexed
        kind = exc.kind if isinstance(exc, ParseFailure) else type(exc).__name__
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        return FileError(source, f"cannot be read: malformed or corrupt ({kind}" + (f": {detail})" if detail else ")"))


def read_file(data: bytes, source: str, limits: Limits, chunking: tuple[int, int] | None = None,
              ) -> tuple[list[Document], list[Document], dict[str, list[str]]]:
    """One file's documents, (with ``chunking``) chunks, and each chunk's quotable units (the
    answerer's sentences, :func:`tpdqa.sentences.chunk_units`: splitting them costs as much
    as parsing, so it happens here, beside it); runs in the sandbox's child."""
    from tpdqa.sentences import chunk_units  # it imports this module

    docs = load_bytes(data, source, limits)
    chunks = chunk_documents(docs, *chunking) if chunking else []
    return docs, chunks, {c.id: chunk_units(c) for c in chunks}


def parse_side_by_side(workers: int) -> Callable[[list[tuple[str, bytes]], Limits, tuple[int, int] | None],
                                                 Iterable[Parsed]]:
    """A ``parse`` hook for :func:`load_folder`: each window's files read ``workers`` at a
    time, each in a sandbox child of its own (parsing, chunking and sentence splitting are
    CPU work in the children; the indexer only waits)."""
    from concurrent.futures import ThreadPoolExecutor
    from queue import SimpleQueue

    boxes: SimpleQueue[Sandbox] = SimpleQueue()
    for box in sandboxes(workers):
        boxes.put(box)

    def one(item: tuple[str, bytes], limits: Limits, chunking: tuple[int, int] | None) -> Parsed:
        box = boxes.get()
        try:
            return parse_file(item[0], item[1], limits, chunking, box)
        finally:
            boxes.put(box)

    def parse(files: list[tuple[str, bytes]], limits: Limits, chunking: tuple[int, int] | None) -> Iterator[Parsed]:
        with ThreadPoolExecutor(workers) as pool:  # results in order, each as soon as it and those before are read
            yield from pool.map(lambda item: one(item, limits, chunking), files)

    return parse


DEFAULT_COLLECTION = "default"


def collection_of(source: str) -> str:
    """A document's collection: the top-level folder it is in, or ``default`` at the top level."""
    head, sep, _ = source.partition("/")
    return head if sep else DEFAULT_COLLECTION


def sql_in_collections(collections: list[str] | tuple[str, ...] | None) -> tuple[str, list[Any]]:
    """An SQL condition (`` AND (...)``) and its parameters: "the row's ``source`` column is a
    file of one of ``collections``" (empty when ``collections`` is None: all)."""
    if collections is None:
        return "", []
    tests, params = ["0"], []  # no collection at all: no row
    for name in collections:
        if name == DEFAULT_COLLECTION:
            tests.append("instr(source, '/') = 0")
        else:
            tests.append("substr(source, 1, ?) = ?")
            params += [len(name) + 1, name + "/"]
    return f" AND ({' OR '.join(tests)})", params


def load_bytes(data: bytes, source: str, limits: Limits | None = None) -> list[Document]:
    """Documents of one file's bytes, one per section (and page); raises :class:`UnusableFile`.

    Headings never stay in the body: they become ``metadata["section"]`` (the heading
    path, title first), which chunking puts on a chunk's first line as context.
    """
    suffix = Path(source).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnusableFile(f"unsupported file type '{suffix or '(none)'}'; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    if not data.strip():
        raise UnusableFile("empty file")
    limits = limits or Limits()
    if FORMATS[suffix].archive:
        check_archive(data, limits)
    reading = READING_LIMITS.set(limits)
    try:
        sections, title = FORMATS[suffix].read(data)
    finally:
        READING_LIMITS.reset(reading)
    sections = [Section(s.headings, clean_text(s.text), s.page, s.part, s.part_title) for s in sections]
    sections = [s for s in sections if s.text]
    if not sections:
        raise UnusableFile("no text could be extracted (empty, or images without legible text)")
    # One language per document (the file, or a part of it): a short section alone is too little to guess from.
    langs: dict[str | None, str] = {}
    for part in dict.fromkeys(s.part for s in sections):
        langs[part] = guess_lang(" ".join(s.text for s in sections if s.part == part)[:3000])
    default_title = Path(source).stem.replace("_", " ").replace("-", " ")
    docs = []
    for s in sections:
        metadata: dict[str, Any] = {"source": source, "collection": collection_of(source),
                                    "title": (s.part_title if s.part else title) or title or default_title,
                                    "lang": langs[s.part], "section": SECTION_SEP.join(h for h in s.headings if h)}
        if s.page is not None:
            metadata["page"] = s.page
        if s.part:
            metadata["part"] = s.part
        docs.append(Document(page_content=s.text, metadata=metadata))
    return docs
