"""Loading a folder: formats, encodings, bad files reported and skipped, stable chunk ids."""

from __future__ import annotations

import shutil

import pytest

from tpdqa.ingest import chunk_body, chunk_documents, load_folder
from tpdqa.language import split_sentences
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


@pytest.mark.parametrize("lang, text, middle", [
    # pysbd cut this one into "Il est né en 200 av." / "J." / "-C." / "à Mégalopolis.": the quote lost the era
    ("fr", "Polybe est un historien grec du IIe siècle av. J.-C. qui a vécu en Grèce. Il est né en 200 av. J.-C. à "
           "Mégalopolis. Son œuvre s'arrête en 146 apr. J.-C.", "Il est né en 200 av. J.-C. à Mégalopolis."),
    ("fr", "Le XVIe s. fut riche. Vers 500 ap. J.-C., les Bantous arrivent dans la zone. Ils y restent longtemps.",
     "Vers 500 ap. J.-C., les Bantous arrivent dans la zone."),
    ("en", "The retable is large. It was painted c. 1400 in Valencia, then moved in 1850. It is painted on oak wood.",
     "It was painted c. 1400 in Valencia, then moved in 1850."),
])
def test_a_quotable_sentence_is_not_cut_at_an_era_marker_or_circa(lang, text, middle):
    """What the answerer may quote is whole sentences, each an exact substring of the chunk; a
    sentence still ends after "J.-C." when the next one starts ("…av. J.-C. Ensuite…")."""
    from langchain_core.documents import Document

    from tpdqa.sentences import chunk_units

    units = chunk_units(Document(page_content=text, metadata={"lang": lang}))
    assert len(units) == 3 and units[1] == middle
    assert all(unit in text for unit in units)
    assert split_sentences("La bataille de 52 av. J.-C. Ensuite César repart.", "fr") == [
        "La bataille de 52 av. J.-C.", "Ensuite César repart."]


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="TPDQA_DOCUMENTS_DIR"):
        load_folder(tmp_path / "nope")


# -- structure: headings become the section path, layout never cuts a sentence ---------------

def _docx_with_headings(path):
    import docx

    document = docx.Document()
    document.add_heading("Micron au Japon", level=1)
    document.add_heading("Une politique d'attraction des fabricants", level=2)
    document.add_paragraph("Le gouvernement japonais a versé 1,5 milliard de dollars de subventions à Micron "
                           "pour son usine de Hiroshima.")
    document.save(path)


def test_headings_become_the_section_path_and_leave_the_body(tmp_path):
    (tmp_path / "guide.md").write_text(
        "# Guide des puces\n\nIntroduction générale sur les semi-conducteurs et leur marché mondial.\n\n"
        "## Mémoire **DRAM**\n\nLa Corée du Sud produit l'essentiel des puces\nDRAM vendues dans le monde.\n",
        encoding="utf-8")
    (tmp_path / "page.html").write_text(
        "<html><head><title>Chips report</title></head><body><main><h1>Chips report</h1>"
        "<h2>Memory</h2><p>South Korea makes most of the world's memory chips.</p></main></body></html>")
    _docx_with_headings(tmp_path / "micron.docx")

    chunks = chunk_documents(load_folder(tmp_path).documents, 1000, 150)

    sections = {c.metadata["source"]: c.metadata["section"] for c in chunks if "Corée" in c.page_content
                or "South Korea" in c.page_content or "Hiroshima" in c.page_content}
    assert sections == {
        "guide.md": "Guide des puces › Mémoire DRAM",
        "page.html": "Chips report › Memory",
        "micron.docx": "Micron au Japon › Une politique d'attraction des fabricants",
    }
    for chunk in chunks:
        body = chunk_body(chunk.page_content, chunk.metadata)
        assert "#" not in body and "Memory\n" not in body and "Une politique" not in body
        assert chunk.page_content.startswith(chunk.metadata["section"] + "\n")  # context for retrieval
    md = next(c for c in chunks if "Corée" in c.page_content)
    # soft line breaks of a Markdown paragraph are joined: one sentence
    assert "l'essentiel des puces DRAM vendues dans le monde." in md.page_content


def test_pdf_lines_are_reflowed_hyphens_undone_running_header_and_page_numbers_dropped(tmp_path):
    from fpdf import FPDF

    class Report(FPDF):
        def header(self):
            self.set_font("Helvetica", size=8)
            self.cell(0, 6, "Rapport annuel 2025 - Confidentiel", align="R")
            self.ln(10)

        def footer(self):
            self.set_y(-12)
            self.set_font("Helvetica", size=8)
            self.cell(0, 6, str(self.page_no()), align="C")

    pdf = Report()
    pdf.set_title("Rapport annuel")
    lines = ["L'usine de Taylor, au Texas, produira des puces avancées grâce à un investisse-",
             "ment de dix-sept milliards de dollars annoncé par Samsung en novembre dernier",
             "après de longues négociations avec les autorités locales.",
             "Un second paragraphe court."]
    for _ in range(2):
        pdf.add_page()
        pdf.set_font("Helvetica", size=16)
        pdf.cell(0, 9, "Rapport annuel", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        for line in lines:
            pdf.cell(0, 5.5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(tmp_path / "rapport.pdf"))

    docs = load_folder(tmp_path).documents

    assert [d.metadata["page"] for d in docs] == [1, 2]
    first = docs[0].page_content
    sentence = ("L'usine de Taylor, au Texas, produira des puces avancées grâce à un investissement de "
                "dix-sept milliards de dollars annoncé par Samsung en novembre dernier après de longues "
                "négociations avec les autorités locales.")
    assert first.split("\n\n")[0] == sentence
    assert split_sentences(first.split("\n\n")[0], "fr") == [sentence]
    for doc in docs:
        assert "Confidentiel" not in doc.page_content
        assert not any(line.strip().isdigit() for line in doc.page_content.split("\n"))
        assert doc.metadata["section"] == "Rapport annuel" and doc.metadata["title"] == "Rapport annuel"


def test_html_keeps_main_content_and_inline_tags_do_not_cut_sentences(tmp_path):
    (tmp_path / "news.html").write_text(
        "<html><head><title>Semiconductors</title><style>p {color: red}</style></head><body>"
        "<div id='cookie-banner'>We use cookies to improve your experience. Accept all</div>"
        "<header><nav><a href='/'>Home</a> · <a href='/tech'>Technology</a></nav></header>"
        "<main><article><h1>Semiconductors</h1>"
        "<p>The plant in <b>Taylor, Texas</b> will open in <a href='/2026'>2026</a>, "
        "said <em>the company</em> on Monday.</p></article></main>"
        "<aside>Related: ten gadgets to buy</aside>"
        "<footer>© 2025 Example News. All rights reserved.</footer></body></html>")

    text = " ".join(d.page_content for d in load_folder(tmp_path).documents)

    assert "The plant in Taylor, Texas will open in 2026, said the company on Monday." in text
    for boilerplate in ("cookies", "Home", "Technology", "gadgets", "rights reserved"):
        assert boilerplate not in text


def test_a_definition_keeps_its_term_and_markdown_code_and_quotes_lose_their_marks(tmp_path):
    """A glossary's <dd> reads beside its <dt> ("Latency: The time…"), so a quote says what it
    defines; a Markdown code block is its code (its ``` fences were mangled into "``bash …``") and a
    quote loses its "> "."""
    (tmp_path / "glossary.html").write_text(
        "<html><body><h1>Glossary</h1><dl><dt>Latency</dt><dd>The time a request takes to get its first "
        "byte.</dd><dt>Throughput</dt><dd>The requests served per second.</dd></dl></body></html>")
    (tmp_path / "notes.md").write_text("# Deployment\n\nRun it with:\n\n```bash\nkubectl apply -f deploy.yaml\n```\n\n"
                                       "> Note: staging is rebuilt every **Sunday**.\n")
    texts: dict[str, str] = {}
    for doc in load_folder(tmp_path).documents:  # the Markdown splitter makes a code block a document of its own
        texts[doc.metadata["source"]] = "\n\n".join(filter(None, [texts.get(doc.metadata["source"]), doc.page_content]))
    assert texts["glossary.html"] == ("Latency: The time a request takes to get its first byte.\n\n"
                                      "Throughput: The requests served per second.")
    assert texts["notes.md"] == "Run it with:\n\nkubectl apply -f deploy.yaml\n\nNote: staging is rebuilt every Sunday."


def test_an_faq_pages_questions_are_kept_on_lines_of_their_own(tmp_path):
    """A web FAQ folds its answers under <details>' <summary> (its questions were lost: only the
    answers were read) or lists them in a <dl>: each question is a block, its answer the next one,
    whether in a <p> or bare; a glossary's term still reads beside its definition."""
    (tmp_path / "faq.html").write_text(
        "<html><body><h1>FAQ</h1><details><summary>Do you ship <b>abroad</b>?</summary><p>Yes, to Belgium.</p>"
        "</details><details><summary>How long does delivery take?</summary>Five days.</details>"
        "<dl><dt>Can I pay in instalments?</dt><dd>Yes, in three payments.</dd><dt>Latency</dt>"
        "<dd>The time a request takes.</dd></dl></body></html>")
    [doc] = load_folder(tmp_path).documents
    assert doc.page_content == ("Do you ship abroad?\n\nYes, to Belgium.\n\nHow long does delivery take?\n\nFive days."
                                "\n\nCan I pay in instalments?\n\nYes, in three payments.\n\n"
                                "Latency: The time a request takes.")


def test_the_language_guesser_reads_from_its_uncompressed_copy_as_from_the_shipped_model(tmp_path, monkeypatch):
    """py3langid's model ships LZMA-compressed (up to 1.6 s of a cold ``tpdqa ask``): tpdqa keeps the
    French and English part uncompressed in its model cache, made again when damaged; every guess
    is the shipped model's."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from tpdqa import language

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shipped = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    shipped.set_languages(list(language.LANGUAGES))
    texts = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()] + [
        "What does the US-Japan agreement aim at?", "Et la Corée ?", "TPD", "2025", "ok"]
    copies = tmp_path / "tpdqa" / "langid"
    try:
        for step in ("made", "read", "damaged"):
            language._langid.cache_clear()
            if step == "damaged":
                copy = next(copies.glob("*.npz"))
                copy.write_bytes(copy.read_bytes()[:1000])
            with pytest.MonkeyPatch.context() as patch:
                if step == "read":  # from the copy alone: the shipped file is not inflated again
                    patch.setattr(LanguageIdentifier, "from_model_file", None)
                guesses = [language.guess_lang(t) for t in texts]
            assert guesses == [shipped.classify(t)[0] for t in texts], step
            assert len(list(copies.glob("*.npz"))) == 1 and next(copies.glob("*.npz")).stat().st_size > 10**6
    finally:
        language._langid.cache_clear()  # the next tests read the session's cache
