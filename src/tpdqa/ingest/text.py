"""Plain text and Markdown."""

from __future__ import annotations

import re

from tpdqa.ingest.base import Section, clean_text, decode_text, looks_like_title, reads


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
    """Inline Markdown marks removed, so a quote reads as text; list bullets dropped."""
    for pattern, repl in _MD_INLINE:
        text = pattern.sub(repl, text)
    blocks = []
    for block in re.split(r"\n\s*\n", text):
        lines = [l.strip() for l in block.strip().split("\n") if l.strip()]
        if any(_MD_LIST.match(l) or l.startswith("|") for l in lines):  # lists and tables keep their lines
            blocks.append("\n".join(_MD_LIST.sub("", l) for l in lines))
        else:  # a paragraph's soft line breaks are layout, not structure
            blocks.append(" ".join(lines))
    return "\n\n".join(b for b in blocks if b)


_MD_LIST = re.compile(r"^(?:[-*+]|\d+[.)])\s+")
