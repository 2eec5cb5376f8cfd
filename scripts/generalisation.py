"""Build the public generalisation benchmark: articles rendered into mixed-format folders.

SQuAD 2.0 (English, with adversarial unanswerable questions) and PIAF (French) articles
become one file each, in turn ``.md .html .pdf .docx .txt``, rendered the way real
files come: Markdown with a ``#`` title, HTML pages with navigation, a cookie banner,
a footer and inline tags inside sentences, PDFs with justified lines, end-of-line
hyphenation, a running header and page numbers, DOCX with heading styles. Questions
are written in the evaluation-set format of ``docs/eval-format.md``; for answerable
ones the gold answer spans form the one keyword group, so ``answer_keyword_recall`` is
"the answer holds a gold span" and ``answer_accuracy`` counts refusals of unanswerable
questions too.

Split by article, never by question: ``fit`` sets are what weights and thresholds may be
fitted on, ``report`` sets are only measured.

``--formats`` also writes the same report articles, each in one folder per rendering, with
the same questions: ``pdf`` (text PDFs, as above), ``scan`` (those PDFs printed and scanned:
image-only pages at 200 dpi, slightly skewed, with noise: read by OCR), ``pptx`` (a slide
per paragraph under the article's title) and ``xlsx`` (a sheet, a row per paragraph: long
text in cells): the figures per file type on the same articles.

    python scripts/generalisation.py --out bench          # ../shared/data by default
    python scripts/generalisation.py --out bench --formats --piaf-articles 12
    .venv/bin/tpdqa eval --dataset bench/squad2-report.jsonl --documents-dir bench/squad2-report \
        --index-dir bench/index/squad2-report --out eval-out/squad2-report

Needs fpdf2 (the test extras) and Debian's DejaVu fonts for non-Latin-1 characters in PDFs.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

FORMATS = (".md", ".html", ".pdf", ".docx", ".txt")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def squad_articles(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["data"]


def slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:60] or "article"


def display_title(title: str) -> str:
    return title.replace("_", " ")


# -- rendering ---------------------------------------------------------------------------

def render_md(title: str, paragraphs: list[str], lang: str) -> bytes:
    return (f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n").encode("utf-8")


def render_txt(title: str, paragraphs: list[str], lang: str) -> bytes:
    return (f"{title}\n\n" + "\n\n".join(paragraphs) + "\n").encode("utf-8")


def _inline_tags(paragraph: str, rng: random.Random) -> str:
    """Escape, then wrap a few words in <b>, <a>, <em> mid-sentence, as real pages do."""
    from html import escape

    words = escape(paragraph, quote=False).split(" ")
    for _ in range(min(3, len(words) // 8)):
        i = rng.randrange(1, len(words) - 2)
        tag = rng.choice(["b", "em", "a"])
        attrs = ' href="https://example.org/wiki"' if tag == "a" else ""
        words[i] = f"<{tag}{attrs}>{words[i]} {words[i + 1]}</{tag}>"
        del words[i + 1]
    return " ".join(words)


def render_html(title: str, paragraphs: list[str], lang: str, rng: random.Random) -> bytes:
    nav = "Accueil · Articles · Contact" if lang == "fr" else "Home · Articles · Contact"
    cookie = ("Ce site utilise des cookies pour mesurer l'audience. Accepter / Refuser" if lang == "fr"
              else "This site uses cookies to measure its audience. Accept / Decline")
    footer = "© 2025 Encyclopédie libre — Mentions légales" if lang == "fr" else "© 2025 Free encyclopedia — Legal notice"
    body = "\n".join(f"<p>{_inline_tags(p, rng)}</p>" for p in paragraphs)
    page = f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: serif; }}</style><script>window.analytics = [];</script></head>
<body>
<div id="cookie-banner" class="cookie-consent">{cookie}</div>
<header><nav><a href="/">{nav}</a></nav></header>
<main><article>
<h1>{title}</h1>
{body}
</article></main>
<footer>{footer}</footer>
</body></html>
"""
    return page.encode("utf-8")


def render_docx(title: str, paragraphs: list[str], lang: str) -> bytes:
    import io

    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading(title, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def render_pdf(title: str, paragraphs: list[str], lang: str) -> bytes:
    """Justified lines with end-of-line hyphenation, a running header and page numbers."""
    from fpdf import FPDF

    class Page(FPDF):
        def header(self):
            self.set_font(self.body_font, size=8)
            self.cell(0, 6, f"{title} — Encyclopédie", align="R")
            self.ln(10)

        def footer(self):
            self.set_y(-12)
            self.set_font(self.body_font, size=8)
            self.cell(0, 6, str(self.page_no()), align="C")

    pdf = Page(format="A4")
    if FONT.is_file():
        pdf.add_font("body", fname=str(FONT))
        pdf.body_font = "body"
    else:  # core font: Latin-1 only
        pdf.body_font = "helvetica"
        paragraphs = [p.encode("latin-1", "replace").decode("latin-1") for p in paragraphs]
        title = title.encode("latin-1", "replace").decode("latin-1")
    pdf.set_title(title)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    pdf.set_font(pdf.body_font, size=16)
    pdf.multi_cell(0, 9, title)
    pdf.ln(3)
    pdf.set_font(pdf.body_font, size=11)
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for paragraph in paragraphs:
        for line in hyphenated_lines(paragraph, width, pdf.get_string_width):
            pdf.cell(0, 5.5, line, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    return bytes(pdf.output())


def hyphenated_lines(text: str, width: float, measure) -> list[str]:
    """Greedy line breaking; a long word that does not fit is cut with a hyphen."""
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if measure(candidate) <= width:
            line = candidate
            continue
        if len(word) >= 8 and word.isalpha():  # hyphenate: keep at least 3 letters each side
            for cut in range(len(word) - 3, 2, -1):
                head = f"{line} {word[:cut]}-".strip()
                if measure(head) <= width:
                    lines.append(head)
                    line = word[cut:]
                    break
            else:
                lines.append(line)
                line = word
            continue
        lines.append(line)
        line = word
    if line:
        lines.append(line)
    return [l for l in lines if l]


def render_scan(title: str, paragraphs: list[str], lang: str, rng: random.Random) -> bytes:
    """The text PDF printed and scanned: each page an image only (200 dpi, grey, turned by
    up to half a degree, speckled), no text layer."""
    import io

    import pypdfium2
    from PIL import Image

    document = pypdfium2.PdfDocument(render_pdf(title, paragraphs, lang))
    images = []
    for page in document:
        image = page.render(scale=200 / 72).to_pil().convert("L")
        image = image.rotate(rng.uniform(-0.5, 0.5), resample=Image.BICUBIC, expand=False, fillcolor=255)
        noise = Image.effect_noise(image.size, 12)
        images.append(Image.blend(image, noise, 0.08))
    document.close()
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=200)
    return out.getvalue()


def render_pptx(title: str, paragraphs: list[str], lang: str) -> bytes:
    """A title slide, then one slide per paragraph under the article's title (numbered)."""
    import io

    from pptx import Presentation

    deck = Presentation()
    deck.core_properties.title = title
    cover = deck.slides.add_slide(deck.slide_layouts[0])
    cover.shapes.title.text = title
    for n, paragraph in enumerate(paragraphs, start=1):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"{title} ({n})"
        slide.placeholders[1].text = paragraph
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def render_xlsx(title: str, paragraphs: list[str], lang: str) -> bytes:
    """A sheet named after the article, a row per paragraph (``Section``, ``Text``): the way
    notes, FAQs and comment logs are kept in spreadsheets, long text in cells."""
    import io

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = re.sub(r"[\\/*?:\[\]]", " ", title)[:31]
    sheet.append(["Section", "Text"])
    for n, paragraph in enumerate(paragraphs, start=1):
        sheet.append([f"{title} ({n})", paragraph])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


RENDERINGS = {"pdf": ".pdf", "scan": ".pdf", "pptx": ".pptx", "xlsx": ".xlsx"}


def write_formats(articles: list[tuple[int, dict]], name: str, lang: str, out: Path, seed: int) -> list[dict]:
    """``formats-NAME-RENDERING`` folders: the same articles and questions, one rendering each."""
    rows = []
    for rendering, suffix in RENDERINGS.items():
        rng = random.Random(seed)
        folder = out / f"formats-{name}-{rendering}"
        folder.mkdir(parents=True, exist_ok=True)
        questions = []
        for index, article in articles:
            title = display_title(article["title"])
            paragraphs = [" ".join(p["context"].split()) for p in article["paragraphs"]]
            source = f"{index:03d}-{slug(article['title'])}{suffix}"
            data = {"pdf": lambda: render_pdf(title, paragraphs, lang),
                    "scan": lambda: render_scan(title, paragraphs, lang, rng),
                    "pptx": lambda: render_pptx(title, paragraphs, lang),
                    "xlsx": lambda: render_xlsx(title, paragraphs, lang)}[rendering]()
            (folder / source).write_bytes(data)
            questions += article_questions(index, article, paragraphs, source, lang)
        with open(out / f"formats-{name}-{rendering}.jsonl", "w", encoding="utf-8") as f:
            for q in questions:
                f.write(json.dumps(q, ensure_ascii=False) + "\n")
        rows.append({"set": f"formats-{name}-{rendering}", "articles": len(articles), "questions": len(questions)})
    return rows


def render(suffix: str, title: str, paragraphs: list[str], lang: str, rng: random.Random) -> bytes:
    if suffix == ".html":
        return render_html(title, paragraphs, lang, rng)
    return {".md": render_md, ".txt": render_txt, ".docx": render_docx, ".pdf": render_pdf}[suffix](
        title, paragraphs, lang)


# -- sets --------------------------------------------------------------------------------

def article_questions(index: int, article: dict, paragraphs: list[str], source: str, lang: str,
                      withheld: bool = False) -> list[dict]:
    """An article's questions in the evaluation-set format; all unanswerable when it is ``withheld``."""
    questions = []
    for paragraph, p in zip(paragraphs, article["paragraphs"]):
        for qa in p["qas"]:
            impossible = bool(qa.get("is_impossible")) or withheld
            spans = list(dict.fromkeys(a["text"].strip() for a in qa.get("answers", []) if a["text"].strip()))
            questions.append({
                "id": qa["id"], "lang": lang, "question": qa["question"].strip(),
                "answerable": not impossible,
                "gold": [] if impossible else [{"source": source, "quote": paragraph}],
                "answer_keywords": [] if impossible else [spans],
                "article": index,
            })
    return questions


def write_set(articles: list[tuple[int, dict]], name: str, lang: str, out: Path, rng: random.Random,
              max_questions: int | None = None, withhold_every: int = 0) -> dict:
    """One folder and one question file. With ``withhold_every`` N, every Nth article is
    left out of the folder and its questions become unanswerable: near misses on a
    corpus of the same kind, for sets (PIAF) that have no unanswerable questions."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    questions = []
    counts = {s: 0 for s in FORMATS}
    for position, (index, article) in enumerate(articles):
        withheld = bool(withhold_every) and position % withhold_every == withhold_every - 1
        suffix = FORMATS[position % len(FORMATS)]
        title = display_title(article["title"])
        paragraphs = [" ".join(p["context"].split()) for p in article["paragraphs"]]
        source = f"{index:03d}-{slug(article['title'])}{suffix}"
        if not withheld:
            counts[suffix] += 1
            (folder / source).write_bytes(render(suffix, title, paragraphs, lang, rng))
        questions += article_questions(index, article, paragraphs, source, lang, withheld)
    if max_questions and len(questions) > max_questions:
        questions = sorted(rng.sample(questions, max_questions), key=lambda q: (q["article"], q["id"]))
    with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
        for q in questions:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    return {"set": name, "articles": sum(counts.values()), "files": counts, "questions": len(questions),
            "unanswerable": sum(not q["answerable"] for q in questions)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data folder (default ../shared/data)")
    parser.add_argument("--out", type=Path, default=Path("bench"), help="output folder (default ./bench)")
    parser.add_argument("--piaf-questions", type=int, default=1000,
                        help="questions kept per PIAF set, sampled with a fixed seed (default 1000)")
    parser.add_argument("--formats", action="store_true",
                        help="only the formats folders: the report articles as text PDFs, scanned PDFs, slides and sheets")
    parser.add_argument("--piaf-articles", type=int, default=12,
                        help="--formats: PIAF report articles rendered (default 12; SQuAD's 8 are all kept)")
    args = parser.parse_args(argv)
    from tpdqa.evaluation import benchmark_data

    benchmark_data(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []

    squad = list(enumerate(squad_articles(args.data / "squad-v2.0-dev-half" / "dev-v2.0.json")))
    piaf = list(enumerate(squad_articles(args.data / "piaf-v1.1" / "piaf-v1.1.json")))
    if args.formats:  # report articles only: nothing here is fitted on
        summary = [*write_formats(squad[8:], "squad2", "en", args.out, 5),
                   *write_formats(piaf[1::2][:args.piaf_articles], "piaf", "fr", args.out, 6)]
        for row in summary:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    # SOURCE.md's split: articles 0-7 to fit, 8-15 to report.
    summary.append(write_set(squad[:8], "squad2-fit", "en", args.out, random.Random(1)))
    summary.append(write_set(squad[8:], "squad2-report", "en", args.out, random.Random(2)))

    # Even article indexes to fit, odd to report; one article in 6 withheld (its questions unanswerable).
    summary.append(write_set(piaf[0::2], "piaf-fit", "fr", args.out, random.Random(3), args.piaf_questions, 6))
    summary.append(write_set(piaf[1::2], "piaf-report", "fr", args.out, random.Random(4), args.piaf_questions, 6))
    for row in summary:
        print(json.dumps(row, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
