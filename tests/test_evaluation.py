"""The scoring rules on small hand-made cases with known answers, and `tpdqa eval` end to end."""

from __future__ import annotations

import json
import math

import pytest

from tpdqa.evaluation import is_gold, keywords_met, mrr_at_k, ndcg_at_k, recall_at_k, score
from tpdqa.settings import Settings
from tests.conftest import DEV_SET, run_tpdqa


def test_ndcg_known_values():
    assert ndcg_at_k(["a", "b", "c"], {"a": 1}) == 1.0
    assert ndcg_at_k(["x", "a"], {"a": 1}) == pytest.approx(1 / math.log2(3))
    # two relevant, found at ranks 1 and 3: (1 + 1/log2(4)) / (1 + 1/log2(3))
    assert ndcg_at_k(["a", "x", "b"], {"a": 1, "b": 1}) == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(["x"] * 10 + ["a"], {"a": 1}) == 0.0  # beyond the cut-off


def test_mrr_and_recall():
    assert mrr_at_k(["x", "y", "a"], {"a": 1}) == pytest.approx(1 / 3)
    assert mrr_at_k(["x"] * 10 + ["a"], {"a": 1}) == 0.0
    assert recall_at_k(["a", "x", "b"], {"a": 1, "b": 1, "c": 1}, 2) == pytest.approx(1 / 3)


def test_gold_overlap_rule():
    quote = "la Corée du Sud domine la production de puces mémoire"
    assert is_gold("tandis que la Corée du Sud domine la production de puces mémoire.", quote)
    assert is_gold("blah la Corée du Sud domine la prod", quote)  # 31 of 53 characters: over half
    assert not is_gold("Hier, la Corée du Sud domina", quote)  # 21 of 53: under half, and not inside
    assert is_gold("puces mémoire", quote)  # the quote contains the whole chunk
    assert is_gold("la  Corée du\nSud domine la production de puces mémoire", quote)  # whitespace collapsed


def test_keywords_ignore_accents_and_case():
    assert keywords_met("La COREE du Sud", [["Corée", "Korea"]])
    assert keywords_met("south korea leads", [["Corée", "Korea"]])
    assert not keywords_met("Le Japon", [["Corée", "Korea"]])
    assert not keywords_met("prospérité", [["prospérité technologique"], ["TPD"]])


def test_score_counts_refusals_and_citations():
    rows = [
        {"answerable": True, "refused": False, "citations": [1, 2], "citation_hits": [True, False],
         "first_gold_rank": 2, "keywords_met": True, "latency_ms": 10.0},
        {"answerable": True, "refused": True, "citations": [], "citation_hits": [],
         "first_gold_rank": None, "keywords_met": False, "latency_ms": 30.0},
        {"answerable": False, "refused": True, "citations": [], "citation_hits": [],
         "first_gold_rank": None, "keywords_met": None, "latency_ms": 20.0},
    ]
    report = score(rows)
    assert report["retrieval_hit_at_1"] == 0.0 and report["retrieval_hit_at_3"] == 0.5
    assert report["retrieval_mrr"] == 0.25
    assert report["citation_precision"] == 0.5 and report["citation_recall"] == 0.5
    assert report["refusal_accuracy"] == 1.0 and report["false_refusal_rate"] == 0.5
    assert report["latency_ms_p50"] == 20.0


def test_eval_command_writes_the_reports(corpus_dir, tmp_path):
    result = run_tpdqa("eval", "--dataset", str(DEV_SET), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    for key in ("n", "retrieval_hit_at_1", "retrieval_hit_at_3", "retrieval_hit_at_5", "retrieval_mrr",
                "answer_keyword_recall", "citation_precision", "citation_recall", "refusal_accuracy",
                "false_refusal_rate", "latency_ms_p50", "latency_ms_p95", "by_lang", "per_question"):
        assert key in report
    assert report["n"] == len(DEV_SET.read_text().splitlines())
    assert set(report["by_lang"]) == {"fr", "en"}
    assert "Worst questions" in (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_beir_mode_on_a_small_folder(tmp_path):
    folder = tmp_path / "mini"
    (folder / "qrels").mkdir(parents=True)
    docs = {"d1": "Le Japon est leader dans la robotique et les technologies spatiales.",
            "d2": "La Corée du Sud domine la production de puces mémoire.",
            "d3": "Le Royaume-Uni a renforcé ses liens technologiques avec les États-Unis."}
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": k, "title": "", "text": v}) for k, v in docs.items()))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in [
        {"_id": "q1", "text": "Qui domine la production de puces mémoire ?"},
        {"_id": "q2", "text": "Which country leads in robotics?"}]))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td1\t1\n")
    result = run_tpdqa("eval", "--beir", str(folder), "--out", str(tmp_path / "out"),
                       "--work", str(tmp_path / "work"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n_queries"] == 2 and report["n_docs"] == 3
    assert report["hit_at_1"] == 1.0 and report["ndcg_at_10"] == 1.0
    assert report["index_docs_per_s"] > 0 and report["query_ms_p95"] >= report["query_ms_p50"] > 0
    assert set(report["by_retriever"]) == {*Settings().embedding_models, "bm25"}
