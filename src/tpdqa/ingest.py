"""Files -> Documents -> chunks with stable ids.

Each supported file becomes one Document per page (PDF) or one per file, with
metadata ``source`` (path relative to the documents folder), ``title``, ``page``
(PDF only) and ``lang``. A file that cannot be used is reported as a
:class:`FileError` and skipped; the others go on.

    >>> from tpdqa.ingest import load_folder, chunk_documents
    >>> loaded = load_folder("documents")
    >>> chunks = chunk_documents(loaded.documents, chunk_size=1000, chunk_overlap=150)
    >>> chunks[0].metadata["source"], len(chunks[0].id)
    ('tpd-asie-2025.txt', 32)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from tpdqa.language import guess_lang, split_paragraphs, split_sentences

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
# cp1252 before latin-1: it decodes the same bytes except 0x80-0x9f, where it has
# the curly quotes and euro sign that Windows files actually contain.
TEXT_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


class UnusableFile(Exception):
    """A file that is skipped, with the reason shown to the user."""


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


def iter_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder`` that is not hidden, sorted for stable runs."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def load_folder(folder: str | Path) -> LoadedFolder:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Documents folder {folder} does not exist: create it and put .txt/.md/.html/.pdf/.docx files in it, "
            "or set TPDQA_DOCUMENTS_DIR."
        )
    result = LoadedFolder()
    for path in iter_files(folder):
        source = path.relative_to(folder).as_posix()
        try:
            data = path.read_bytes()
            docs = load_bytes(data, source)
        except UnusableFile as exc:
            result.errors.append(FileError(source, str(exc)))
            continue
        except OSError as exc:
            result.errors.append(FileError(source, f"cannot be read ({exc.strerror or exc})"))
            continue
        result.documents.extend(docs)
        result.sources.append(source)
        result.hashes[source] = hashlib.sha256(data).hexdigest()
    return result


def load_bytes(data: bytes, source: str) -> list[Document]:
    """Documents of one file's bytes; raises :class:`UnusableFile` with the reason."""
    suffix = Path(source).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnusableFile(f"unsupported file type '{suffix or '(none)'}'; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    if not data.strip():
        raise UnusableFile("empty file")
    loader = _LOADERS[suffix]
    pages = loader(data)  # [(text, page or None, title or None)]
    docs = []
    default_title = Path(source).stem.replace("_", " ").replace("-", " ")
    for text, page, title in pages:
        text = clean_text(text)
        if not text:
            continue
        metadata: dict[str, Any] = {"source": source, "title": title or default_title, "lang": guess_lang(text)}
        if page is not None:
            metadata["page"] = page
        docs.append(Document(page_content=text, metadata=metadata))
    if not docs:
        raise UnusableFile("no text could be extracted (empty, or a scanned PDF without a text layer)")
    return docs


def decode_text(data: bytes) -> str:
    if b"\x00" in data[:8192] or _control_ratio(data[:8192]) > 0.05:
        raise UnusableFile("binary content, not text")
    for encoding in TEXT_ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnusableFile("text in an unknown encoding")  # latin-1 decodes anything; kept for clarity


def _control_ratio(data: bytes) -> float:
    if not data:
        return 0.0
    controls = sum(1 for b in data if b < 32 and b not in (9, 10, 12, 13))
    return controls / len(data)


def clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ").replace("\u202f", " ")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _load_text(data: bytes):
    return [(decode_text(data), None, None)]


def _load_markdown(data: bytes):
    text = decode_text(data)
    heading = re.search(r"^#{1,6}\s+(.+)$", text, re.MULTILINE)
    return [(text, None, heading.group(1).strip() if heading else None)]


def _load_html(data: bytes):
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    if soup.title:
        soup.title.decompose()
    return [(soup.get_text("\n"), None, title or None)]


def _load_pdf(data: bytes):
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnusableFile("encrypted PDF: decrypt it first")
        title = (reader.metadata.title if reader.metadata else None) or None
        return [(page.extract_text() or "", number, title) for number, page in enumerate(reader.pages, start=1)]
    except UnusableFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UnusableFile(f"corrupt or unreadable PDF ({exc.__class__.__name__}: {exc})") from exc


def _load_docx(data: bytes):
    import io
    import zipfile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UnusableFile(f"corrupt or unreadable .docx ({exc.__class__.__name__}: {exc})") from exc
    paragraphs = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            paragraphs.append(" | ".join(cell.text for cell in row.cells))
    return [("\n\n".join(paragraphs), None, document.core_properties.title or None)]


_LOADERS = {
    ".txt": _load_text,
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".html": _load_html,
    ".htm": _load_html,
    ".pdf": _load_pdf,
    ".docx": _load_docx,
}


class ParagraphSentenceSplitter(TextSplitter):
    """Chunks that follow paragraphs, and sentences inside long paragraphs.

    A paragraph is a chunk of its own, so editing one paragraph changes only its
    chunks (and their ids); paragraphs shorter than ``min_chars`` (headings, captions)
    join the next one. A paragraph over ``chunk_size`` is cut between sentences by
    LangChain's merge with ``chunk_overlap``.
    """

    def __init__(self, lang: str = "fr", min_chars: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lang = lang
        self._min_chars = min_chars if min_chars is not None else min(120, self._chunk_size // 4)

    def split_text(self, text: str) -> list[str]:
        units: list[str] = []
        pending = ""
        for paragraph in split_paragraphs(text):
            paragraph = f"{pending}\n{paragraph}" if pending else paragraph
            if len(paragraph) < self._min_chars:
                pending = paragraph
                continue
            pending = ""
            units.extend(self._split_long(paragraph))
        if pending:
            if units and len(units[-1]) + len(pending) <= self._chunk_size:
                units[-1] = f"{units[-1]}\n{pending}"
            else:
                units.append(pending)
        return units

    def _split_long(self, paragraph: str) -> list[str]:
        if len(paragraph) <= self._chunk_size:
            return [paragraph]
        sentences = split_sentences(paragraph, self._lang)
        pieces = []
        for sentence in sentences:  # a sentence longer than a chunk is cut on words
            while len(sentence) > self._chunk_size:
                cut = sentence.rfind(" ", 0, self._chunk_size)
                cut = cut if cut > 0 else self._chunk_size
                pieces.append(sentence[:cut])
                sentence = sentence[cut:].strip()
            pieces.append(sentence)
        return self._merge_splits(pieces, " ")


def chunk_id(source: str, page: int | None, title: str, text: str) -> str:
    """Content-derived id: unchanged text in an unchanged place keeps its id."""
    key = "\x1f".join((source, str(page or ""), title, text))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def chunk_documents(documents: list[Document], chunk_size: int, chunk_overlap: int) -> list[Document]:
    chunks: list[Document] = []
    for doc in documents:
        splitter = ParagraphSentenceSplitter(
            lang=doc.metadata.get("lang", "en"), chunk_size=chunk_size, chunk_overlap=min(chunk_overlap, chunk_size // 2)
        )
        for text in splitter.split_text(doc.page_content):
            meta = dict(doc.metadata)
            cid = chunk_id(meta["source"], meta.get("page"), meta.get("title", ""), text)
            meta["chunk_id"] = cid
            chunks.append(Document(id=cid, page_content=text, metadata=meta))
    # The same text twice in one file (boilerplate) would share an id: keep the first.
    seen: set[str] = set()
    return [c for c in chunks if not (c.id in seen or seen.add(c.id))]
