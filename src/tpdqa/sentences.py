"""What the answerer reads in a chunk: its quotable sentences, their content words, and
their vectors in the judge encoder (the multilingual USE), computed once at indexing.

Encoding every candidate sentence and word at question time was most of an answer's
cost; :class:`SentenceIndex` keeps them in ``index/sentences.sqlite`` next to the BM25
index, filled by the same incremental sync (it is one more LangChain ``DocumentIndex``
destination, with its own records). A chunk it does not hold yet (an index built by an
older version, a chunk another replica wrote to a shared Chroma server) is encoded when
first asked about and kept, so it is a cache of pure functions of the chunk's text:
answers do not depend on whether it was filled at indexing or at question time.

Vectors are kept as int8 with a scale per vector (:func:`pack`), a chunk's units as
compressed JSON: a quarter and a half of the float16 and plain text an index held before
(still read as they are). A cosine moves by about 1e-3, far below what any threshold of
the answerer resolves.

    >>> from langchain_core.documents import Document
    >>> from tpdqa.embeddings import get_embeddings
    >>> from tpdqa.sentences import SentenceIndex
    >>> idx = SentenceIndex.open(":memory:", get_embeddings("use-multilingual-v3"))
    >>> doc = Document(id="a", page_content="Le Japon est leader de la robotique. La Corée domine les puces.",
    ...                metadata={"source": "x.txt", "lang": "fr"})
    >>> _ = idx.upsert([doc])
    >>> units, vectors = idx.lookup([doc])[0]
    >>> units, vectors.shape
    (['Le Japon est leader de la robotique.', 'La Corée domine les puces.'], (2, 512))
"""

from __future__ import annotations

import json
import sqlite3
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core._api import LangChainBetaWarning
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from pydantic import ConfigDict, PrivateAttr

from tpdqa.ingest import chunk_body
from tpdqa.ingest.base import is_row
from tpdqa.language import _stopwords, fold, split_sentences, words
from tpdqa.records import release_free_pages, select_in

with warnings.catch_warnings():
    warnings.simplefilter("ignore", LangChainBetaWarning)
    from langchain_core.indexing.base import DeleteResponse, DocumentIndex, UpsertResponse

MIN_UNIT_CHARS = 16  # shorter units ("Oui.", "Page 3") are never quoted

# Words that say what kind of answer is wanted, not what it is about.
QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how does did do is are was were according article text document "
    "documents say says said tell much many kind type quel quelle quels quelles qui que quoi quand où pourquoi "
    "comment combien selon article texte document documents dit dire est sont".split()
)


def content_words(text: str) -> list[str]:
    stop = _stopwords()
    return list(dict.fromkeys(
        w for w in words(text) if len(w) > 2 and w not in QUESTION_WORDS and fold(w) not in stop
    ))


def quotable_units(text: str, lang: str) -> list[str]:
    """Sentences of a chunk, each an exact substring of it; a run of short lines without
    end punctuation (a heading, a date, a place) stays one unit, so 'Événement TechCrunch /
    San Francisco / 27-29 octobre' can be quoted whole; a table row (``label — header: value;
    …``) is a unit of its own, so the row that answers is quoted, not its table."""
    units: list[str] = []
    run: list[str] = []
    for line in text.split("\n"):
        stripped = line.strip()
        row = bool(stripped) and is_row(stripped)
        if stripped and len(stripped) < 60 and stripped[-1] not in ".!?:;»\"" and not row:
            run.append(stripped)
            continue
        if run:
            units.append("\n".join(run))
            run = []
        if stripped:
            units.extend([stripped] if row else split_sentences(stripped, lang))
    if run:
        units.append("\n".join(run))
    return units


def chunk_units(doc: Document, lang: str = "en") -> list[str]:
    """The units of a chunk the answerer may quote: its body's sentences, long enough to say something."""
    body = chunk_body(doc.page_content, doc.metadata)
    return [u for u in quotable_units(body, doc.metadata.get("lang", lang)) if len(u) >= MIN_UNIT_CHARS]


def normalise(vectors: Any) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    return array / (np.linalg.norm(array, axis=1, keepdims=True) + 1e-9)


def pack(vectors: np.ndarray) -> bytes:
    """Normalised vectors (one per row) as a marker byte, a float16 scale per row and int8 values.
    The blob's length is odd, which tells it from the float16 rows older indexes hold."""
    scales = np.abs(vectors).max(axis=1, keepdims=True) / 127
    scales[scales == 0] = 1.0
    values = np.clip(np.rint(vectors / scales), -127, 127).astype(np.int8)
    return b"\x01" + scales.astype(np.float16).tobytes() + values.tobytes()


def unpack(blob: bytes, rows: int) -> np.ndarray:
    """The normalised float32 vectors of :func:`pack` (or of an older float16 blob)."""
    if len(blob) % 2 == 0:
        return np.frombuffer(blob, dtype=np.float16).reshape(rows, -1).astype(np.float32)
    scales = np.frombuffer(blob, dtype=np.float16, count=rows, offset=1).astype(np.float32)
    values = np.frombuffer(blob, dtype=np.int8, offset=1 + 2 * rows).reshape(rows, -1)
    return normalise(values.astype(np.float32) * scales[:, None])


def pack_units(units: list[str]) -> bytes:
    return zlib.compress(json.dumps(units, ensure_ascii=False).encode("utf-8"))


def unpack_units(value: bytes | str) -> list[str]:
    """A chunk's units as :func:`pack_units` stored them (or as plain JSON, older indexes)."""
    return json.loads(zlib.decompress(value) if isinstance(value, bytes) else value)


# A chunk's row (about 2.8 KB) does not fit twice in SQLite's default 4 KB page: a new file
# takes 64 KB pages, which fill to about 97 % instead of 70 % (an existing file keeps its own).
_SCHEMA = """
PRAGMA page_size = 65536;
PRAGMA auto_vacuum = INCREMENTAL;
CREATE TABLE IF NOT EXISTS sentences (chunk_id TEXT PRIMARY KEY, source TEXT, units TEXT, vectors BLOB);
CREATE TABLE IF NOT EXISTS words (word TEXT PRIMARY KEY, vector BLOB);
"""


class SentenceIndex(DocumentIndex):
    """Quotable units of each chunk and their judge vectors; judge vectors of words."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    path: str
    embeddings: Any
    _conn: sqlite3.Connection = PrivateAttr()
    _lock: Any = PrivateAttr(default_factory=threading.RLock)
    _words: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)
    _scoped: Any = PrivateAttr(default_factory=threading.local)  # this thread's precomputed units
    on_batch: Callable[[int], None] | None = None  # progress: chunks written

    @classmethod
    def open(cls, path: str | Path, embeddings: Any) -> SentenceIndex:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        index = cls(path=str(path), embeddings=embeddings)
        index._conn = sqlite3.connect(str(path), check_same_thread=False)
        index._conn.executescript(_SCHEMA)
        return index

    # -- DocumentIndex ------------------------------------------------------------------
    def upsert(self, items: Sequence[Document], /, **kwargs: Any) -> UpsertResponse:
        rows = self._encode(list(items))
        if self.on_batch is not None:
            self.on_batch(len(rows))
        return {"succeeded": [r[0] for r in rows], "failed": []}

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> DeleteResponse:
        if ids is None:
            raise ValueError("SentenceIndex.delete needs ids")
        with self._lock, self._conn:
            deleted = self._conn.executemany("DELETE FROM sentences WHERE chunk_id = ?", [(i,) for i in ids]).rowcount
        return {"num_deleted": deleted, "succeeded": list(ids), "failed": []}

    def get(self, ids: Sequence[str], /, **kwargs: Any) -> list[Document]:
        with self._lock:
            rows = self._chunks(list(ids))
        return [Document(id=i, page_content="\n".join(unpack_units(rows[i][2])), metadata={"source": rows[i][1]})
                for i in ids if i in rows]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun | None = None, **kwargs: Any
    ) -> list[Document]:
        raise NotImplementedError("SentenceIndex is read by chunk id (lookup), not searched")

    # -- tpdqa -----------------------------------------------------------------------------
    def lookup(self, docs: Sequence[Document], lang: str = "en") -> list[tuple[list[str], np.ndarray]]:
        """(units, unit vectors) of each chunk, encoded now and kept if not held yet."""
        ids = [_chunk_key(d) for d in docs]
        with self._lock:
            found = self._chunks(ids)
        missing = [d for d, i in zip(docs, ids) if i not in found]
        if missing:
            found.update({r[0]: r for r in self._encode(missing, lang)})
        out = []
        for i in ids:
            units = unpack_units(found[i][2])
            if not units:  # a chunk too short to quote ("mu text"): nothing to judge
                out.append(([], np.zeros((0, 0), dtype=np.float32)))
                continue
            out.append((units, unpack(found[i][3], len(units))))
        return out

    def word_vectors(self, items: Sequence[str]) -> np.ndarray:
        """Normalised judge vectors of words (memory, then this file, then the encoder)."""
        wanted = [w for w in dict.fromkeys(items) if w not in self._words]
        if wanted:
            with self._lock:
                for word, blob in select_in(self._conn, "SELECT word, vector FROM words WHERE word", wanted):
                    self._words[word] = unpack(blob, 1)[0]
            new = [w for w in wanted if w not in self._words]
            if new:
                blobs = [pack(v[None, :]) for v in normalise(self.embeddings.embed_documents(new))]
                with self._lock, self._conn:
                    self._conn.executemany("INSERT OR REPLACE INTO words VALUES (?, ?)", list(zip(new, blobs)))
                for word, blob in zip(new, blobs):  # as read back later: answers never depend on which
                    self._words[word] = unpack(blob, 1)[0]
        if not items:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._words[w] for w in items])

    @contextmanager
    def precomputed_units(self, units: Mapping[str, list[str]]) -> Iterator[None]:
        """In this thread, take each chunk's units from ``units`` (chunk id -> :func:`chunk_units`,
        split elsewhere: sentence splitting is most of the single writer's own work)."""
        before, self._scoped.units = getattr(self._scoped, "units", None), units
        try:
            yield
        finally:
            self._scoped.units = before

    def units_of(self, docs: Sequence[Document], lang: str = "en") -> list[list[str]]:
        """:func:`chunk_units` of each chunk (or what :meth:`precomputed_units` gave for it)."""
        known = getattr(self._scoped, "units", None)
        if known is None:
            return [chunk_units(d, lang) for d in docs]
        return [known[key] if key in known else chunk_units(d, lang) for d, key in ((d, _chunk_key(d)) for d in docs)]

    def texts_to_encode(self, docs: Sequence[Document]) -> list[str]:
        """What indexing ``docs`` will ask the encoder for: their quotable units and the units'
        content words not held yet (a cluster computes them ahead, :mod:`tpdqa.cluster`)."""
        units = [u for doc_units in self.units_of(docs) for u in doc_units]
        words = [w for w in dict.fromkeys(w for u in units for w in content_words(u)) if w not in self._words]
        with self._lock:
            held = {row[0] for row in select_in(self._conn, "SELECT word FROM words WHERE word", words)}
        return list(dict.fromkeys(units + [w for w in words if w not in held]))

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM sentences").fetchone()[0]

    def ids(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._conn.execute("SELECT chunk_id FROM sentences")}

    def release_free_pages(self) -> None:
        """Give the pages deleted rows left back to the disk (a file made with incremental auto-vacuum)."""
        with self._lock:
            release_free_pages(self._conn)

    def close(self) -> None:
        self._conn.close()

    def _chunks(self, ids: list[str]) -> dict[str, tuple]:
        return {r[0]: r for r in select_in(self._conn, "SELECT chunk_id, source, units, vectors FROM sentences WHERE chunk_id", ids)}

    def _encode(self, docs: list[Document], lang: str = "en") -> list[tuple]:
        per_doc = self.units_of(docs, lang)
        flat = [u for units in per_doc for u in units]
        distinct = list(dict.fromkeys(flat))  # overlapping chunks share sentences: encode each once
        if flat:
            encoded = dict(zip(distinct, normalise(self.embeddings.embed_documents(distinct))))
            vectors = np.stack([encoded[u] for u in flat])
        self.word_vectors([w for u in flat for w in content_words(u)])
        rows, start = [], 0
        for doc, units in zip(docs, per_doc):
            blob = pack(vectors[start:start + len(units)]) if units else b""
            start += len(units)
            rows.append((_chunk_key(doc), doc.metadata.get("source", ""), pack_units(units), blob))
        with self._lock, self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO sentences VALUES (?, ?, ?, ?)", rows)
        return rows


def _chunk_key(doc: Document) -> str:
    key = doc.id or doc.metadata.get("chunk_id")
    if not key:
        raise ValueError("SentenceIndex needs chunks with an id")
    return key


class WordMatcher:
    """Word-to-word similarity in the judge encoder: 1.0 for the same word, ~0.85 for a
    translation or a derivation, ~0.5 for unrelated. Word vectors come from ``index``
    when one is given (kept on disk), else from a cache in memory."""

    def __init__(self, embeddings: Any, index: SentenceIndex | None = None) -> None:
        self.embeddings = embeddings
        self.index = index
        self._vectors: dict[str, np.ndarray] = {}

    def best_matches(self, words_a: list[str], words_b: list[str]) -> list[float]:
        """For each word of ``words_a``, its best cosine with a word of ``words_b``."""
        if not words_a or not words_b:
            return []
        return [float(x) for x in self.similarity(words_a, words_b).max(axis=1)]

    def similarity(self, words_a: list[str], words_b: list[str]) -> np.ndarray:
        """Cosines of every word of ``words_a`` with every word of ``words_b``."""
        if not words_a or not words_b:
            return np.zeros((len(words_a), len(words_b)), dtype=np.float32)
        return self._embed(words_a) @ self._embed(words_b).T

    def _embed(self, items: list[str]) -> np.ndarray:
        if self.index is not None:
            return self.index.word_vectors(items)
        missing = [w for w in dict.fromkeys(items) if w not in self._vectors]
        if missing:
            for word, vector in zip(missing, normalise(self.embeddings.embed_documents(missing))):
                self._vectors[word] = vector
        return np.stack([self._vectors[w] for w in items])
