"""Slide decks: .pptx (python-pptx) and OpenDocument .odp (odfpy).

One section per slide, under its title; the body text, tables (each value beside its
headers) and the speaker notes; the slide number takes the page's place in citations.
"""

from __future__ import annotations

import io
import zipfile

from tpdqa.ingest.base import Section, UnusableFile, keyed_rows, reads
from tpdqa.ingest.office import load_odf


def slide_section(number: int, title: str, body: list[str], notes: str) -> Section:
    text = "\n\n".join([*(b for b in body if b.strip()), *([f"Notes: {notes.strip()}"] if notes.strip() else [])])
    return Section((" ".join(title.split()) or f"Slide {number}",), text, page=number)


@reads(".pptx", archive=True)
def read_pptx(data: bytes):
    from pptx import Presentation
    from pptx.exc import PackageNotFoundError

    try:
        deck = Presentation(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, PackageNotFoundError) as exc:
        raise UnusableFile(f"corrupt or unreadable .pptx ({exc.__class__.__name__}: {exc})") from exc
    sections = []
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        body: list[str] = []

        def read(shapes) -> None:
            for shape in shapes:
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                if shape.shape_type == 6:  # a group: its shapes in order
                    read(shape.shapes)
                elif getattr(shape, "has_table", False):
                    body.extend(keyed_rows([[cell.text for cell in row.cells] for row in shape.table.rows]))
                elif getattr(shape, "has_text_frame", False):
                    body.extend(p.text for p in shape.text_frame.paragraphs if p.text.strip())

        read(slide.shapes)
        notes = slide.notes_slide.notes_text_frame.text if slide.has_notes_slide and \
            slide.notes_slide.notes_text_frame is not None else ""
        sections.append(slide_section(number, title_shape.text if title_shape is not None else "", body, notes))
    title = deck.core_properties.title or next((s.headings[0] for s in sections if not s.headings[0].startswith(
        "Slide ")), None)
    return sections, title


@reads(".odp", archive=True)
def read_odp(data: bytes):
    from odf import teletype
    from odf.draw import Frame, Page
    from odf.namespaces import PRESENTATIONNS
    from odf.presentation import Notes
    from odf.text import P

    document = load_odf(data, ".odp")
    sections = []
    for number, page in enumerate(document.presentation.getElementsByType(Page), start=1):
        title, body, notes, in_notes = "", [], "", set()
        for note in page.getElementsByType(Notes):
            notes = "\n".join(teletype.extractText(p) for p in note.getElementsByType(P))
            in_notes |= {id(frame) for frame in note.getElementsByType(Frame)}
        for frame in page.getElementsByType(Frame):
            if id(frame) in in_notes:
                continue
            lines = [teletype.extractText(p) for p in frame.getElementsByType(P)]
            if frame.getAttrNS(PRESENTATIONNS, "class") == "title" and not title:
                title = " ".join(lines)
            else:
                body.extend(lines)
        sections.append(slide_section(number, title, body, notes))
    return sections, next((s.headings[0] for s in sections if not s.headings[0].startswith("Slide ")), None)
