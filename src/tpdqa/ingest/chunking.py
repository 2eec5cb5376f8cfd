"""Chunks: paragraphs, and sentences inside long ones, with content-derived ids."""

from __future__ import annotations

import hashlib
from typing import Any

from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from tpdqa.language import split_paragraphs, split_sentences


class ParagraphSentenceSplitter(TextSplitter):
    """Chunks that follow paragraphs, and sentences inside long paragraphs.

    A paragraph is a chunk of its own, so editing one paragraph changes only its
    chunks (and their ids); paragraphs shorter than ``min_chars`` (headings, captions)
    join the next one. A paragraph over ``chunk_size`` is cut between sentences by
    LangChain's merge with ``chunk_overlap``.
    """

    def __init__(self, lang: str = "fr", min_chars: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lang = lang
        self._min_chars = min_chars if min_chars is not None else min(120, self._chunk_size // 4)

    def split_text(self, text: str) -> list[str]:
        units: list[str] = []
        pending = ""
        for paragraph in split_paragraphs(text):
            paragraph = f"{pending}\n{paragraph}" if pending else paragraph
            if len(paragraph) < self._min_chars:
                pending = paragraph
                continue
            pending = ""
            units.extend(self._split_long(paragraph))
        if pending:
            if units and len(units[-1]) + len(pending) <= self._chunk_size:
                units[-1] = f"{units[-1]}\n{pending}"
            else:
                units.append(pending)
        return units

    def _split_long(self, paragraph: str) -> list[str]:
        if len(paragraph) <= self._chunk_size:
            return [paragraph]
        pieces = []
        for sentence in self._sentences(paragraph):  # a sentence longer than a chunk is cut on words
            start, end = 0, len(sentence)
            while end - start > self._chunk_size:  # positions, not slices: a 10 MB line stays linear
                cut = sentence.rfind(" ", start, start + self._chunk_size)
                cut = cut if cut > start else start + self._chunk_size
                pieces.append(sentence[start:cut])
                start = cut
                while start < end and sentence[start] == " ":
                    start += 1
            pieces.append(sentence[start:])
        return self._merge_splits([p for p in pieces if p], " ")

    def _sentences(self, paragraph: str) -> list[str]:
        """pysbd's sentences; a paragraph far beyond any prose (a minified or generated line)
        is first cut into windows on spaces, as pysbd's rules are not linear in the length."""
        window = 20 * self._chunk_size
        if len(paragraph) <= window:
            return split_sentences(paragraph, self._lang)
        out, start = [], 0
        while start < len(paragraph):
            cut = paragraph.rfind(" ", start, start + window) if start + window < len(paragraph) else len(paragraph)
            cut = cut if cut > start else min(start + window, len(paragraph))
            out += split_sentences(paragraph[start:cut], self._lang)
            start = cut
        return out


def chunk_id(source: str, page: int | None, section: str, text: str, part: str | None = None) -> str:
    """Content-derived id: unchanged text in an unchanged place keeps its id."""
    key = "\x1f".join((source, str(page or ""), section, text, *((part,) if part else ())))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def chunk_documents(documents: list[Document], chunk_size: int, chunk_overlap: int) -> list[Document]:
    """Chunks of each section; a section's heading path is the first line of each of its
    chunks, so retrieval (dense and BM25) sees the context a paragraph was written in.
    :func:`chunk_body` gives the text without it: the part an answer may quote."""
    chunks: list[Document] = []
    for doc in documents:
        splitter = ParagraphSentenceSplitter(
            lang=doc.metadata.get("lang", "en"), chunk_size=chunk_size, chunk_overlap=min(chunk_overlap, chunk_size // 2)
        )
        section = doc.metadata.get("section", "")
        for body in splitter.split_text(doc.page_content):
            meta = dict(doc.metadata)
            text = f"{section}\n{body}" if section else body
            cid = chunk_id(meta["source"], meta.get("page"), section, text, meta.get("part"))
            meta["chunk_id"] = cid
            chunks.append(Document(id=cid, page_content=text, metadata=meta))
    # The same text twice in one file (boilerplate) would share an id: keep the first.
    seen: set[str] = set()
    return [c for c in chunks if not (c.id in seen or seen.add(c.id))]


def chunk_body(text: str, metadata: dict[str, Any]) -> str:
    """A chunk's text without its heading line: what may be quoted as an answer."""
    section = metadata.get("section") or ""
    if section and text.startswith(section + "\n"):
        return text[len(section) + 1:]
    return text
