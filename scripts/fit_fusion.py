"""Grid-search the fusion weights of ``tpdqa.retrieval.WEIGHTS`` on training questions of a BEIR folder.

The index is built (or reused) by the chat's own Store in ``--work``, every list is
searched once per question, then each weight combination is fused and scored
(nDCG@10, hit@1). Use training questions only, e.g. PIAF outside the evaluation subset
(``--every 7 --offset 3 --limit 700``) or SciFact's train qrels; the evaluation subset
(``--offset 0``) is for reporting.

    python scripts/fit_fusion.py --beir ../shared/data/piaf-v1.1/beir --qrels all --every 7 --offset 3 \\
        --limit 700 --work /tmp/tpdqa-piaf --models multilingual-e5-small,sentence-transformers/all-MiniLM-L6-v2 \\
        --grid multilingual-e5-small=0.5,0.8,1.0,1.3 sentence-transformers/all-MiniLM-L6-v2=0,0.1,0.2
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from tpdqa import Assistant
    from tpdqa.evaluation import _doc_ranking, _retrieval_scores, read_beir, write_beir_documents
    from tpdqa.language import guess_lang
    from tpdqa.retrieval import BM25, fuse, list_weight

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beir", type=Path, required=True)
    parser.add_argument("--qrels", default="train")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--work", type=Path, required=True,
                        help="folder for the documents and index (that of a `tpdqa eval --beir --work` run is reused)")
    parser.add_argument("--models", required=True, help="comma-separated embedding models of that run")
    parser.add_argument("--grid", nargs="+", required=True,
                        help="LIST=w1,w2,... for each list to vary (bm25 or a model); others keep their weight")
    args = parser.parse_args(argv)

    corpus, queries, relevance = read_beir(args.beir, args.qrels)
    assistant = Assistant(documents_dir=write_beir_documents(corpus, args.work), index_dir=args.work / "index",
                          embedding_models=args.models.split(","))
    assistant.index()
    qids = sorted(q for q in relevance if q in queries)[args.offset::args.every][: args.limit]
    searched = []
    for qid in tqdm(qids, desc="Searching", unit="q"):
        lang = guess_lang(queries[qid])
        searched.append((qid, lang, assistant.retriever.ranked_lists(queries[qid], lang)))

    grid = {name: [float(w) for w in values.split(",")] for name, values in
            (item.split("=", 1) for item in args.grid)}
    names = list(grid)
    for combination in itertools.product(*(grid[n] for n in names)):
        chosen = dict(zip(names, combination))

        def weight(name: str, query_lang: str, doc_lang: str) -> float:
            key = BM25 if name == BM25 else name
            return chosen[key] if key in chosen else list_weight(name, query_lang, doc_lang)

        scores = [_retrieval_scores(_doc_ranking(fuse(lists, lang, weight)), relevance[qid])
                  for qid, lang, lists in searched]
        ndcg = sum(s["ndcg_at_10"] for s in scores) / len(scores)
        hit1 = sum(s["mrr_at_10"] == 1.0 for s in scores) / len(scores)
        print(" ".join(f"{n}={w}" for n, w in chosen.items()), f"nDCG@10 {ndcg:.4f} hit@1 {hit1:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
