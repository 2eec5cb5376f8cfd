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
import logging
import sqlite3
import threading
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core._api import LangChainBetaWarning
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from pydantic import ConfigDict, PrivateAttr

from tpdqa.ingest import sql_in_collections
from tpdqa.language import LANGUAGES, analyze, guess_lang
from tpdqa.records import release_free_pages, select_in

with warnings.catch_warnings():
    warnings.simplefilter("ignore", LangChainBetaWarning)
    from langchain_core.indexing.base import DeleteResponse, DocumentIndex, UpsertResponse

logger = logging.getLogger(__name__)

# Terms are indexed, not stored: a contentless FTS5 table (a copy of the stemmed terms was a
# third of a row). The rows table holds text and metadata in one zlib blob, less the columns'
# values. Deleting from a contentless table needs the terms it indexed, so they are recomputed
# from the text; a CRC of what was indexed tells when the analyzer has changed since, and then
# every row is stemmed again (queries are analyzed by today's analyzer anyway). 64 KB pages: a
# row of about 0.5-1.5 KB left a third of a 4 KB page empty.
_SCHEMA = """
PRAGMA page_size = 65536;
PRAGMA auto_vacuum = INCREMENTAL;
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_terms USING fts5(
    terms, content = '', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS chunk_rows (key INTEGER PRIMARY KEY, id TEXT, source TEXT, body BLOB, terms_crc INTEGER);
"""

_RESTORED = ("source", "chunk_id")  # metadata keys kept by the columns, not in the blob

# On a big index, query terms found in more chunks than this (and than this share of them) are
# left out of the match, as Elasticsearch's former ``cutoff_frequency`` did: BM25 gives them
# little weight (idf 2.8 at 10,000 of 164k chunks, against 8-11 for a rare term), but scoring
# them reads every chunk that holds them ("which" is in 35,100 of 164k). Measured at 164k
# chunks: BM25 25.5/98.9 -> 10.6/29.8 ms p50/p95, the same top 10 for 56 of 60 questions. An
# index of at most COMMON_TERM_CHUNKS chunks is never changed by it.
COMMON_TERM_CHUNKS = 10_000
COMMON_TERM_SHARE = 0.05
# sources_naming: a word in more chunks than this names no file in particular; a misspelling
# (rapidfuzz's ratio, 0-100) at least this close to an indexed word is taken for it.
NAMED_IN_MOST = 2_000
MISSPELT = 80


def row_key(chunk_id: str) -> int:
    """The rowid of a chunk id: a 63-bit hash, so a row is found without an index on ``id``
    (a delete by id scanned the table: 7 ms a row at 10k)."""
    return int.from_bytes(hashlib.sha256(chunk_id.encode("utf-8")).digest()[:8], "big") >> 1


def chunk_terms(text: str, metadata: dict[str, Any]) -> str:
    """What BM25 indexes for a chunk: its stems, in its language (the first line is its section path)."""
    return " ".join(analyze(text, metadata.get("lang") or guess_lang(text)))


def _crc(terms: str) -> int:
    return zlib.crc32(terms.encode("utf-8"))


def _row(doc: Document, terms: str | None = None) -> tuple[int, str, str, bytes, str]:
    """(key, id, source, body, terms) of a chunk (``terms``: those it was indexed with, if known)."""
    meta, source = dict(doc.metadata), str(doc.metadata.get("source", ""))
    dropped = [k for k in _RESTORED if meta.get(k) == (source if k == "source" else doc.id)]
    for k in dropped:
        del meta[k]
    body = zlib.compress(json.dumps([doc.page_content, meta, dropped], ensure_ascii=False).encode("utf-8"))
    return row_key(doc.id), doc.id, source, body, chunk_terms(doc.page_content, doc.metadata) if terms is None else terms


def _document(chunk_id: str, source: str, body: bytes) -> Document:
    text, meta, dropped = json.loads(zlib.decompress(body))
    restored = {k: source if k == "source" else chunk_id for k in dropped}
    return Document(id=chunk_id, page_content=text, metadata={**restored, **meta})


class LexicalIndex(DocumentIndex):
    """BM25 over stemmed terms, persisted in one SQLite file."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    path: str
    k: int = 10
    on_batch: Callable[[int], None] | None = None  # progress: chunks written by each upsert
    _conn: sqlite3.Connection = PrivateAttr()
    _lock: Any = PrivateAttr(default_factory=threading.RLock)
    # (SQLite's data_version, chunks, chunks holding each term asked so far, indexed terms by
    # first letter as read so far), or None after a write
    _stats: tuple[int, int, dict[str, int], dict[str, list[str]]] | None = PrivateAttr(default=None)

    @classmethod
    def open(cls, path: str | Path, k: int = 10) -> LexicalIndex:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        index = cls(path=str(path), k=k)
        index._conn = sqlite3.connect(str(path), check_same_thread=False)
        index._conn.executescript(_SCHEMA)
        index._conn.execute("CREATE VIRTUAL TABLE temp.chunk_vocab USING fts5vocab(main, chunk_terms, 'row')")
        index._migrate()
        return index

    def _migrate(self) -> None:
        """An index an older version wrote (one FTS5 table that also stored terms, text and
        metadata) moves into today's tables once, without analyzing anything again."""
        old = "SELECT 1 FROM sqlite_schema WHERE name = 'chunks' AND type = 'table'"
        if self._conn.execute(old).fetchone() is None:
            return
        self._conn.execute("PRAGMA busy_timeout = 600000")  # another process may be moving it
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if self._conn.execute(old).fetchone() is not None:  # not moved meanwhile
                    last = -(1 << 63)
                    while batch := self._conn.execute("SELECT rowid, terms, id, text, metadata FROM chunks WHERE "
                                                      "rowid > ? ORDER BY rowid LIMIT 5000", (last,)).fetchall():
                        self._write([_row(Document(id=r[2], page_content=r[3], metadata=json.loads(r[4])), terms=r[1])
                                     for r in batch])  # the terms it was indexed with, as they were
                        last = batch[-1][0]
                    self._conn.execute("DROP TABLE chunks")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                self._conn.execute("PRAGMA busy_timeout = 5000")
            try:  # today's page size and auto-vacuum take effect with a VACUUM
                self._conn.executescript("PRAGMA page_size = 65536; PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
            except sqlite3.OperationalError as error:  # another process reads it: next time
                logger.info("bm25.sqlite not vacuumed after its move (%s)", error)

    def _write(self, rows: Sequence[tuple[int, str, str, bytes, str]]) -> None:
        self._conn.executemany("INSERT INTO chunk_rows VALUES (?, ?, ?, ?, ?)",
                               [(*r[:4], _crc(r[4])) for r in rows])
        self._conn.executemany("INSERT INTO chunk_terms (rowid, terms) VALUES (?, ?)", [(r[0], r[4]) for r in rows])

    def _remove(self, keys: list[int]) -> int:
        """Delete the rows of ``keys`` (those that exist); inside the caller's transaction."""
        indexed = []  # (key, terms as today's analyzer gives them, CRC of those it was indexed with)
        for key, chunk_id, source, body, crc in select_in(
                self._conn, "SELECT key, id, source, body, terms_crc FROM chunk_rows WHERE key", keys):
            doc = _document(chunk_id, source, body)
            indexed.append((key, chunk_terms(doc.page_content, doc.metadata), crc))
        stale = any(_crc(terms) != crc for _, terms, crc in indexed)
        if not stale:
            self._conn.executemany("INSERT INTO chunk_terms (chunk_terms, rowid, terms) VALUES ('delete', ?, ?)",
                                   [(key, terms) for key, terms, _ in indexed])
        self._conn.executemany("DELETE FROM chunk_rows WHERE key = ?", [(key,) for key, _, _ in indexed])
        if stale:
            self._restem()
        return len(indexed)

    def _restem(self) -> None:
        """Index every row again with today's analyzer (its terms differ from what was indexed)."""
        logger.warning("BM25: the text analyzer changed since these chunks were indexed; stemming them again")
        self._conn.execute("INSERT INTO chunk_terms (chunk_terms) VALUES ('delete-all')")
        rows = self._conn.execute("SELECT key, id, source, body FROM chunk_rows").fetchall()
        self._conn.execute("DELETE FROM chunk_rows")
        self._write([_row(_document(*r[1:])) for r in rows])

    # -- DocumentIndex ------------------------------------------------------------------
    def upsert(self, items: Sequence[Document], /, **kwargs: Any) -> UpsertResponse:
        if any(doc.id is None for doc in items):
            raise ValueError("LexicalIndex.upsert needs documents with an id")
        rows = [_row(doc) for doc in items]
        with self._lock, self._conn:
            self._stats = None
            self._remove([r[0] for r in rows])
            self._write(rows)
        if self.on_batch is not None:
            self.on_batch(len(rows))
        return {"succeeded": [r[1] for r in rows], "failed": []}

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> DeleteResponse:
        if ids is None:
            raise ValueError("LexicalIndex.delete needs ids")
        with self._lock, self._conn:
            self._stats = None
            deleted = self._remove([row_key(i) for i in ids])
        return {"num_deleted": deleted, "succeeded": list(ids), "failed": []}

    def get(self, ids: Sequence[str], /, **kwargs: Any) -> list[Document]:
        with self._lock:
            rows = select_in(self._conn, "SELECT id, source, body FROM chunk_rows WHERE key", [row_key(i) for i in ids])
        found = {r[0]: _document(*r) for r in rows}
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
        terms = self._worth_scoring(terms)
        match = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
        where, params = sql_in_collections(collections)
        if where:  # the filter reads each match's row
            query = ("SELECT r.id, r.source, r.body, -bm25(chunk_terms) FROM chunk_terms JOIN chunk_rows r "
                     f"ON r.key = chunk_terms.rowid WHERE chunk_terms MATCH ?{where} ORDER BY bm25(chunk_terms) LIMIT ?")
        else:  # rank first, read only the best k rows
            query = ("SELECT r.id, r.source, r.body, hit.score FROM (SELECT rowid AS key, -bm25(chunk_terms) AS score "
                     "FROM chunk_terms WHERE chunk_terms MATCH ? ORDER BY bm25(chunk_terms) LIMIT ?) AS hit "
                     "JOIN chunk_rows r ON r.key = hit.key ORDER BY hit.score DESC")
        with self._lock:
            rows = self._conn.execute(query, (f"terms : ({match})", *params, k)).fetchall()
        return [(_document(*r[:3]), float(r[3])) for r in rows]

    def _worth_scoring(self, terms: list[str]) -> list[str]:
        """``terms`` less those in very many chunks (see ``COMMON_TERM_CHUNKS``); all of them
        when every one is that common."""
        with self._lock:
            self._current_stats()
            chunks = self._stats[1]
        if chunks <= COMMON_TERM_CHUNKS:
            return terms
        holding = self._holding(terms)
        cap = max(COMMON_TERM_CHUNKS, COMMON_TERM_SHARE * chunks)
        return [t for t in terms if holding[t] <= cap] or terms

    def _holding(self, terms: Sequence[str]) -> dict[str, int]:
        """Chunks holding each term, cached until the file changes."""
        with self._lock:
            self._current_stats()
            holding = self._stats[2]
            if len(holding) > 100_000:  # a long-lived server's questions: keep the cache small
                holding.clear()
            for term in terms:
                if term not in holding:
                    row = self._conn.execute("SELECT doc FROM temp.chunk_vocab WHERE term = ?", (term,)).fetchone()
                    holding[term] = row[0] if row else 0
            return {t: holding[t] for t in terms}

    def _current_stats(self) -> None:
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]  # moves on others' writes
        if self._stats is None or self._stats[0] != version:
            self._stats = (version, self.count(), {}, {})

    def sources_naming(self, name: str, most: int = NAMED_IN_MOST) -> set[str] | None:
        """The files whose chunks hold the word ``name`` (in any supported language's stem);
        a misspelling finds the indexed word it is closest to (same first letter,
        similarity >= ``MISSPELT``). None when it is in more than ``most`` chunks: too common
        to tell one file from another."""
        terms = list(dict.fromkeys(analyze(name, LANGUAGES)))
        if not terms:
            return None
        counts = self._holding(terms)
        if not any(counts.values()):
            terms = self._closest(terms)
            counts = self._holding(terms)
        held = [t for t in terms if counts[t]]
        if sum(counts[t] for t in held) > most:
            return None
        if not held:
            return set()
        match = " OR ".join(f'"{t}"' for t in held)
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT r.source FROM chunk_terms JOIN chunk_rows r ON r.key = chunk_terms.rowid "
                "WHERE chunk_terms MATCH ?", (f"terms : ({match})",)).fetchall()
        return {row[0] for row in rows}

    def _closest(self, terms: list[str]) -> list[str]:
        from rapidfuzz import fuzz, process

        found: list[str] = []
        for term in terms:
            if len(term) < 5 or term.isdigit():  # too short to tell a misspelling; a number is another one
                continue
            head = term[:1]
            with self._lock:  # a letter's terms are read once per version of the file (30 ms at 163k chunks)
                self._current_stats()
                heads = self._stats[3]
                if head not in heads:
                    heads[head] = [row[0] for row in self._conn.execute(
                        "SELECT term FROM temp.chunk_vocab WHERE term >= ? AND term < ?", (head, head + "\U0010ffff"))]
                vocabulary = heads[head]
            # A word that only lengthens or shortens the other is another word ("normandie" is
            # not "norman"); a misspelling changes letters inside ("fibonnaci", "mitterand").
            found += [word for word, _, _ in process.extract(term, vocabulary, scorer=fuzz.ratio,
                                                              score_cutoff=MISSPELT, limit=3)
                      if not (word.startswith(term) or term.startswith(word))]
        return list(dict.fromkeys(found))

    def ids(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._conn.execute("SELECT id FROM chunk_rows")}

    def count(self) -> int:
        with self._lock:
            # one row a chunk, as chunk_rows, in a table of small rows: 0.6 ms at 164k chunks (chunk_rows: 21-139 ms)
            return self._conn.execute("SELECT count(*) FROM chunk_terms_docsize").fetchone()[0]

    def release_free_pages(self) -> None:
        """Give the pages deleted rows left back to the disk (a file made with incremental auto-vacuum)."""
        with self._lock:
            release_free_pages(self._conn)

    def close(self) -> None:
        self._conn.close()
