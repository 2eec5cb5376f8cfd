"""What every format's reader shares: the registry of suffixes, sections, text clean-up.

A format is one module of this package that registers a reader for its suffixes::

    @reads(".csv")
    def read_csv(data: bytes) -> tuple[list[Section], str | None]:
        ...   # sections (heading path, text, page) and the document's title

Adding a format touches that one file: :mod:`tpdqa.ingest` imports every module here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from tpdqa.sandbox import Limits

# cp1252 before latin-1: it decodes the same bytes except 0x80-0x9f, where it has
# the curly quotes and euro sign that Windows files actually contain.
TEXT_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
SECTION_SEP = " › "


# The limits of the file being read, set by ``load_bytes`` for each file: for readers that
# open files inside it (an e-mail's attachments) or need a setting (OCR's languages).
READING_LIMITS: ContextVar[Limits] = ContextVar("reading_limits", default=Limits())


class UnusableFile(Exception):
    """A file that is skipped, with the reason shown to the user."""


@dataclass
class Section:
    """A run of body text under one heading path (title first), on one page (PDF) or slide."""

    headings: tuple[str, ...]
    text: str
    page: int | None = None
    # A document inside the file (an e-mail's attachment, a mailbox's message): listed and
    # titled on its own, its language guessed from its own text.
    part: str | None = None
    part_title: str | None = None


Reader = Callable[[bytes], "tuple[list[Section], str | None]"]


@dataclass(frozen=True)
class Format:
    read: Reader
    archive: bool = False  # a zip container: its unpacked size is checked before parsing


FORMATS: dict[str, Format] = {}


def reads(*suffixes: str, archive: bool = False) -> Callable[[Reader], Reader]:
    """Register the decorated function as the reader of ``suffixes``."""
    def register(read: Reader) -> Reader:
        for suffix in suffixes:
            FORMATS[suffix] = Format(read, archive)
        return read
    return register


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


def looks_like_title(line: str, following: str) -> bool:
    """A short first line without end punctuation, before longer text."""
    line = line.strip()
    return bool(line) and len(line) <= 100 and line[-1] not in _END and len(following.strip()) > len(line)


def fold_title(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


# A line of keyed_rows (or an e-mail's header line): "label — header: value; header: value".
ROW = re.compile(r"^(?:[^\n]{1,120} — )?[^:;\n]{1,80}: [^;\n]*(?:; [^:;\n]{1,80}: [^;\n]*)+$|^[^\n]{1,120} — [^:;\n]{1,80}: ")
MAX_CELL_CHARS = 120  # a longer cell holds prose (a comment, a description): its row is read as sentences


def is_row(line: str) -> bool:
    """Whether ``line`` is a table row of values, quoted whole: its label and headers make it
    readable alone. A row whose cells hold paragraphs is not one (its sentences are quoted)."""
    return ROW.match(line) is not None and max(map(len, re.split(r"; | — |: ", line))) <= MAX_CELL_CHARS


# Where a cell of a keyed row ends ("Érable — plantés: 80; survie: 71%"): what keyed_rows writes between cells.
CELL_END = re.compile(r"; | — |\n")


def keyed_rows(rows: list[list[str]]) -> list[str]:
    """A table as lines that keep each value beside its headers: the first row names the
    columns, the first column each row (``Nitrates — Average 2024: 18 mg/L; Limit: 50 mg/L``).
    A table of one row, or whose first row is not a header (empty cells), is read as rows."""
    rows = [[" ".join(c.split()) for c in row] for row in rows if any(c.strip() for c in row)]
    if not rows:
        return []
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    header = rows[0]
    if len(rows) < 2 or width < 2 or sum(bool(h) for h in header) < max(2, width // 2):
        return [" | ".join(c for c in r if c) for r in rows]
    lines = []
    for row in rows[1:]:
        label, cells = row[0], [f"{h}: {v}" if h else v for h, v in zip(header[1:], row[1:]) if v]
        if not cells:
            lines.append(label)
            continue
        lines.append(f"{label} — {'; '.join(cells)}" if label else "; ".join(cells))
    return lines
