"""The LCEL chain: {question, history} -> retrieval -> answer.

Every entry point (API, CLI, UI, eval) runs this one chain, so the evaluation
measures what a chat user gets. An LLM answerer replaces the last step only.

    >>> from tpdqa import Assistant
    >>> Assistant().chain.invoke({"question": "What does TPD stand for?"}).refused
    False
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from tpdqa.answer import FollowUp
from tpdqa.language import _stopwords, analyze, fold, guess_lang
from tpdqa.retrieval import timed

# A follow-up is elliptic: it opens with a connector ("Et la Corée du Sud ?", "What
# about Korea?") or leans on a pronoun, and names little. Such a question is read with
# the previous one; any other question stands on its own, even after a conversation.
FOLLOW_UP_MAX_TERMS = 4
_OPENERS = re.compile(
    r"^\s*(et|and|also|aussi|mais|but|or|ou|what about|how about|quid|idem|same|pareil|et pour|and for|"
    r"and what|et qu|puis|then|ensuite)\b",
    re.IGNORECASE,
)
_ANAPHORS = re.compile(
    r"\b(il|elle|ils|elles|ça|cela|ceci|celui|celle|ceux|celles|lui|leur|leurs|eux|y|it|its|they|them|their|"
    r"this|that|these|those|there|he|she|his|her)\b",
    re.IGNORECASE,
)


def is_follow_up(question: str) -> bool:
    terms = set(analyze(question, guess_lang(question)))
    if len(terms) > FOLLOW_UP_MAX_TERMS:
        return False
    return bool(_OPENERS.search(question) or _ANAPHORS.search(question))


def standalone_question(question: str, history: list[Any] | None) -> str:
    """The question to retrieve and answer with: the question itself; for an elliptic
    follow-up, the previous question with what the follow-up changes put in
    (:func:`substituted`), else the previous question + the follow-up.

        >>> standalone_question("Et l'accord avec la Corée ?", [("Que vise l'accord américano-japonais ?", "…")])
        "Que vise l'accord avec la Corée ?"
    """
    previous = [m["content"] for m in as_messages(history) if m["role"] == "user"]
    if not previous or not is_follow_up(question):
        return question
    before = last_question(previous[-1])
    return substituted(before, question) or f"{before} {question}"


def last_question(turn: str) -> str:
    """The last question a turn asks: an elliptic follow-up continues that one, not the
    questions before it (which would also crowd the reader's 64 question tokens).

        >>> last_question("Qu'est-ce que le TPD ? Dans quels domaines le Japon est-il leader ?")
        'Dans quels domaines le Japon est-il leader ?'
    """
    asked = [part.strip() for part in re.findall(r"[^?]*\?", turn) if part.strip(" ?")]
    return asked[-1] if asked else turn


# "Et la Corée ?" / "And the agreement with Korea?": the opener, then what replaces a part of the previous question.
_TOKEN = re.compile(r"[\w’'-]+")
_DETERMINERS = {"le", "la", "les", "l", "un", "une", "des", "du", "de", "ce", "cet", "cette", "ces", "son", "sa",
                "ses", "the", "a", "an", "this", "that", "these", "those", "its"}
_ELISION = re.compile(r"^(?:l|d|qu|j|n|s|c)['’]", re.IGNORECASE)


def substituted(previous: str, follow_up: str) -> str | None:
    """``previous`` with the part ``follow_up`` replaces, or None when nothing can be matched.

    "Et l'accord avec la Corée ?" after "Que vise l'accord américano-japonais ?" asks "Que vise
    l'accord avec la Corée ?" (the phrase around their shared word "accord" is replaced); "Et la
    Corée du Sud ?" after "Dans quels domaines le Japon est-il leader ?" replaces the named
    entity "le Japon". Quoting what the previous question's answer quoted is what a
    concatenation of both questions led to."""
    replacement = _OPENERS.sub("", follow_up, count=1).strip().strip("?!.;:,").strip()
    if not replacement or _ANAPHORS.search(replacement):
        return None
    tokens = list(_TOKEN.finditer(previous))
    bare = [fold(_ELISION.sub("", t.group(0))) for t in tokens]
    new = {fold(_ELISION.sub("", w)) for w in _TOKEN.findall(replacement)} - _stopwords()
    shared = [i for i, w in enumerate(bare) if w in new and len(w) > 2]
    if shared:  # the previous question's phrase around the word both name
        head = shared[0]
        start = next((j for j in range(head, max(-1, head - 4), -1)
                      if bare[j] in _DETERMINERS or _ELISION.match(tokens[j].group(0))), head)
        english = guess_lang(previous) == "en"
        end = head if english else len(tokens) - 1  # French phrases run to the end of the question
        span = (tokens[start].start(), tokens[end].end())
    else:  # the last named entity (capitalised words after the first) with its determiner
        names = [i for i, t in enumerate(tokens) if i and t.group(0)[:1].isupper()]
        capitals = [w for w in _TOKEN.findall(replacement) if w[:1].isupper()]
        if not names or not capitals:
            return None
        end = start = names[-1]
        while start - 1 in names:  # "Donald Trump"
            start -= 1
        if start and bare[start - 1] in _DETERMINERS:
            start -= 1
        span = (tokens[start].start(), tokens[end].end())
    return f"{previous[:span[0]]}{replacement}{previous[span[1]:]}"


def message_role(turn: Any) -> str:
    """A dict's or a LangChain message's role ("user" or other); pairs are read by :func:`as_messages`."""
    if isinstance(turn, dict):
        return turn.get("role", "")
    return getattr(turn, "type", "") in ("human", "user") and "user" or ""


def message_content(turn: Any) -> str:
    if isinstance(turn, dict):
        return str(turn.get("content", ""))
    return str(getattr(turn, "content", ""))


def as_messages(history: list[Any] | None, limit: int | None = None) -> list[dict[str, str]]:
    """Turns in any accepted form (``{"role", "content"}`` dicts, LangChain messages,
    ``(user, assistant)`` pairs) as ``{"role", "content"}`` messages; with ``limit``, each
    content cut to its last ``limit`` characters.

        >>> as_messages([("Que vise l'accord ?", "Il vise…")])
        [{'role': 'user', 'content': "Que vise l'accord ?"}, {'role': 'assistant', 'content': 'Il vise…'}]
    """
    messages = []
    for turn in history or []:
        if isinstance(turn, (list, tuple)):  # a pair holds the answer too: the follow-up must know what it said
            messages += [{"role": role, "content": str(text)} for role, text in zip(("user", "assistant"), turn)
                         if text is not None]
        else:
            messages.append({"role": message_role(turn) or "assistant", "content": message_content(turn)})
    return [{**m, "content": m["content"][-limit:]} for m in messages] if limit else messages


def prepare(inputs: dict[str, Any], answerer: Any) -> dict[str, Any]:
    """Adds ``lang`` (the question's), ``query`` (what to retrieve with) and ``said`` (for an
    elliptic follow-up, the previous answer: what it asks for is something else)."""
    question, history = inputs["question"], as_messages(inputs.get("history"))
    rewrite = getattr(answerer, "rewrite", None)
    said = None
    if history and rewrite is not None:  # an LLM reads the conversation itself
        query = rewrite(question, history)
    else:
        query = standalone_question(question, history)
        if query != question:  # rewritten: an elliptic follow-up
            previous = next((m["content"] for m in reversed(history) if m["role"] != "user"), None)
            said = FollowUp(asked=question, previous_answer=previous) if previous else None
    return {**inputs, "query": query, "lang": guess_lang(question), "said": said}


def build_chain(retriever: Runnable, answerer: Any) -> Runnable:
    """``{question, history[, timings, collections]}`` -> Answer; a ``timings`` dict gets each
    stage's seconds; ``collections`` (None: all) limits retrieval."""
    def retrieve(inputs: dict[str, Any]):
        return retriever.invoke(inputs["query"], lang=inputs["lang"], timings=inputs.get("timings"),
                                collections=inputs.get("collections"))

    def answer(inputs: dict[str, Any]):
        timings = inputs.get("timings")
        with timed(timings, "answer"):  # the reader's part, when on, is also given alone as "reader"
            result = answerer(inputs["query"], inputs["lang"], inputs["docs"], said=inputs.get("said"), timings=timings)
        return result.model_copy(update={"question": inputs["question"]})

    return (
        RunnableLambda(lambda inputs: prepare(inputs, answerer))
        | RunnablePassthrough.assign(docs=retrieve)
        | RunnableLambda(answer)
    ).with_config(run_name="tpdqa")


def stream_chain(retriever: Runnable, answerer: Any, inputs: dict[str, Any]) -> Iterator[Any]:
    """The same steps as :func:`build_chain`, yielding text pieces, then the Answer."""
    prepared = prepare(inputs, answerer)
    docs = retriever.invoke(prepared["query"], lang=prepared["lang"], collections=prepared.get("collections"))
    for item in answerer.stream(prepared["query"], prepared["lang"], docs, said=prepared.get("said")):
        yield item.model_copy(update={"question": inputs["question"]}) if hasattr(item, "model_copy") else item
