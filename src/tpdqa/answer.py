"""Answers with citations, and the extractive answerer (the default: no LLM, cannot invent).

The extractive answerer reads the retrieved chunks sentence by sentence and picks
the sentence that best answers the question, scored by

- meaning: cosine similarity of question and sentence in a multilingual encoder,
  so an English question meets a French sentence;
- words: the share of the question's content terms (stemmed, in both languages)
  that the sentence contains;
- rank: where retrieval put the sentence's chunk.

It quotes that sentence verbatim and cites it as ``[1]``. Whether to answer at
all is decided on the evidence: the best sentence's meaning similarity plus how
well the question's content words are matched, word by word, in the passages
(:func:`evidence_from_words`). Under ``min_support`` it refuses in the question's
language, with no citation.

    >>> from tpdqa import Assistant
    >>> answer = Assistant().ask("Qui domine la production de puces mémoire ?")
    >>> answer.refused, answer.citations[0].source
    (False, 'tpd-asie-2025.txt')
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
from langchain_core.documents import Document
from pydantic import BaseModel, Field

from tpdqa.language import LANGUAGES, _stopwords, analyze, fold, split_sentences, words

REFUSALS = {
    "fr": "Je n'ai pas trouvé la réponse dans les documents.",
    "en": "I could not find the answer in the documents.",
}
_CROSS_LEAD = {
    "en": "The documents say ({lang}): ",
    "fr": "Les documents disent ({lang}) : ",
}
_LANG_NAMES = {"en": {"fr": "in French", "en": "in English"}, "fr": {"fr": "en français", "en": "en anglais"}}

# Weights of the three signals (sum to 1); fitted on PIAF questions outside the
# evaluation subset and SQuAD (answerable vs. paragraph removed), never on eval sets.
W_MEANING, W_WORDS, W_RANK = 0.6, 0.3, 0.1


class Citation(BaseModel):
    n: int = Field(description="The marker number, [n] in the answer text.")
    source: str = Field(description="Document path relative to the documents folder.")
    chunk_id: str
    text: str = Field(description="The whole cited chunk.")
    quote: str = Field(description="The sentence of the chunk that supports the claim.")
    score: float
    page: int | None = None
    title: str | None = None


class RetrievedChunk(BaseModel):
    id: str
    source: str
    text: str
    score: float
    page: int | None = None
    lang: str | None = None


class Answer(BaseModel):
    question: str
    lang: str
    text: str
    refused: bool
    citations: list[Citation] = Field(default_factory=list)
    retrieved: list[RetrievedChunk] = Field(default_factory=list)
    support: float = Field(0.0, description="Evidence score behind the answer.")
    unsupported: list[str] = Field(default_factory=list,
                                   description="Generated sentences that no retrieved passage supports.")
    warnings: list[str] = Field(default_factory=list,
                                description="e.g. 'answer_language:en' for an answer not in the question's language.")

    @classmethod
    def refusal(cls, question: str, lang: str, retrieved: list[RetrievedChunk], support: float = 0.0) -> Answer:
        return cls(question=question, lang=lang, text=REFUSALS.get(lang, REFUSALS["en"]), refused=True,
                   retrieved=retrieved, support=support)


def retrieved_chunks(docs: list[Document]) -> list[RetrievedChunk]:
    return [
        RetrievedChunk(
            id=d.id or d.metadata.get("chunk_id", ""),
            source=d.metadata.get("source", ""),
            text=d.page_content,
            score=float(d.metadata.get("score", 0.0)),
            page=d.metadata.get("page"),
            lang=d.metadata.get("lang"),
        )
        for d in docs
    ]


class ExtractiveAnswerer:
    """Picks and cites the best supporting sentence; see the module doc."""

    def __init__(self, embeddings: Any, min_support: float = 1.0, max_sentences: int = 1, evidence_chunks: int = 3) -> None:
        # Sentences are picked from every retrieved chunk; whether to answer at all is
        # judged on the words of the first ``evidence_chunks`` only, so that a long
        # tail of loosely related passages cannot make an off-topic question look covered.
        self.embeddings = embeddings
        self.min_support = min_support
        self.max_sentences = max_sentences
        self.evidence_chunks = evidence_chunks
        self.words = WordMatcher(embeddings)

    def __call__(self, question: str, lang: str, docs: list[Document]) -> Answer:
        retrieved = retrieved_chunks(docs)
        candidates = [
            (rank, doc, sentence)
            for rank, doc in enumerate(docs)
            for sentence in quotable_units(doc.page_content, doc.metadata.get("lang", lang))
            if len(sentence) > 15
        ]
        if not candidates:
            return Answer.refusal(question, lang, retrieved)
        meaning = self._meaning(question, [sentence for _, _, sentence in candidates])
        matches = self._word_matches(question, docs[: self.evidence_chunks])
        top = np.array([rank < self.evidence_chunks for rank, _, _ in candidates])
        support = float(meaning[top].max()) + evidence_from_words(matches)
        if support < self.min_support:
            return Answer.refusal(question, lang, retrieved, support=round(support, 4))

        scores = self._sentence_scores(question, lang, candidates, meaning)
        order = np.argsort(-scores)
        picked = [order[0]] + [i for i in order[1 : self.max_sentences] if scores[i] >= 0.9 * scores[order[0]]]
        citations, parts = [], []
        for n, i in enumerate(picked, start=1):
            rank, doc, sentence = candidates[i]
            citations.append(
                Citation(
                    n=n,
                    source=doc.metadata.get("source", ""),
                    chunk_id=doc.id or doc.metadata.get("chunk_id", ""),
                    text=doc.page_content,
                    quote=sentence,
                    score=round(float(scores[i]), 4),
                    page=doc.metadata.get("page"),
                    title=doc.metadata.get("title"),
                )
            )
            parts.append(f"{' '.join(sentence.split())} [{n}]")
        doc_lang = candidates[picked[0]][1].metadata.get("lang", lang)
        lead = ""
        if doc_lang != lang and lang in _CROSS_LEAD:
            lead = _CROSS_LEAD[lang].format(lang=_LANG_NAMES[lang].get(doc_lang, doc_lang))
        return Answer(question=question, lang=lang, text=lead + " ".join(parts), refused=False,
                      citations=citations, retrieved=retrieved, support=round(support, 4))

    def stream(self, question: str, lang: str, docs: list[Document]) -> Iterator[str | Answer]:
        """The answer's words as text pieces, then the :class:`Answer` (same interface as LLMs)."""
        answer = self(question, lang, docs)
        words = answer.text.split(" ")
        step = max(1, len(words) // 12)
        for start in range(0, len(words), step):
            yield " ".join(words[start : start + step]) + (" " if start + step < len(words) else "")
        yield answer

    # -- signals -------------------------------------------------------------------------
    def _meaning(self, question: str, sentences: list[str]) -> np.ndarray:
        vectors = _normalise(self.embeddings.embed_documents([question, *sentences]))
        return vectors[1:] @ vectors[0]

    def _word_matches(self, question: str, docs: list[Document]) -> list[float]:
        """For each content word of the question, its best cosine with a word of the
        evidence chunks: 1.0 for the same word, ~0.85 for a translation or a
        derivation ('robotics'/'robotique'), ~0.5 for nothing related."""
        vocabulary = sorted({w for d in docs for w in content_words(d.page_content)})
        return self.words.best_matches(content_words(question), vocabulary)

    def _sentence_scores(self, question: str, lang: str, candidates, meaning: np.ndarray) -> np.ndarray:
        langs = (lang, *[other for other in LANGUAGES if other != lang])
        query_terms = set(analyze(question, lang))
        cross_terms = set(analyze(question, langs))
        words = np.array([
            _coverage(query_terms, cross_terms, set(analyze(sentence, doc.metadata.get("lang", lang))))
            for _, doc, sentence in candidates
        ])
        rank = np.array([1.0 / math.sqrt(r + 1) for r, _, _ in candidates])
        # USE cosine of a question and its answer sits around 0.2-0.6: stretch to 0..1.
        stretched = np.clip((meaning - 0.05) / 0.55, 0.0, 1.0)
        defines = np.array([_defines_acronym(question, sentence) for _, _, sentence in candidates])
        return W_MEANING * stretched + W_WORDS * words + W_RANK * rank + ACRONYM_BONUS * defines


ACRONYM_BONUS = 0.2
_ACRONYM = re.compile(r"\b([A-Z][A-Z0-9]{1,9})\b")


def _defines_acronym(question: str, sentence: str) -> float:
    """1.0 when the sentence spells out an acronym of the question: '... (TPD)'."""
    return float(any(f"({a})" in sentence for a in _ACRONYM.findall(question)))


def quotable_units(text: str, lang: str) -> list[str]:
    """Sentences of a chunk, each an exact substring of it; a run of short lines without
    end punctuation (a heading, a date, a place) stays one unit, so 'Événement TechCrunch /
    San Francisco / 27-29 octobre' can be quoted whole."""
    units: list[str] = []
    run: list[str] = []
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and len(stripped) < 60 and stripped[-1] not in ".!?:;»\"":
            run.append(stripped)
            continue
        if run:
            units.append("\n".join(run))
            run = []
        if stripped:
            units.extend(split_sentences(stripped, lang))
    if run:
        units.append("\n".join(run))
    return units


class WordMatcher:
    """Word-to-word similarity in the multilingual encoder, with a cache of word vectors:
    1.0 for the same word, ~0.85 for a translation or a derivation, ~0.5 for unrelated."""

    def __init__(self, embeddings: Any) -> None:
        self.embeddings = embeddings
        self._vectors: dict[str, np.ndarray] = {}

    def best_matches(self, words_a: list[str], words_b: list[str]) -> list[float]:
        """For each word of ``words_a``, its best cosine with a word of ``words_b``."""
        if not words_a or not words_b:
            return []
        a, b = self._embed(words_a), self._embed(words_b)
        return [float(x) for x in (a @ b.T).max(axis=1)]

    def _embed(self, items: list[str]) -> np.ndarray:
        missing = [w for w in dict.fromkeys(items) if w not in self._vectors]
        if missing:
            for word, vector in zip(missing, _normalise(self.embeddings.embed_documents(missing))):
                self._vectors[word] = vector
        return np.stack([self._vectors[w] for w in items])


# Words that say what kind of answer is wanted, not what it is about.
QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how does did do is are was were according article text document "
    "documents say says said tell much many kind type quel quelle quels quelles qui que quoi quand où pourquoi "
    "comment combien selon article texte document documents dit dire est sont".split()
)


def content_words(text: str) -> list[str]:
    stop = _stopwords()
    return list(dict.fromkeys(
        w for w in words(text) if len(w) > 2 and w not in QUESTION_WORDS and fold(w) not in stop
    ))


EXACT = 0.95  # a word match this close is the same word (accents, case, plural aside)


def evidence_from_words(matches: list[float]) -> float:
    """Mean best-match of the question's content words, plus half the share matched exactly.

    Off-topic questions ask about something the passages never name ('population',
    'tariff'), so their mean stays low and nothing matches exactly.
    """
    if not matches:
        return 0.0
    return float(np.mean(matches)) + 0.5 * sum(m >= EXACT for m in matches) / len(matches)


def _normalise(vectors: Any) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    return array / (np.linalg.norm(array, axis=1, keepdims=True) + 1e-9)


def _coverage(query_terms: set[str], cross_terms: set[str], sentence_terms: set[str]) -> float:
    """Share of the question's terms found in the sentence (cross-language stems count)."""
    if not query_terms:
        return 0.0
    return min(1.0, len(cross_terms & sentence_terms) / len(query_terms))
