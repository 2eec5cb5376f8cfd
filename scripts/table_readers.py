"""PDF table readers compared: pdfplumber (what tpdqa uses) against camelot's lattice and
stream modes, on the three kinds of table PDFs hold — fully ruled, ruled under the header
only (booktabs style), no rules at all (aligned columns) — and on the benchmark's prose pages
(a reader that sees tables in prose breaks paragraphs apart).

Camelot is not a dependency of tpdqa (it brings OpenCV); run this in a scratch environment:

    python -m venv /tmp/cam && /tmp/cam/bin/pip install camelot-py pdfplumber fpdf2
    /tmp/cam/bin/python scripts/table_readers.py [PROSE_PDF ...]

Prints, for each table kind and reader, the share of the true cells found in the right row
and column, the tables found and the time per page; then the tables each reader finds on
the prose PDFs given (e.g. bench/formats-squad2-pdf/*.pdf from scripts/generalisation.py).
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
import warnings

TRUTH = [["Parameter", "Average 2024", "Limit"], ["Nitrates", "18 mg/L", "50 mg/L"],
         ["Pesticides", "0.02 ug/L", "0.5 ug/L"], ["Chlorides", "41 mg/L", "250 mg/L"],
         ["Sulfates", "63 mg/L", "250 mg/L"]]
PROSE = ("The laboratory measured the water of the three wells every month of the year, and the "
         "results below sum up what the board approved at its December meeting.")


def table_pdf(kind: str) -> bytes:
    """A paragraph, the table drawn as ``kind`` (ruled, header-rule, no-rule), a paragraph."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 7, "Water quality report\n\n" + PROSE)
    pdf.ln(4)
    x0, widths, h = 15, [60, 50, 50], 8
    for r, row in enumerate(TRUTH):
        y, x = pdf.get_y(), x0
        if kind == "header-rule" and r == 0:
            pdf.line(x0, y, x0 + sum(widths), y)
        for w, value in zip(widths, row):
            pdf.set_xy(x, y)
            pdf.cell(w, h, value, border=1 if kind == "ruled" else 0)
            x += w
        pdf.set_y(y + h)
        if kind == "header-rule" and r in (0, len(TRUTH) - 1):
            pdf.line(x0, y + h, x0 + sum(widths), y + h)
    pdf.ln(4)
    pdf.multi_cell(0, 7, "A new filter will be installed at the northern well in spring. " * 2)
    return bytes(pdf.output())


def cells_found(grid: list[list[str]]) -> float:
    """Share of TRUTH's cells at their place, the grid's rows aligned on the best offset."""
    grid = [[" ".join((c or "").split()) for c in row] for row in grid]
    best = 0
    for start in range(len(grid)):
        hits = sum(1 for i, row in enumerate(TRUTH) if start + i < len(grid)
                   for j, v in enumerate(row) if j < len(grid[start + i]) and grid[start + i][j] == v)
        best = max(best, hits)
    return best / sum(len(r) for r in TRUTH)


def pdfplumber_tables(settings: dict | None = None):
    def read(data: bytes) -> list[list[list[str]]]:
        import pdfplumber

        with pdfplumber.open(io.BytesIO(data)) as doc:
            return [t.extract() for page in doc.pages for t in page.find_tables(settings or {})
                    if len(t.rows) >= 2 and len(t.columns) >= 2]
    return read


def camelot_tables(flavor: str):
    def read(data: bytes) -> list[list[list[str]]]:
        import camelot

        with tempfile.NamedTemporaryFile(suffix=".pdf", delete=False) as f:
            f.write(data)
        try:
            return [t.df.values.tolist() for t in camelot.read_pdf(f.name, pages="all", flavor=flavor)]
        finally:
            os.unlink(f.name)
    return read


READERS = {"pdfplumber": pdfplumber_tables(),
           "pdfplumber text": pdfplumber_tables({"vertical_strategy": "text", "horizontal_strategy": "text"}),
           "camelot lattice": camelot_tables("lattice"), "camelot stream": camelot_tables("stream")}


def main(prose: list[str]) -> None:
    warnings.simplefilter("ignore")
    print("load", round(os.getloadavg()[0], 2))
    for kind in ("ruled", "header-rule", "no-rule"):
        data = table_pdf(kind)
        for name, read in READERS.items():
            read(data)  # imports and caches warm
            started = time.perf_counter()
            for _ in range(3):
                tables = read(data)
            ms = (time.perf_counter() - started) / 3 * 1000
            found = max((cells_found(t) for t in tables), default=0.0)
            print(f"{kind:<12} {name:<16} cells {found:.2f}  tables {len(tables)}  {ms:.0f} ms/page")
    if prose:
        import pypdfium2

        pages = sum(len(pypdfium2.PdfDocument(path)) for path in prose)
        for name, read in READERS.items():
            tables = [t for path in prose for t in read(open(path, "rb").read())]
            wide = [t for t in tables if t and max(len(r) for r in t) >= 2]
            print(f"prose ({pages} pages) {name:<16} tables {len(tables)}, of 2 columns or more {len(wide)}")


if __name__ == "__main__":
    main(sys.argv[1:])
