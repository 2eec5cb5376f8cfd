"""Word-processor files: .docx (python-docx) and OpenDocument .odt (odfpy); heading levels
are section paths, tables are read where they stand, each value beside its headers."""

from __future__ import annotations

import io
import re
import zipfile

from tpdqa.ingest.base import Section, UnusableFile, keyed_rows, reads


class Outline:
    """Sections as a document is read: headings (level 0 is the title) close the running
    section; body paragraphs and tables fill it."""

    def __init__(self) -> None:
        self.path: list[str] = []
        self.sections: list[Section] = []
        self.blocks: list[str] = []

    def heading(self, level: int, text: str) -> None:
        if not text:
            return
        self.flush()
        del self.path[level:]
        self.path.extend([""] * (level - len(self.path)))
        self.path.append(text)

    def paragraph(self, text: str) -> None:
        if text.strip():
            self.blocks.append(text.strip())

    def table(self, rows: list[list[str]]) -> None:
        lines = keyed_rows(rows)
        if lines:  # each row its own paragraph: a row is what a question about one value finds
            self.blocks.append("\n\n".join(lines))

    def flush(self) -> None:
        if self.blocks:
            self.sections.append(Section(tuple(h for h in self.path if h), "\n\n".join(self.blocks)))
            self.blocks = []

    def result(self, title: str | None) -> tuple[list[Section], str | None]:
        self.flush()
        return self.sections, title or next((s.headings[0] for s in self.sections if s.headings), None)


@reads(".docx", archive=True)
def read_docx(data: bytes):
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UnusableFile(f"corrupt or unreadable .docx ({exc.__class__.__name__}: {exc})") from exc
    outline = Outline()
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            outline.table([[cell.text for cell in row.cells] for row in block.rows])
            continue
        style = (block.style.name if block.style is not None else "") or ""
        level = 0 if style == "Title" else int(m.group(1)) if (m := re.match(r"Heading (\d)", style)) else None
        if level is None:
            outline.paragraph(block.text)
        else:
            outline.heading(level, block.text.strip())
    return outline.result(document.core_properties.title or None)


@reads(".odt", archive=True)
def read_odt(data: bytes):
    """OpenDocument text: ``text:h`` outline levels are the section path (the title, when the
    document has one, above them), ``text:p`` and lists the body, ``table:table`` read as rows."""
    from odf import teletype
    from odf.namespaces import TABLENS, TEXTNS

    document = load_odf(data, ".odt")
    outline = Outline()
    title = None

    def walk(node) -> None:
        nonlocal title
        for child in node.childNodes:
            name = getattr(child, "qname", None)
            if name == (TEXTNS, "h"):
                level = int(child.getAttrNS(TEXTNS, "outline-level") or 1)
                outline.heading(level, teletype.extractText(child).strip())
            elif name == (TEXTNS, "p"):
                style = child.getAttrNS(TEXTNS, "style-name") or ""
                text = teletype.extractText(child).strip()
                if style == "Title" and title is None and text:
                    title = text
                    outline.heading(0, text)
                else:
                    outline.paragraph(text)
            elif name == (TABLENS, "table"):
                outline.table(odf_rows(child))
            elif name is not None:
                walk(child)  # lists, sections, frames: their paragraphs in order

    walk(document.text)
    return outline.result(title)


def load_odf(data: bytes, suffix: str):
    """An OpenDocument file (text, spreadsheet, presentation), or :class:`UnusableFile`."""
    from odf import opendocument

    try:
        return opendocument.load(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UnusableFile(f"corrupt or unreadable {suffix} ({exc.__class__.__name__}: {exc})") from exc


def odf_rows(table) -> list[list[str]]:
    """The rows of an OpenDocument ``table:table`` (text and spreadsheet alike) as their cells'
    shown text, repeated rows and cells expanded (trailing empty ones dropped)."""
    from odf import teletype
    from odf.namespaces import TABLENS
    from odf.table import TableRow

    rows = []
    for row in table.getElementsByType(TableRow):
        cells: list[str] = []
        for cell in row.childNodes:
            if getattr(cell, "qname", None) not in ((TABLENS, "table-cell"), (TABLENS, "covered-table-cell")):
                continue
            repeat = int(cell.getAttrNS(TABLENS, "number-columns-repeated") or 1)
            text = "\n".join(teletype.extractText(p) for p in cell.childNodes if getattr(p, "qname", None)).strip()
            cells.extend([text] * (repeat if text else min(repeat, 64)))  # a sheet's last cell repeats 16k times
        while cells and not cells[-1]:
            cells.pop()
        repeat = int(row.getAttrNS(TABLENS, "number-rows-repeated") or 1)
        if cells:
            rows.extend([cells] * min(repeat, 1000))
    return rows
