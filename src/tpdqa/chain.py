"""The LCEL chain: {question, history} -> retrieval -> answer.

Every entry point (API, CLI, UI, eval) runs this one chain, so the evaluation
measures what a chat user gets. An LLM answerer replaces the last step only.

    >>> from tpdqa import Assistant
    >>> Assistant().chain.invoke({"question": "What does TPD stand for?"}).refused
    False
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from tpdqa.language import analyze, guess_lang

# A follow-up with this few content terms ("Et la Corée du Sud ?") is read with the
# previous question; a longer one stands on its own.
FOLLOW_UP_MAX_TERMS = 3


def standalone_question(question: str, history: list[Any] | None) -> str:
    """The text to retrieve with: the question, or the previous question + a short follow-up."""
    previous = [turn for turn in (history or []) if _role(turn) == "user"]
    if not previous:
        return question
    lang = guess_lang(question)
    if len(set(analyze(question, lang))) > FOLLOW_UP_MAX_TERMS:
        return question
    return f"{_content(previous[-1])} {question}"


def _role(turn: Any) -> str:
    if isinstance(turn, dict):
        return turn.get("role", "")
    if isinstance(turn, (list, tuple)):
        return "user"  # (user, assistant) pairs
    return getattr(turn, "type", "") in ("human", "user") and "user" or ""


def _content(turn: Any) -> str:
    if isinstance(turn, dict):
        return str(turn.get("content", ""))
    if isinstance(turn, (list, tuple)):
        return str(turn[0])
    return str(getattr(turn, "content", ""))


def build_chain(retriever: Runnable, answerer: Any) -> Runnable:
    def prepare(inputs: dict[str, Any]) -> dict[str, Any]:
        question = inputs["question"]
        query = standalone_question(question, inputs.get("history"))
        return {**inputs, "query": query, "lang": guess_lang(question)}

    def answer(inputs: dict[str, Any]):
        return answerer(inputs["query"], inputs["lang"], inputs["docs"]).model_copy(
            update={"question": inputs["question"]}
        )

    return (
        RunnableLambda(prepare)
        | RunnablePassthrough.assign(docs=lambda x: retriever.invoke(x["query"], lang=x["lang"]))
        | RunnableLambda(answer)
    ).with_config(run_name="tpdqa")
