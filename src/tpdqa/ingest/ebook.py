"""E-books and rich text: .epub (its XHTML chapters in reading order), .rtf (striprtf).

An EPUB is a zip whose package file (``content.opf``, named by ``META-INF/container.xml``)
lists the chapters in reading order (its *spine*); each chapter is an XHTML page, read as
:func:`tpdqa.ingest.html.read_html` reads a page: headings make the section path, tables keep
their headers. Hand-written from the EPUB 3 container and package specs with the standard
``zipfile``: the one maintained EPUB library (EbookLib) is AGPL-licensed, and the walk from
container to spine is a few lines.
"""

from __future__ import annotations

import codecs
import io
import posixpath
import re
import zipfile
from urllib.parse import unquote

from defusedxml import ElementTree

from tpdqa.ingest.base import Section, UnusableFile, decode_text, reads
from tpdqa.ingest.html import read_html
from tpdqa.ingest.text import text_sections

_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_PAGES = ("application/xhtml+xml", "text/html")


@reads(".epub", archive=True)
def read_epub(data: bytes):
    """The spine's chapters in order, each one's headings under the book's sections; the
    book's ``dc:title`` as its title. A DRM-protected book (its chapters encrypted) is
    refused with the reason: its bytes are not text."""
    try:
        book = zipfile.ZipFile(io.BytesIO(data))
        container = ElementTree.fromstring(book.read("META-INF/container.xml"))
        rootfile = container.find(f".//{_CONTAINER}rootfile")
        if rootfile is None or not rootfile.get("full-path"):
            raise KeyError("META-INF/container.xml names no package file")
        package_path = rootfile.get("full-path")
        package = ElementTree.fromstring(book.read(package_path))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, ValueError) as exc:  # ValueError: an entity
        raise UnusableFile(f"corrupt or unreadable .epub ({exc.__class__.__name__}: {exc})") from exc
    base = posixpath.dirname(package_path)
    manifest = {item.get("id"): item for item in package.iter(f"{_OPF}item")}
    chapters = []
    for ref in package.iter(f"{_OPF}itemref"):
        item = manifest.get(ref.get("idref"))
        if (item is None or item.get("media-type") not in _PAGES or not item.get("href")
                or "nav" in item.get("properties", "").split()):  # the table of contents: titles, not text
            continue
        chapters.append(posixpath.normpath(posixpath.join(base, unquote(item.get("href")))))
    encrypted = _encrypted(book)
    if any(chapter in encrypted for chapter in chapters):
        raise UnusableFile("its chapters are encrypted (DRM): export the book without protection from the "
                           "application that bought it, or index a PDF copy")
    sections: list[Section] = []
    for chapter in chapters:
        try:
            page = book.read(chapter)
        except KeyError:  # listed but absent: the rest of the book is still read
            continue
        sections.extend(read_html(page)[0])
    return sections, " ".join((package.findtext(f".//{_DC}title") or "").split()) or None


def _encrypted(book: zipfile.ZipFile) -> set[str]:
    """Members that META-INF/encryption.xml lists (fonts are often obfuscated this way too)."""
    try:
        listing = ElementTree.fromstring(book.read("META-INF/encryption.xml"))
    except (KeyError, ElementTree.ParseError, ValueError):  # ValueError: defusedxml refused an entity
        return set()
    return {unquote(reference.get("URI", "")) for reference in listing.iter()
            if reference.tag.endswith("CipherReference")}


@reads(".rtf")
def read_rtf(data: bytes):
    """The text of a rich-text file (striprtf: control words, groups and ``\\'e9``/``\\u233``
    escapes resolved); a first line that looks like a title heads it, as in a .txt file."""
    from striprtf.striprtf import rtf_to_text

    raw = decode_text(data)
    if not raw.lstrip().startswith("{\\rtf"):
        raise UnusableFile("not a rich-text file: it does not start with '{\\rtf'")
    page = re.search(r"\\ansicpg(\d+)", raw[:4096])  # the code page of its \'xx escapes (striprtf assumes 1252)
    encoding = f"cp{page.group(1)}" if page and _known(f"cp{page.group(1)}") else "cp1252"
    return text_sections(rtf_to_text(raw, encoding=encoding, errors="replace"))


def _known(encoding: str) -> bool:
    try:
        codecs.lookup(encoding)
    except LookupError:
        return False
    return True
