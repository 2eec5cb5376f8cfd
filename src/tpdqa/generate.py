"""Generative answers from a LangChain chat model, with citations that are checked.

The setting ``llm`` chooses the answerer: ``extractive`` (default, no model),
``ollama:MODEL``, ``openai:MODEL`` (any OpenAI-compatible server with ``llm_base_url``)
or ``llamacpp:/path/model.gguf`` (in-process). The model sees numbered passages and is
asked to answer only from them, in the question's language, with ``[n]`` after each
claim, or to reply with the fixed refusal. Then :func:`check_answer` reads what it wrote:

- markers in any common form (``[2]``, ``word[2].``, ``【2】``, ``[1, 3]``, ``[Passage 2]``)
  are parsed; markers that point at no passage are dropped;
- every sentence is checked against its cited passages: the share of its content words
  matched (same word, translation, derivation) in one passage sentence; the best passage
  sentence becomes the citation's ``quote``. A sentence its cited passage does not support, but another
  passage does, is re-pointed there; a sentence no passage supports is flagged in
  ``Answer.unsupported``;
- an answer with no supported sentence becomes a refusal; an answer in another language
  than the question is flagged in ``Answer.warnings``;
- citations are renumbered in order of appearance.

    >>> from tpdqa.generate import parse_markers
    >>> parse_markers("Le Japon[2]. La Corée 【1】 [1, 3].")
    ('Le Japon[2]. La Corée [1] [1][3].', [2, 1, 1, 3])
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from langchain_core.documents import Document

from tpdqa.answer import REFUSALS, Answer, Citation, FollowUp, retrieved_chunks, section_path
from tpdqa.sentences import WordMatcher, content_words
from tpdqa.ingest import chunk_body
from tpdqa.language import LANGUAGES, guess_lang, split_sentences

EXTRAS = {"openai": "openai", "ollama": "ollama", "llamacpp": "llamacpp"}
LANG_NAMES = {"fr": "French", "en": "English"}

# A claim is supported by a passage sentence that matches this share of its content
# words (a word matches at this cosine: the same word, a translation, a derivation).
# Calibrated on the bundled article: true claims in French and English paraphrase
# covered 0.57-1.0 of their sentence, invented claims about its subjects 0.17-0.4.
WORD_MATCH = 0.75
SUPPORT_COVERAGE = 0.5

_MARKER = re.compile(r"\[(\d+)\]")
_VARIANTS = [
    (re.compile(r"[【［]\s*(\d+)\s*[】］]"), r"[\1]"),
    (re.compile(r"\[(?:passage|source|doc(?:ument)?|réf\.?|ref\.?)\s*(\d+)\]", re.IGNORECASE), r"[\1]"),
]
_LIST = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)+)\]")


def parse_markers(text: str) -> tuple[str, list[int]]:
    """The text with markers normalised to ``[n]``, and the numbers in order."""
    for pattern, replacement in _VARIANTS:
        text = pattern.sub(replacement, text)
    text = _LIST.sub(lambda m: "".join(f"[{n}]" for n in re.split(r"\s*[,;]\s*", m.group(1))), text)
    return text, [int(n) for n in _MARKER.findall(text)]


# -- models --------------------------------------------------------------------------------

def parse_llm(spec: str) -> tuple[str, str]:
    kind, _, model = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "extractive" and not model:
        return "extractive", ""
    if kind not in EXTRAS or not model:
        raise ValueError(
            f"llm '{spec}' is not understood: use extractive, ollama:MODEL, openai:MODEL (with llm_base_url for a "
            "local OpenAI-compatible server) or llamacpp:/path/model.gguf"
        )
    return kind, model


def chat_model(settings: Any):
    """The LangChain chat model the settings name (None for the extractive answerer)."""
    kind, model = parse_llm(settings.llm)
    common = {"temperature": settings.llm_temperature}
    try:
        if kind == "extractive":
            return None
        if kind == "openai":
            from langchain_openai import ChatOpenAI

            key = settings.llm_api_key or _env("OPENAI_API_KEY") or "not-needed-for-a-local-server"
            # max_tokens also in the body: compatible servers (llama.cpp) ignore max_completion_tokens
            return ChatOpenAI(model=model, base_url=settings.llm_base_url, api_key=key,
                              max_tokens=settings.llm_max_tokens, timeout=settings.llm_timeout,
                              extra_body={"max_tokens": settings.llm_max_tokens}, **common)
        if kind == "ollama":
            from langchain_ollama import ChatOllama

            return ChatOllama(model=model, base_url=settings.llm_base_url or "http://127.0.0.1:11434",
                              num_predict=settings.llm_max_tokens, num_ctx=settings.llm_context_tokens, **common)
        from langchain_community.chat_models import ChatLlamaCpp

        return ChatLlamaCpp(model_path=model, n_ctx=settings.llm_context_tokens, max_tokens=settings.llm_max_tokens,
                            verbose=False, **common)
    except ImportError as exc:
        raise RuntimeError(
            f"llm '{settings.llm}' needs an optional package ({exc.name}): pip install 'tpdqa[{EXTRAS[kind]}]'"
        ) from exc


def _env(name: str) -> str | None:
    import os

    return os.environ.get(name) or None


# -- prompt and budget -------------------------------------------------------------------------

SYSTEM = {
    "fr": ("Tu réponds à des questions à partir de passages numérotés, et seulement à partir d'eux. "
           "Réponds en français, en une à trois phrases. Mets après chaque affirmation le numéro du passage "
           "qui la soutient, entre crochets, par exemple [1]. Si les passages ne contiennent pas la réponse, "
           "réponds exactement : {refusal}"),
    "en": ("You answer questions from numbered passages, and only from them. Answer in English, in one to three "
           "sentences. After each claim, put the number of the passage that supports it in square brackets, "
           "for example [1]. If the passages do not contain the answer, reply exactly: {refusal}"),
}
REWRITE = ("Given the conversation and a follow-up question, write the follow-up as a standalone question in its "
           "own language. Reply with the question only.")
CHARS_PER_TOKEN = 3.0  # conservative for French and English with small vocabularies


def fit_passages(docs: list[Document], budget_tokens: int) -> list[Document]:
    """Passages in rank order, within the budget; the last one cut at a sentence boundary."""
    budget = int(budget_tokens * CHARS_PER_TOKEN)
    kept: list[Document] = []
    for doc in docs:
        room = budget - len(doc.page_content) - 8
        if room >= 0:
            kept.append(doc)
            budget = room
            continue
        sentences, text = split_sentences(doc.page_content, doc.metadata.get("lang", "en")), ""
        for sentence in sentences:
            if len(text) + len(sentence) + 1 > budget - 8:
                break
            text = f"{text} {sentence}".strip()
        if text:
            kept.append(Document(id=doc.id, page_content=text, metadata=doc.metadata))
        break
    return kept


def build_messages(question: str, lang: str, docs: list[Document]) -> list[tuple[str, str]]:
    system = SYSTEM.get(lang, SYSTEM["en"]).format(refusal=REFUSALS.get(lang, REFUSALS["en"]))
    passages = "\n\n".join(f"[{i}] {doc.page_content}" for i, doc in enumerate(docs, start=1))
    return [("system", system), ("human", f"Passages:\n\n{passages}\n\nQuestion: {question}")]


# -- the answerer ---------------------------------------------------------------------------------

class GenerativeAnswerer:
    """Answers with a chat model, then checks and repairs its citations (module doc)."""

    def __init__(self, model: Any, embeddings: Any, context_tokens: int = 4096, max_tokens: int = 512) -> None:
        self.model = model
        self.embeddings = WordMatcher(embeddings)
        self.context_tokens = context_tokens
        self.max_tokens = max_tokens

    def budget(self, question: str, lang: str) -> int:
        overhead = len(build_messages(question, lang, [])[0][1]) + len(question) + 200
        return self.context_tokens - self.max_tokens - int(overhead / CHARS_PER_TOKEN)

    def __call__(self, question: str, lang: str, docs: list[Document], said: FollowUp | None = None,
                 timings: dict[str, float] | None = None) -> Answer:
        answer = None
        for item in self.stream(question, lang, docs):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def stream(self, question: str, lang: str, docs: list[Document], said: FollowUp | None = None
               ) -> Iterator[str | Answer]:
        """Yields the text as it is generated, then the checked :class:`Answer` (``said``, the
        previous answer of a follow-up, is the extractive answerer's: the LLM reads the conversation)."""
        passages = fit_passages(docs, self.budget(question, lang))
        if not passages:
            yield Answer.refusal(question, lang, retrieved_chunks(docs))
            return
        text = ""
        for chunk in self.model.stream(build_messages(question, lang, passages)):
            piece = chunk.content if isinstance(chunk.content, str) else str(chunk.content)
            text += piece
            yield piece
        yield check_answer(text, question, lang, passages, self.embeddings, retrieved=docs)

    def rewrite(self, question: str, history: list[dict[str, str]]) -> str:
        """A standalone question from a follow-up (LangChain's history-aware pattern)."""
        turns = "\n".join(f"{m['role']}: {m['content']}" for m in history[-6:])
        reply = self.model.invoke([("system", REWRITE), ("human", f"Conversation:\n{turns}\n\nFollow-up: {question}")])
        rewritten = str(reply.content).strip().splitlines()[0].strip() if str(reply.content).strip() else ""
        return rewritten if 3 < len(rewritten) < 500 else question


# -- checks ------------------------------------------------------------------------------------

def check_answer(raw: str, question: str, lang: str, passages: list[Document], embeddings: Any,
                 retrieved: list[Document] | None = None) -> Answer:
    """Parse, verify and renumber the citations of a generated answer (module doc)."""
    chunks = retrieved_chunks(retrieved if retrieved is not None else passages)
    text, _ = parse_markers(raw.strip())
    if not text or _is_refusal(text):
        return Answer.refusal(question, lang, chunks)

    sentences = list(dict.fromkeys(_sentences(text, lang)))  # small models loop: say each sentence once
    passage_sentences = [split_sentences(chunk_body(p.page_content, p.metadata), p.metadata.get("lang", lang))
                         or [p.page_content] for p in passages]
    judged = _judge(sentences, passage_sentences, passages,
                    embeddings if isinstance(embeddings, WordMatcher) else WordMatcher(embeddings))

    order: dict[int, int] = {}  # passage index -> new number, in order of appearance
    citations: list[Citation] = []
    parts, unsupported = [], []
    for sentence, (cited, support) in zip(sentences, judged):
        plain = re.sub(r"\s+([.!?…,;:])", r"\1", re.sub(r"\s{2,}", " ", _MARKER.sub("", sentence))).strip()
        if not support:
            unsupported.append(plain)
            parts.append(plain)
            continue
        numbers = []
        for index, quote, score in support:
            if index not in order:
                order[index] = len(order) + 1
                doc = passages[index]
                citations.append(Citation(
                    n=order[index], source=doc.metadata.get("source", ""), chunk_id=doc.id or "",
                    text=doc.page_content, quote=quote, score=round(score, 4), page=doc.metadata.get("page"),
                    title=doc.metadata.get("title"), section=section_path(doc.metadata),
                ))
            numbers.append(order[index])
        body = plain
        ending = body[-1] if body and body[-1] in ".!?…" else ""
        body = body[: -1] if ending else body
        parts.append(body + " " + "".join(f"[{n}]" for n in dict.fromkeys(numbers)) + ending)
    if not citations:
        return Answer.refusal(question, lang, chunks).model_copy(update={"unsupported": unsupported})
    warnings = []
    answer_text = " ".join(parts)
    answer_lang = guess_lang(_MARKER.sub("", answer_text))
    if answer_lang != lang:
        warnings.append(f"answer_language:{answer_lang}")
    if unsupported:
        warnings.append("unsupported_sentences")
    return Answer(question=question, lang=lang, text=answer_text, refused=False, citations=citations,
                  retrieved=chunks, support=max(c.score for c in citations), unsupported=unsupported,
                  warnings=warnings)


def _is_refusal(text: str) -> bool:
    folded = _MARKER.sub("", text).strip().lower()
    return any(folded.startswith(r.lower().rstrip(".")) for r in REFUSALS.values())


def _sentences(text: str, lang: str) -> list[str]:
    """Sentences, with a marker-only fragment ('[2].') joined to the sentence before it."""
    out: list[str] = []
    for sentence in split_sentences(text, lang if lang in LANGUAGES else "en"):
        if out and not _MARKER.sub("", sentence).strip(" .!?"):
            out[-1] = f"{out[-1]} {sentence}"
        else:
            out.append(sentence)
    return out


def _judge(sentences: list[str], passage_sentences: list[list[str]], passages: list[Document], words: WordMatcher,
           ) -> list[tuple[list[int], list[tuple[int, str, float]]]]:
    """For each sentence: the passages it cites, and the (passage, quote, score) that support it.

    Support is word coverage: the share of the claim's content words that have a match
    (same word, translation, derivation: cosine >= WORD_MATCH) in one passage sentence.
    """
    flat = [(i, s) for i, group in enumerate(passage_sentences) for s in group]
    flat_words = [content_words(s) for _, s in flat]
    results = []
    for sentence in sentences:
        claim = content_words(_MARKER.sub("", sentence))
        cited = list(dict.fromkeys(int(n) - 1 for n in _MARKER.findall(sentence) if 1 <= int(n) <= len(passages)))
        scored = []
        for (index, passage_sentence), vocabulary in zip(flat, flat_words):
            matches = words.best_matches(claim, vocabulary)
            coverage = sum(m >= WORD_MATCH for m in matches) / len(matches) if matches else 0.0
            scored.append((index, passage_sentence, coverage, coverage >= SUPPORT_COVERAGE))
        supported_by_cited = _best_per_passage([s for s in scored if s[0] in cited and s[3]])
        # a claim its passage does not support, or with no marker: the passage that supports it best
        results.append((cited, supported_by_cited or _best_per_passage([s for s in scored if s[3]])[:1]))
    return results


def _best_per_passage(scored: list[tuple[int, str, float, bool]]) -> list[tuple[int, str, float]]:
    best: dict[int, tuple[int, str, float]] = {}
    for index, sentence, score, _ in scored:
        if index not in best or score > best[index][2]:
            best[index] = (index, sentence, score)
    return sorted(best.values(), key=lambda item: -item[2])


__all__ = ["GenerativeAnswerer", "check_answer", "chat_model", "parse_llm", "parse_markers"]
