"""A Chroma collection that keeps vectors, not texts: the chunk's text and metadata live once,
in the BM25 index (:mod:`tpdqa.lexical`), which every index already holds in full.

langchain-chroma stores each chunk's text in every collection it writes: three encoders
meant three copies, each also in Chroma's metadata table and in its trigram full-text index
(which tpdqa never queries). Measured at 3,279 chunks (docs/evaluation.md, Speed): Chroma's
SQLite file held 61 MB, 50 of them texts, metadata and that full-text index. This subclass
writes ids, vectors and the one metadata field searches filter on (``collection``; the
records clean up by file, not Chroma); :meth:`tpdqa.store.Store.dense_search_by_vector` reads the
texts back from the BM25 index by id. Used for the local store only: a ``chroma run``
server may hold other replicas' chunks, which this process's BM25 index does not.

    >>> from tpdqa.vectors import KEPT_METADATA
    >>> KEPT_METADATA
    ('collection',)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_chroma import Chroma

KEPT_METADATA = ("collection",)


class VectorsOnlyChroma(Chroma):
    """:class:`langchain_chroma.Chroma` whose ``add_texts`` stores no text (see the module doc)."""

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, ids: list[str] | None = None,
                  **kwargs: Any) -> list[str]:
        texts = list(texts)
        if ids is None or len(ids) != len(texts):
            raise ValueError("VectorsOnlyChroma needs one id per text (the chunk ids)")
        metadatas = metadatas or [{} for _ in texts]
        vectors = self._embedding_function.embed_documents(texts)
        slim = [{key: m[key] for key in KEPT_METADATA if key in m} or None for m in metadatas]
        self._collection.upsert(ids=ids, embeddings=vectors, metadatas=slim)
        return ids
