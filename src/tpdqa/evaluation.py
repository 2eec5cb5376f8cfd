"""Evaluation sets (JSON Lines, see ``shared/eval/README.md``) and their scoring.

The questions go through ``Assistant.ask``, the chat's own path, so the report
measures what a user gets.

    >>> from tpdqa.evaluation import is_gold, keywords_met
    >>> is_gold("... la Corée du Sud domine la production de puces mémoire.", "la Corée du Sud domine la production")
    True
    >>> keywords_met("The answer: CORÉE", [["coree", "Korea"]])
    True
"""

from __future__ import annotations

import json
import re
import statistics
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Question:
    id: str
    lang: str
    question: str
    answerable: bool
    gold: list[dict[str, str]]
    answer_keywords: list[list[str]]


def read_dataset(path: str | Path) -> list[Question]:
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            questions.append(Question(
                id=str(raw["id"]), lang=raw.get("lang", "en"), question=raw["question"],
                answerable=bool(raw.get("answerable", True)), gold=raw.get("gold", []),
                answer_keywords=raw.get("answer_keywords", []),
            ))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}, line {number}: not a valid question ({exc}); see shared/eval/README.md") from exc
    return questions


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def longest_common_substring(a: str, b: str) -> int:
    from difflib import SequenceMatcher

    match = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return match.size


def is_gold(chunk: str, quote: str) -> bool:
    """A chunk is gold when it holds at least half of the quote (longest common
    substring) or the quote contains the whole chunk."""
    chunk, quote = collapse(chunk), collapse(quote)
    if not chunk or not quote:
        return False
    return chunk in quote or longest_common_substring(chunk, quote) * 2 >= len(quote)


def chunk_is_gold(chunk_text: str, chunk_source: str, gold: Iterable[dict[str, str]]) -> bool:
    return any(
        _same_source(chunk_source, g.get("source", "")) and is_gold(chunk_text, g.get("quote", "")) for g in gold
    )


def _same_source(chunk_source: str, gold_source: str) -> bool:
    # Sets name documents by file name; the index keeps paths relative to the folder.
    return not gold_source or chunk_source == gold_source or Path(chunk_source).name == Path(gold_source).name


def fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def keywords_met(answer: str, groups: list[list[str]]) -> bool:
    folded = fold(answer)
    return all(any(fold(alt) in folded for alt in group) for group in groups)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The report keys of shared/eval/README.md over per-question rows."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    cited = [hit for r in answerable for hit in r["citation_hits"]]
    latencies = [r["latency_ms"] for r in rows]
    report: dict[str, Any] = {"n": len(rows)}
    for k in (1, 3, 5):
        report[f"retrieval_hit_at_{k}"] = _mean([float(r["first_gold_rank"] is not None and r["first_gold_rank"] <= k)
                                                 for r in answerable])
    report["retrieval_mrr"] = _mean([1.0 / r["first_gold_rank"] if r["first_gold_rank"] else 0.0 for r in answerable])
    report["answer_keyword_recall"] = _mean([float(r["keywords_met"]) for r in answerable])
    report["citation_precision"] = _mean([float(h) for h in cited])
    report["citation_recall"] = _mean([float(any(r["citation_hits"])) for r in answerable])
    report["refusal_accuracy"] = _mean([float(r["refused"] and not r["citations"]) for r in unanswerable])
    report["false_refusal_rate"] = _mean([float(r["refused"]) for r in answerable])
    report["latency_ms_p50"] = percentile(latencies, 0.5)
    report["latency_ms_p95"] = percentile(latencies, 0.95)
    return report


def evaluate(assistant: Any, questions: list[Question], progress: bool = True) -> dict[str, Any]:
    from tqdm import tqdm

    assistant.ask(questions[0].question if questions else "warm-up")  # warm: models load once, not in latency
    rows = []
    for q in tqdm(questions, desc="Evaluating", unit="q", disable=not progress):
        started = time.perf_counter()
        answer = assistant.ask(q.question)
        latency = (time.perf_counter() - started) * 1000
        gold_ranks = [i for i, r in enumerate(answer.retrieved, start=1) if chunk_is_gold(r.text, r.source, q.gold)]
        rows.append({
            "id": q.id, "lang": q.lang, "question": q.question, "answerable": q.answerable,
            "answer": answer.text, "refused": answer.refused, "support": answer.support,
            "citations": [{"source": c.source, "chunk_id": c.chunk_id, "text": c.text, "quote": c.quote}
                          for c in answer.citations],
            "citation_hits": [chunk_is_gold(c.text, c.source, q.gold) for c in answer.citations],
            "retrieved": [r.id for r in answer.retrieved],
            "first_gold_rank": gold_ranks[0] if gold_ranks else None,
            "keywords_met": keywords_met(answer.text, q.answer_keywords) if q.answerable else None,
            "latency_ms": round(latency, 1),
        })
    report = score(rows)
    report["by_lang"] = {lang: score([r for r in rows if r["lang"] == lang]) for lang in sorted({r["lang"] for r in rows})}
    report["per_question"] = rows
    report["latency_ms_mean"] = statistics.fmean([r["latency_ms"] for r in rows]) if rows else None
    return report
