"""Answers with citations, and the extractive answerer (the default: no LLM, cannot invent).

The extractive answerer reads the body of each retrieved chunk (never its heading
line) sentence by sentence and scores every sentence with a logistic model over

- meaning: cosine of question and sentence in the multilingual USE encoder, so an
  English question meets a French sentence;
- words: the question's stems in the sentence, and the best word-to-word match of
  each content word (same word, translation, derivation), exact words apart;
- retrieval: the chunk's rank and fused score;
- answer type: a question that asks how many / when / who (combien, quand, qui, où)
  wants a number, a date, a name that the question does not already say;
- form: new words beyond the question's, a spelled-out acronym, a real sentence.

It quotes the best sentence verbatim, with a runner-up of the same passage when one
scores close to it, and cites the passage as ``[1]``. Whether to answer at
all is a second logistic model, calibrated to a probability: the best sentence's score
and meaning and its margin over the next sentence, each held to the sign its meaning
gives it; a typed question (how many / when / who) whose sentences hold no number, date
or name, and a question whose words the first passages barely meet, are refused before
it. Under ``min_support`` it refuses in the question's language, with no citation. Both
models were fitted by ``scripts/fit_answerer.py`` on the fit split of the public
generalisation benchmark only (docs/evaluation.md).

With a reader (``reader = auto``, :mod:`tpdqa.reader`; off by default) the first
READ_CHUNKS passages are also read by a model trained here: its answer span and margins
join both models (their READER_* weights), order the passages it read, and mark the
answer's words (``Citation.span``).

    >>> from tpdqa import Assistant
    >>> answer = Assistant().ask("Qui domine la production de puces mémoire ?")
    >>> answer.refused, answer.citations[0].source
    (False, 'tpd-asie-2025.txt')
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
from langchain_core.documents import Document
from pydantic import BaseModel, Field

from tpdqa.ingest.base import CELL_END, is_row
from tpdqa.ingest import SECTION_SEP, chunk_body
from tpdqa.language import LANGUAGES, _stopwords, analyze, fold, words
from tpdqa.retrieval import timed
from tpdqa.sentences import QUESTION_WORDS, SentenceIndex, WordMatcher, chunk_units, content_words, normalise

REFUSALS = {
    "fr": "Je n'ai pas trouvé la réponse dans les documents.",
    "en": "I could not find the answer in the documents.",
}
# Said after a refusal when the question names something the passages' files never say.
_NOT_NAMED = {
    "en": "The passages found never mention {names}.",
    "fr": "Les passages trouvés ne mentionnent jamais {names}.",
}
_QUOTES = {"en": "“{}”", "fr": "« {} »"}
_CROSS_LEAD = {
    "en": "The documents say ({lang}): ",
    "fr": "Les documents disent ({lang}) : ",
}
_LANG_NAMES = {"en": {"fr": "in French", "en": "in English"}, "fr": {"fr": "en français", "en": "en anglais"}}


class Citation(BaseModel):
    n: int = Field(description="The marker number, [n] in the answer text.")
    source: str = Field(description="Document path relative to the documents folder.")
    chunk_id: str
    text: str = Field(description="The whole cited chunk.")
    quote: str = Field(description="The sentence(s) of the chunk that support the claim, ' … ' where text lies between two.")
    sentences: list[str] = Field(default_factory=list,
                                 description="The quoted sentences, each an exact substring of ``text``, in its order.")
    score: float
    page: int | None = None
    title: str | None = None
    section: str | None = Field(None, description="Where in the document: 'file.docx › Heading › Subheading'.")
    span: tuple[int, int] | None = Field(None, description=(
        "The reader's answer inside the quote: start and end offsets in ``text`` of the words that answer "
        "(None: reader off, or its answer is not in the quoted sentences)."))

    @property
    def span_text(self) -> str | None:
        """The answering words as the quote shows them (whitespace collapsed)."""
        return " ".join(self.text[self.span[0]:self.span[1]].split()) if self.span else None


def scaled(reading: Any) -> float:
    """A reader's margin clipped to ±MARGIN_CLIP and scaled to ±1 (a feature's range)."""
    return float(np.clip(reading.margin, -MARGIN_CLIP, MARGIN_CLIP)) / MARGIN_CLIP


def is_list(unit: str) -> bool:
    """Whether a quotable unit is a list: a run of three short lines at least (two are a page's title lines,
    "Elaphomyces — Encyclopédie / Elaphomyces")."""
    return unit.count("\n") >= LIST_LINES - 1


def last_heading(doc: Document) -> str:
    """The innermost heading a chunk lies under ("Ingredients" of "Pancakes › Ingredients"; "" for none)."""
    return str(doc.metadata.get("section") or "").split(SECTION_SEP)[-1].strip()


def section_path(metadata: dict[str, Any]) -> str:
    """The document and its heading path, e.g. ``micron.docx › Une politique d'attraction``."""
    return SECTION_SEP.join(p for p in (metadata.get("source", ""), metadata.get("section", "")) if p)


class RetrievedChunk(BaseModel):
    """One retrieved passage: where it is, and its fused retrieval score."""

    id: str
    source: str = Field(description="Document path relative to the documents folder.")
    text: str
    score: float = Field(description="Fused retrieval score (higher is closer).")
    page: int | None = None
    lang: str | None = None
    section: str | None = Field(None, description="Where in the document: 'file.docx › Heading › Subheading'.")

    @classmethod
    def of(cls, doc: Document) -> RetrievedChunk:
        return cls(id=doc.id or doc.metadata.get("chunk_id", ""), source=doc.metadata.get("source", ""),
                   text=doc.page_content, score=float(doc.metadata.get("score", 0.0)), page=doc.metadata.get("page"),
                   lang=doc.metadata.get("lang"), section=section_path(doc.metadata) or None)


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

    @property
    def span_text(self) -> str | None:
        """The words the reader marked in the first citation (None: none marked)."""
        return self.citations[0].span_text if self.citations else None

    @classmethod
    def refusal(cls, question: str, lang: str, retrieved: list[RetrievedChunk], support: float = 0.0,
                unnamed: list[str] | None = None) -> Answer:
        """``unnamed``: names of the question no passage found says; the refusal says them too."""
        text = REFUSALS.get(lang, REFUSALS["en"])
        if unnamed:
            quoted = ", ".join(_QUOTES.get(lang, _QUOTES["en"]).format(name) for name in unnamed)
            text = f"{text} {_NOT_NAMED.get(lang, _NOT_NAMED['en']).format(names=quoted)}"
        return cls(question=question, lang=lang, text=text, refused=True, retrieved=retrieved, support=support,
                   warnings=[f"not_named:{name}" for name in unnamed or []])


def put_last(scores: np.ndarray, last: np.ndarray) -> np.ndarray:
    """``scores`` with the sentences marked in ``last`` below every other one."""
    return np.where(last, scores.min() - 10.0, scores) if last.any() else scores


def join_quoted(text: str, sentences: list[str]) -> str:
    """Sentences of ``text`` (in its order) as one quote: whitespace collapsed, ' … ' where
    the text has something between two of them.

        >>> join_quoted("A b. C d. E f.", ["A b.", "C d."]), join_quoted("A b. C d. E f.", ["A b.", "E f."])
        ('A b. C d.', 'A b. … E f.')
    """
    out, at = "", 0
    for sentence in sentences:
        start = text.find(sentence, at)
        if out:
            out += " " if start >= 0 and not text[at:start].strip() else " … "
        out += " ".join(sentence.split())
        at = start + len(sentence) if start >= 0 else at
    return out


def retrieved_chunks(docs: list[Document]) -> list[RetrievedChunk]:
    return [RetrievedChunk.of(d) for d in docs]


class FollowUp(NamedTuple):
    """An elliptic follow-up as the answerer reads it: what it asks, its opener left out ("la Corée" of
    "Et la Corée ?", "South Korea" of "What about South Korea?"), and the text of the answer before it."""

    asked: str
    previous_answer: str
    names: str = ""  # the thing it turns to, named with an article ("un camion" of "Et pour un camion ?")
    before: str = ""  # the question it follows ("Que vise l'accord américano-japonais ?")


class ExtractiveAnswerer:
    """Picks and cites the best supporting sentence; see the module doc."""

    def __init__(self, embeddings: Any, min_support: float | None = None, max_sentences: int = 2,
                 evidence_chunks: int = 3, sentences: SentenceIndex | None = None, reader: Any = None,
                 lexicon: Any = None, reader_languages: tuple[str, ...] = LANGUAGES) -> None:
        # Sentences are picked from every retrieved chunk; word evidence is read in the
        # first ``evidence_chunks`` only, so that a long tail of loosely related passages
        # cannot make an off-topic question look covered. ``sentences`` holds the units and
        # vectors computed at indexing; without it they are computed here. ``max_sentences``:
        # the best sentence and its passage's runners-up (see Candidates.answer_sentences).
        # ``reader``: a tpdqa.reader.Reader (None: off), for questions in ``reader_languages``
        # (the others are answered as with it off); ``min_support`` None: the threshold
        # fitted for the answerer with or without it. ``lexicon``: the BM25 index
        # (tpdqa.lexical.LexicalIndex), which tells the files that name a word (None: no name check).
        self.embeddings = embeddings
        self.lexicon = lexicon
        self._reader = reader  # a Reader, a Future of one (loading beside the first retrieval), or None
        self.reader_languages = tuple(reader_languages)
        self.min_support = min_support  # None: MIN_SUPPORT of the question's path (read or not)
        self.max_sentences = max_sentences
        self.evidence_chunks = evidence_chunks
        self.sentences = sentences
        self.words = WordMatcher(embeddings, sentences)

    @property
    def reader(self) -> Any:
        if isinstance(self._reader, Future):
            self._reader = self._reader.result()
        return self._reader

    def __call__(self, question: str, lang: str, docs: list[Document], said: FollowUp | None = None,
                 timings: dict[str, float] | None = None) -> Answer:
        """``said``: for an elliptic follow-up, what was asked and the previous answer, whose
        sentences are not quoted again while another one can answer (:meth:`Candidates.not_again`).
        ``timings``, if given, receives the reader's seconds as ``reader``."""
        retrieved = retrieved_chunks(docs)
        found = self.candidates(question, lang, docs, timings, said)
        if found is None:
            return Answer.refusal(question, lang, retrieved)
        retrieved = [retrieved[i] for i in found.passage_order(len(retrieved))]
        untold = self.unsaid(found, said, lang)
        if untold:  # "Et pour un camion ?" of a toll given for cars only
            return Answer.refusal(question, lang, retrieved, unnamed=untold)
        unnamed = self.unnamed(question, lang, docs)
        if unnamed is not None and all(unnamed.values()):
            missing = list(dict.fromkeys(name for names in unnamed.values() for name in names))
            # the names no file says, when there are such: "Lille", not "Paris" that the timetable says
            missing = [name for name in missing if all(name in names for names in unnamed.values())] or missing
            return Answer.refusal(question, lang, retrieved, unnamed=missing)
        scores = found.plainest_rows(question, found.not_asking(found.not_again(found.listed_first(
            found.sentence_scores()), said)))
        another, untold = found.another_of(question)
        if untold:  # "the third flight" of a page that tells a first and a second
            return Answer.refusal(question, lang, retrieved, unnamed=untold)
        elsewhere = found.from_sources({source for source, names in (unnamed or {}).items() if names}) | another
        scores = put_last(scores, elsewhere)
        best = found.best(scores, elsewhere)
        support = found.answer_probability(best, scores)
        if support < (self.min_support if self.min_support is not None else MIN_SUPPORT[found.read]):
            return Answer.refusal(question, lang, retrieved, support=round(support, 4))

        picked = found.answer_sentences(scores, best, self.max_sentences)
        doc = found.items[best][1]
        quoted = [found.items[i][2] for i in picked]
        quote = join_quoted(doc.page_content, quoted)
        citation = Citation(
            n=1,
            source=doc.metadata.get("source", ""),
            chunk_id=doc.id or doc.metadata.get("chunk_id", ""),
            text=doc.page_content,
            quote=quote,
            sentences=quoted,
            score=round(float(scores[best]), 4),
            page=doc.metadata.get("page"),
            title=doc.metadata.get("title"),
            section=section_path(doc.metadata),
            span=(self.row_span(question, lang, quoted, timings, doc) if is_table(doc)
                  else found.span_in(best, picked)),
        )
        doc_lang = doc.metadata.get("lang", lang)
        lead = ""
        if doc_lang != lang and lang in _CROSS_LEAD:
            lead = _CROSS_LEAD[lang].format(lang=_LANG_NAMES[lang].get(doc_lang, doc_lang))
        text = f"{lead}{quote} [1]"
        return Answer(question=question, lang=lang, text=text, refused=False,
                      citations=[citation], retrieved=retrieved, support=round(support, 4))

    def stream(self, question: str, lang: str, docs: list[Document], said: FollowUp | None = None
               ) -> Iterator[str | Answer]:
        """The answer's words as text pieces, then the :class:`Answer` (same interface as LLMs)."""
        answer = self(question, lang, docs, said=said)
        words = answer.text.split(" ")
        step = max(1, len(words) // 12)
        for start in range(0, len(words), step):
            yield " ".join(words[start : start + step]) + (" " if start + step < len(words) else "")
        yield answer

    # -- signals -------------------------------------------------------------------------
    def unnamed(self, question: str, lang: str, docs: list[Document]) -> dict[str, list[str]] | None:
        """For each file of the retrieved passages in the question's language, the names the
        question asks about (:func:`question_names`) that the file never says; None when the
        question names nothing or there is no lexicon. A near miss — "the cost of the tunnel
        under the Channel" in a folder that only has a bridge's cost — is answered from no file,
        and a name's file is preferred to the files that only share its topic. Files in
        another language are never held to it (Korea is Corée there; a French page that says
        "French and Indian War" writes its people "Français"), but to a year, which every language
        writes alike."""
        names = question_names(question)
        same = {str(doc.metadata.get("source", "")): doc.metadata.get("lang", lang) == lang for doc in docs}
        if not names or self.lexicon is None or not (any(same.values()) or any(name.isdigit() for name in names)):
            return None
        # A retrieved passage that says the name answers for its file; the index is asked only
        # for the others (a name in 1,000 chunks takes it 5-9 ms at 163k chunks).
        # each spelling's words, each word's stems: a code ("SB-3000", "Q4") is said only with all its words (the
        # manual of the SB-5000 says "SB"), another name with any ("Saint-Exupéry" of "Exupéry")
        parts = {name: [[stems for stems in (set(analyze(word, LANGUAGES)) for word in _PARTS.findall(spelling)) if stems]
                        for spelling in spellings(name)] for name in names}
        said: dict[str, set[str]] = {}
        for doc in docs:
            said.setdefault(str(doc.metadata.get("source", "")), set()).update(
                analyze(doc.page_content, doc.metadata.get("lang", lang)))
        naming: dict[str, set[str] | None] = {}

        def lacks(source: str, name: str) -> bool:
            every = all if _CODE.match(name) else any
            if any(every(stems & said[source] for stems in spelled) for spelled in parts[name]):
                return False
            if name not in naming:
                found = [self.files_naming(spelling, every is all) for spelling in spellings(name)]
                naming[name] = None if None in found else set().union(*found)
            return naming[name] is not None and source not in naming[name]

        return {source: [name for name in names if (held or name.isdigit()) and lacks(source, name)]
                for source, held in same.items()}

    def files_naming(self, spelling: str, every: bool) -> set[str] | None:
        """The files that write ``spelling`` (the lexicon's :meth:`~tpdqa.lexical.LexicalIndex.sources_naming`);
        ``every``: all of its words in one file, a word too common to tell files apart left out (None: all are)."""
        if not every:
            return self.lexicon.sources_naming(spelling)
        found = [f for f in (self.lexicon.sources_naming(word) for word in _PARTS.findall(spelling)) if f is not None]
        return set.intersection(*found) if found else None

    def row_span(self, question: str, lang: str, quoted: list[str], timings: dict[str, float] | None,
                 doc: Document) -> tuple[int, int] | None:
        """The value the question asks for in the quoted rows of a table, marked: read whole, a
        table gets a value of any row marked (:meth:`read`), but its rows read each alone are
        passages the reader reads well (``Lime — Planted: 80; Survival: 71%``: "71%" for the
        limes), the mark held to one cell. Offsets in ``doc``'s text; None when the reader is off
        for this question or finds no answer in those rows."""
        if self._reader is None or lang not in self.reader_languages:
            return None
        with timed(timings, "reader"):
            readings = self.reader.read(question, quoted)
        if not readings:  # rows without a word
            return None
        at, reading = max(zip(located(doc, quoted), readings), key=lambda pair: pair[1].margin)
        if reading.margin <= 0 or at < 0:
            return None
        start, end = at + reading.start, at + reading.end
        cell = CELL_END.search(doc.page_content, start, end)  # one value: "80", not "80; survie: 71%"
        return trimmed(doc.page_content, start, cell.start() if cell else end)

    def candidates(self, question: str, lang: str, docs: list[Document], timings: dict[str, float] | None = None,
                   said: FollowUp | None = None) -> Candidates | None:
        """Every quotable sentence of the retrieved chunks, with its features (None: nothing to quote);
        ``said``: the previous answer of a follow-up, whose sentences the reader's spans avoid."""
        if self.sentences is not None:
            units = self.sentences.lookup(docs, lang)
        else:
            units = [(u, normalise(self.embeddings.embed_documents(u)) if u else None)
                     for u in (chunk_units(doc, lang) for doc in docs)]
        items = [(rank, doc, sentence) for rank, (doc, (found, _)) in enumerate(zip(docs, units)) for sentence in found]
        if not items:
            return None
        sentences = [s for _, _, s in items]
        vectors = np.concatenate([v for found, v in units if found])
        asked = normalise(self.embeddings.embed_query(question))[0]
        meaning = vectors @ asked

        question_words = content_words(question)
        # a list (a run of short lines) is what its heading names: "What are the ingredients?" is the list under
        # "## Ingredients", whose lines never say the word; a sentence says its own subject
        headed = {rank: last_heading(doc) for rank, doc in enumerate(docs)}
        worded = [f"{headed[rank]}\n{s}" if is_list(s) and headed[rank] else s for rank, _, s in items]
        sentence_words = [content_words(s) for s in worded]
        # A passage's title and headings say what it is about: "Risks" over a slide's bullets
        # meets "What are the risks?" as well as a sentence that names them would.
        heading_words = {w for doc in docs[: self.evidence_chunks]
                         for w in content_words(f"{doc.metadata.get('title', '')}\n{doc.metadata.get('section', '')}")}
        vocabulary = sorted({w for ws in sentence_words for w in ws} | heading_words)
        # question word x vocabulary cosines, then per sentence the best match of each question word
        grid = self.words.similarity(question_words, vocabulary)
        column = {w: i for i, w in enumerate(vocabulary)}
        top = np.array([rank < self.evidence_chunks for rank, _, _ in items])
        evidence_columns = sorted({column[w] for (r, _, _), ws in zip(items, sentence_words) if r < self.evidence_chunks
                                   for w in ws} | {column[w] for w in heading_words})
        evidence = grid[:, evidence_columns].max(axis=1) if grid.size and evidence_columns else np.zeros(0)

        langs = (lang, *[other for other in LANGUAGES if other != lang])
        query_terms = set(analyze(question, lang))
        cross_terms = set(analyze(question, langs))
        wanted = expected_type(question)
        question_folded = {fold(w) for w in words(question)}
        best_fused = max(float(doc.metadata.get("score", 0.0)) for doc in docs) or 1.0
        rows = []
        for (rank, doc, sentence), text, ws, cos in zip(items, worded, sentence_words, meaning):
            matches = grid[:, [column[w] for w in ws]].max(axis=1) if grid.size and ws else np.zeros(len(question_words))
            terms = set(analyze(text, doc.metadata.get("lang", lang)))
            typed = has_type(sentence, wanted, question_folded) if wanted else 0.0
            new_words = [w for w in ws if fold(w) not in question_folded]
            rows.append([
                meaning_feature(cos),                                            # meaning
                _coverage(query_terms, cross_terms, terms),                      # stems of the question in it
                float(matches.mean()) if matches.size else 0.0,                  # word matches (translations too)
                float((matches >= EXACT).mean()) if matches.size else 0.0,       # exact words
                1.0 / math.sqrt(rank + 1),                                       # retrieval rank
                float(doc.metadata.get("score", 0.0)) / best_fused,              # fused retrieval score
                float(bool(wanted)) * typed,                                     # holds the expected answer type
                float(bool(wanted)) * (1.0 - typed),                             # lacks it
                min(1.0, len(new_words) / 8.0),                                  # says something the question does not
                _defines_acronym(question, sentence),
                float(sentence.rstrip()[-1:] in ".!?»\"”)"),                      # a sentence, not a line
                min(1.0, len(sentence) / 400.0),
            ])
        found = Candidates(items=items, features=np.array(rows, dtype=np.float32), meaning=meaning,
                           evidence=evidence, top=top, expansion=bool(_EXPANSION.search(question)),
                           measure=wanted if wanted in _MEASURES else None, headings=self.heading_questions(docs, asked))
        found.answers_to_questions(docs)
        lists = {rank for rank, _, sentence in items if is_list(sentence)}
        found.lists_under(self.heading_questions(docs, asked, lists) if lists else {}, question)
        found.again = self.said_again(found, said)
        found.parallel = self.parallel(found, said, vectors)
        if self._reader is not None and lang in self.reader_languages:
            with timed(timings, "reader"):  # a reader still loading is waited for here
                self.read(question, docs, found, found.again | found.asking)
        return found

    def said_again(self, found: Candidates, said: FollowUp | None) -> np.ndarray:
        """Which sentences :meth:`Candidates.not_again` puts last (none when every one would be): those the
        previous answer quoted that do not say every word the follow-up asks with (:meth:`not_said`; "Et
        l'accord avec la Corée ?" after the Japan agreement's sentence) — "And South Korea?" after the French
        sentence naming both countries is answered by it again, as "Et la Corée du Sud ?" is. Question words
        ask, they are not said: "And how tall is it?" after "The fairing is … 8 metres tall"."""
        none = np.zeros(len(found.items), dtype=bool)
        if said is None:
            return none
        again = np.array([told and bool(self.not_said(said.asked, [sentence]))  # read only if quoted
                          for told, (_, _, sentence) in zip(found.told(said), found.items)], dtype=bool)
        return again if not again.all() else none

    def parallel(self, found: Candidates, said: FollowUp | None, vectors: np.ndarray) -> np.ndarray:
        """For each sentence that says what a follow-up turns to, its cosine with the previous answer (≈ 1 for
        that answer's own sentence); 0 for the others. What is asked of the new thing is what was asked of the old
        one, so its answer reads like the previous answer: "And the agreement with Korea?" after the US-Japan
        agreement's press release is answered by Korea's (0.63), not by the sentence on the two countries'
        strengths (0.41)."""
        none = np.zeros(len(found.items))
        if said is None or not said.before:
            return none
        before = set(analyze(said.before, LANGUAGES))
        new = " ".join(w for w in content_words(said.asked) if not set(analyze(w, LANGUAGES)) <= before)
        if not new:
            return none
        saying = np.array([not self.not_said(new, [sentence]) for _, _, sentence in found.items])
        if not saying.any():
            return none
        previous = normalise(self.embeddings.embed_documents([said.previous_answer]))[0]
        return np.where(saying, vectors @ previous, 0.0)

    def unsaid(self, found: Candidates, said: FollowUp | None, lang: str) -> list[str]:
        """The words of the thing an elliptic follow-up turns to ("Et pour un camion ?" after the toll for a
        car) that no retrieved sentence says: the follow-up asks about that thing alone, and the passages do
        not tell it (it was answered with the viaduct's construction cost). Only when some passages are in
        the follow-up's language, as :meth:`unnamed` holds only those: a word's translation is not told from
        a neighbour's surely enough ("death" / "décès" 0.80, "truck" / "voiture" 0.63) to refuse on it."""
        if said is None or not said.names:
            return []
        if all(doc.metadata.get("lang", lang) != lang for _, doc, _ in found.items):
            return []
        return self.not_said(said.names, [sentence for _, _, sentence in found.items])

    def not_said(self, asked: str, sentences: list[str]) -> list[str]:
        """The content words of ``asked`` that none of ``sentences`` says: as itself, or in another language
        as a translation — a word vector at TRANSLATED ("birth" / "naissance" 0.89), a name's capitalised
        words at NAME_TRANSLATED ("South Korea" / "Corée du Sud" 0.90; lower-cased, "korea" / "corée" is only
        0.55, and another country 0.65 at most)."""
        stems = set().union(*(analyze(sentence, LANGUAGES) for sentence in sentences))
        missing = [w for w in content_words(asked) if not set(analyze(w, LANGUAGES)) <= stems]
        vocabulary = list(dict.fromkeys(w for sentence in sentences for w in content_words(sentence)))
        if missing and vocabulary:
            matches = self.words.best_matches(missing, vocabulary)
            missing = [w for w, match in zip(missing, matches) if match < TRANSLATED]
        names = name_phrases(asked)
        theirs = list(dict.fromkeys(name for sentence in sentences for name in name_phrases(sentence)))
        if missing and names and theirs:
            closest = (normalise(self.embeddings.embed_documents(names))
                       @ normalise(self.embeddings.embed_documents(theirs)).T).max(axis=1)
            translated = {fold(w.lower()) for name, c in zip(names, closest) if c >= NAME_TRANSLATED
                          for w in name.split()}
            missing = [w for w in missing if fold(w.lower()) not in translated]
        return missing

    def heading_questions(self, docs: list[Document], asked: np.ndarray, lists: set[int] | None = None
                          ) -> dict[int, float]:
        """For each chunk (by rank) whose own heading is a question ("## How do I cancel my
        subscription?" in a help page) — with ``lists`` (the ranks of the chunks that hold a list): that
        is not a question and heads a list ("## Ingredients") —, that heading's cosine with the question
        ``asked`` (its normalised vector); none: nothing embedded."""
        headings = {rank: last_heading(doc) for rank, doc in enumerate(docs)}
        headings = {rank: heading for rank, heading in headings.items() if heading and (
            not _ASKS.search(heading) and rank in lists if lists is not None else _ASKS.search(heading))}
        if not headings:
            return {}
        vectors = normalise(self.embeddings.embed_documents(list(headings.values())))
        return {rank: float(vector @ asked) for rank, vector in zip(headings, vectors)}

    def read(self, question: str, docs: list[Document], found: Candidates, again: np.ndarray | None = None) -> None:
        """Adds the reader's columns (READER_FEATURES) to ``found``: it reads the first
        READ_CHUNKS chunks whole (heading line included: the section says what the passage is
        about) in one call; a sentence holding a chunk's answer span gets its margin. It reads a
        question asked in another language than the passage too (it learned translated questions
        of the same passages); it learned prose, so when the first passage is a table (it marks a
        value of any row: the lime trees' survival for the oaks'), the question is answered as
        with the reader off, and the quoted row alone is read for its value (:meth:`row_span`).
        ``again``: sentences the span is sought outside of — those a follow-up does not quote again
        (Candidates.said_again: "Et l'accord avec la Corée ?", not the Japan sentence) and questions
        (Candidates.asking: an FAQ's question line is not its answer)."""
        if not docs or is_table(docs[0]):
            return
        read = min(READ_CHUNKS, len(docs))
        found.starts = np.where([rank < read for rank, _, _ in found.items], found.offsets, -1)
        skip: list[list[tuple[int, int]]] = [[] for _ in range(read)]
        for row in np.flatnonzero(again) if again is not None else []:
            rank, _, sentence = found.items[row]
            if found.starts[row] >= 0:
                skip[rank].append((int(found.starts[row]), int(found.starts[row]) + len(sentence)))
        passages = [d.page_content for d in docs[:read]]
        found.readings = dict(enumerate(self.reader.read(question, passages, skip if any(skip) else None)))
        columns = np.zeros((len(found.items), len(READER_FEATURES)), dtype=np.float32)
        for row, (rank, _, sentence) in enumerate(found.items):
            start = int(found.starts[row])
            if start < 0 or rank not in found.readings:  # the reader finds nothing in a passage of no words
                continue
            reading = found.readings[rank]
            margin = scaled(reading)
            holds = float(reading.start < start + len(sentence) and reading.end > start)
            columns[row] = (holds, holds * margin, margin)
        found.features = np.concatenate([found.features, columns], axis=1)


def meaning_feature(cosine: float) -> float:
    """The sentence feature "meaning": a question's cosine with a sentence, scaled to 0-1."""
    return float(np.clip((cosine - 0.05) / 0.55, 0.0, 1.0))


def on_its_own_line(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` has its line to itself (spaces and tabs aside)."""
    after = text.find("\n", end)
    return not text[text.rfind("\n", 0, start) + 1:start].strip(" \t") and \
        not text[end:after if after >= 0 else len(text)].strip(" \t")


def located(doc: Document, sentences: list[str]) -> list[int]:
    """Where each of a chunk's quotable ``sentences`` (in their order) starts in its text: after
    the heading line (which may repeat a sentence's words) and after the sentence before; -1 if
    not found."""
    text = doc.page_content
    starts, at = [], len(text) - len(chunk_body(text, doc.metadata))
    for sentence in sentences:
        start = text.find(sentence, at)
        starts.append(start)
        at = start + len(sentence) if start >= 0 else at
    return starts


def trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``text[start:end]`` without the punctuation at its edges (a span of whole words keeps the
    comma or semicolon after its last one); None when nothing is left."""
    while end > start and text[end - 1] in _EDGE_PUNCTUATION:
        end -= 1
    while start < end and text[start] in _EDGE_PUNCTUATION:
        start += 1
    return (start, end) if end > start else None


def is_table(doc: Document) -> bool:
    """Whether a chunk is mostly table rows (``Oak — Planted: 120; Survival: 92%``), two at least:
    one line alone that reads as a row is as likely a sentence ("…(Chinese: ; pinyin: Dà Yuán;
    Wade–Giles: Ta-Yüan), establishing the Yuan dynasty.")."""
    lines = [line for line in chunk_body(doc.page_content, doc.metadata).split("\n") if line.strip()]
    rows = sum(map(is_row, lines))
    return rows >= 2 and 2 * rows >= len(lines)


@dataclass
class Candidates:
    """Quotable sentences of the retrieved chunks and what the answerer knows of each."""

    items: list[tuple[int, Document, str]]
    features: np.ndarray  # one row per sentence, columns as SENTENCE_FEATURES
    meaning: np.ndarray  # raw cosine of question and sentence
    evidence: np.ndarray  # per content word of the question, its best match in the evidence chunks
    top: np.ndarray  # sentence is in one of the evidence chunks

    expansion: bool = False  # the question asks what an acronym stands for
    measure: str | None = None  # the measure the question asks for: a price, a weight… (expected_type)
    readings: dict[int, Any] = field(default_factory=dict)  # the reader's Reading per chunk rank it read
    offsets: np.ndarray | None = None  # each sentence's offset in its chunk's text (-1: not found)
    starts: np.ndarray | None = None  # with the reader: the offsets of the sentences of chunks it read (-1: unread)
    under: np.ndarray | None = None  # the FAQ question a sentence answers: its row, or past every row a heading; -1
    headings: dict[int, float] = field(default_factory=dict)  # chunk rank -> its question heading's cosine
    again: np.ndarray | None = None  # a follow-up's: the sentences not quoted again (ExtractiveAnswerer.said_again)
    parallel: np.ndarray | None = None  # a follow-up's: how like the previous answer (ExtractiveAnswerer.parallel)
    listed: np.ndarray | None = None  # the lists whose heading names what the question asks for (lists_under)

    @property
    def read(self) -> bool:
        return self.features.shape[1] > len(SENTENCE_FEATURES)

    def sentence_scores(self) -> np.ndarray:
        """Log-odds that a sentence holds the answer (weights fitted on the fit split).

        A question asking what an acronym stands for is answered by the sentence that
        spells it out: a rule, since public QA sets ask too few such questions to learn it."""
        if self.read:
            scores = self.features @ READER_SENTENCE_WEIGHTS + READER_SENTENCE_BIAS
        else:
            scores = self.features @ SENTENCE_WEIGHTS + SENTENCE_BIAS
        if self.expansion:
            scores = scores + EXPANSION_BONUS * self.features[:, SENTENCE_FEATURES.index("defines_acronym")]
        return scores

    def not_again(self, scores: np.ndarray, said: FollowUp | None) -> np.ndarray:
        """``scores`` with the sentences the previous answer quoted put last, unless they hold
        every word the follow-up asks with: an elliptic follow-up asks for something else ("Et
        l'accord avec la Corée ?" after the Japan agreement's sentence), even where its rewritten
        question still reads like the first — but "Et la Corée du Sud ?" after a sentence naming
        both countries is answered by that sentence again. Unchanged when no sentence was said,
        or nothing else is left to quote. The other sentences of a passage that held the previous
        answer get FOLLOW_UP_NEARBY: a follow-up's answer lies most often near the previous one
        (QuAC's dialogue flow), and a sentence elsewhere that merely repeats the question's words
        (a conclusion naming all the countries) should not win a near tie against it. A sentence that says
        what the follow-up turns to gets FOLLOW_UP_PARALLEL by its likeness to the previous answer
        (:meth:`ExtractiveAnswerer.parallel`)."""
        if said is None:
            return scores
        told = self.told(said)
        near = {self.items[i][0] for i in np.flatnonzero(told)}
        scores = scores + FOLLOW_UP_NEARBY * np.array([rank in near for rank, _, _ in self.items]) * ~told
        if self.parallel is not None:
            scores = scores + FOLLOW_UP_PARALLEL * self.parallel
        again = self.again if self.again is not None else np.zeros(len(self.items), dtype=bool)
        return put_last(scores, again) if again.any() else scores

    @cached_property  # read by the reader's skip list and again by not_asking
    def asking(self) -> np.ndarray:
        """Which sentences are questions themselves, holding nothing of the kind asked for: an FAQ's
        "How long does the battery last?" repeats the user's words but the line after it answers (the
        reader marked "How long" in it); "Is there a route of at most 2000 kilometres…?" still gives a length."""
        typed = self.features[:, SENTENCE_FEATURES.index("type_found")] > 0
        return np.array([bool(_ASKS.search(sentence)) for _, _, sentence in self.items], dtype=bool) & ~typed

    def answers_to_questions(self, docs: list[Document]) -> None:
        """The lines under a question that has a line of its own (an FAQ's "question: Can I return it?",
        an interview's) or is the chunk's heading (``headings``: its cosine by chunk rank) answer it:
        each of their sentences takes that question's closeness to the user's as its own meaning when
        it is higher. How close a user's question is to an FAQ's is the first thing FAQ retrieval
        reads; the answer's own words need not repeat the user's ("What is the return policy?" against
        "Unused products can be returned within 30 days…"). A question inside a paragraph gives
        nothing: prose goes on about more than it asks. Sets ``offsets`` and ``under``: the question
        each answers."""
        column = SENTENCE_FEATURES.index("meaning")
        self.offsets = np.full(len(self.items), -1)
        self.under = np.full(len(self.items), -1)
        for rank, doc in enumerate(docs):
            rows = [row for row, item in enumerate(self.items) if item[0] == rank]
            self.offsets[rows] = located(doc, [self.items[row][2] for row in rows])
            # (an id for the question, its meaning): a heading's id follows every row's
            asked = (len(self.items) + rank, meaning_feature(self.headings[rank])) if rank in self.headings else None
            for row in rows:
                start = int(self.offsets[row])
                if start < 0:
                    continue
                if self.asking[row]:
                    alone = on_its_own_line(doc.page_content, start, start + len(self.items[row][2]))
                    asked = (row, self.features[row, column]) if alone else None
                elif asked is not None:
                    self.under[row] = asked[0]
                    self.features[row, column] = max(self.features[row, column], asked[1])

    def lists_under(self, headings: dict[int, float], question: str) -> None:
        """A list (:func:`is_list`) takes its heading's closeness to the question (``headings``: cosine by chunk
        rank) as its own meaning when it is higher, and is what the question asks for when the question asks for
        its heading and nothing else (``listed``): "What are the ingredients?" is the list under "##
        Ingredients" (0.22 for the list's own lines, and the reader, which learned prose, marks "Pour the wet
        ingredients into the dry ones" of the method)."""
        column = SENTENCE_FEATURES.index("meaning")
        asked = [set(analyze(word, LANGUAGES)) for word in content_words(question)]
        said = set().union(*asked)
        self.listed = np.zeros(len(self.items), dtype=bool)
        for row, (rank, doc, sentence) in enumerate(self.items):
            if rank not in headings or not is_list(sentence):
                continue
            # a list's heading names it in a few words ("Ingredients", "Opening hours"), not a mail's subject
            heading = [set(analyze(word, LANGUAGES)) for word in content_words(last_heading(doc))]
            if 0 < len(heading) <= LIST_HEADING_WORDS:
                self.features[row, column] = max(self.features[row, column], meaning_feature(headings[rank]))
                # the question asks for the heading, not for something of what it names: every word of each is
                # the other's ("What are the ingredients?"; not "Quels sont les parasites des Elaphomyces ?")
                self.listed[row] = (all(stems & said for stems in heading)
                                    and all(any(stems & h for h in heading) for stems in asked))

    def listed_first(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` with the lists the question names by their heading (:meth:`lists_under`) put first."""
        if self.listed is None or not self.listed.any():
            return scores
        scores = scores.copy()
        scores[self.listed] = np.maximum(scores[self.listed], scores.max() + 0.01)
        return scores

    def not_asking(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` with the sentences that ask a question put last, unless nothing else is left."""
        asking = self.asking
        return put_last(scores, asking) if asking.any() and not asking.all() else scores

    def plainest_rows(self, question: str, scores: np.ndarray) -> np.ndarray:
        """``scores`` with a table row put just under a row of its table whose label says as much of the question
        and adds fewer words it does not ask: "Combien coûte l'abonnement annuel ?" is the "Abonnement annuel"
        row's price, not the "Abonnement annuel étudiant" row's, which scored as high for saying more."""
        rows = [i for i, (_, _, sentence) in enumerate(self.items) if is_row(sentence)]
        if len(rows) < 2:
            return scores
        asked = set(analyze(question, LANGUAGES))
        # each label's words the question says and the number it does not (a word, not its stems in two languages)
        labels = {i: [set(analyze(w, LANGUAGES)) for w in content_words(self.items[i][2].split(" — ", 1)[0])]
                  for i in rows}
        said = {i: set().union(*(w & asked for w in label)) for i, label in labels.items()}
        extra = {i: sum(not w & asked for w in label) for i, label in labels.items()}
        scores = scores.copy()
        for i in rows:
            plainer = [j for j in rows if j != i and self.items[j][0] == self.items[i][0] and said[i]
                       and said[j] >= said[i] and extra[j] < extra[i] and scores[j] < scores[i]]
            if plainer:
                scores[i] = min(scores[j] for j in plainer) - 0.01
        return scores

    def told(self, said: FollowUp) -> np.ndarray:
        """Which sentences the previous answer quoted."""
        told = " ".join(said.previous_answer.split())
        return np.array([" ".join(sentence.split()) in told for _, _, sentence in self.items], dtype=bool)

    def another_of(self, question: str) -> tuple[np.ndarray, list[str]]:
        """Which sentences tell of another one of what the question sets apart (:func:`qualified`) and not of
        the one asked for: "When did the second flight fail?" is not answered by "The first flight carried…";
        and the question's words for those no sentence tells while one tells another of the same thing: "the
        third flight" of passages that tell a first and a second, "the men's slalom" of a women's slalom."""
        asked = qualified(question)
        if not asked:
            return np.zeros(len(self.items), dtype=bool), []
        told = [qualified(sentence) for _, _, sentence in self.items]
        kinds = [{(contrast, noun) for contrast, _, noun in said} for said in told]  # what each sets apart, by member
        # a word said without its noun may still be the one asked for: "the first stage is powered by the P160,
        # the second by the Zefiro 40" tells the second stage; "early in the fourth, …"
        members = [{_CONTRASTS[w.lower()] for w in _CONTRAST_WORD.findall(sentence)} for _, _, sentence in self.items]
        another = np.array([any(key not in said and (key[0], key[2]) in kind and key[:2] not in member for key in asked)
                            for said, kind, member in zip(told, kinds, members)], dtype=bool)
        told_kinds, told_members = set().union(*kinds), set().union(*members)
        untold = [words_ for key, words_ in asked.items() if key[:2] not in told_members and (key[0], key[2]) in told_kinds]
        return another, untold

    def from_sources(self, sources: set[str]) -> np.ndarray:
        """Which sentences come from these files."""
        return np.array([str(doc.metadata.get("source", "")) in sources for _, doc, _ in self.items], dtype=bool)

    def best(self, scores: np.ndarray, elsewhere: np.ndarray | None = None) -> int:
        """The best sentence; for a question that wants a number, a date or a name, the best
        one that holds it, if any does ("who built it?" → "built by RWE", not the higher
        scoring "Denmark opened it"; a typed question none answers is refused). The reader knows
        what kind of answer a question wants, but not a weight's units from a height's: for a
        measure, it is held to the rule too. ``elsewhere``: sentences of files that never name what
        the question asks about, whose figures never stand in for it (a viaduct's cost for a canal's)."""
        typed = self.features[:, SENTENCE_FEATURES.index("type_found")] > 0
        typed = np.flatnonzero(typed & ~elsewhere if elsewhere is not None else typed)
        if (typed.size and (not self.read or self.measure)
                and self.features[:, SENTENCE_FEATURES.index("type_missing")].any()):
            return int(typed[np.argmax(scores[typed])])
        return int(np.argmax(scores))

    def answer_sentences(self, scores: np.ndarray, best: int, max_sentences: int = 2) -> list[int]:
        """The best sentence and up to ``max_sentences - 1`` others *of the same passage*
        scoring within ``SECOND_SENTENCE_MARGIN`` of it, in the passage's order.

        The best sentence misses the answer most often by one sentence (the next one says
        the name, the previous one the figure), and a list question may need two; taking
        them from the same passage keeps one citation and its precision. A table row is
        whole (its label and headers are on its line): it is quoted alone. A sentence that answers one
        question of the document (an FAQ's answer, :meth:`answers_to_questions`) comes with the others
        of that answer, however far apart their scores, and with no sentence of another answer."""
        if is_row(self.items[best][2]):
            return [best]
        rank = self.items[best][0]
        asked = self.under[best] if self.under is not None else -1
        # none that scored above it: passed over (a measure's: "It is rated IP65" for the rated power, not in watts)
        others = [int(i) for i in np.argsort(-scores, kind="stable")
                  if i != best and self.items[i][0] == rank and (self.under[i] == asked if asked >= 0 else
                                                                 scores[best] - SECOND_SENTENCE_MARGIN <= scores[i]
                                                                 <= scores[best])]
        return sorted([best, *others[: max_sentences - 1]])

    def passage_order(self, n: int) -> list[int]:
        """The retrieved passages' order: those the reader read by its margin (plus a prior for
        the retrieval rank, PASSAGE_RANK_PRIOR), then the rest as retrieved."""
        read = sorted(self.readings, key=lambda r: -(scaled(self.readings[r]) + PASSAGE_RANK_PRIOR / math.sqrt(r + 1)))
        return [*read, *(i for i in range(n) if i not in self.readings)]

    def span_in(self, best: int, picked: list[int]) -> tuple[int, int] | None:
        """The reader's span in the best sentence's chunk, if it lies in the quoted sentences
        (offsets in the chunk's text, edge punctuation trimmed); else, for a measure, the best sentence's
        quantity in the units asked for (the reader marked "IP65" for the rated power, the quoted sentence
        says "5,000 W")."""
        rank, doc, sentence = self.items[best]
        reading = self.readings.get(rank)
        if reading is None or reading.end <= reading.start:
            return None
        text = doc.page_content
        if any(0 <= self.starts[i] <= reading.start and reading.end <= self.starts[i] + len(self.items[i][2])
               for i in picked):
            return trimmed(text, reading.start, reading.end)
        found = typed_at(sentence, self.measure, set()) if self.measure and self.starts[best] >= 0 else None
        return trimmed(text, self.starts[best] + found[0], self.starts[best] + found[1]) if found else None

    def question_features(self, best: int, scores: np.ndarray) -> np.ndarray:
        others = np.delete(scores, best)
        margin = float(scores[best] - others.max()) if others.size else 3.0
        evidence = self.evidence
        evidence_ranks = {rank for (rank, _, _), top in zip(self.items, self.top) if top}
        row = dict(zip(SENTENCE_FEATURES, self.features[best]))
        reader = []
        if self.read:  # the best margin of any chunk read, and the one the best sentence holds
            chosen = self.features[best, len(SENTENCE_FEATURES):]
            reader = [max(scaled(r) for r in self.readings.values()), float(chosen[1])]
        return np.array([
            float(scores[best]),
            max([float(self.meaning[self.top].max()) if self.top.any() else float(self.meaning.max()),
                 *(cosine for rank, cosine in self.headings.items() if rank in evidence_ranks)]),  # question headings
            float(evidence.mean()) if evidence.size else 0.0,                 # how well the question's words are met
            float(evidence.min()) if evidence.size else 0.0,                  # its worst-met word: a near miss names
            float((evidence < WORD_MISSING).mean()) if evidence.size else 1.0,  # something the passages never do
            float((evidence >= EXACT).mean()) if evidence.size else 0.0,
            float(row["word_match"]), float(row["exact_words"]), float(row["type_found"]), float(row["type_missing"]),
            min(margin, 3.0),
            float((evidence >= TRANSLATED).mean()) if evidence.size else 0.0,  # same word or a translation
            *reader,
        ], dtype=np.float32)

    def answer_probability(self, best: int, scores: np.ndarray) -> float:
        """Probability that the best sentence answers the question (calibrated on the fit split);
        0 for an off-topic question, whose words the first passages barely meet."""
        q = self.question_features(best, scores)
        named = dict(zip(QUESTION_FEATURES, q))
        if named["best_meaning"] + named["evidence_mean"] + 0.5 * named["words_matched"] < OFF_TOPIC:
            return 0.0
        # asks how many / when / who, and the best sentence holds no such thing. The reader knows what
        # kind of answer a question wants, but not a price from a length: no sentence in the units
        # asked for is refused with it too (Candidates.best took one that has them if any did)
        if named["best_type_missing"] > 0 and (not self.read or self.measure):
            return 0.0
        if self.read:
            return 1.0 / (1.0 + math.exp(-float(q @ READER_REFUSAL_WEIGHTS + READER_REFUSAL_BIAS)))
        return 1.0 / (1.0 + math.exp(-float(q @ REFUSAL_WEIGHTS + REFUSAL_BIAS)))


SENTENCE_FEATURES = ("meaning", "stem_coverage", "word_match", "exact_words", "rank", "fused_score", "type_found",
                     "type_missing", "new_words", "defines_acronym", "is_sentence", "length")
READER_FEATURES = ("reader_span", "reader_span_margin", "reader_chunk_margin")
READER_QUESTION_FEATURES = ("reader_best", "reader_answer")
READ_CHUNKS = 3  # retrieved chunks the reader reads (one call; 3 against 4 on the fit split: docs/evaluation.md)
MARGIN_CLIP = 10.0  # reader margins (span score - null score) are clipped to ±this, then scaled to ±1
PASSAGE_RANK_PRIOR = 1.0  # scaled reader margin that retrieval's first place is worth (fit split, four slices)
_EDGE_PUNCTUATION = set(".,;:!?()[]«»\"'“”‘’")
QUESTION_FEATURES = ("best_score", "best_meaning", "evidence_mean", "evidence_min", "words_missing", "words_exact",
                     "best_word_match", "best_exact_words", "best_type_found", "best_type_missing", "margin",
                     "words_matched")
WORD_MISSING = 0.6  # a question word whose best match is under this is not in the passages
TRANSLATED = 0.8  # ... and one over this is there, as itself, a translation or a derivation
NAME_TRANSLATED = 0.8  # a name's words, cased, at this cosine with a name in another language are its translation
# The sign each question feature may take in the refusal model (scripts/fit_answerer.py).
EXPECTED_SIGNS = {"best_score": 1, "best_meaning": 1, "evidence_mean": 1, "evidence_min": 1, "words_missing": -1,
                  "words_exact": 1, "best_word_match": 1, "best_exact_words": 1, "margin": 1, "words_matched": 1,
                  "reader_best": 1, "reader_answer": 1}
# Off-topic gate: best meaning + mean word match + half the share of words met (same word or
# translation, so an English question on French passages is judged like a French one). The
# fitted refusal model reads no word evidence (held to its sign, none survives the fit), so a
# question whose words the passages never meet is refused here.
OFF_TOPIC = 1.0
LIST_HEADING_WORDS = 3  # a heading of at most this many content words names the list under it (lists_under)
LIST_LINES = 3  # a run of at least this many short lines is a list

# Fitted by scripts/fit_answerer.py on the fit split only (SQuAD 2.0 articles 0-7, PIAF
# even-numbered articles), logistic regressions; see docs/evaluation.md.
SENTENCE_WEIGHTS = np.array([1.6252, 1.3897, 3.1719, 0.368, 1.6375, 2.4567, 0.2582, -1.1821, -0.1797, 0.4359,
                             0.2132, 1.0545], dtype=np.float32)
SENTENCE_BIAS = -9.1433
REFUSAL_WEIGHTS = np.array([0.412, 0.7201, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0649, 0.0], dtype=np.float32)
REFUSAL_BIAS = -0.4129
# With the reader (columns SENTENCE_FEATURES + READER_FEATURES; QUESTION_FEATURES + READER_QUESTION_FEATURES),
# refitted on the margins of run 8 (the 12-layer reader trained with translated questions too; its ONNX Runtime
# int8 graph, smoothed since session 19, each passage read alone), on the fit questions and those the developers
# translated, asked in the other language (session 19; scripts/fit_answerer.py --reader PATH --sets squad2-fit
# piaf-fit squad2-fit-x piaf-fit-x --held-out --max-false-refusals piaf-fit=0.10 squad2-fit-x=0.25 piaf-fit-x=0.25).
READER_SENTENCE_WEIGHTS = np.array([1.5915, -0.2424, 3.3313, -0.3251, 0.7949, 2.5334, -0.0329, -1.1917, 0.0556, 0.4201,
                                    0.1803, 0.9088, 2.0788, 2.3017, -0.1177], dtype=np.float32)
READER_SENTENCE_BIAS = -8.6914
READER_REFUSAL_WEIGHTS = np.array([0.3032, 0.6406, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.6616, 0.0],
                                  dtype=np.float32)
READER_REFUSAL_BIAS = -0.4798
# By reader off / on. Off: the highest threshold keeping false refusals <= 0.15 in each fit set.
# On: the highest keeping them <= 0.15 (SQuAD 2.0), <= 0.10 (PIAF) and <= 0.25 (each asked in the other
# language) on the fit articles the reader never trained on (on the others its margins are those of a
# model that saw the answers), measured through `tpdqa eval` on those questions (session 19, the smoothed
# int8 graph: fit_answerer's replay said 0.38, whose PIAF false refusals are 0.110 there, as at 0.33; 0.32
# gives 0.098: docs/reader.md).
MIN_SUPPORT = {False: 0.32, True: 0.32}


# Chosen on the fit split (scripts/fit_answerer.py prints the curve): past 1.5 log-odds the
# answer holds a gold span barely more often, while more answers grow to two sentences.
SECOND_SENTENCE_MARGIN = 1.5
EXPANSION_BONUS = 4.0
# Log-odds for the sentences beside the previous answer's (Candidates.not_again), set by hand: no
# conversational QA data here to fit it; half a log-odds breaks a near tie, far below what a reader margin moves.
FOLLOW_UP_NEARBY = 0.5
# Log-odds per unit of cosine with the previous answer, for the sentences that say what a follow-up turns to
# (ExtractiveAnswerer.parallel), set by hand: on 54 follow-ups over seven folders 6-15 give the same answers, on 24
# written after 10 gives 19 right (6: 18; none: 17), none lost (docs/evaluation.md, session 32). "And the agreement
# with Korea?" needs the reader's +3.1 for the strengths sentence overcome (cosines 0.63 against 0.41). It raises
# the answer's support too.
FOLLOW_UP_PARALLEL = 10.0
_EXPANSION = re.compile(r"\b(?-i:[A-Z][A-Z0-9]{1,9})\b.*\b(stand for|stands for|mean|means|signifie|veut dire|désigne)\b|"
                        r"\b(acronym|acronyme|sigle|abbreviation|abréviation)\b", re.IGNORECASE)
_ACRONYM = re.compile(r"\b([A-Z][A-Z0-9]{1,9})\b")


_ASKS = re.compile(r"\?[\s»\"”’')\]]*$")  # a sentence that ends with its question mark (quotes, brackets aside)
_WORD_TOKEN = re.compile(r"[^\W\d_][\w’'-]*")


def question_names(question: str) -> list[str]:
    """The names a question asks about: its capitalised words but the first ("Combien a coûté
    le tunnel sous la Manche ?" -> ["Manche"]), elisions off ("l'Aveyron" -> "Aveyron"),
    stopwords, words of two letters and Roman numerals ("XIXe") out; a year that names an
    edition ("the 2022 Games"), not one the question is placed in ("in 1941"); a name's number.

        >>> question_names("How tall is the Eiffel Tower in Paris?")
        ['Eiffel', 'Tower', 'Paris']
        >>> question_names("Au XVIIIe siècle, qui gouvernait Lille ?")
        ['Lille']
        >>> question_names("How much did the 2022 Games cost?"), question_names("Who ruled in 1941?")
        (['Games', '2022'], [])
        >>> question_names("Which platform does the TER 879 leave from?"), question_names("What happened on June 5?")
        (['TER', '879'], ['June'])
    """
    stop = _stopwords()
    found = []
    for i, match in enumerate(_WORD_TOKEN.finditer(question)):
        word = _ELIDED.sub("", match.group(0)).strip("'’-")
        if (i and (len(word) > 2 or _QUARTER.fullmatch(word)) and word[:1].isupper() and fold(word) not in stop
                and word.lower() not in QUESTION_WORDS
                and not _ROMAN.match(word)):
            found.append(word)
    # A year that names an edition ("the 2022 Games", "la Coupe du monde 2018") is a name too; one that
    # places the question in time ("en 1941", "in the 1990s", "after 1965") may be inferred from a range
    # that never writes it ("de 1939 à 1942"), so it is not held to
    found += [m.group(1) for m in _YEAR.finditer(question) if not _TIME_FRAME.search(question, 0, m.start())]
    # A number a name carries ("the TER 879", "Apollo 12", "order No 4472") is part of it: a file that never
    # writes it tells of another train, mission or order; not a date's day ("June 5") nor a year (above)
    found += [m.group(2) for m in _NUMBERED.finditer(question) if m.group(1).lower() not in _CALENDAR
              and fold(m.group(1).lower()) not in stop and not _YEAR.fullmatch(m.group(2))
              and (question[:m.start()].strip() or m.group(1).isupper())]  # a first word is capitalised anyway
    return list(dict.fromkeys(found))


# not an article's ("A 60-minute debate"), the question's first word's ("Over 300 police") nor a quantity's
_NUMBERED = re.compile(r"\b([A-Z][\w'’-]*)\s+(\d{1,6})\b(?![.,]\d|-|\s*(?:%|°|h\b))")
# a code mixes letters and digits ("SB-3000", "Q4", "E09"); a quarter's is written out too ("fourth quarter")
_CODE = re.compile(r"(?=[\w-]*\d)(?=[\w-]*[^\W\d_])[\w-]+$")
_PARTS = re.compile(r"[^\W_]+")
_LETTERS_DIGITS = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")
_QUARTER = re.compile(r"[QT]([1-4])")
_ORDINALS = {"en": ("", "first", "second", "third", "fourth"), "fr": ("", "premier", "deuxième", "troisième", "quatrième")}
_CALENDAR = tuple("january february march april may june july august september october november december janvier "
                "février mars avril mai juin juillet août septembre octobre novembre décembre monday tuesday "
                "wednesday thursday friday saturday sunday lundi mardi mercredi jeudi vendredi samedi dimanche".split())


def spellings(name: str) -> list[str]:
    """How files may write a name: a number under 40 in Roman numerals too ("World War 1" of "World War I",
    "Louis 8" of "Louis VIII").

        >>> spellings("8"), spellings("879"), spellings("Lille")
        (['8', 'VIII'], ['879'], ['Lille'])
        >>> spellings("SB-3000"), spellings("Q4")
        (['SB-3000', 'SB 3000', 'SB3000'], ['Q4', 'T4', 'fourth quarter', 'quatrième trimestre'])
    """
    quarter = _QUARTER.fullmatch(name)
    if quarter:
        n = int(quarter.group(1))
        return [f"Q{n}", f"T{n}", f"{_ORDINALS['en'][n]} quarter", f"{_ORDINALS['fr'][n]} trimestre"]
    if _CODE.match(name) and re.match(r"[^\W\d_]{2}", name):  # written joined, hyphenated or apart
        apart = _LETTERS_DIGITS.sub(" ", name.replace("-", " "))
        return list(dict.fromkeys([name, apart, apart.replace(" ", "")]))
    if not name.isdigit() or not 0 < int(name) < 40:
        return [name]
    number, roman = int(name), ""
    for value, letters in ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")):
        roman += letters * (number // value)
        number %= value
    return [name, roman]


_NAME_PHRASE = re.compile(r"[A-ZÀ-Þ][\w’'-]*(?:\s+(?:(?:de|du|des|of|the|la|le|d['’])\s*)?[A-ZÀ-Þ][\w’'-]*)*")


def name_phrases(text: str) -> list[str]:
    """The runs of capitalised words a text writes (a name's "de", "du", "of" inside), but a stopword
    capitalised for opening a sentence.

        >>> name_phrases("South Korea"), name_phrases("Les partenaires : tandis que la Corée du Sud domine")
        (['South Korea'], ['Corée du Sud'])
    """
    return [m.group(0) for m in _NAME_PHRASE.finditer(text)
            if len(m.group(0)) > 2 and fold(m.group(0).lower()) not in _stopwords()]


# not a count ("the 1500 soldiers", "les 2000 habitants": a plural after it) nor a decade ("the 1980's")
_YEAR = re.compile(r"(?<![\d,.])\b(1[5-9]\d{2}|20\d{2})\b(?![\d,.]\d|['’]s\b)(?!\s+[a-zà-ÿ]+[sx]\b)")
_TIME_FRAME = re.compile(r"\b(?:in|en|during|durant|pendant|after|après|before|avant|since|depuis|until|till|jusqu['’]en|"
                         r"jusqu['’]à|from|de|dès|à partir de|années|early|late|mid|début|fin|vers|around|circa|between|"
                         r"entre|and|et|to|à|au|or|ou|by|par|pre|post|through|\d{4},?)[\s–-]+$", re.IGNORECASE)


def qualified(text: str) -> dict[tuple[int, int, str], str]:
    """What a text sets apart from others of its kind, as (contrast, member, noun) -> its words: a rank
    ("the second flight", "le deuxième vol" and "le second vol" alike), a sex ("the men's slalom"), a
    point of the compass ("northern France"), an extreme ("the lowest court"), a size ("le petit bassin");
    the noun folded, without a plural's s.

        >>> sorted(qualified("The first flight carried three satellites; the 2nd flights and the women's race failed."))
        [(0, 0, 'flight'), (0, 1, 'flight'), (1, 1, 'race')]
    """
    stop = _stopwords() | _QUANTITIES
    found: dict[tuple[int, int, str], str] = {}
    for match in _QUALIFIED.finditer(text):
        noun = fold(match.group(2).lower())
        if noun not in stop:
            key = (*_CONTRASTS[match.group(1).lower()], noun[:-1] if noun.endswith(("s", "x")) else noun)
            found.setdefault(key, match.group(0))
    return found


# Each contrast: its members, each the words (French and English) that say it; a word -> (contrast, member).
_CONTRASTS = {word: (contrast, member) for contrast, members in enumerate([
    ["first premier première premiers premières 1st 1er 1re", "second seconde deuxième 2nd 2e",
     "third troisième 3rd 3e", "fourth quatrième 4th 4e", "fifth cinquième 5th 5e", "sixth sixième 6th 6e",
     "seventh septième 7th 7e", "eighth huitième 8th 8e", "ninth neuvième 9th 9e", "tenth dixième 10th 10e"],
    ["men's men male boys masculin masculine masculins hommes", "women's women female girls féminin féminine féminins femmes"],
    ["north northern nord", "south southern sud", "east eastern", "west western ouest"],
    ["upper supérieur supérieure", "lower inférieur inférieure"], ["inner intérieur intérieure", "outer extérieur extérieure"],
    ["minimum minimal minimale", "maximum maximal maximale"], ["junior juniors", "senior seniors"],
    ["largest biggest", "smallest"], ["highest", "lowest"], ["oldest eldest", "youngest newest"],
    ["grand grande grands grandes big large", "petit petite petits petites small little"]])
    for member, words_ in enumerate(members) for word in words_.split()}
# "a large number of settlers", "une petite partie": a size that says how much, not which one
_QUANTITIES = {"number", "numbers", "nombre", "nombres", "amount", "amounts", "quantity", "quantite", "part", "partie",
               "scale", "echelle", "majority", "majorite", "extent", "mesure", "deal", "proportion", "share"}
_CONTRAST_WORD = re.compile(r"(?<![\w'’])(" + "|".join(sorted(map(re.escape, _CONTRASTS), key=len, reverse=True))
                            + r")(?![\w'’])", re.IGNORECASE)
_QUALIFIED = re.compile(_CONTRAST_WORD.pattern + r"\s+([^\W\d_][\w'’-]{2,})", re.IGNORECASE)


# "XVIIIe siècle", "Louis XlV" (a typo is still a numeral); a well-formed numeral: "Lille", "Mille" and "Civil" are words
_ROMAN = re.compile(r"^(?=[MDCLXVI])M{0,4}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})"
                    r"(?:e|er|ère|eme|ème|es|èmes|th|st|nd|rd)?$", re.IGNORECASE)
_ELIDED = re.compile(r"^(?:l|d|qu|j|n|s|c|jusqu|lorsqu|puisqu)['’]", re.IGNORECASE)


def _defines_acronym(question: str, sentence: str) -> float:
    """1.0 when the sentence spells out an acronym of the question: '... (TPD)'."""
    return float(any(f"({a})" in sentence for a in _ACRONYM.findall(question)))


EXACT = 0.95  # a word match this close is the same word (accents, case, plural aside)


# A device's power asked for: "What is the rated output power?", "Quelle est la puissance du moteur ?" (not "What
# powers the stage?", "How fast does it switch to backup power?", "la puissance dominante en Europe")
_POWER_ASKED = (r"\bwhat (?:is|was|are|were) (?:the |its |their )?(?:[\w-]+ ){0,2}?(?:power|wattage)\b|"
                r"\bquelle (?:est|était) (?:la |sa |leur )?puissance(?:\s*\?| (?:de sortie|nominale|maximale|max|crête|"
                r"électrique|installée|utile|du |des |de l['’]|de la |d['’]un |d['’]une |de ce |de cette ))|"
                r"\b(?:how many|combien de) (?:watts|kilowatts|megawatts|mégawatts|horsepower|chevaux)\b")
# What kind of answer a question wants, from its wording (French and English).
_TYPE_PATTERNS = {
    "number": re.compile(r"\b(how (many|much|long|old|far|large|big|tall|high|often|deep|wide|heavy|fast)|what (percentage|"
                         r"proportion|number|amount|size|depth|length|height|width|distance|weight|speed)|combien|"
                         r"quel(le)?s? (est|sont|était|étaient)? ?(le |la |l')?(nombre|pourcentage|montant|taille|âge|"
                         r"superficie|population|proportion|part|profondeur|longueur|hauteur|largeur|distance|poids|"
                         r"vitesse)|à quel âge|quel âge|à quelle (profondeur|hauteur|distance|vitesse)|"
                         # a price named without "how much" asks for one unless the question asks when, who,
                         # why or how: "When did the price of oil fall?" wants a date
                         r"^(?!.*\b(?:when|who|whom|why|how|where|quand|qui|pourquoi|comment|où)\b).*?\b"
                         r"(?:price|cost|budget|salary|population|prix|coût|salaire))\b|"
                         + _POWER_ASKED, re.IGNORECASE),
    "date": re.compile(r"\b(when|what (year|date|century|decade|month|day|time)|in (which|what) (year|century|decade)|"
                       r"quand|en quelle (année|période)|(quelle|à quelle) (date|année|époque|période)|quel (siècle|"
                       r"jour|mois)|depuis quand|jusqu'à quand|since when)\b", re.IGNORECASE),
    "name": re.compile(r"^\s*(who|whom|whose|qui|à qui|par qui|de qui|avec qui)\b|\b(which|what) (person|man|woman|"
                       r"company|organi[sz]ation|country|city|king|president|team|group|name)\b|"
                       r"\b(où|where|quel(le)? (personne|pays|ville|roi|président|entreprise|société|nom|équipe|"
                       r"organisation))\b", re.IGNORECASE),
}
# 'one', 'un', 'une' are left out: as pronoun and article they are everywhere.
_NUMBER = re.compile(r"\d|\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
                     r"hundred|thousand|million|billion|dozen|half|deux|trois|quatre|cinq|six|sept|huit|neuf|"
                     r"dix|onze|douze|vingt|trente|quarante|cinquante|cent|cents|mille|million|milliard|moitié)\b",
                     re.IGNORECASE)
# "when" is answered by a month, a weekday (_CALENDAR) or a time of day too (a timetable's "08:15")
_DATE = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b|\b(" + "|".join(_CALENDAR) + r"|century|centuries|siècle|"
                   r"[ivxlc]+e siècle|\d+(st|nd|rd|th|e|er)|"
                   r"(?:[01]?\d|2[0-3])(?::| ?h ?)[0-5]\d|(?:1[0-2]|0?\d)(?::[0-5]\d)? ?[ap]\.?m\.?)\b", re.IGNORECASE)
_NAME = re.compile(r"(?<=[\w,;:»\)] )([A-ZÀ-Ý][\w'’-]+)")


# A number question that asks for a price, a weight, a length or an area wants a quantity in its
# units: "Combien pèse la tour Eiffel ?" is not answered by "330 mètres de hauteur", nor "Combien a
# coûté le canal ?" by its 240 kilometres.
_COUNT_WORDS = (r"(?:a|an|one|un|une|half|quarters?|demi|quarts?|several|few|plusieurs|quelques|deux|trois|quatre|"
                r"cinq|six|sept|huit|neuf|dix|cent|mille|two|three|four|five|seven|eight|nine|ten|hundred|thousand)")
_QUANTITY = (r"(?P<quantity>(?:\d[\d\s.,]*|\b" + _COUNT_WORDS + r"\b)(?:[\s-]+(?:" + _COUNT_WORDS
             + r"|millions?|milliards?|billions?|thousands?|milliers?|of|de|d['’])\b)*)\s*")
_MEASURES = {
    # first: "Combien coûte le trajet de 50 km ?" asks for a price
    "money": (re.compile(r"\bhow much (?:\w+ ){0,8}?(?:cost|costs|costed|pay|pays|paid(?! leave| holidays?| vacation| time"
                         r"| days?)|charge|charges|charged|spend|spent|earn|earns|earned|sell for|sold for|money|refund|"
                         r"refunds|refunded|reimburse|reimburses|reimbursed)\b|"
                         r"\bhow much (?:is|was|are|were) (?:the |a |an )?(?:\w+ ){0,3}?(?:fees?|price|cost|fares?|"
                         r"salary|wages?|rent|tickets?|tuition|subscriptions?|memberships?|plans?|licen[cs]es?|"
                         r"admission|passes|pass)\b|"
                         r"\bwhat (?:is|was|are|were|will be|would be) (?:the |a |an |its |their |his |her )?(?:\w+ ){0,2}?"
                         r"(?:cost|costs|price|prices|salary|salaries|wages?|fees?|fares?|budget|revenue)\b|"
                         # "combien de jours de congés payés" counts days: "combien de/d'" + a thing is a count
                         # unless the thing is money ("combien d'argent", "combien d'euros")
                         r"\bcombien (?!d(?:e |['’])(?!argent|euros?|dollars?|francs?|livres?)\w)"
                         r"(?:[\w'’-]+ ){0,4}?(?:co[uû]t\w*|pa(?:y[eéèa]|ie)\w*|dépens\w*|gagn\w*|vaut|valait|"
                         r"rembours\w*|d['’]argent)|"
                         r"\bquel(?:le)?s? (?:est|était|sont|étaient|fut|sera|serait) (?:le |la |les |l['’]|son |sa |ses |leur )?"
                         r"(?:\w+ )?(?:prix|coût|coûts|montant|salaires?|budget|tarifs?|rémunération|recettes?|dépenses?)\b|"
                         r"\bà combien s['’](?:élève|élevait|élevaient|élèvent|est élevé)", re.IGNORECASE),
              # "$5 million", "€15", a quantity in a currency ("15 euros", "2 M€", "150 NOK", "1,25 fr"; not
              # the currencies that are common words: "1681 sous le règne", "deux cents", "three crowns"), or a
              # table's cell under a currency's header ("Prévu (€): 8000")
              re.compile(r"(?:(?P<symbol>[$£€¥])\s?|(?P<header>(?:[$£€¥]|\b(?:EUR|USD|euros?|dollars?)\b)\)?\s*:\s*))?"
                         + _QUANTITY + r"(?(symbol)|(?(header)|(€|[kKM]d?\s?€|Mds?\s?€|euros?|dollars?|£|livres?|"
                         r"pounds?|francs?|frs?|yens?|yuans?|roubles?|rupees?|roupies?|pesos?|pesetas?|lires?|lira|écus?|"
                         r"deniers?|centimes?|guinées?|guineas?|shillings?|pence|florins?|ducats?|kr|"
                         r"(?-i:EUR|USD|GBP|CHF|JPY|CNY|CAD|AUD|NZD|SEK|NOK|DKK|ISK|PLN|CZK|HUF|RON|BGN|RUB|UAH|TRY|"
                         r"INR|BRL|MXN|ARS|ZAR|KRW|SGD|HKD|TWD|THB|ILS|AED|SAR|XOF|XAF|MAD|TND|DZD))))(?!\w)",
                         re.IGNORECASE)),
    "mass": (re.compile(r"\b(weigh|weighs|weighed|the weight|how heavy|the mass|pès\w*|pes(?:e|er|ait|aient|ent|é|ée)|"
                        r"poids|masse)\b", re.IGNORECASE),
             re.compile(_QUANTITY + r"((?<=\d)t|(?<=\d )t|(?<=\d)g|(?<=\d )g|kg|mg|lbs?|oz|tonnes?|tons?|kilos?|"
                        r"kilogrammes?|kilograms?|grammes?|grams?|livres|pounds?|ounces?|onces?|quintaux|carats?)(?!\w)",
                        re.IGNORECASE)),
    "area": (re.compile(r"\b(superficie|acreage|(?:total|surface|land) area|area (?:of|is|was|does it cover)|"
                        r"(?:how many|combien de|combien d['’]) (?:square \w+|acres|hectares|km²|m²|km2|m2|"
                        r"(?:kilo)?mètres carrés))(?!\w)",
                        re.IGNORECASE),
             re.compile(_QUANTITY + r"(km²|m²|km2|m2|ha|hectares?|acres?|square|carrés?)(?!\w)", re.IGNORECASE)),
    "length": (re.compile(r"\b(tall|taller|height|how high|length|how far|distance|how deep|depth|how wide|width|"
                          r"hauteur|haut|haute|longueur|mesure\w*|profond\w*|profondeur|largeur|altitude|"
                          # a unit is asked for right after "how many" ("how many kilometres long"); elsewhere
                          # it is a rate's ("refunded per kilometre") or a count's place ("species in one square
                          # kilometre")
                          r"éloignée?s?|(?:how many|combien de|in|en) (?:km|kilomètres?|kilometers?|kilometres?|"
                          r"miles|mètres|metres|meters|feet|pieds)(?! carrés| squared|²))\b",
                          re.IGNORECASE),
               re.compile(_QUANTITY + r"((?<=\d)m|(?<=\d )m|km|cm|mm|nm|µm|ft|mi|mètres?|metres?|meters?|kilomètres?|"
                          r"nanomètres?|nanometres?|nanometers?|micromètres?|micrometres?|micrometers?|microns?|"
                          r"kilometres?|kilometers?|centimètres?|centimeters?|millimètres?|millimeters?|miles?|feet|"
                          r"foot|pieds?|pouces?|inches?|yards?|lieues?)(?!\w)", re.IGNORECASE)),
    "power": (re.compile(_POWER_ASKED, re.IGNORECASE),
              re.compile(_QUANTITY + r"((?<=\d)W|(?<=\d )W|kW|MW|GW|kWc|kWp|Wc|Wp|ch|cv|hp|bhp|watts?|kilowatts?|"
                         r"m[ée]gawatts?|gigawatts?|chevaux(?:-vapeur)?|horsepower)(?![\wh])", re.IGNORECASE)),
}


# Each kind's pattern, and its group that must be new to the question (a measure's quantity, not its unit).
_HOLDS = {"number": (_NUMBER, 0), "date": (_DATE, 0), "name": (_NAME, 0),
          **{kind: (units, "quantity") for kind, (_, units) in _MEASURES.items()}}


def expected_type(question: str) -> str | None:
    """'number' ('money', 'mass', 'length', 'area' or 'power' when it asks for one), 'date', 'name' or None: the
    kind of answer the question asks for."""
    kind = next((kind for kind, pattern in _TYPE_PATTERNS.items() if pattern.search(question)), None)
    if kind == "number":
        return next((measure for measure, (asks, _) in _MEASURES.items() if asks.search(question)), kind)
    return kind


def has_type(sentence: str, kind: str, question_words: set[str]) -> float:
    """1.0 when the sentence holds something of that kind that the question does not already say
    (for a measure: a quantity in its units, whose figures are new: "420 millions de francs"
    answers "Combien a coûté le pont de l'île de Ré ?", though the question says "de"; for a
    number, not one of a name the question says: "Apollo 11" counts no one)."""
    return float(typed_at(sentence, kind, question_words) is not None)


def typed_at(sentence: str, kind: str, question_words: set[str]) -> tuple[int, int] | None:
    """Where the first thing of that kind that the question does not say lies in the sentence (:func:`has_type`).

        >>> s = "Rated output power is 5,000 W, with a peak of 7,500 W."
        >>> s[slice(*typed_at(s, "power", {"rated", "output", "power"}))]
        '5,000 W'
    """
    pattern, group = _HOLDS[kind]
    for match in pattern.finditer(sentence):
        said = [w for w in words(match.group(group)) if group != "quantity" or _NUMBER.search(w)]
        if not any(fold(w) in question_words for w in said) and not (
                kind == "number" and names_it(sentence, match.start(), question_words)):
            return match.span()
    return None


_NAMED_BEFORE = re.compile(r"\b([A-ZÀ-Ý][\w’'-]*?)[\s-]\d*$")  # the figure's first digits too: "Apollo 1|1"


def names_it(sentence: str, start: int, question_words: set[str]) -> bool:
    """Whether the figure at ``start`` belongs to a name the question says: "Apollo 11" for a question on
    "la mission Apollo", "Boeing 747" — it names the thing asked about, it is not its count.

        >>> names_it("Apollo 11 landed on the Moon.", 7, {"combien", "de", "personnes", "mission", "apollo"})
        True
        >>> names_it("Apollo 11 landed on the Moon.", 7, {"how", "many", "missions", "landed"})
        False
    """
    before = _NAMED_BEFORE.search(sentence, max(0, start - 40), start)
    return before is not None and fold(before.group(1).lower()) in question_words


def _coverage(query_terms: set[str], cross_terms: set[str], sentence_terms: set[str]) -> float:
    """Share of the question's terms found in the sentence (cross-language stems count)."""
    if not query_terms:
        return 0.0
    return min(1.0, len(cross_terms & sentence_terms) / len(query_terms))
