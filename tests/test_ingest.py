"""Loading a folder: formats, encodings, bad files reported and skipped, stable chunk ids."""

from __future__ import annotations

import shutil

import pytest

from tpdqa.ingest import chunk_documents, load_folder
from tests.conftest import CORPUS


def test_bad_files_are_named_with_their_reason_and_the_good_ones_load(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(CORPUS, docs / "article.txt")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage without xref")
    (docs / "empty.md").write_bytes(b"")
    (docs / "image.txt").write_bytes(bytes(range(256)) * 20)
    (docs / "notes.xyz").write_text("unsupported")
    (docs / "latin1.txt").write_bytes("Le café de la rue Saint-Honoré ouvre à sept heures.".encode("latin-1"))

    loaded = load_folder(docs)

    reasons = {e.source: e.reason for e in loaded.errors}
    assert set(reasons) == {"broken.pdf", "empty.md", "image.txt", "notes.xyz"}
    assert "PDF" in reasons["broken.pdf"]
    assert "empty" in reasons["empty.md"]
    assert "binary" in reasons["image.txt"]
    assert "unsupported" in reasons["notes.xyz"]
    assert sorted(loaded.sources) == ["article.txt", "latin1.txt"]
    latin = next(d for d in loaded.documents if d.metadata["source"] == "latin1.txt")
    assert "café" in latin.page_content and "Honoré" in latin.page_content


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("L’été à Noël « déjà » vu".encode("utf-8-sig"), "L’été à Noël « déjà » vu"),  # BOM dropped
        ("L’été – 10 €".encode("cp1252"), "L’été – 10 €"),  # Windows quotes, dash, euro
    ],
)
def test_text_encodings(tmp_path, raw, expected):
    (tmp_path / "a.txt").write_bytes(raw)
    doc = load_folder(tmp_path).documents[0]
    assert doc.page_content == expected


def test_html_markdown_docx_pdf_give_text_title_page_and_language(tmp_path):
    import docx
    from fpdf import FPDF

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "page.html").write_text(
        "<html><head><title>Annual report</title><script>var x=1;</script></head>"
        "<body><h1>Results</h1><p>The company grew by ten percent in 2024.</p></body></html>"
    )
    (tmp_path / "notes.md").write_text("# Réunion\n\nLe comité a voté le budget de l'année prochaine.\n")
    document = docx.Document()
    document.add_paragraph("The contract was signed in Geneva on the first of May.")
    document.save(tmp_path / "contract.docx")
    pdf = FPDF()
    for text in ("Page one talks about solar panels.", "Page two talks about wind turbines."):
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        pdf.cell(0, 10, text)
    pdf.output(str(tmp_path / "energy.pdf"))

    loaded = load_folder(tmp_path)

    assert loaded.errors == []
    by_source = {}
    for d in loaded.documents:
        by_source.setdefault(d.metadata["source"], []).append(d)
    html = by_source["sub/page.html"][0]
    assert html.metadata["title"] == "Annual report" and "var x" not in html.page_content
    assert "grew by ten percent" in html.page_content and html.metadata["lang"] == "en"
    md = by_source["notes.md"][0]
    assert md.metadata["title"] == "Réunion" and md.metadata["lang"] == "fr"
    assert "Geneva" in by_source["contract.docx"][0].page_content
    pages = by_source["energy.pdf"]
    assert [p.metadata["page"] for p in pages] == [1, 2]
    assert "wind turbines" in pages[1].page_content


def test_chunks_follow_paragraphs_and_keep_their_id_when_another_paragraph_changes(tmp_path):
    text = CORPUS.read_text(encoding="utf-8")
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    before = chunk_documents(load_folder(tmp_path).documents, 1000, 150)
    paragraphs = text.split("\n")
    paragraphs[2] = paragraphs[2].replace("Japon", "Japon (Nippon)")
    (tmp_path / "a.txt").write_text("\n".join(paragraphs), encoding="utf-8")
    after = chunk_documents(load_folder(tmp_path).documents, 1000, 150)

    assert len(before) == len(after) >= 6
    changed = [a.id for a, b in zip(after, before) if a.id != b.id]
    assert len(changed) == 1
    assert "Nippon" in next(c.page_content for c in after if c.id == changed[0])
    # every chunk ends on a sentence or paragraph boundary
    assert all(c.page_content.rstrip()[-1] in ".!?»”\"0123456789" for c in after)


def test_long_paragraph_is_cut_between_sentences_with_overlap(tmp_path):
    sentences = [f"La phrase numéro {i} parle du sujet {i} en détail, avec M. Dupont et l’équipe." for i in range(40)]
    (tmp_path / "long.txt").write_text(" ".join(sentences), encoding="utf-8")
    chunks = chunk_documents(load_folder(tmp_path).documents, chunk_size=400, chunk_overlap=100)
    assert len(chunks) > 5
    assert all(len(c.page_content) <= 400 for c in chunks)
    assert all(c.page_content.startswith("La phrase numéro") for c in chunks)  # no cut inside a sentence
    first_sentence_of_second = chunks[1].page_content.split(". ")[0]
    assert first_sentence_of_second in chunks[0].page_content  # overlap


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="TPDQA_DOCUMENTS_DIR"):
        load_folder(tmp_path / "nope")
