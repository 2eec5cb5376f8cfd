"""Evaluation sets (JSON Lines, see ``docs/eval-format.md``) and their scoring.

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


def benchmark_data(path: Path) -> Path:
    """``path`` if the public benchmark data is there; else a one-line exit that says where it goes.
    Only benchmarks and fitting scripts read it: the test suite needs none of it."""
    if not path.exists():
        raise SystemExit(f"Benchmark data missing: {path} does not exist. Put the public data folder "
                         "(piaf-v1.1, squad-v1.1-dev, squad-v2.0-dev-half, beir-scifact) beside the repository as "
                         "../shared/data, or pass its location (--data / --beir).")
    return path


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
            raise ValueError(f"{path}, line {number}: not a valid question ({exc}); see docs/eval-format.md") from exc
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
    """The report keys of docs/eval-format.md over per-question rows."""
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
    # One figure for both kinds: an answerable question counts when answered with every
    # keyword group met, an unanswerable one when refused.
    report["answer_accuracy"] = _mean([float(not r["refused"] and r["keywords_met"]) if r["answerable"]
                                       else float(r["refused"] and not r["citations"]) for r in rows])
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


# -- reports -------------------------------------------------------------------------------

SUMMARY_KEYS = ("retrieval_hit_at_1", "retrieval_hit_at_3", "retrieval_hit_at_5", "retrieval_mrr",
                "answer_keyword_recall", "citation_precision", "citation_recall", "refusal_accuracy",
                "false_refusal_rate", "answer_accuracy", "latency_ms_p50", "latency_ms_p95")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def worst_questions(rows: list[dict[str, Any]], limit: int = 10) -> list[dict[str, Any]]:
    """Failures first (wrong refusals, missed keywords, non-gold citations), then late gold."""

    def badness(row: dict[str, Any]) -> tuple[int, int]:
        if not row["answerable"]:
            return (0 if row["refused"] else 3, 0)
        failures = (2 * row["refused"] + (not row["keywords_met"])
                    + (bool(row["citation_hits"]) and not all(row["citation_hits"])))
        rank = row["first_gold_rank"] or 99
        return (failures, rank - 1)

    flawed = [r for r in rows if badness(r) != (0, 0)]
    return sorted(flawed, key=badness, reverse=True)[:limit]


def write_reports(report: dict[str, Any], out: Path, dataset: str) -> list[Path]:
    """report.json, report.md and report.png in ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / "report.png"]
    paths[0].write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    langs = sorted(report.get("by_lang", {}))
    lines = [f"# Evaluation of `{dataset}`", "", f"{report['n']} questions.", "",
             "| metric | all | " + " | ".join(langs) + " |", "|---|---|" + "---|" * len(langs)]
    for key in SUMMARY_KEYS:
        lines.append(f"| {key} | {_fmt(report.get(key))} | "
                     + " | ".join(_fmt(report["by_lang"][lang].get(key)) for lang in langs) + " |")
    lines += ["", "## Worst questions", "", "| id | lang | question | refused | keywords | gold rank | answer |",
              "|---|---|---|---|---|---|---|"]
    for row in worst_questions(report["per_question"]):
        answer = row["answer"].replace("|", "\\|").replace("\n", " ")[:160]
        lines.append(f"| {row['id']} | {row['lang']} | {row['question']} | {row['refused']} | "
                     f"{_fmt(row['keywords_met'])} | {_fmt(row['first_gold_rank'])} | {answer} |")
    lines += ["", "![metrics per language and latency](report.png)", ""]
    paths[1].write_text("\n".join(lines), encoding="utf-8")
    plot_report(report, paths[2])
    return paths


def plot_report(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["retrieval_hit_at_1", "retrieval_hit_at_3", "answer_keyword_recall", "citation_precision",
            "refusal_accuracy"]
    labels = ["hit@1", "hit@3", "keyword recall", "citation precision", "refusal accuracy"]
    langs = sorted(report.get("by_lang", {}))
    fig, (bars, hist) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / max(1, len(langs))
    for i, lang in enumerate(langs):
        values = [report["by_lang"][lang].get(k) or 0.0 for k in keys]
        bars.bar([x + i * width for x in range(len(keys))], values, width, label=lang)
    bars.set_xticks([x + width * (len(langs) - 1) / 2 for x in range(len(keys))], labels, rotation=15)
    bars.set_ylim(0, 1.05)
    bars.set_title("Per language")
    bars.legend()
    hist.hist([r["latency_ms"] for r in report["per_question"]], bins=20, color="gray")
    hist.set_title("Latency per question (ms, warm)")
    hist.set_xlabel("ms")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- retrieval benchmarks in BEIR layout -----------------------------------------------------

def ndcg_at_k(ranking: list[str], relevance: dict[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains (BEIR's definition)."""
    import math

    dcg = sum(relevance.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal_gains = sorted((g for g in relevance.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(ideal_gains))
    return dcg / ideal if ideal else 0.0


def mrr_at_k(ranking: list[str], relevance: dict[str, int], k: int = 10) -> float:
    return next((1.0 / i for i, d in enumerate(ranking[:k], start=1) if relevance.get(d, 0) > 0), 0.0)


def recall_at_k(ranking: list[str], relevance: dict[str, int], k: int) -> float:
    relevant = {d for d, g in relevance.items() if g > 0}
    return len(relevant & set(ranking[:k])) / len(relevant) if relevant else 0.0


def read_beir(folder: Path, qrels: str) -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    folder = Path(folder)
    qrels_path = folder / "qrels" / f"{qrels}.tsv"
    for needed in (folder / "corpus.jsonl", folder / "queries.jsonl", qrels_path):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} is missing: a BEIR folder holds corpus.jsonl, queries.jsonl, qrels/NAME.tsv")
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8") if line.strip()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (folder / "queries.jsonl").open(encoding="utf-8"))}
    relevance: dict[str, dict[str, int]] = {}
    for line in qrels_path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or not parts[2].strip().lstrip("-").isdigit():
            continue  # header
        relevance.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return corpus, queries, relevance


def _doc_file(doc_id: str) -> str:
    from urllib.parse import quote

    return quote(doc_id, safe="") + ".txt"


def _doc_id(source: str) -> str:
    from urllib.parse import unquote

    return unquote(Path(source).name[: -len(".txt")])


def evaluate_beir(folder: Path, *, qrels: str = "test", work: Path, every: int = 1, offset: int = 0,
                  limit: int | None = None, progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Retrieval-only scores of the chat's retriever on a BEIR folder.

    Each document becomes ``work/documents/<id>.txt`` (title, then text), indexed by the
    chat's own Store; a document's rank is that of its best chunk. Queries are the
    qrels' query ids, sorted, then ``[offset::every][:limit]``.
    """
    from tqdm import tqdm

    from tpdqa import Assistant
    from tpdqa.language import guess_lang
    from tpdqa.retrieval import fuse

    corpus, queries, relevance = read_beir(folder, qrels)
    documents = write_beir_documents(corpus, Path(work))
    assistant = Assistant(documents_dir=documents, index_dir=Path(work) / "index", **overrides)
    stats = assistant.index()
    meta_path = Path(work) / "index-speed.json"
    if stats.embedded:  # a build, not a reuse: remember how fast it was
        meta_path.write_text(json.dumps({"docs_per_s": len(corpus) / stats.seconds}))
    docs_per_s = json.loads(meta_path.read_text())["docs_per_s"] if meta_path.exists() else None

    qids = sorted(q for q in relevance if q in queries)[offset::every][:limit]
    retriever = assistant.retriever
    per_list: dict[str, list[dict[str, float]]] = {}
    rows, latencies = [], []
    for qid in tqdm(qids, desc="Retrieving", unit="q", disable=not progress):
        # The retriever's own steps, timed together; its lists are then scored alone too.
        started = time.perf_counter()
        lang = guess_lang(queries[qid])
        lists = retriever.ranked_lists(queries[qid], lang)
        fused = fuse(lists, lang)
        latencies.append((time.perf_counter() - started) * 1000)
        rows.append(_retrieval_scores(_doc_ranking(fused), relevance[qid]))
        for name, hits in lists.items():
            per_list.setdefault(name, []).append(_retrieval_scores(_doc_ranking([d for d, _ in hits]), relevance[qid]))

    def mean(values: list[dict[str, float]]) -> dict[str, float]:
        return {key: round(sum(v[key] for v in values) / len(values), 4) for key in values[0]} if values else {}

    return {
        **mean(rows),
        "n_queries": len(qids),
        "n_docs": len(corpus),
        "index_docs_per_s": round(docs_per_s, 2) if docs_per_s else None,
        "query_ms_p50": round(percentile(latencies, 0.5) or 0.0, 1),
        "query_ms_p95": round(percentile(latencies, 0.95) or 0.0, 1),
        "by_retriever": {name: mean(values) for name, values in per_list.items()},
        "settings": {"embedding_models": assistant.settings.embedding_models, "fetch_k": assistant.settings.fetch_k,
                     "chunk_size": assistant.settings.chunk_size, "qrels": qrels, "every": every, "offset": offset,
                     "limit": limit},
    }


def write_beir_documents(corpus: list[dict], work: Path) -> Path:
    """``work/documents/<id>.txt`` for each BEIR document (title, then text); kept between runs."""
    documents = work / "documents"
    documents.mkdir(parents=True, exist_ok=True)
    for doc in corpus:
        path = documents / _doc_file(doc["_id"])
        if not path.exists():
            path.write_text(f"{doc.get('title', '')}\n{doc.get('text', '')}".strip(), encoding="utf-8")
    return documents


def _doc_ranking(chunks: list[Any]) -> list[str]:
    ranking: list[str] = []
    for chunk in chunks:
        doc_id = _doc_id(chunk.metadata["source"])
        if doc_id not in ranking:
            ranking.append(doc_id)
    return ranking


def _retrieval_scores(ranking: list[str], relevance: dict[str, int]) -> dict[str, float]:
    return {
        "ndcg_at_10": ndcg_at_k(ranking, relevance, 10),
        "recall_at_10": recall_at_k(ranking, relevance, 10),
        "recall_at_100": recall_at_k(ranking, relevance, 100),
        "mrr_at_10": mrr_at_k(ranking, relevance, 10),
        "hit_at_1": float(bool(ranking) and relevance.get(ranking[0], 0) > 0),
    }
