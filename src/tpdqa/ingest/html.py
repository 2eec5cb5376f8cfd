"""HTML pages: the main content, headings as section paths, tables with their headers."""

from __future__ import annotations

import re

from tpdqa.ingest.base import Section, UnusableFile, decode_text, keyed_rows, reads

_BOILERPLATE = re.compile(r"cookie|consent|gdpr|banner|newsletter|share|social|advert|promo|breadcrumb|sidebar|"
                          r"menu|popup|modal|related|comment", re.IGNORECASE)
_BLOCKS = ["p", "li", "dd", "dt", "blockquote", "pre", "td", "th", "figcaption", "caption", "summary"]
_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]


@reads(".html", ".htm")
def read_html(data: bytes):
    """Main content only: the page's <main>/<article> when it has one, never nav, header,
    footer, aside, forms, scripts or cookie banners; a block's text is read whole, so
    inline tags (<b>, <a>) never cut a sentence; <h1>-<h6> make the section path. A folded
    <details>' <summary> is a block (an FAQ's question: it was lost), and its answer another."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "html.parser")
    depth = _depth(soup)
    if depth > MAX_HTML_DEPTH:  # reading blocks looks up each one's parents: deep nesting is quadratic
        raise UnusableFile(f"its elements nest {depth} levels deep (over {MAX_HTML_DEPTH}): a malformed or generated "
                           "page, not a document")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer", "aside", "form", "header",
                     "button", "iframe", "svg", "head"]):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.attrs is None or tag.name in ("html", "body", "main", "article") or tag.find(["main", "article"]):
            continue  # already gone with its parent, or holds the content itself
        if _BOILERPLATE.search(" ".join([*tag.get("class", []), tag.get("id", ""), tag.get("role", ""),
                                         tag.get("aria-label", "")])):
            tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    path: list[str] = []
    sections: list[Section] = []
    blocks: list[str] = []

    def flush() -> None:
        if blocks:
            sections.append(Section(tuple(path), "\n\n".join(blocks)))
            blocks.clear()

    term: str | None = None  # the <dt> just read, whose <dd> follows
    read_whole = set()  # the <summary> of a <details> read with it
    for element in root.find_all([*_HEADINGS, *_BLOCKS, "div", "section", "details", "table"]):
        if element.find_parent(_BLOCKS) is not None or id(element) in read_whole:  # a <p> inside an <li>: read
            continue  # with its parent
        if element.name == "details":
            summary = element.find("summary")
            if element.find([*_HEADINGS, *(b for b in _BLOCKS if b != "summary"), "div", "section", "table"]):
                continue  # its blocks are read one by one, its <summary> among them
            if summary is not None:  # "<summary>Do you ship abroad?</summary>Yes, to…": two blocks
                read_whole.add(id(summary))
                asked = " ".join(summary.get_text().split())
                summary.extract()
                blocks.extend(filter(None, [asked, " ".join(element.get_text().split())]))
                continue
        if element.find_parent("table") is not None:  # read with its table
            continue
        if element.name == "table":  # each row beside the column headers
            caption = element.find("caption")
            rows = [[cell.get_text(" ", strip=True) for cell in tr.find_all(["td", "th"])]
                    for tr in element.find_all("tr")]
            blocks.extend(([" ".join(caption.get_text().split())] if caption else []) + keyed_rows(rows))
            continue
        if element.name in ("div", "section") and element.find([*_HEADINGS, *_BLOCKS, "div", "section"]):
            continue  # a container: its blocks are read one by one; a leaf <div> of text is a block
        for br in element.find_all("br"):
            br.replace_with(" ")
        text = " ".join(element.get_text().split())  # inline tags add no space: the source's own spacing
        if not text:
            continue
        if element.name == "dd" and term is not None and blocks and blocks[-1] == term and not term.endswith("?"):
            blocks[-1] = f"{term.rstrip(' :')}: {text}"  # a definition beside its term: "Latency: The time…"
            continue  # (an FAQ's question stays a line of its own, above its answer)
        term = text if element.name == "dt" else None
        if element.name in _HEADINGS:
            flush()
            level = int(element.name[1])
            del path[level - 1:]
            path.extend([""] * (level - 1 - len(path)))
            path.append(text)
        else:
            blocks.append(text)
    flush()
    if not sections:  # a page of bare text without blocks
        sections = [Section((), root.get_text("\n"))]
    title = title or next((s.headings[0] for s in sections if s.headings and s.headings[0]), None)
    return [Section(tuple(h for h in s.headings if h), s.text) for s in sections], title


MAX_HTML_DEPTH = 512  # real pages nest a few dozen levels; lxml's own parser stops at 256


def _depth(root) -> int:
    """How deep elements nest under ``root`` (iterative: a page may nest deeper than Python recurses)."""
    deepest, stack = 0, [(root, 0)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in getattr(node, "contents", ()) if hasattr(child, "contents"))
    return deepest
