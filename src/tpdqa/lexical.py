"""The persisted BM25 index: SQLite FTS5 over Snowball stems, as a LangChain DocumentIndex.

Why SQLite FTS5 rather than an in-memory BM25 library: it is updated row by row
(an edited file changes only its rows, a deleted file's rows go), it is durable and
transactional (a killed run leaves a consistent file), and it ranks with Okapi BM25
(k1=1.2, b=0.75). Texts are analyzed in Python (stopwords, per-language stems, see
``tpdqa.language.analyze``) and FTS5 only indexes the resulting terms.

    >>> from langchain_core.documents import Document
    >>> from tpdqa.lexical import LexicalIndex
    >>> idx = LexicalIndex.open(":memory:")
    >>> _ = idx.upsert([Document(id="a", page_content="Le Japon est leader de la robotique.",
    ...                          metadata={"source": "x.txt", "lang": "fr"})])
    >>> [doc.id for doc, score in idx.search("Which country leads in robotics?", k=3)]
    ['a']
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core._api import LangChainBetaWarning
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from pydantic import ConfigDict, PrivateAttr

from tpdqa.ingest import sql_in_collections
from tpdqa.language import LANGUAGES, analyze, guess_lang

with warnings.catch_warnings():
    warnings.simplefilter("ignore", LangChainBetaWarning)
    from langchain_core.indexing.base import DeleteResponse, DocumentIndex, UpsertResponse

_SCHEMA = """
PRAGMA auto_vacuum = INCREMENTAL;
CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(
    terms, id UNINDEXED, source UNINDEXED, text UNINDEXED, metadata UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2'
);
"""


_INSERT = "INSERT INTO chunks (rowid, terms, id, source, text, metadata) VALUES (?, ?, ?, ?, ?, ?)"


def row_key(chunk_id: str) -> int:
    """The FTS5 rowid of a chunk id: FTS5 cannot index its UNINDEXED id column, so rows are
    found by a 63-bit hash of the id (a delete by id scanned the table: 7 ms a row at 10k)."""
    return int.from_bytes(hashlib.sha256(chunk_id.encode("utf-8")).digest()[:8], "big") >> 1


class LexicalIndex(DocumentIndex):
    """BM25 over stemmed terms, persisted in one SQLite file."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    path: str
    k: int = 10
    on_batch: Callable[[int], None] | None = None  # progress: chunks written by each upsert
    _conn: sqlite3.Connection = PrivateAttr()
    _lock: Any = PrivateAttr(default_factory=threading.RLock)

    @classmethod
    def open(cls, path: str | Path, k: int = 10) -> LexicalIndex:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        index = cls(path=str(path), k=k)
        index._conn = sqlite3.connect(str(path), check_same_thread=False)
        index._conn.executescript(_SCHEMA)
        index._migrate()
        return index

    def _migrate(self) -> None:
        """Indexes written before rows were keyed by ``row_key(id)`` are rekeyed once."""
        first = self._conn.execute("SELECT rowid, id FROM chunks LIMIT 1").fetchone()
        if first is None or first[0] == row_key(first[1]):
            return
        with self._lock, self._conn:
            rows = self._conn.execute("SELECT terms, id, source, text, metadata FROM chunks").fetchall()
            self._conn.execute("DELETE FROM chunks")
            self._conn.executemany(_INSERT, [(row_key(r[1]), *r) for r in rows])

    # -- DocumentIndex ------------------------------------------------------------------
    def upsert(self, items: Sequence[Document], /, **kwargs: Any) -> UpsertResponse:
        rows = []
        for doc in items:
            if doc.id is None:
                raise ValueError("LexicalIndex.upsert needs documents with an id")
            lang = doc.metadata.get("lang") or guess_lang(doc.page_content)
            terms = " ".join(analyze(doc.page_content, lang))  # the chunk's first line is its section path
            rows.append((terms, doc.id, doc.metadata.get("source", ""), doc.page_content, json.dumps(doc.metadata)))
        with self._lock, self._conn:
            self._conn.executemany("DELETE FROM chunks WHERE rowid = ?", [(row_key(r[1]),) for r in rows])
            self._conn.executemany(_INSERT, [(row_key(r[1]), *r) for r in rows])
        if self.on_batch is not None:
            self.on_batch(len(rows))
        return {"succeeded": [r[1] for r in rows], "failed": []}

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> DeleteResponse:
        if ids is None:
            raise ValueError("LexicalIndex.delete needs ids")
        with self._lock, self._conn:
            deleted = self._conn.executemany("DELETE FROM chunks WHERE rowid = ?", [(row_key(i),) for i in ids]).rowcount
        return {"num_deleted": deleted, "succeeded": list(ids), "failed": []}

    def get(self, ids: Sequence[str], /, **kwargs: Any) -> list[Document]:
        with self._lock:
            found = {
                row[0]: Document(id=row[0], page_content=row[1], metadata=json.loads(row[2]))
                for i in ids
                for row in self._conn.execute("SELECT id, text, metadata FROM chunks WHERE rowid = ?", (row_key(i),))
            }
        return [found[i] for i in ids if i in found]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun | None = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self.search(query, k=kwargs.get("k", self.k))]

    # -- tpdqa -----------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, lang: str | None = None,
               collections: Sequence[str] | None = None) -> list[tuple[Document, float]]:
        """Best ``k`` chunks by BM25 (higher is better). The query is stemmed in its own
        language and in the other supported ones, so cognates across languages match.
        ``collections`` (top-level folders; ``default`` for top-level files) limits the
        search itself: other chunks are never ranked."""
        lang = lang or guess_lang(query)
        langs = (lang, *[other for other in LANGUAGES if other != lang])
        terms = list(dict.fromkeys(analyze(query, langs)))
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
        where, params = sql_in_collections(collections)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id, text, metadata, -bm25(chunks) AS score FROM chunks WHERE chunks MATCH ?{where} "
                "ORDER BY bm25(chunks) LIMIT ?",
                (f"terms : ({match})", *params, k),
            ).fetchall()
        return [(Document(id=r[0], page_content=r[1], metadata=json.loads(r[2])), float(r[3])) for r in rows]

    def ids(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._conn.execute("SELECT id FROM chunks")}

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def release_free_pages(self) -> None:
        """Give the pages deleted rows left back to the disk (a file made with incremental auto-vacuum)."""
        with self._lock:
            self._conn.executescript("PRAGMA incremental_vacuum;")  # to the end: execute() frees one page a step

    def close(self) -> None:
        self._conn.close()
