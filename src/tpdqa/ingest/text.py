"""Plain text and Markdown."""

from __future__ import annotations

import re

from tpdqa.ingest.base import Section, clean_text, decode_text, is_row, keyed_rows, looks_like_title, reads


@reads(".txt")
def read_text(data: bytes):
    """A first line that looks like a title (short, no end punctuation) is the section path."""
    return text_sections(decode_text(data))


def text_sections(text: str) -> tuple[list[Section], str | None]:
    """Plain text as one section, under its first line if that looks like a title."""
    first, _, rest = clean_text(text).partition("\n")
    if rest and looks_like_title(first, rest.strip().split("\n", 1)[0]):
        return [Section((first.strip(),), rest)], first.strip()
    return [Section((), text)], None


@reads(".md", ".markdown")
def read_markdown(data: bytes):
    """LangChain's Markdown splitter: sections by ``#`` headings, headings stripped, whitespace kept."""
    from langchain_text_splitters import ExperimentalMarkdownSyntaxTextSplitter

    levels = [("#" * n, f"h{n}") for n in range(1, 7)]
    splitter = ExperimentalMarkdownSyntaxTextSplitter(headers_to_split_on=levels, strip_headers=True)
    text = decode_text(data)
    sections = []
    for doc in splitter.split_text(text):
        path = tuple(_plain_markdown(doc.metadata[f"h{n}"]) for n in range(1, 7) if doc.metadata.get(f"h{n}"))
        sections.append(Section(path, _plain_markdown(doc.page_content)))
    title = next((s.headings[0] for s in sections if s.headings), None)
    return sections, title


_MD_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images: alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links: their text
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])[*_](?=\S)(.+?)(?<=\S)[*_](?![\w*])"), r"\1"),
    (re.compile(r"`([^`]+)`"), r"\1"),
]


def _plain_markdown(text: str) -> str:
    """Inline Markdown marks removed, so a quote reads as text; list bullets dropped; tables as
    keyed rows, code blocks as their code (:func:`_markdown_blocks`)."""
    text = _markdown_blocks(text)
    for pattern, repl in _MD_INLINE:
        text = pattern.sub(repl, text)
    blocks = []
    for block in re.split(r"\n\s*\n", text):
        lines = [l.strip() for l in block.strip().split("\n") if l.strip()]
        if any(_MD_LIST.match(l) or l.startswith("|") or is_row(l) for l in lines):  # lists and tables keep their lines
            blocks.append("\n".join(_MD_LIST.sub("", l) for l in lines))
        else:  # a paragraph's soft line breaks are layout, not structure
            blocks.append(" ".join(lines))
    return "\n\n".join(b for b in blocks if b)


def _markdown_blocks(text: str) -> str:
    """``text`` with each pipe table as keyed rows (``Hanseatic Museum — Opens: 09:00; Closes:
    18:00``), as sheets and HTML tables are read: each value beside its headers, not a run of
    cells whose column no reader can tell; a fenced code block as its code (no ```` ``` ````
    lines, no ``> `` of a quote). markdown-it-py finds them as GitHub does (a table's header
    line, then its ``| --- | :-: |`` line; escaped pipes)."""
    from markdown_it import MarkdownIt

    lines = text.split("\n")
    blocks: list[tuple[int, int, list[str]]] = []  # (first line, end line, the lines that replace them)
    rows: list[list[str]] | None = None  # the open table's rows
    code: set[int] = set()  # a fence's lines: its "> " are the code's
    for token in MarkdownIt("commonmark").enable("table").parse(text):
        if token.type == "table_open" and token.map:
            rows = []
            blocks.append((*token.map, []))
        elif token.type == "tr_open" and rows is not None:
            rows.append([])
        elif token.type == "inline" and rows:  # a cell: inline tokens come only from cells while a table is open
            rows[-1].append(token.content)
        elif token.type == "table_close" and rows is not None:
            blocks[-1][2].extend(keyed_rows(rows))
            rows = None
        elif token.type == "fence" and token.map:
            blocks.append((*token.map, token.content.rstrip("\n").split("\n")))
            code.update(range(*token.map))
    lines = [line if i in code else _QUOTE_MARK.sub("", line) for i, line in enumerate(lines)]
    for start, stop, replacement in reversed(blocks):  # from the end: earlier line numbers stay right
        lines[start:stop] = ["", *replacement, ""]
    return "\n".join(lines)


_MD_LIST = re.compile(r"^(?:[-*+]|\d+[.)])\s+")
_QUOTE_MARK = re.compile(r"^\s{0,3}(?:>\s?)+")  # a Markdown quote's "> " (nested: "> > ")
