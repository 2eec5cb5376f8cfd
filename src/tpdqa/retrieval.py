"""Hybrid retrieval: dense lists (one per embedding model) and BM25, fused by weighted CombSUM.

Each list's scores are min-max normalised over its top ``fetch_k`` hits, and a chunk's
fused score is the weighted sum of its normalised scores (0 where a list misses it).
The weight of a list depends on the question's language *and the chunk's*: BM25 is
strong when both share a language and weak across languages; an English-only model
(MiniLM) mainly counts when both are English; the multilingual encoders (e5, USE)
count everywhere. Measured (docs/evaluation.md): on French training questions (PIAF,
outside the evaluation subset) BM25 alone gives nDCG@10 0.806, an equal-weight rank
fusion 0.78, this fusion 0.862 (0.830 before e5); rank fusion (RRF) flattens a strong
list's lead on a small corpus, scores keep it.

    >>> from tpdqa import Assistant
    >>> retriever = Assistant().retriever
    >>> [d.metadata["source"] for d in retriever.invoke("Who leads in robotics?")][:1]
    ['tpd-asie-2025.txt']
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from tpdqa.embeddings import E5_ALIASES, USE_ALIASES
from tpdqa.language import guess_lang

BM25 = "bm25"

# Weights by list kind and (question language, chunk language), "*" across languages.
# Fitted on training questions only with scripts/fit_fusion.py: PIAF outside the
# evaluation subset (fr->fr) and SciFact train (en->en); see docs/evaluation.md. e5 reads
# French best; USE still adds a little beside it; MiniLM is the English model. Across
# languages nothing was fitted (no public en->fr set): both multilingual encoders count
# fully, BM25 a little (cognates), MiniLM not at all (its ranking of French text for an
# English question is noise).
WEIGHTS: dict[str, dict[str, float]] = {
    BM25: {"fr": 1.0, "en": 1.0, "*": 0.3},
    "e5": {"fr": 1.0, "en": 0.7, "*": 1.0},
    "use": {"fr": 0.4, "en": 0.2, "*": 1.0},
    "english": {"fr": 0.15, "en": 0.7, "*": 0.0},
}


def list_weight(name: str, query_lang: str, doc_lang: str) -> float:
    """How much one ranked list counts for one chunk."""
    kind = BM25 if name == BM25 else "use" if name in USE_ALIASES else "e5" if name in E5_ALIASES else "english"
    table = WEIGHTS[kind]
    return table.get(query_lang, table["*"]) if query_lang == doc_lang else table["*"]


class HybridRetriever(BaseRetriever):
    """Fuses ``store.dense_search`` for every model with ``store.lexical.search``.

    Returned documents carry ``metadata["score"]`` (fused) and ``metadata["ranks"]``
    (rank in each list, 1-based, for explaining a result).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    store: Any
    models: list[str]
    k: int = 5
    fetch_k: int = 40

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun | None = None, **kwargs: Any
    ) -> list[Document]:
        query_lang = kwargs.get("lang") or guess_lang(query)
        timings = kwargs.get("timings")
        lists = self.ranked_lists(query, query_lang, timings, kwargs.get("collections"))
        with timed(timings, "fusion"):
            return fuse(lists, query_lang, pending=self.store.incomplete(),
                        later=frozenset(self.store.later_models()))[: kwargs.get("k", self.k)]

    def ranked_lists(self, query: str, query_lang: str, timings: dict[str, float] | None = None,
                     collections: list[str] | None = None) -> dict[str, list[tuple[Document, float]]]:
        """Every list before fusion: each dense model's, then BM25's (``fetch_k`` hits each).

        ``timings``, if given, receives the seconds of each stage: ``embed MODEL``,
        ``search MODEL``, ``bm25``. ``collections`` (None: all) filters inside each search,
        so a chunk of another collection never enters the fusion."""
        def dense(model: str) -> list[tuple[Document, float]]:
            with timed(timings, f"embed {model}"):
                vector = self.store.embed_query(model, query)
            with timed(timings, f"search {model}"):
                return self.store.dense_search_by_vector(model, vector, self.fetch_k, collections)

        def bm25() -> list[tuple[Document, float]]:
            with timed(timings, "bm25"):
                return self.store.lexical.search(query, k=self.fetch_k, lang=query_lang, collections=collections)

        work = {model: (lambda m=model: dense(m)) for model in self.models}
        work[BM25] = bm25
        # The encoders, Chroma and SQLite release the GIL: the lists are built side by side, in
        # as many lanes as there are cores, each lane's lists one after the other. One thread a
        # list on 2 cores had e5 (the longest list) wait for the others: 39 ms to embed a
        # question that takes 23 ms alone. Lanes are balanced by each list's recent time.
        # The pool's threads, never the caller's: a thread that embeds a question keeps one
        # OpenMP thread (embeddings._one_thread_per_question), which indexing must not inherit.
        lists: dict[str, list[tuple[Document, float]]] = {}
        for future in [_POOL.submit(_run_lane, lane, work) for lane in _lanes(list(work), _LANES)]:
            lists.update(future.result())
        return {name: lists[name] for name in work}


def _run_lane(names: list[str], work: dict[str, Any]) -> dict[str, list[tuple[Document, float]]]:
    out = {}
    for name in names:
        started = time.perf_counter()
        out[name] = work[name]()
        seconds = time.perf_counter() - started
        _COST[name] = 0.8 * _COST.get(name, seconds) + 0.2 * seconds
    return out


def _lanes(names: list[str], count: int) -> list[list[str]]:
    """``names`` shared among ``count`` lanes, longest first into the least loaded lane (a list
    not timed yet counts as a long one, so the first question's lists are spread evenly)."""
    lanes: list[list[str]] = [[] for _ in range(max(1, min(count, len(names))))]
    loads = [0.0] * len(lanes)
    for name in sorted(names, key=lambda n: -_COST.get(n, 1.0)):
        lane = loads.index(min(loads))
        lanes[lane].append(name)
        loads[lane] += _COST.get(name, 1.0)
    return lanes


_LANES = os.cpu_count() or 1
_COST: dict[str, float] = {}  # each list's recent seconds (moving average), to balance the lanes
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tpdqa-dense")


@contextmanager
def timed(timings: dict[str, float] | None, stage: str) -> Iterator[None]:
    """Adds the block's seconds to ``timings[stage]`` (nothing when ``timings`` is None)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started


def fuse(
    lists: dict[str, list[tuple[Document, float]]],
    query_lang: str,
    weight=list_weight,
    pending: frozenset[str] = frozenset(),
    later: frozenset[str] = frozenset(),
) -> list[Document]:
    """Chunks of all lists, best first, with ``score``, ``ranks`` and ``raw_scores`` in metadata.

    A chunk of a ``pending`` file (searchable, not complete: see :meth:`Store.later_models`)
    cannot be in the ``later`` lists yet: its score is scaled by the weight of all lists over
    the weight of those that could hold it, so it competes evenly with complete chunks
    instead of losing the missing lists' share."""
    docs: dict[str, Document] = {}
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    raw: dict[str, dict[str, float]] = {}
    for name, hits in lists.items():
        if not hits:
            continue
        values = [score for _, score in hits]
        low, high = min(values), max(values)
        for rank, (doc, score) in enumerate(hits, start=1):
            key = doc.id or doc.metadata.get("chunk_id")
            docs.setdefault(key, doc)
            normalised = (score - low) / (high - low) if high > low else 1.0
            w = weight(name, query_lang, doc.metadata.get("lang", "en"))
            scores[key] = scores.get(key, 0.0) + w * normalised
            ranks.setdefault(key, {})[name] = rank
            raw.setdefault(key, {})[name] = round(score, 4)
    if pending and later:
        for key in scores:
            if docs[key].metadata.get("source") in pending:
                lang = docs[key].metadata.get("lang", "en")
                present = sum(weight(name, query_lang, lang) for name in lists if name not in later)
                if present > 0:
                    scores[key] *= sum(weight(name, query_lang, lang) for name in lists) / present
    ordered = sorted(scores, key=lambda key: -scores[key])
    return [
        Document(id=key, page_content=docs[key].page_content,
                 metadata={**docs[key].metadata, "score": scores[key], "ranks": ranks[key], "raw_scores": raw[key]})
        for key in ordered
    ]
