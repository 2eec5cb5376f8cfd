"""PDF: text layer reflowed into paragraphs, the outline as section paths; ruled tables
(pdfplumber) as keyed rows; pages without a text layer read by OCR (:mod:`tpdqa.ingest.ocr`)."""

from __future__ import annotations

import io
import re
from collections import Counter

from tpdqa.ingest.base import (Section, UnusableFile, _END, clean_text, fold_title, keyed_rows, looks_like_title,
                               reads)
from tpdqa.ingest.ocr import DPI, NoTesseract, has_text, ocr_pages


@reads(".pdf")
def read_pdf(data: bytes):
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
    pages = with_ocr(data, with_tables(data, pages))
    return page_sections(pages, title, outline)


def with_tables(data: bytes, pages: list[str]) -> list[str]:
    """``pages`` with each page that holds a ruled table (found by pdfplumber) read again: the
    text above it, the table as keyed rows (each value beside its headers), the text below.
    pypdf reads a table as a run of cells; the other pages keep pypdf's text."""
    import pdfplumber

    pages = list(pages)
    candidates = [i for i in ruled_pages(data)[:len(pages)] if has_text(pages[i])]  # a scan: OCR reads it
    if not candidates:
        return pages
    with pdfplumber.open(io.BytesIO(data), pages=[i + 1 for i in candidates]) as document:
        for i, page in zip(candidates, document.pages):
            tables = sorted((t for t in page.find_tables() if len(t.rows) >= 2 and len(t.columns) >= 2),
                            key=lambda t: t.bbox[1])
            if not tables:
                continue
            parts, top = [], 0.0
            for table in tables:
                _, table_top, _, table_bottom = table.bbox
                if table_top > top:
                    parts.append(band(page, top, table_top))
                parts.append("\n".join(keyed_rows([[cell or "" for cell in row] for row in table.extract()])))
                top = max(top, table_bottom)
            parts.append(band(page, top, page.height))
            pages[i] = "\n".join(part for part in parts if part)
    return pages


def ruled_pages(data: bytes) -> list[int]:
    """Pages (0-based) that draw at least two paths, where a ruled table may be: pdfplumber's
    layout pass costs 77 ms a page, this count (PDFium, in C) under 1 ms."""
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    document = pypdfium2.PdfDocument(data)
    try:
        return [i for i in range(len(document))
                if sum(o.type == pdfium_c.FPDF_PAGEOBJ_PATH for o in document[i].get_objects(max_depth=2)) >= 2]
    finally:
        document.close()


def band(page, top: float, bottom: float) -> str:
    """The text of a page between two heights, across its width."""
    top, bottom = max(0.0, top), min(float(page.height), bottom)
    return (page.crop((0, top, page.width, bottom)).extract_text() or "") if bottom > top else ""


def with_ocr(data: bytes, pages: list[str]) -> list[str]:
    """``pages`` with those that have no text layer (scans) read by OCR, rendered at
    :data:`~tpdqa.ingest.ocr.DPI`. Without Tesseract, a PDF that has some text is indexed
    from it; one that has none is :class:`~tpdqa.ingest.ocr.NoTesseract`."""
    blank = [i for i, text in enumerate(pages) if not has_text(text)]
    if not blank:
        return pages
    import pypdfium2

    document = pypdfium2.PdfDocument(data)
    pages = list(pages)
    try:  # PDFium is not thread-safe: pages are rendered here, one at a time, as OCR takes them
        rendered = ((f"page {i + 1}", document[i].render(scale=DPI / 72).to_pil()) for i in blank)
        texts = ocr_pages(rendered)
    except NoTesseract:
        if len(blank) == len(pages):
            raise
        texts = [""] * len(blank)  # the pages with text are still worth indexing
    finally:
        document.close()
    for i, text in zip(blank, texts):
        pages[i] = text
    return pages


def page_sections(pages: list[str], title: str | None = None,
                  outline: list[tuple[int, str]] | None = None) -> tuple[list[Section], str | None]:
    """Sections of a document's page texts: paragraphs reflowed, the title (given, or a first
    line that looks like one) and outline entries as section paths, each section on its page."""
    paragraphs = reflow_pdf(pages)
    if paragraphs and title is None and len(paragraphs) > 1 and looks_like_title(paragraphs[0][1], paragraphs[1][1]):
        title = paragraphs[0][1]
    if paragraphs and title and fold_title(paragraphs[0][1]) == fold_title(title):
        paragraphs = paragraphs[1:]  # the title line, kept as the section path instead
    headings = {fold_title(h) for _, h in outline or []}
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
