"""Spreadsheets: .xlsx (openpyxl), .ods (odfpy), .csv and .tsv (the standard ``csv`` module).

Each sheet is a section (``budget.xlsx › Budget 2025``); each row is one line that names its
columns (``Nitrates — Average 2024: 18 mg/L; Limit: 50 mg/L``), so a chunk of any rows of a
long sheet still says what each value is, and a question about one cell finds its row.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

from tpdqa.ingest.base import Section, UnusableFile, decode_text, keyed_rows, reads
from tpdqa.ingest.office import load_odf, odf_rows

MAX_ROWS = 100_000  # per sheet: beyond, a sheet is data for a database, not a document to quote


def sheet_section(name: str | None, rows: list[list[str]]) -> Section | None:
    lines = keyed_rows(rows[:MAX_ROWS])
    return Section((name,) if name else (), "\n\n".join(lines)) if lines else None


@reads(".xlsx", archive=True)
def read_xlsx(data: bytes):
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)  # values, not formulas
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise UnusableFile(f"corrupt or unreadable .xlsx ({exc.__class__.__name__}: {exc})") from exc
    sections = []
    for sheet in book.worksheets:
        rows = [[shown(cell) for cell in row] for row, _ in zip(sheet.iter_rows(), range(MAX_ROWS + 1))]
        if (section := sheet_section(sheet.title, rows)) is not None:
            sections.append(section)
    return sections, (book.properties.title or None)


def shown(cell) -> str:
    """A cell's value as the sheet shows it, for the common number formats (openpyxl keeps the
    value and its format apart): percentages, fixed decimals, thousands separators, dates."""
    value, fmt = cell.value, (getattr(cell, "number_format", None) or "General")
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (int, float)):
        decimals = len(fmt.split(".")[1].rstrip("%_)-;\" ")) if "." in fmt.split(";")[0] else 0
        if "%" in fmt:
            return f"{value * 100:.{decimals}f}%"
        if fmt != "General" and any(c in fmt for c in "0#"):
            return f"{value:,.{decimals}f}" if "," in fmt else f"{value:.{decimals}f}"
        return str(int(value)) if float(value).is_integer() else repr(value)
    return str(value)


@reads(".ods", archive=True)
def read_ods(data: bytes):
    """The cells' shown text (ODS keeps it beside each value, formatted as the sheet shows it)."""
    from odf.namespaces import TABLENS
    from odf.table import Table

    document = load_odf(data, ".ods")
    sections = [sheet_section(t.getAttrNS(TABLENS, "name"), odf_rows(t))
                for t in document.spreadsheet.getElementsByType(Table)]
    return [s for s in sections if s is not None], None


@reads(".csv", ".tsv")
def read_csv(data: bytes):
    """Comma, semicolon, tab or bar separated, whichever the first lines show; where they show
    none clearly, tabs if they hold any (a .tsv), else commas."""
    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if "\t" in text[:8192] else csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    section = sheet_section(None, rows)
    return ([section] if section else []), None
