"""Measure each retriever alone and their fusion on a BEIR-layout folder (prints figures).

    python benchmarks/fusion.py ../shared/data/piaf-v1.1/beir --qrels all --every 7 --offset 3 --limit 700
    python benchmarks/fusion.py ../shared/data/beir-scifact --qrels train --limit 300

Documents are written as one .txt file each (title as first line) and indexed with
the chat's own Store (same chunking, models, BM25); a document's rank is its best chunk's.
The default --offset 3 keeps away from PIAF's evaluation subset (every 7th from 0).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

from tpdqa import Settings
from tpdqa.language import guess_lang
from tpdqa.retrieval import BM25, fuse
from tpdqa.store import Store


def load_beir(folder: Path, qrels: str):
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8")]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (folder / "queries.jsonl").open(encoding="utf-8"))}
    relevant: dict[str, set[str]] = {}
    for line in (folder / "qrels" / f"{qrels}.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")[:3]
        if int(score) > 0:
            relevant.setdefault(qid, set()).add(did)
    return corpus, queries, relevant


def doc_ranking(docs) -> list[str]:
    seen: list[str] = []
    for doc in docs:
        did = Path(doc.metadata["source"]).stem
        if did not in seen:
            seen.append(did)
    return seen


def ndcg10(ranking: list[str], relevant: set[str]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranking[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--qrels", default="test")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--dump", type=Path, default=None, help="pickle the ranked lists for fusion experiments")
    parser.add_argument("--work", type=Path, default=None, help="reuse an index folder between runs")
    args = parser.parse_args()

    corpus, queries, relevant = load_beir(args.folder, args.qrels)
    work = args.work or Path(tempfile.mkdtemp(prefix="tpdqa-bench-"))
    docs_dir = work / "documents"
    if not docs_dir.exists():
        docs_dir.mkdir(parents=True)
        for d in corpus:
            (docs_dir / f"{d['_id']}.txt").write_text(f"{d.get('title', '')}\n{d['text']}", encoding="utf-8")
    store = Store(Settings(documents_dir=docs_dir, index_dir=work / "index"))
    stats = store.sync()
    print(f"indexed {stats.chunks} chunks of {len(corpus)} docs in {stats.seconds:.0f}s")

    qids = sorted(q for q in relevant if q in queries)[args.offset :: args.every][: args.limit]
    lists_by_q = {}
    for qid in qids:
        text = queries[qid]
        lang = guess_lang(text)
        k = store.settings.fetch_k  # the chat's own depth: fusion normalises over it
        lists = {m: store.dense_search(m, text, k) for m in store.settings.embedding_models}
        lists[BM25] = store.lexical.search(text, k=k, lang=lang)
        lists_by_q[qid] = (lists, lang)

    def report(name: str, rank_fn) -> None:
        hits, nd = [], []
        for qid in qids:
            ranking = rank_fn(*lists_by_q[qid])
            hits.append(float(bool(ranking) and ranking[0] in relevant[qid]))
            nd.append(ndcg10(ranking, relevant[qid]))
        print(f"{name:45s} nDCG@10 {sum(nd) / len(nd):.3f}  hit@1 {sum(hits) / len(hits):.3f}  (n={len(qids)})")

    for single in [*store.settings.embedding_models, BM25]:
        report(single, lambda lists, lang, s=single: doc_ranking([d for d, _ in lists[s]]))
    report("fused (tpdqa.retrieval.fuse)", lambda lists, lang: doc_ranking(fuse(lists, lang)))
    if args.dump:
        import pickle

        args.dump.write_bytes(pickle.dumps({"qids": qids, "relevant": relevant, "lists": lists_by_q}))


if __name__ == "__main__":
    main()
