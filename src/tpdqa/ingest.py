"""Files -> Documents -> chunks with stable ids.

Each supported file becomes one Document per page (PDF) or one per file, with
metadata ``source`` (path relative to the documents folder), ``collection`` (its
top-level folder, or ``default``), ``title``, ``page`` (PDF only) and ``lang``. A file that cannot be used is reported as a
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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from tpdqa.language import guess_lang, split_paragraphs, split_sentences
from tpdqa.sandbox import Limits, OverLimit, ParseFailure, check_archive, check_size, sandbox

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
ZIP_SUFFIXES = (".docx",)  # zip containers: their unpacked size is checked before parsing
# cp1252 before latin-1: it decodes the same bytes except 0x80-0x9f, where it has
# the curly quotes and euro sign that Windows files actually contain.
TEXT_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
# Bump when loading or chunking changes what an unchanged file yields: the next sync reads every file again.
INGEST_VERSION = 2


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
    unchanged: list[str] = field(default_factory=list)  # files skipped: same bytes as already indexed
    chunks: list[Document] = field(default_factory=list)  # with load_folder(chunking=...)


def iter_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder`` that is not hidden, sorted for stable runs."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def load_folder(folder: str | Path, indexed: dict[str, str] | None = None, limits: Limits | None = None,
                chunking: tuple[int, int] | None = None) -> LoadedFolder:
    """Documents of every file under ``folder``; a file whose sha256 is its ``indexed``
    one is hashed but not parsed (listed in ``unchanged``): a no-op re-index reads bytes only.

    Each file is parsed in the :mod:`tpdqa.sandbox` child under ``limits``; with ``chunking``
    (chunk_size, chunk_overlap) it is chunked there too (``chunks``), so a file whose text
    is huge costs its own budget, not the indexer's. Any failure of one file, whatever the
    parser raised, is a :class:`FileError` with the reason; the others go on."""
    folder = Path(folder)
    indexed = indexed or {}
    limits = limits or Limits()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Documents folder {folder} does not exist: create it and put {'/'.join(SUPPORTED_SUFFIXES)} files in "
            "it, or set TPDQA_DOCUMENTS_DIR."
        )
    result = LoadedFolder()
    for path in iter_files(folder):
        source = path.relative_to(folder).as_posix()
        try:
            check_size(path.stat().st_size, limits)
            data = path.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            if indexed.get(source) == sha:
                result.unchanged.append(source)
                result.hashes[source] = sha
                continue
            docs, chunks = sandbox.run(read_file, (data, source, limits, chunking), limits)
        except (UnusableFile, OverLimit) as exc:
            result.errors.append(FileError(source, str(exc)))
            continue
        except OSError as exc:
            result.errors.append(FileError(source, f"cannot be read ({exc.strerror or exc})"))
            continue
        except RecursionError:
            result.errors.append(FileError(source, "nested too deeply to read (a malformed or hostile file)"))
            continue
        except Exception as exc:  # noqa: BLE001 - a parser's own error: the file is reported, the rest indexed
            kind = exc.kind if isinstance(exc, ParseFailure) else type(exc).__name__
            detail = (str(exc).strip().splitlines() or [""])[0][:200]
            result.errors.append(FileError(source, f"cannot be read: malformed or corrupt ({kind}"
                                                   + (f": {detail})" if detail else ")")))
            continue
        result.documents.extend(docs)
        result.chunks.extend(chunks)
        result.sources.append(source)
        result.hashes[source] = sha
    return result


def read_file(data: bytes, source: str, limits: Limits,
              chunking: tuple[int, int] | None = None) -> tuple[list[Document], list[Document]]:
    """One file's documents and (with ``chunking``) chunks; runs in the sandbox's child."""
    docs = load_bytes(data, source, limits)
    return docs, (chunk_documents(docs, *chunking) if chunking else [])


@dataclass
class Section:
    """A run of body text under one heading path (title first), on one PDF page."""

    headings: tuple[str, ...]
    text: str
    page: int | None = None


SECTION_SEP = " › "


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
    if suffix in ZIP_SUFFIXES:
        check_archive(data, limits or Limits())
    sections, title = _LOADERS[suffix](data)
    sections = [Section(s.headings, clean_text(s.text), s.page) for s in sections]
    sections = [s for s in sections if s.text]
    if not sections:
        raise UnusableFile("no text could be extracted (empty, or a scanned PDF without a text layer)")
    # One language per file: a short section alone is too little to guess from.
    lang = guess_lang(" ".join(s.text for s in sections)[:3000])
    default_title = Path(source).stem.replace("_", " ").replace("-", " ")
    docs = []
    for s in sections:
        metadata: dict[str, Any] = {"source": source, "collection": collection_of(source),
                                    "title": title or default_title, "lang": lang,
                                    "section": SECTION_SEP.join(h for h in s.headings if h)}
        if s.page is not None:
            metadata["page"] = s.page
        docs.append(Document(page_content=s.text, metadata=metadata))
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
    text = text.replace("\u00ad", "")  # soft hyphens: invisible, but they split words
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


_END = ".!?:;»\"”)…"


def _looks_like_title(line: str, following: str) -> bool:
    """A short first line without end punctuation, before longer text."""
    line = line.strip()
    return bool(line) and len(line) <= 100 and line[-1] not in _END and len(following.strip()) > len(line)


def _load_text(data: bytes):
    text = decode_text(data)
    first, _, rest = clean_text(text).partition("\n")
    if rest and _looks_like_title(first, rest.strip().split("\n", 1)[0]):
        return [Section((first.strip(),), rest)], first.strip()
    return [Section((), text)], None


def _load_markdown(data: bytes):
    """LangChain's Markdown splitter: sections by ``#`` headings, headings stripped, whitespace kept."""
    from langchain_text_splitters import ExperimentalMarkdownSyntaxTextSplitter

    levels = [("#" * n, f"h{n}") for n in range(1, 7)]
    splitter = ExperimentalMarkdownSyntaxTextSplitter(headers_to_split_on=levels, strip_headers=True)
    text = decode_text(data)
    sections = []
    for doc in splitter.split_text(text):
        path = tuple(_plain_markdown(doc.metadata[f"h{n}"]) for n in range(1, 7) if doc.metadata.get(f"h{n}"))
        sections.append(Section(path, _plain_markdown(doc.page_content)))
    title = next((s.headings[0] for s in sections if s.headings), None)
    return sections, title


_MD_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images: alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links: their text
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])[*_](?=\S)(.+?)(?<=\S)[*_](?![\w*])"), r"\1"),
    (re.compile(r"`([^`]+)`"), r"\1"),
]


def _plain_markdown(text: str) -> str:
    """Inline Markdown marks removed, so a quote reads as text; list bullets dropped."""
    for pattern, repl in _MD_INLINE:
        text = pattern.sub(repl, text)
    blocks = []
    for block in re.split(r"\n\s*\n", text):
        lines = [l.strip() for l in block.strip().split("\n") if l.strip()]
        if any(_MD_LIST.match(l) or l.startswith("|") for l in lines):  # lists and tables keep their lines
            blocks.append("\n".join(_MD_LIST.sub("", l) for l in lines))
        else:  # a paragraph's soft line breaks are layout, not structure
            blocks.append(" ".join(lines))
    return "\n\n".join(b for b in blocks if b)


_MD_LIST = re.compile(r"^(?:[-*+]|\d+[.)])\s+")


_BOILERPLATE = re.compile(r"cookie|consent|gdpr|banner|newsletter|share|social|advert|promo|breadcrumb|sidebar|"
                          r"menu|popup|modal|related|comment", re.IGNORECASE)
_BLOCKS = ["p", "li", "dd", "dt", "blockquote", "pre", "td", "th", "figcaption", "caption"]
_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]


def _load_html(data: bytes):
    """Main content only: the page's <main>/<article> when it has one, never nav, header,
    footer, aside, forms, scripts or cookie banners; a block's text is read whole, so
    inline tags (<b>, <a>) never cut a sentence; <h1>-<h6> make the section path."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "html.parser")
    depth = _depth(soup)
    if depth > MAX_HTML_DEPTH:  # reading blocks looks up each one's parents: deep nesting is quadratic
        raise UnusableFile(f"its elements nest {depth} levels deep (over {MAX_HTML_DEPTH}): a malformed or generated "
                           "page, not a document")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer", "aside", "form", "header",
                     "button", "iframe", "svg", "head"]):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.attrs is None or tag.name in ("html", "body", "main", "article") or tag.find(["main", "article"]):
            continue  # already gone with its parent, or holds the content itself
        if _BOILERPLATE.search(" ".join([*tag.get("class", []), tag.get("id", ""), tag.get("role", ""),
                                         tag.get("aria-label", "")])):
            tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    path: list[str] = []
    sections: list[Section] = []
    blocks: list[str] = []

    def flush() -> None:
        if blocks:
            sections.append(Section(tuple(path), "\n\n".join(blocks)))
            blocks.clear()

    for element in root.find_all([*_HEADINGS, *_BLOCKS, "div", "section"]):
        if element.find_parent(_BLOCKS) is not None:  # a <p> inside an <li>: read with its parent
            continue
        if element.name in ("div", "section") and element.find([*_HEADINGS, *_BLOCKS, "div", "section"]):
            continue  # a container: its blocks are read one by one; a leaf <div> of text is a block
        for br in element.find_all("br"):
            br.replace_with(" ")
        text = " ".join(element.get_text().split())  # inline tags add no space: the source's own spacing
        if not text:
            continue
        if element.name in _HEADINGS:
            flush()
            level = int(element.name[1])
            del path[level - 1:]
            path.extend([""] * (level - 1 - len(path)))
            path.append(text)
        else:
            blocks.append(text)
    flush()
    if not sections:  # a page of bare text without blocks
        sections = [Section((), root.get_text("\n"))]
    title = title or next((s.headings[0] for s in sections if s.headings and s.headings[0]), None)
    return [Section(tuple(h for h in s.headings if h), s.text) for s in sections], title


MAX_HTML_DEPTH = 512  # real pages nest a few dozen levels; lxml's own parser stops at 256


def _depth(root) -> int:
    """How deep elements nest under ``root`` (iterative: a page may nest deeper than Python recurses)."""
    deepest, stack = 0, [(root, 0)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in getattr(node, "contents", ()) if hasattr(child, "contents"))
    return deepest


def _load_docx(data: bytes):
    import io
    import zipfile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UnusableFile(f"corrupt or unreadable .docx ({exc.__class__.__name__}: {exc})") from exc
    path: list[str] = []
    sections: list[Section] = []
    blocks: list[str] = []
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        level = 0 if style == "Title" else int(m.group(1)) if (m := re.match(r"Heading (\d)", style)) else None
        text = paragraph.text.strip()
        if level is None:
            if text:
                blocks.append(text)
            continue
        if text:
            if blocks:
                sections.append(Section(tuple(path), "\n\n".join(blocks)))
                blocks = []
            del path[level:]
            path.append(text)
    if blocks:
        sections.append(Section(tuple(path), "\n\n".join(blocks)))
    for table in document.tables:
        rows = [" | ".join(cell.text for cell in row.cells) for row in table.rows]
        sections.append(Section(tuple(path), "\n".join(rows)))
    title = document.core_properties.title or next((s.headings[0] for s in sections if s.headings), None)
    return sections, title or None


def _load_pdf(data: bytes):
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnusableFile("encrypted PDF: decrypt it first")
        title = ((reader.metadata.title if reader.metadata else None) or "").strip() or None
        pages = [page.extract_text() or "" for page in reader.pages]
        outline = _pdf_outline(reader)
    except UnusableFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UnusableFile(f"corrupt or unreadable PDF ({exc.__class__.__name__}: {exc})") from exc
    paragraphs = reflow_pdf(pages)
    if paragraphs and title is None and len(paragraphs) > 1 and _looks_like_title(paragraphs[0][1], paragraphs[1][1]):
        title = paragraphs[0][1]
    if paragraphs and title and fold_title(paragraphs[0][1]) == fold_title(title):
        paragraphs = paragraphs[1:]  # the title line, kept as the section path instead
    headings = {fold_title(h) for _, h in outline}
    sections: list[Section] = []
    path: tuple[str, ...] = (title,) if title else ()
    for page, text in paragraphs:
        if fold_title(text) in headings:  # an outline entry's own line
            path = ((title,) if title else ()) + (text,)
            continue
        if sections and sections[-1].page == page and sections[-1].headings == path:
            sections[-1].text += "\n\n" + text
        else:
            sections.append(Section(path, text, page))
    return sections, title


def fold_title(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _pdf_outline(reader) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []

    def walk(items) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item)
                continue
            try:
                out.append((reader.get_destination_page_number(item) + 1, str(item.title)))
            except Exception:  # noqa: BLE001 - a broken bookmark is no reason to lose the file
                continue

    try:
        walk(reader.outline)
    except Exception:  # noqa: BLE001
        return []
    return out


_PAGE_NUMBER = re.compile(r"^(?:page\s*)?[-–— ]*\d{1,4}[-–— ]*(?:\s*(?:/|of|sur|de)\s*\d{1,4})?$", re.IGNORECASE)


def reflow_pdf(pages: list[str]) -> list[tuple[int, str]]:
    """Paragraphs of a PDF's extracted pages, as (page where it starts, text).

    Layout line breaks are joined, end-of-line hyphenation undone ('exam-' + 'ple'),
    running headers and footers (the same first or last line on most pages, digits
    aside) and page numbers dropped. A line ends its paragraph when it is blank, or
    clearly shorter than the page's text lines and the next line does not continue it.
    """
    lines_by_page = [[line.strip() for line in clean_text(text).split("\n")] for text in pages]
    running = _running_lines(lines_by_page)
    lines: list[tuple[int, str]] = []
    for number, page_lines in enumerate(lines_by_page, start=1):
        kept = [l for l in page_lines if l]
        edges = set(range(min(2, len(kept)))) | set(range(max(0, len(kept) - 2), len(kept)))
        for i, line in enumerate(kept):
            if i in edges and (_PAGE_NUMBER.match(line) or _shape(line) in running):
                continue
            lines.append((number, line))
        lines.append((number, ""))  # a page end: a paragraph continues only if the next line says so
    widths = sorted(len(l) for _, l in lines if len(l) > 20)
    full = widths[int(len(widths) * 0.7)] if widths else 80  # a typical full line
    paragraphs: list[tuple[int, str]] = []
    current, start = "", 0
    for (page, line), (_, following) in zip(lines, [*lines[1:], (0, "")]):
        if not line:
            continue
        if not current:
            current, start = line, page
        elif current.endswith("-") and len(current) > 1 and current[-2].isalpha() and line[:1].islower():
            current = current[:-1] + line
        else:
            current = f"{current} {line}"
        ends_short = len(line) < 0.8 * full and not line.endswith("-")
        continues = bool(following) and following[:1].islower()
        next_is_page = not following
        if (ends_short and not continues) or (next_is_page and line[-1:] in _END and not continues):
            paragraphs.append((start, current))
            current = ""
    if current:
        paragraphs.append((start, current))
    return paragraphs


def _shape(line: str) -> str:
    return re.sub(r"\d+", "#", line.casefold())


def _running_lines(lines_by_page: list[list[str]]) -> set[str]:
    """Shapes of lines at the top or bottom of at least half the pages (two at least)."""
    if len(lines_by_page) < 2:
        return set()
    counts: Counter[str] = Counter()
    for page_lines in lines_by_page:
        kept = [l for l in page_lines if l]
        counts.update({_shape(l) for l in kept[:2] + kept[-2:]})
    return {shape for shape, n in counts.items() if n >= max(2, len(lines_by_page) / 2)}


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
        pieces = []
        for sentence in self._sentences(paragraph):  # a sentence longer than a chunk is cut on words
            start, end = 0, len(sentence)
            while end - start > self._chunk_size:  # positions, not slices: a 10 MB line stays linear
                cut = sentence.rfind(" ", start, start + self._chunk_size)
                cut = cut if cut > start else start + self._chunk_size
                pieces.append(sentence[start:cut])
                start = cut
                while start < end and sentence[start] == " ":
                    start += 1
            pieces.append(sentence[start:])
        return self._merge_splits([p for p in pieces if p], " ")

    def _sentences(self, paragraph: str) -> list[str]:
        """pysbd's sentences; a paragraph far beyond any prose (a minified or generated line)
        is first cut into windows on spaces, as pysbd's rules are not linear in the length."""
        window = 20 * self._chunk_size
        if len(paragraph) <= window:
            return split_sentences(paragraph, self._lang)
        out, start = [], 0
        while start < len(paragraph):
            cut = paragraph.rfind(" ", start, start + window) if start + window < len(paragraph) else len(paragraph)
            cut = cut if cut > start else min(start + window, len(paragraph))
            out += split_sentences(paragraph[start:cut], self._lang)
            start = cut
        return out


def chunk_id(source: str, page: int | None, section: str, text: str) -> str:
    """Content-derived id: unchanged text in an unchanged place keeps its id."""
    key = "\x1f".join((source, str(page or ""), section, text))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def chunk_documents(documents: list[Document], chunk_size: int, chunk_overlap: int) -> list[Document]:
    """Chunks of each section; a section's heading path is the first line of each of its
    chunks, so retrieval (dense and BM25) sees the context a paragraph was written in.
    :func:`chunk_body` gives the text without it: the part an answer may quote."""
    chunks: list[Document] = []
    for doc in documents:
        splitter = ParagraphSentenceSplitter(
            lang=doc.metadata.get("lang", "en"), chunk_size=chunk_size, chunk_overlap=min(chunk_overlap, chunk_size // 2)
        )
        section = doc.metadata.get("section", "")
        for body in splitter.split_text(doc.page_content):
            meta = dict(doc.metadata)
            text = f"{section}\n{body}" if section else body
            cid = chunk_id(meta["source"], meta.get("page"), section, text)
            meta["chunk_id"] = cid
            chunks.append(Document(id=cid, page_content=text, metadata=meta))
    # The same text twice in one file (boilerplate) would share an id: keep the first.
    seen: set[str] = set()
    return [c for c in chunks if not (c.id in seen or seen.add(c.id))]


def chunk_body(text: str, metadata: dict[str, Any]) -> str:
    """A chunk's text without its heading line: what may be quoted as an answer."""
    section = metadata.get("section") or ""
    if section and text.startswith(section + "\n"):
        return text[len(section) + 1:]
    return text
