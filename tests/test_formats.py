"""Every file a user has: tables read as tables (DOCX, HTML, ODT), spreadsheets (.xlsx .ods
.csv .tsv), slides (.pptx .odp), e-mails (.eml with a PDF attachment, .mbox), e-books (.epub),
rich text (.rtf). Each file is made by the test with the library that writes that format (an
EPUB with zipfile, RTF by hand), then read, indexed for real and asked about."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from tpdqa.ingest import SUPPORTED_SUFFIXES, load_folder

WATER = [["Parameter", "Average 2024", "Limit"], ["Nitrates", "18 mg/L", "50 mg/L"],
         ["Pesticides", "0.02 µg/L", "0.5 µg/L"]]
TREES = [["Species", "Planted", "Survival"], ["Oak", "120", "92%"], ["Lime", "80", "71%"]]


def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Water quality report", level=0)
    document.add_heading("Results of the year", level=1)
    document.add_paragraph("The laboratory measured the water of the three wells every month.")
    table = document.add_table(rows=0, cols=3)
    for row in WATER:
        cells = table.add_row().cells
        for cell, value in zip(cells, row):
            cell.text = value
    document.add_heading("Next steps", level=1)
    document.add_paragraph("A new filter will be installed at the northern well in spring.")
    document.save(path)


def make_html(path: Path) -> None:
    path.write_text("<html><head><title>Swimming pools</title></head><body><h1>Opening hours</h1>"
                    "<p>The two municipal pools publish their timetable every season.</p><table>"
                    "<caption>Summer timetable</caption><tr><th>Pool</th><th>Opens</th><th>Closes</th></tr>"
                    "<tr><td>Jean Bouin</td><td>7:00</td><td>21:30</td></tr>"
                    "<tr><td>Les Iris</td><td>9:00</td><td>19:00</td></tr></table></body></html>", encoding="utf-8")


def make_xlsx(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Budget 2025"
    sheet.append(["Item", "Amount", "Share"])
    for item, amount, share in (("Roads", 1250000, 0.35), ("Schools", 830000, 0.23), ("Parks", 240000, 0.07)):
        sheet.append([item, amount, share])
    for row in sheet.iter_rows(min_row=2):
        row[1].number_format = "#,##0"
        row[2].number_format = "0%"
    book.create_sheet("Notes").append(["The budget was voted on 12 December 2024."])
    book.save(path)


def odf_table(name: str, rows: list[list[str]]):
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import P

    table = Table(name=name)
    table.addElement(TableColumn(numbercolumnsrepeated=len(rows[0])))
    for row in rows:
        tr = TableRow()
        for value in row:
            cell = TableCell()
            cell.addElement(P(text=value))
            tr.addElement(cell)
        table.addElement(tr)
    return table


def make_ods(path: Path) -> None:
    from odf.opendocument import OpenDocumentSpreadsheet

    document = OpenDocumentSpreadsheet()
    document.spreadsheet.addElement(odf_table("Trees", TREES))
    document.save(str(path))


def make_odt(path: Path) -> None:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    document = OpenDocumentText()
    document.text.addElement(H(outlinelevel=1, text="Council minutes"))
    document.text.addElement(H(outlinelevel=2, text="Culture"))
    document.text.addElement(P(text="The council approved the new media library on 4 June."))
    document.text.addElement(H(outlinelevel=2, text="Sports"))
    document.text.addElement(odf_table("Grants", [["Club", "Grant"], ["Rowing club", "4,500 euros"],
                                                  ["Chess club", "900 euros"]]))
    document.save(str(path))


def make_pptx(path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[0])
    first.shapes.title.text = "Project Heron"
    first.placeholders[1].text = "A footbridge over the river"
    second = deck.slides.add_slide(deck.slide_layouts[1])
    second.shapes.title.text = "Timeline"
    second.placeholders[1].text = "The footbridge opens to walkers in March 2027."
    second.notes_slide.notes_text_frame.text = "The floods of last winter delayed the works by two months."
    third = deck.slides.add_slide(deck.slide_layouts[5])
    third.shapes.title.text = "Costs"
    shape = third.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2))
    for r, row in enumerate([["Part", "Cost"], ["Steel deck", "2.1 million euros"], ["Lighting", "150,000 euros"]]):
        for c, value in enumerate(row):
            shape.table.cell(r, c).text = value
    deck.save(path)


def make_odp(path: Path) -> None:
    from odf.draw import Frame, Page, TextBox
    from odf.namespaces import PRESENTATIONNS
    from odf.opendocument import OpenDocumentPresentation
    from odf.style import MasterPage, PageLayout, Style
    from odf.text import P

    document = OpenDocumentPresentation()
    layout = PageLayout(name="layout")
    document.automaticstyles.addElement(layout)
    master = MasterPage(name="master", pagelayoutname=layout)
    document.masterstyles.addElement(master)
    style = Style(name="frame", family="presentation")
    document.automaticstyles.addElement(style)
    for title, body in (("Kick-off", "The association was founded in 2019."),
                        ("Members", "The association counts 340 members this year.")):
        page = Page(masterpagename=master)
        for kind, text in (("title", title), ("outline", body)):
            frame = Frame(stylename=style, width="20cm", height="3cm", x="1cm", y="1cm")
            frame.setAttrNS(PRESENTATIONNS, "class", kind)
            box = TextBox()
            box.addElement(P(text=text))
            frame.addElement(box)
            page.addElement(frame)
        document.presentation.addElement(page)
    document.save(str(path))


AIR = [["Pollutant", "Mean 2024", "Threshold"], ["PM10", "21 ug/m3", "40 ug/m3"], ["NO2", "28 ug/m3", "40 ug/m3"]]


def make_table_pdf(path: Path) -> None:
    """A ruled table between two paragraphs (fpdf2 draws its borders)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, "Air quality in the valley\n\nThe agency measured the air at four stations all year long.")
    with pdf.table() as table:
        for values in AIR:
            row = table.row()
            for value in values:
                row.cell(value)
    pdf.multi_cell(0, 8, "\nTwo more stations will be installed near the motorway next year.")
    pdf.output(str(path))


def make_pdf_bytes(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


FEEDBACK = ("The guided tour of the old mill lasted two hours and the guide knew every machine by name. "
            "The children especially liked the water wheel, which still turns on Sundays in summer. "
            "Parking near the entrance was difficult, so next year we will come by the river path instead.")


def make_feedback_xlsx(path: Path) -> None:
    """A sheet whose cells hold prose: a row that long is read as sentences, not quoted whole."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Visitors"
    sheet.append(["Visitor", "Comment"])
    sheet.append(["Anna Keller", FEEDBACK])
    book.save(path)


def make_eml(path: Path) -> None:
    message = EmailMessage()
    message["Subject"] = "Harbour repairs"
    message["From"] = "Claire Martin <claire.martin@port.example>"
    message["To"] = "works@port.example"
    message["Date"] = "Tue, 14 Oct 2025 09:12:00 +0200"
    message.set_content("Hello,\n\nThe crane arrives on Monday morning at the east quay.\n\nClaire\n")
    message.add_attachment(make_pdf_bytes("Lighthouse survey\n\nThe new lens of the lighthouse costs 40,000 euros "
                                          "and will be fitted in November."), maintype="application",
                           subtype="pdf", filename="report.pdf")
    path.write_bytes(bytes(message))


def make_mbox(path: Path) -> None:
    import mailbox

    box = mailbox.mbox(path)
    for subject, body in (("Choir rehearsal", "The choir rehearses on Thursday evenings in the old chapel."),
                          ("Bakery order", "The bakery delivers forty loaves every Saturday.")):
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = subject, "secretary@club.example", "all@club.example"
        message["Date"] = "Mon, 03 Nov 2025 18:00:00 +0100"
        message.set_content(body)
        box.add(mailbox.mboxMessage(bytes(message)))
    box.close()


MAKERS = {"air.pdf": make_table_pdf, "report.docx": make_docx, "pools.html": make_html, "budget.xlsx": make_xlsx, "feedback.xlsx": make_feedback_xlsx, "trees.ods": make_ods,
          "minutes.odt": make_odt, "heron.pptx": make_pptx, "club.odp": make_odp, "harbour.eml": make_eml,
          "club.mbox": make_mbox}


@pytest.fixture(scope="module")
def office(tmp_path_factory) -> Path:
    docs = tmp_path_factory.mktemp("office") / "documents"
    docs.mkdir()
    for name, make in MAKERS.items():
        make(docs / name)
    (docs / "rain.csv").write_text("Station;Rainfall 2024 (mm)\nLyon;812\nBrest;1210\n", encoding="utf-8")
    return docs


def cited_for(qa, question: str, source: str, words: str):
    """The first citation of ``question``'s answer, which must quote ``words`` from ``source``."""
    answer = qa.ask(question)
    assert not answer.refused, question
    cited = answer.citations[0]
    assert cited.source == source and words in cited.quote, (question, cited.source, cited.quote)
    return cited


def answered_in(docs: Path, index: Path, cases: list[tuple[str, str, str]]):
    """Every file of ``docs`` indexed, and each (question, source, words) of ``cases`` answered
    from them: the first citation of each."""
    from tpdqa import Assistant

    qa = Assistant(documents_dir=docs, index_dir=index)
    assert qa.index().failed == 0
    return [cited_for(qa, *case) for case in cases]


def sections_of(office: Path) -> dict[str, list[tuple[str, int | None, str]]]:
    loaded = load_folder(office)
    assert not loaded.errors, loaded.errors
    out: dict[str, list] = {}
    for doc in loaded.documents:
        out.setdefault(doc.metadata["source"], []).append((doc.metadata["section"], doc.metadata.get("page"),
                                                           doc.page_content))
    return out


def test_the_new_types_are_supported():
    assert {".xlsx", ".ods", ".csv", ".pptx", ".odp", ".eml", ".mbox", ".odt"} <= set(SUPPORTED_SUFFIXES)


def test_tables_keep_each_value_beside_its_row_and_column_headers(office):
    read = sections_of(office)
    docx = {section: text for section, _, text in read["report.docx"]}
    assert "Nitrates — Average 2024: 18 mg/L; Limit: 50 mg/L" in docx["Water quality report › Results of the year"]
    assert "filter" in docx["Water quality report › Next steps"] and "Nitrates" not in docx[
        "Water quality report › Next steps"]  # the table stays under the heading above it
    html = " ".join(text for _, _, text in read["pools.html"])
    assert "Summer timetable" in html and "Jean Bouin — Opens: 7:00; Closes: 21:30" in html
    air = " ".join(text for _, _, text in read["air.pdf"])
    assert "PM10 — Mean 2024: 21 ug/m3; Threshold: 40 ug/m3" in air
    assert air.index("four stations") < air.index("PM10 —") < air.index("near the motorway")  # where it stands
    odt = {section: text for section, _, text in read["minutes.odt"]}
    assert "Rowing club — Grant: 4,500 euros" in odt["Council minutes › Sports"]
    assert "media library" in odt["Council minutes › Culture"]


def test_spreadsheets_are_sections_of_rows_shown_as_the_sheet_shows_them(office):
    read = sections_of(office)
    budget = {section: text for section, _, text in read["budget.xlsx"]}
    assert "Roads — Amount: 1,250,000; Share: 35%" in budget["Budget 2025"]
    assert "voted on 12 December 2024" in budget["Notes"]
    trees = {section: text for section, _, text in read["trees.ods"]}
    assert "Oak — Planted: 120; Survival: 92%" in trees["Trees"]
    assert "Brest — Rainfall 2024 (mm): 1210" in read["rain.csv"][0][2]


def test_each_slide_is_a_section_under_its_title_with_its_number_and_notes(office):
    read = sections_of(office)
    heron = {section: (page, text) for section, page, text in read["heron.pptx"]}
    assert heron["Timeline"][0] == 2 and "opens to walkers in March 2027" in heron["Timeline"][1]
    assert "Notes: The floods of last winter" in heron["Timeline"][1]
    assert heron["Costs"] == (3, heron["Costs"][1]) and "Steel deck — Cost: 2.1 million euros" in heron["Costs"][1]
    club = {section: (page, text) for section, page, text in read["club.odp"]}
    assert club["Members"][0] == 2 and "340 members" in club["Members"][1]


def test_an_email_has_its_headers_first_and_its_attachment_as_its_own_cited_part(office):
    read = sections_of(office)
    harbour = {section: (page, text) for section, page, text in read["harbour.eml"]}
    first = harbour["Harbour repairs"][1]
    assert first.startswith("From: Claire Martin <claire.martin@port.example>; To: works@port.example; Date: Tue, "
                            "14 Oct 2025")
    assert "The crane arrives on Monday" in first
    attached = [(s, p, t) for s, p, t in read["harbour.eml"] if s.startswith("report.pdf")]
    assert attached and attached[0][1] == 1 and "40,000 euros" in " ".join(t for _, _, t in attached)
    club = {section for section, _, _ in read["club.mbox"]}
    assert club == {"Choir rehearsal", "Bakery order"}
    # The attachment and each message are documents of their own: own title, own part.
    docs = load_folder(office).documents
    report = [d.metadata for d in docs if d.metadata["source"] == "harbour.eml" and d.metadata.get("part")]
    assert {(m["part"], m["title"]) for m in report} == {("report.pdf", "Lighthouse survey")}
    message = [d.metadata for d in docs if d.metadata["source"] == "harbour.eml" and not d.metadata.get("part")]
    assert message and all(m["title"] == "Harbour repairs" for m in message)
    assert {(d.metadata["part"], d.metadata["title"]) for d in docs if d.metadata["source"] == "club.mbox"} == {
        ("Choir rehearsal", "Choir rehearsal"), ("Bakery order", "Bakery order")}


def test_an_attachment_over_the_configured_limits_is_skipped_and_its_message_kept(office):
    from tpdqa.ingest import load_bytes
    from tpdqa.sandbox import Limits

    message = EmailMessage()
    message["Subject"], message["From"] = "Minutes attached", "clerk@town.example"
    message.set_content("The minutes of the council are attached.")
    message.add_attachment((office / "report.docx").read_bytes(), maintype="application", subtype="octet-stream",
                           filename="report.docx")
    data = bytes(message)
    parts = {d.metadata.get("part") for d in load_bytes(data, "minutes.eml")}
    assert parts == {None, "report.docx"}
    small = load_bytes(data, "minutes.eml", Limits(max_unpacked_mb=0.01))  # the docx unpacks to more
    assert {d.metadata.get("part") for d in small} == {None} and "minutes of the council" in small[0].page_content


def test_questions_on_each_type_are_answered_with_the_row_slide_or_message_that_holds_them(office, tmp_path):
    """The default answerer, its reader on for these English questions. (Reader off, it refuses
    "How much money goes to the roads?", whose row says "Amount"; it answers "When does the crane
    arrive?" since a weekday counts as an answer to "when", support 0.55. The reader marked a value of any row of a table — the
    Lime row for the oak question — so a question whose first passage is a table is answered as
    with the reader off, and the row it quotes is read alone for its value.)"""
    from tpdqa import Assistant

    docs = tmp_path / "documents"
    shutil.copytree(office, docs)
    qa = Assistant(documents_dir=docs, index_dir=tmp_path / "index")
    stats = qa.index()
    assert stats.failed == 0 and stats.added == len(MAKERS) + 1
    cases = [
        ("What was the average nitrates level in 2024?", "report.docx", "18 mg/L", None),
        ("What was the mean PM10 level in 2024?", "air.pdf", "21 ug/m3", 1),
        ("What is the amount for roads in the 2025 budget?", "budget.xlsx", "1,250,000", None),
        ("What is the survival rate of the oak trees?", "trees.ods", "92%", None),
        ("When does the footbridge open to walkers?", "heron.pptx", "March 2027", 2),
        ("How much does the new lens of the lighthouse cost?", "harbour.eml", "40,000 euros", 1),
        ("At which quay does the crane arrive?", "harbour.eml", "east quay", None),
        ("What grant did the rowing club get?", "minutes.odt", "4,500 euros", None),
        ("On which day does the water wheel of the old mill turn?", "feedback.xlsx", "Sundays", None),
    ]
    for question, source, words, page in cases:
        cited = cited_for(qa, question, source, words)
        if source in ("air.pdf", "report.docx", "budget.xlsx", "trees.ods", "minutes.odt"):  # the row alone, with its headers
            assert len(cited.sentences) == 1 and " — " in cited.quote and ": " in cited.quote, cited.quote
            marked = cited.span_text or "-"  # the row's value, marked ("18" of "18 mg/L" too)
            assert marked in words or words in marked, (question, cited.span_text)
        if page is not None:
            assert cited.page == page, (question, cited.page)
    wheel = qa.ask("On which day does the water wheel of the old mill turn?").citations[0]
    assert "Parking" not in wheel.quote, wheel.quote  # sentences of the comment, not the whole row
    lens = qa.ask("How much does the new lens of the lighthouse cost?").citations[0]
    assert lens.section.startswith("harbour.eml › report.pdf") and lens.title == "Lighthouse survey"
    # Listed under their file, removed with it (API and the page's Documents tab).
    from tpdqa.api import documents
    from tpdqa.ui import documents_table
    from tpdqa.users import LOCAL

    listed = {d.source: d for d in documents(qa, LOCAL).documents}
    assert [(p.name, p.title) for p in listed["harbour.eml"].parts] == [("report.pdf", "Lighthouse survey")]
    assert [p.name for p in listed["club.mbox"].parts] == ["Choir rehearsal", "Bakery order"]
    assert listed["budget.xlsx"].parts == []
    rows = [row[0] for row in documents_table(qa)]
    assert rows.index("harbour.eml › report.pdf") == rows.index("harbour.eml") + 1
    qa.remove_document("harbour.eml")
    qa.index()
    assert "harbour.eml" not in {d.source for d in documents(qa, LOCAL).documents}
    assert "harbour.eml › report.pdf" not in [row[0] for row in documents_table(qa)]


def test_uploads_accept_the_new_types(tmp_path):
    from tpdqa import Assistant

    qa = Assistant(documents_dir=tmp_path / "documents", index_dir=tmp_path / "index")
    for name in ("budget.xlsx", "deck.pptx", "mail.eml", "notes.odt", "rain.csv", "guide.epub", "mill.rtf",
                 "ferries.tsv", "park.json", "trips.jsonl", "log.ndjson", "feed.xml"):
        qa.check_document(name, 10)


# -- e-books, rich text, tab-separated values ----------------------------------------------

CHAPTERS = {  # file in the book -> XHTML body
    "Text/sources.xhtml": "<h1>Sources</h1><p>The Argent rises in the Vosges mountains, at 1,200 metres, "
                          "below the Grand Ballon.</p><p>Its first village is Saint-Loup.</p>",
    "Text/bridges.xhtml": "<h1>Bridges</h1><h2>Old bridges</h2><p>Three stone bridges cross the Argent in the "
                          "old town.</p><table><tr><th>Bridge</th><th>Built</th><th>Length</th></tr>"
                          "<tr><td>Pont Vieux</td><td>1350</td><td>180 m</td></tr>"
                          "<tr><td>Pont Neuf</td><td>1612</td><td>95 m</td></tr></table>",
    "Text/nav.xhtml": "<nav epub:type='toc'><ol><li><a href='sources.xhtml'>Sources</a></li></ol></nav>",
}


def make_epub(path: Path, encrypted: tuple[str, ...] = ()) -> None:
    """An EPUB 3 as the spec lays it out (zipfile: no library here writes EPUB): the spine lists
    the bridges before the sources, and the table of contents (nav) is in it too."""

    def page(body: str) -> str:
        return ("<?xml version='1.0' encoding='utf-8'?><html xmlns='http://www.w3.org/1999/xhtml' "
                f"xmlns:epub='http://www.idpf.org/2007/ops'><head><title>River guide</title></head><body>{body}</body></html>")

    nav = " properties='nav'"
    items = "".join(f"<item id='c{n}' href='{name}' media-type='application/xhtml+xml'"
                    f"{nav if name.endswith('nav.xhtml') else ''}/>" for n, name in enumerate(CHAPTERS))
    package = ("<?xml version='1.0' encoding='utf-8'?><package xmlns='http://www.idpf.org/2007/opf' version='3.0' "
               "unique-identifier='id'><metadata xmlns:dc='http://purl.org/dc/elements/1.1/'>"
               "<dc:identifier id='id'>urn:uuid:0</dc:identifier><dc:title>The Argent, a river guide</dc:title>"
               f"<dc:language>en</dc:language></metadata><manifest>{items}</manifest>"
               "<spine><itemref idref='c2'/><itemref idref='c1'/><itemref idref='c0'/></spine></package>")
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        book.writestr("META-INF/container.xml", "<?xml version='1.0'?><container version='1.0' xmlns="
                      "'urn:oasis:names:tc:opendocument:xmlns:container'><rootfiles><rootfile full-path="
                      "'OEBPS/content.opf' media-type='application/oebps-package+xml'/></rootfiles></container>")
        if encrypted:
            book.writestr("META-INF/encryption.xml", "<encryption xmlns='urn:oasis:names:tc:opendocument:xmlns:"
                          "container' xmlns:enc='http://www.w3.org/2001/04/xmlenc#'>" + "".join(
                              f"<enc:EncryptedData><enc:CipherData><enc:CipherReference URI='{name}'/>"
                              "</enc:CipherData></enc:EncryptedData>" for name in encrypted) + "</encryption>")
        book.writestr("OEBPS/content.opf", package)
        for name, body in CHAPTERS.items():
            book.writestr(f"OEBPS/{name}", page(body))


# What WordPad writes: a code page for the \'xx escapes, a font table, a picture, \u escapes.
MILL_RTF = (r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fnil Calibri;}}{\*\generator Riched20 10.0;}"
            "\n\\f0\\fs22 Le moulin de Saint-Ours\\par\n\\par\n"
            r"Le moulin a \'e9t\'e9 restaur\'e9 en 1987 par l'association des \b amis du patrimoine\b0 .\par"
            "\n{\\pict\\pngblip 89504e470d0a1a0a0000000d49484452}\n"
            r"La roue tourne chaque dimanche d\u8217?\'e9t\'e9 et le moulin produit 40 kilos de farine par jour.\par}")


def test_an_ebook_rich_text_and_tab_separated_values_are_read_and_answered(tmp_path):
    """An .epub's chapters in the spine's order under their headings (not its table of contents),
    an .rtf's text without its control words or picture, a .tsv's rows with their headers;
    each asked about through the default answerer."""
    docs = tmp_path / "documents"
    docs.mkdir()
    make_epub(docs / "guide.epub")
    (docs / "mill.rtf").write_text(MILL_RTF, encoding="ascii")
    (docs / "ferries.tsv").write_text("Ferry\tDeparts\tArrives\nIsland Express\t08:15\t09:40\n"
                                      "Night Boat\t22:30\t06:05\n", encoding="utf-8")
    read = sections_of(docs)
    book = read["guide.epub"]
    assert [section for section, _, _ in book] == ["Bridges › Old bridges", "Sources"]  # the spine's order
    assert "Pont Vieux — Built: 1350; Length: 180 m" in book[0][2] and "Saint-Loup" in book[1][2]
    assert not any("nav" in text or text == "Sources" for _, _, text in book)
    loaded = {doc.metadata["source"]: doc for doc in load_folder(docs).documents}
    assert loaded["guide.epub"].metadata["title"] == "The Argent, a river guide"
    mill = read["mill.rtf"]
    assert mill[0][0] == "Le moulin de Saint-Ours" and loaded["mill.rtf"].metadata["lang"] == "fr"
    assert "a été restauré en 1987 par l'association des amis du patrimoine." in mill[0][2]
    assert "dimanche d’été" in mill[0][2] and "rtf" not in mill[0][2] and "89504e" not in mill[0][2]
    assert read["ferries.tsv"][0][2] == "Island Express — Departs: 08:15; Arrives: 09:40\n\nNight Boat — Departs: 22:30; Arrives: 06:05"

    answered_in(docs, tmp_path / "index", [("Where does the Argent rise?", "guide.epub", "Vosges mountains"),
                                           ("When was the Pont Vieux built?", "guide.epub", "1350"),
                                           ("Quand le moulin a-t-il été restauré ?", "mill.rtf", "1987"),
                                           ("When does the Island Express depart?", "ferries.tsv", "08:15")])


def test_a_protected_ebook_or_a_broken_one_is_reported_and_the_others_are_read(tmp_path):
    docs = tmp_path / "documents"
    docs.mkdir()
    make_epub(docs / "guide.epub")
    make_epub(docs / "bought.epub", encrypted=("OEBPS/Text/sources.xhtml",))
    (docs / "broken.epub").write_bytes(b"PK\x03\x04 not a zip at all")
    make_epub(docs / "laughs.epub")  # an entity declaration in its package file: XML's "billion laughs"
    with zipfile.ZipFile(docs / "laughs.epub", "a") as book:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a second OEBPS/content.opf: the last one is read
            book.writestr("OEBPS/content.opf", "<?xml version='1.0'?><!DOCTYPE p [<!ENTITY a 'aaaaaaaaaa'>"
                          "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]><package>&b;</package>")
    (docs / "fake.rtf").write_text("Just text, saved with the wrong name.", encoding="utf-8")
    loaded = load_folder(docs)
    reasons = {error.source: error.reason for error in loaded.errors}
    assert loaded.sources == ["guide.epub"]
    assert set(reasons) == {"bought.epub", "broken.epub", "laughs.epub", "fake.rtf"}
    assert "corrupt or unreadable .epub (EntitiesForbidden" in reasons["laughs.epub"]
    assert "encrypted (DRM)" in reasons["bought.epub"] and "without protection" in reasons["bought.epub"]
    assert "not a valid zip container" in reasons["broken.epub"]
    assert "not a rich-text file" in reasons["fake.rtf"]


# -- structured data: JSON, JSON Lines, XML -------------------------------------------------

PARK_JSON = {
    "titre": "Parc des Buttes : inventaire 2025",
    "résumé": "Les plantations de l'hiver 2024 ont bien repris. Le printemps humide a aidé les jeunes arbres.",
    "gestion": "Service des espaces verts",
    "parcelles": [{"nom": "Chêne", "plantés": 120, "survie": "92%"},
                  {"nom": "Érable", "plantés": 80, "survie": "71%"},
                  {"nom": "Hêtre", "plantés": 45, "survie": "88%"}],
    "budget": {"total": 48000, "devise": "EUR", "financeurs": ["Ville", "Région"]},
}
HARBOUR_RSS = """<?xml version="1.0"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Harbour News</title>
<item><title>New ferry line</title><dc:creator>Port office</dc:creator>
<description>The harbour opens a new ferry line to Saint-Ilan island in April. A ticket costs 12 euros.</description></item>
<item><title>Crane arrives</title>
<description>A <b>new crane</b> reaches the container quay on Monday. It can lift 80 tonnes.</description></item>
</channel></rss>"""


def test_json_json_lines_and_xml_are_read_by_their_keys_and_answered(tmp_path):
    """A JSON object's short values as "key: value" lines and its long texts as paragraphs, a
    list of records as keyed rows (as a sheet's), nested objects as sections by their keys; JSON
    Lines as rows; an XML feed's items as sections under their titles, inline markup read as
    text. Each asked about through the default answerer."""
    docs = tmp_path / "documents"
    docs.mkdir()
    (docs / "park.json").write_text(json.dumps(PARK_JSON, ensure_ascii=False, indent=2), encoding="utf-8")
    (docs / "ferries.jsonl").write_text(
        '{"route": "Island Express", "departs": "08:15", "pier": "A"}\n\n'
        '{"route": "Night Boat", "departs": "22:30", "pier": "C"}\n', encoding="utf-8")
    (docs / "harbour.xml").write_text(HARBOUR_RSS, encoding="utf-8")
    read = sections_of(docs)
    park = {section: text for section, _, text in read["park.json"]}
    assert park[""].startswith("titre: Parc des Buttes : inventaire 2025\ngestion: Service des espaces verts\n\n"
                               "Les plantations")
    assert park["parcelles"].split("\n\n") == [
        "Chêne — plantés: 120; survie: 92%", "Érable — plantés: 80; survie: 71%", "Hêtre — plantés: 45; survie: 88%"]
    assert park["budget"] == "total: 48000\ndevise: EUR\nfinanceurs: Ville, Région"
    assert read["ferries.jsonl"][0][2] == "Island Express — departs: 08:15; pier: A\n\nNight Boat — departs: 22:30; pier: C"
    harbour = {section: text for section, _, text in read["harbour.xml"]}
    crane = harbour["rss › channel › item › Crane arrives"]
    assert crane == "A new crane reaches the container quay on Monday. It can lift 80 tonnes."  # no <b>, no title line
    assert harbour["rss › channel › item › New ferry line"].startswith("creator: Port office\n\nThe harbour opens")
    loaded = {doc.metadata["source"]: doc for doc in load_folder(docs).documents}
    assert loaded["park.json"].metadata["lang"] == "fr" and loaded["harbour.xml"].metadata["title"] == "Harbour News"

    cited = answered_in(docs, tmp_path / "index", [
                                           ("Qu'est-ce qui a aidé les jeunes arbres ?", "park.json", "printemps humide"),
                                           ("Combien d'érables ont été plantés ?", "park.json", "80"),
                                           ("When does the Night Boat depart?", "ferries.jsonl", "22:30"),
                                           ("How much can the new crane lift?", "harbour.xml", "80 tonnes"),
                                           ("How much does a ferry ticket to Saint-Ilan cost?", "harbour.xml", "12 euros")])
    assert cited[1].quote == "Érable — plantés: 80; survie: 71%" and cited[1].span_text == "80"  # one cell marked


def test_a_markdown_table_is_read_as_rows_and_a_price_under_a_currency_header_answers(tmp_path):
    """A Markdown pipe table becomes keyed rows, as a sheet's or an HTML table's (it was one run of
    cells, "| KODE Art Museum | 10:00 | 17:00 | 150 NOK | | Bryggen…", quoted whole with the wrong
    hour marked); a price asked for is found in a currency code ("150 NOK") and in a cell whose
    column header names the currency ("Prévu (€): 8000")."""
    docs = tmp_path / "documents"
    docs.mkdir()
    (docs / "museums.md").write_text(
        "# Museums of Bergen\n\nOpening hours and prices for adults:\n\n"
        "| Museum | Opens | Closes | Adult ticket |\n| --- | :---: | ---: | --- |\n"
        "| KODE Art Museum | 10:00 | 17:00 | 150 NOK |\n| Bryggen Museum | 09:00 | 16:00 | 100 NOK |\n"
        "| Hanseatic Museum | 09:00 | 18:00 | 160 NOK |\n\nChildren under 16 enter for free.\n", encoding="utf-8")
    (docs / "budget.csv").write_text("Poste,Prévu (€),Réalisé (€)\nLoyer,24000,24000\nDéplacements,12000,15800\n"
                                     "Formation,8000,5200\n", encoding="utf-8")
    assert sections_of(docs)["museums.md"][0][2].split("\n\n")[1].split("\n") == [
        "KODE Art Museum — Opens: 10:00; Closes: 17:00; Adult ticket: 150 NOK",
        "Bryggen Museum — Opens: 09:00; Closes: 16:00; Adult ticket: 100 NOK",
        "Hanseatic Museum — Opens: 09:00; Closes: 18:00; Adult ticket: 160 NOK"]
    closes, ticket, training = answered_in(docs, tmp_path / "index", [
        ("When does the Hanseatic Museum close?", "museums.md", "Closes: 18:00"),
        ("How much is an adult ticket to the KODE Art Museum?", "museums.md", "150 NOK"),
        ("Quel est le budget prévu pour la formation ?", "budget.csv", "Prévu (€): 8000")])
    assert closes.span_text == "18:00" and ticket.span_text == "150 NOK", (closes.span_text, ticket.span_text)
    assert len(training.sentences) == 1, training.quote  # the row alone


def test_broken_or_unsafe_structured_files_are_reported_with_where_and_the_others_are_read(tmp_path):
    docs = tmp_path / "documents"
    docs.mkdir()
    (docs / "park.json").write_text(json.dumps(PARK_JSON), encoding="utf-8")
    (docs / "cut.json").write_text('{"title": "Budget", "total": 48000,\n "currency": ', encoding="utf-8")
    (docs / "rows.jsonl").write_text('{"route": "Island Express"}\n{"route": Night Boat}\n', encoding="utf-8")
    (docs / "deep.json").write_text("[" * 200 + "]" * 200, encoding="utf-8")
    (docs / "open.xml").write_text("<rss><channel><title>Harbour News</channel></rss>", encoding="utf-8")
    (docs / "laughs.xml").write_text("<?xml version='1.0'?><!DOCTYPE p [<!ENTITY a 'aaaaaaaaaa'>"
                                     "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]><p>&b;</p>", encoding="utf-8")
    loaded = load_folder(docs)
    reasons = {error.source: error.reason for error in loaded.errors}
    assert loaded.sources == ["park.json"]
    assert "not valid JSON (Expecting value at line 2, column 14)" in reasons["cut.json"]
    assert "line 2 is not valid JSON" in reasons["rows.jsonl"]
    assert "nested too deep" in reasons["deep.json"]
    assert "not well-formed XML (line 1, column" in reasons["open.xml"]
    assert "declares entities" in reasons["laughs.xml"] and "<!DOCTYPE>" in reasons["laughs.xml"]


# -- scans: OCR ----------------------------------------------------------------------------

def text_image(lines: list[str]):
    """A white page with black text, as a scanner would give it (no text layer anywhere)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=44)
    image = Image.new("RGB", (1700, 220 + 80 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        draw.text((100, 100 + 80 * n), line, fill="black", font=font)
    return image


def make_scanned_pdf(path: Path) -> None:
    """Page 1 has a text layer; page 2 is a scan (an image only)."""
    import io

    from fpdf import FPDF

    scan = io.BytesIO()
    text_image(["The new pumping station of the water board", "will cost 2.4 million euros.",
                "Works start after the summer."]).save(scan, format="PNG")
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, "Water board, annual report\n\nThe board met six times this year and approved two projects.")
    pdf.add_page()
    pdf.image(scan, x=10, y=20, w=190)
    pdf.output(str(path))


SCHOOLS = ["The Alder school gets eleven new computers.", "Birch pupils planted a garden behind the gym.",
           "Cedar teachers visited the science museum in May.", "Damson school repainted its library walls blue.",
           "Elm kitchen now serves soup every Friday."]


def make_long_scan(path: Path) -> None:
    """Five image-only pages, read side by side by OCR: each page's text must stay on its page."""
    import io

    from fpdf import FPDF

    pdf = FPDF()
    for sentence in SCHOOLS:
        scan = io.BytesIO()
        text_image([sentence]).save(scan, format="PNG")
        pdf.add_page()
        pdf.image(scan, x=10, y=20, w=190)
    pdf.output(str(path))


def make_png(path: Path) -> None:
    text_image(["Notice: the town library opens at nine", "on Saturday mornings from January."]).save(path)


needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None,
                                     reason="no Tesseract (make setup-test installs it)")


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    docs = tmp_path_factory.mktemp("scans") / "documents"
    docs.mkdir()
    make_scanned_pdf(docs / "water-board.pdf")
    make_png(docs / "notice.png")
    make_long_scan(docs / "schools.pdf")
    return docs


@needs_tesseract
def test_a_scanned_pdf_page_and_an_image_are_read_by_ocr_and_cited_with_their_page(scans, tmp_path):
    from tpdqa import Assistant

    read = sections_of(scans)
    pages = {page: text for _, page, text in read["water-board.pdf"]}
    assert "board met six times" in pages[1] and "2.4 million euros" in pages[2]
    assert "library opens at nine" in " ".join(text for _, _, text in read["notice.png"])
    schools = {page: text for _, page, text in read["schools.pdf"]}
    assert sorted(schools) == [1, 2, 3, 4, 5]
    for page, sentence in enumerate(SCHOOLS, start=1):
        assert sentence in schools[page], (page, schools[page])

    docs = tmp_path / "documents"
    shutil.copytree(scans, docs)
    qa = Assistant(documents_dir=docs, index_dir=tmp_path / "index")
    assert qa.index().failed == 0
    answer = qa.ask("How much will the new pumping station cost?")
    assert not answer.refused and answer.citations[0].source == "water-board.pdf"
    assert answer.citations[0].page == 2 and "2.4 million euros" in answer.citations[0].quote
    notice = qa.ask("When does the town library open on Saturdays?")
    assert not notice.refused and notice.citations[0].source == "notice.png" and notice.citations[0].page == 1


def test_without_tesseract_a_scan_is_listed_with_the_command_that_fixes_it(scans, tmp_path):
    from tests.conftest import run_tpdqa

    docs = tmp_path / "documents"
    shutil.copytree(scans, docs)
    no_tesseract = {"PATH": str(Path(sys.executable).parent)}  # this venv only: no /usr/bin/tesseract
    done = run_tpdqa("index", "--json", "--documents-dir", str(docs), "--index-dir", str(tmp_path / "index"),
                     cwd=tmp_path, env=no_tesseract)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    reasons = {e["source"]: e["reason"] for e in stats["errors"]}
    assert set(reasons) == {"notice.png", "schools.pdf"}  # water-board.pdf's text page is still indexed
    for reason in reasons.values():
        assert "Tesseract is not installed" in reason and "apt-get install tesseract-ocr" in reason, reason
    assert stats["added"] == 1
    assert "reading files: 100%" in done.stderr and "3/3" in done.stderr  # OCR's time shows in a bar of its own
