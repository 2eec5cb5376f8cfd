"""Hybrid retrieval: dense lists (one per embedding model) and BM25, fused by weighted RRF.

Each list contributes ``weight / (RRF_K + rank)`` to a chunk's score. The weight of a
list depends on the question's language *and the chunk's*: BM25 is strong when both
share a language and weak across languages; an English-only model (MiniLM) only
counts when both are English; the multilingual encoder counts everywhere. So a plain
average never lets a weak list drag a strong one down (see README, Architecture).

    >>> from tpdqa import Assistant
    >>> retriever = Assistant().retriever
    >>> [d.metadata["source"] for d in retriever.invoke("Who leads in robotics?")][:1]
    ['tpd-asie-2025.txt']
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from tpdqa.embeddings import USE_ALIASES
from tpdqa.language import guess_lang

RRF_K = 60
BM25 = "bm25"


def list_weight(name: str, query_lang: str, doc_lang: str) -> float:
    """How much one ranked list counts for one chunk (measured: README, Architecture)."""
    same = query_lang == doc_lang
    if name == BM25:
        return 1.0 if same else 0.35
    if name in USE_ALIASES:
        return 0.8 if same else 1.0
    # any other model: assume an English sentence-transformers model unless told otherwise
    return 0.5 if same and doc_lang == "en" else 0.1


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
        k = kwargs.get("k", self.k)
        query_lang = kwargs.get("lang") or guess_lang(query)
        lists: dict[str, list[tuple[Document, float]]] = {
            model: self.store.dense_search(model, query, self.fetch_k) for model in self.models
        }
        lists[BM25] = self.store.lexical.search(query, k=self.fetch_k, lang=query_lang)
        return fuse(lists, query_lang)[:k]


def fuse(
    lists: dict[str, list[tuple[Document, float]]],
    query_lang: str,
    rrf_k: int = RRF_K,
    weight=list_weight,
) -> list[Document]:
    docs: dict[str, Document] = {}
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    raw: dict[str, dict[str, float]] = {}
    for name, hits in lists.items():
        for rank, (doc, score) in enumerate(hits, start=1):
            key = doc.id or doc.metadata.get("chunk_id")
            docs.setdefault(key, doc)
            w = weight(name, query_lang, doc.metadata.get("lang", "en"))
            scores[key] = scores.get(key, 0.0) + w / (rrf_k + rank)
            ranks.setdefault(key, {})[name] = rank
            raw.setdefault(key, {})[name] = round(score, 4)
    ordered = sorted(scores, key=lambda key: -scores[key])
    out = []
    for key in ordered:
        doc = docs[key]
        meta = {**doc.metadata, "score": scores[key], "ranks": ranks[key], "raw_scores": raw[key]}
        out.append(Document(id=key, page_content=doc.page_content, metadata=meta))
    return out
