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

from tpdqa.answer import _YEAR, FollowUp
from tpdqa.language import _stopwords, analyze, fold, guess_lang
from tpdqa.retrieval import timed
from tpdqa.sentences import QUESTION_WORDS

# A follow-up is elliptic: it opens with a connector ("Et la Corée du Sud ?", "What
# about Korea?") or leans on a pronoun, and names little. Such a question is read with
# the previous one; any other question stands on its own, even after a conversation.
FOLLOW_UP_MAX_TERMS = 4
# A connector ("Et", "And"), then or alone what turns to another thing ("what about", "qu'en est-il de", "same
# question for"), or after a connector a preposition ("Et pour un camion ?"; alone, "In which year…?" asks anew):
# all of it is left out of what the follow-up replaces.
_ABOUT = (r"(?:(?:what|how) about|qu['’]en est-il(?: de| du| des| d['’]|\b)|(?:la )?même (?:chose|question) (?:pour|avec)|"
          r"same(?: question| thing)? for|(?:idem|pareil) pour|concernant|quant (?:à|aux|au)|as (?:for|to)|regarding)")
_OPENERS = re.compile(
    r"^\s*(?:" + _ABOUT + r"(?![\w'’])|(?:et|and|also|aussi|mais|but|or|ou|quid|idem|same|pareil|puis|then|ensuite)"
    r"\b[\s,]*(?:(?:" + _ABOUT + r"|pour|for|in|en|dans|à|au|aux|at)(?![\w'’]))?)\s*",
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
    before = previous_question(as_messages(history))
    if before is None or not is_follow_up(question):
        return question
    return substituted(before, question) or f"{before} {question}"


def previous_question(messages: list[dict[str, Any]]) -> str | None:
    """The question a follow-up continues: the last one the last user turn asks (None: no user turn)."""
    asked = [m["content"] for m in messages if m["role"] == "user"]
    return last_question(asked[-1]) if asked else None


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
# Articles open a noun phrase; "a" is one only in English ("Qui a conçu…", "Combien a été dépensé ?")
_ARTICLES = {"en": {"the", "a", "an"}, "fr": {"le", "la", "les", "un", "une", "l"}}
_INVERTED = re.compile(r"-(?:t-)?(?:il|elle|ils|elles|on)$", re.IGNORECASE)  # "sortira-t-elle", "est-il"
# What a question asks with, at its start: "when", "how tall", "combien de"
_ASKING = re.compile(r"^(?:what|which|who|whom|whose|when|where|why|how(?:\s+(?:many|much|long|old|far|often|tall|high|"
                     r"big|large|wide|deep|heavy))?|quel(?:le)?s?|qui|que|quoi|quand|où|pourquoi|comment|"
                     r"combien(?:\s+d['’]|\s+de\b)?)(?![\w'’])", re.IGNORECASE)


def substituted(previous: str, follow_up: str) -> str | None:
    """``previous`` with the part ``follow_up`` replaces, or None when nothing can be matched.

    "Et l'accord avec la Corée ?" after "Que vise l'accord américano-japonais ?" asks "Que vise
    l'accord avec la Corée ?" (the phrase around their shared word "accord" is replaced); "Et la
    Corée du Sud ?" after "Dans quels domaines le Japon est-il leader ?" replaces the named
    entity "le Japon". Quoting what the previous question's answer quoted is what a
    concatenation of both questions led to. With nothing shared and no name, a follow-up that
    opens with an article replaces the previous question's first noun phrase; one that asks
    with a question word alone is the previous question asked with it; one that asks with a
    question word and names its own subject asks all of itself (with no subject, None).

        >>> substituted("When will the mobile app be released?", "And the web version?")
        'When will the web version be released?'
        >>> substituted("Where will the next Games take place?", "And when?")
        'When will the next Games take place?'
        >>> substituted("What did the first flight carry?", "And what happened to the second flight?")
        'What happened to the second flight?'

    What only turns to another thing is left out ("pour", "what about", "qu'en est-il de", "same question
    for"), and a year replaces the previous question's:

        >>> substituted("Dans quels domaines le Japon est-il leader ?", "Qu'en est-il de la Corée du Sud ?")
        'Dans quels domaines la Corée du Sud est-il leader ?'
        >>> substituted("How many days off for a wedding?", "Same question for the birth of a child.")
        'How many days off for the birth of a child?'
        >>> substituted("Combien de visiteurs en 2019 ?", "Et en 2020 ?")
        'Combien de visiteurs en 2020 ?'
    """
    turn, replacement = turned(follow_up)  # "pour" of "Et pour un camion ?" places what it replaces
    if not replacement or _ANAPHORS.search(replacement):
        return None
    english = guess_lang(previous) == "en"
    articles = _ARTICLES["en" if english else "fr"]
    asking = _ASKING.match(replacement)
    if asking and asking.end() == len(replacement):  # "And when?" after "Where will the next Games take place?"
        before = _ASKING.match(previous)
        return f"{replacement[:1].upper()}{replacement[1:]}{previous[before.end():]}" if before else None
    if asking:  # asks anew: all of itself if it names its subject ("And what happened to the second flight?"),
        # else read after the previous question ("And who came second?" of a medal table)
        named = any(is_article(w, articles) for w in _TOKEN.findall(replacement)[1:])
        return replacement[:1].upper() + replacement[1:] + follow_up[len(follow_up.rstrip(" ?!.")):] if named else None
    tokens = list(_TOKEN.finditer(previous))
    bare = [fold(_ELISION.sub("", t.group(0))) for t in tokens]
    new = {fold(_ELISION.sub("", w)) for w in _TOKEN.findall(replacement)} - _stopwords() - QUESTION_WORDS
    shared = [i for i, w in enumerate(bare) if w in new and len(w) > 2]
    if shared:  # the previous question's phrase around the word both name
        head = shared[0]
        start = next((j for j in range(head, max(-1, head - 4), -1)
                      if bare[j] in _DETERMINERS or _ELISION.match(tokens[j].group(0))), head)
        end = head if english else len(tokens) - 1  # French phrases run to the end of the question
        if english and head + 1 < len(tokens) and bare[head + 1] in ("between", "with", "of", "among"):
            # and through the names it is of: "the agreement between the United States and Japan"
            after = head + 2
            while after < len(tokens) and (tokens[after].group(0)[:1].isupper() or bare[after] in ("the", "and")):
                after += 1
            if any(tokens[k].group(0)[:1].isupper() for k in range(head + 2, after)):
                end = after - 1
        span = (tokens[start].start(), tokens[end].end())
    else:  # the last named entity (capitalised words after the first) with its determiner
        names = [i for i, t in enumerate(tokens) if i and t.group(0)[:1].isupper()]
        capitals = [w for w in _TOKEN.findall(replacement) if w[:1].isupper()]
        year = _YEAR.search(previous)
        if year and _YEAR.fullmatch(replacement):  # "Et en 2020 ?" after "Combien de visiteurs en 2019 ?"
            return f"{previous[:year.start()]}{replacement}{previous[year.end():]}"
        if not names or not capitals:
            opens = _TOKEN.match(replacement)
            span = noun_phrase(tokens, articles, turn) if opens and is_article(opens.group(0), articles) else None
            return f"{previous[:span[0]]}{replacement}{previous[span[1]:]}" if span else None
        end = start = names[-1]
        while start - 1 in names:  # "Donald Trump"
            start -= 1
        if start and bare[start - 1] in _DETERMINERS:
            start -= 1
        span = (tokens[start].start(), tokens[end].end())
    return f"{previous[:span[0]]}{replacement}{previous[span[1]:]}"


def turned(follow_up: str) -> tuple[str, str]:
    """The word a follow-up turns with (its opener's last, folded; "" if none) and what it says after.

        >>> turned("Et pour un camion ?"), turned("What about South Korea?"), turned("La Corée ?")
        (('pour', 'un camion'), ('about', 'South Korea'), ('', 'La Corée'))
    """
    opener = _OPENERS.match(follow_up)
    words_ = opener.group(0).split() if opener else []
    return (fold(words_[-1]) if words_ else ""), follow_up[opener.end() if opener else 0:].strip(" ?!.;:,")


def named_thing(follow_up: str) -> str:
    """What an elliptic follow-up turns to when it names a thing with an article ("un camion" of "Et pour
    un camion ?", "the web version"); "" when it asks with a question word or a pronoun.

        >>> named_thing("Et pour un camion ?"), named_thing("And when?"), named_thing("Et la Corée du Sud ?")
        ('un camion', '', 'la Corée du Sud')
    """
    rest = turned(follow_up)[1]
    first = _TOKEN.match(rest)
    named = first is not None and is_article(first.group(0), _ARTICLES["en"] | _ARTICLES["fr"])
    return rest if named and not _ANAPHORS.search(rest) else ""


def is_article(word: str, articles: set[str]) -> bool:
    """Whether ``word`` is one of ``articles`` or opens with one elided ("l'application")."""
    return word.lower() in articles or ("l" in articles and re.match(r"l['’]\w", word, re.IGNORECASE) is not None)


def noun_phrase(tokens: list[re.Match], articles: set[str], after: str = "") -> tuple[int, int] | None:
    """Where the first noun phrase an article opens lies in a question's tokens — after the word
    ``after`` if the question has one there ("pour une voiture" for "Et pour un camion ?"): "the mobile
    app" in "When will the mobile app be released?", "l'application mobile" in "Quand l'application
    mobile sortira-t-elle ?" — up to three words after it, none a stopword or a verb asking with its
    subject after it ("sortira-t-elle"); "de" is no article ("Combien de jours de congé pour un mariage ?")."""
    stop = _stopwords() | QUESTION_WORDS
    placed = [i for i in range(1, len(tokens)) if fold(tokens[i - 1].group(0)) == after]
    for i, token in enumerate(tokens):
        word = token.group(0)
        if not is_article(word, articles) or (placed and i not in placed):
            continue
        end = i
        for j in range(i + 1, min(i + 4, len(tokens))):
            if fold(tokens[j].group(0)) in stop or _INVERTED.search(tokens[j].group(0)):
                break
            end = j
        if end > i or word.lower() not in articles:  # "l'application" is a phrase of its own
            return tokens[i].start(), tokens[end].end()
    return None


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
            said = FollowUp(asked=turned(question)[1], previous_answer=previous, names=named_thing(question),
                            before=previous_question(history)) if previous else None
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
