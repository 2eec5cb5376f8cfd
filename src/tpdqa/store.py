"""The persistent store in ``index/`` and the incremental sync of a documents folder.

What lives there:

- ``chroma/``: one Chroma collection per embedding model (or the same collections on
  a ``chroma run`` server when ``chroma_url`` is set);
- ``records.sqlite``: LangChain's indexing records (``SQLRecordManager``), one
  namespace per collection and one for the BM25 index, plus the file manifest;
- ``bm25.sqlite``: the lexical index (:mod:`tpdqa.lexical`).

A sync reads the folder, chunks it and hands the chunks to LangChain's
``langchain_core.indexing.index`` once per destination: chunks whose id is already
recorded are skipped without embedding, new ones are embedded and written, chunks
of a changed file that no longer exist are deleted (``cleanup="scoped_full"``), and
files gone from the folder are deleted from every destination. Writes happen before
their record, so a killed run leaves chunks that the next run finds and completes.

    >>> from tpdqa.settings import Settings
    >>> from tpdqa.store import Store
    >>> store = Store(Settings(documents_dir="documents", index_dir="index"))
    >>> stats = store.sync()
    >>> stats.failed
    0
"""

from __future__ import annotations

import sqlite3
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from langchain_core.documents import Document

from tpdqa.embeddings import collection_name, get_embeddings
from tpdqa.ingest import FileError, chunk_documents, load_folder
from tpdqa.lexical import LexicalIndex
from tpdqa.settings import Settings

# (stage, done, total): "embedding <model>", "bm25", ... ; used by the CLI's and UI's progress bars.
Progress = Callable[[str, int, int], None]


@dataclass
class IndexStats:
    """What a sync did, counted in files (``added`` ... ``failed``) and in chunks."""

    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks: int = 0
    embedded: int = 0
    chunks_deleted: int = 0
    errors: list[FileError] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = [{"source": e.source, "reason": e.reason} for e in self.errors]
        return data


@dataclass(frozen=True)
class FileRecord:
    source: str
    sha256: str
    chunks: int
    indexed_at: float


class Store:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.index_dir = Path(settings.index_dir)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self._client = None
        self._dense: dict[str, Any] = {}
        self._records: dict[str, Any] = {}
        self._lock = threading.RLock()  # short: lazy clients, the manifest connection
        self._sync_lock = threading.Lock()  # long: one sync at a time; questions are not blocked by it
        self.lexical = LexicalIndex.open(self.index_dir / "bm25.sqlite")
        self._manifest = sqlite3.connect(str(self.index_dir / "records.sqlite"), check_same_thread=False)
        with self._manifest:
            self._manifest.execute(
                "CREATE TABLE IF NOT EXISTS tpdqa_files (source TEXT PRIMARY KEY, sha256 TEXT, chunks INTEGER, "
                "indexed_at REAL, done INTEGER)"
            )

    # -- destinations ------------------------------------------------------------------
    @property
    def target(self) -> str:
        return self.settings.chroma_url or "local"

    @property
    def client(self):
        if self._client is None:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            chroma_settings = ChromaSettings(anonymized_telemetry=False)
            if self.settings.chroma_url:
                url = urlparse(self.settings.chroma_url)
                if not url.hostname:
                    raise ValueError(f"chroma_url '{self.settings.chroma_url}' is not a URL like http://127.0.0.1:8000")
                self._client = chromadb.HttpClient(
                    host=url.hostname,
                    port=url.port or (443 if url.scheme == "https" else 8000),
                    ssl=url.scheme == "https",
                    settings=chroma_settings,
                )
            else:
                self._client = chromadb.PersistentClient(path=str(self.index_dir / "chroma"), settings=chroma_settings)
        return self._client

    def dense(self, model: str):
        """The langchain-chroma store of one embedding model (cosine space)."""
        with self._lock:
            if model not in self._dense:
                from langchain_chroma import Chroma

                self._dense[model] = Chroma(
                    collection_name=collection_name(model),
                    embedding_function=get_embeddings(model),
                    client=self.client,
                    collection_configuration={"hnsw": {"space": "cosine"}},
                )
            return self._dense[model]

    def records(self, namespace: str):
        with self._lock:
            if namespace not in self._records:
                from langchain_classic.indexes import SQLRecordManager

                manager = SQLRecordManager(namespace, db_url=f"sqlite:///{(self.index_dir / 'records.sqlite').resolve()}")
                manager.create_schema()
                self._records[namespace] = manager
            return self._records[namespace]

    def _destinations(self) -> list[tuple[str, str, Any]]:
        """(label, record namespace, destination) for every index a chunk goes to."""
        out = [(f"embedding {m}", f"{self.target}|{collection_name(m)}", m) for m in self.settings.embedding_models]
        out.append(("BM25", "lexical|bm25-fts5-v1", None))
        return out

    # -- sync --------------------------------------------------------------------------
    def sync(self, progress: Progress | None = None) -> IndexStats:
        """Bring every index up to date with the documents folder (see module doc)."""
        with self._sync_lock:
            return self._sync(progress)

    def _sync(self, progress: Progress | None) -> IndexStats:
        from langchain_core.indexing import index

        started = time.perf_counter()
        loaded = load_folder(self.settings.documents_dir)
        chunks = chunk_documents(loaded.documents, self.settings.chunk_size, self.settings.chunk_overlap)
        per_source = Counter(c.metadata["source"] for c in chunks)
        previous = {r.source: r for r in self.files(include_pending=True)}
        failed_sources = {e.source for e in loaded.errors}
        gone = [s for s in previous if s not in loaded.hashes and s not in failed_sources]

        stats = IndexStats(failed=len(loaded.errors), errors=list(loaded.errors), chunks=len(chunks))
        for source, sha in loaded.hashes.items():
            old = previous.get(source)
            if old is None or not old.indexed_at:
                stats.added += 1
            elif old.sha256 != sha:
                stats.updated += 1
            else:
                stats.unchanged += 1
        stats.deleted = len(gone)

        # Mark first, index second: a killed run leaves these 'pending', and a file
        # deleted before the next run is still known and gets cleaned up.
        with self._lock, self._manifest:
            self._manifest.executemany(
                "INSERT INTO tpdqa_files (source, sha256, chunks, indexed_at, done) VALUES (?, ?, ?, 0, 0) "
                "ON CONFLICT(source) DO UPDATE SET done = CASE WHEN sha256 = excluded.sha256 THEN done ELSE 0 END",
                [(s, sha, per_source.get(s, 0)) for s, sha in loaded.hashes.items()],
            )

        for label, namespace, model in self._destinations():
            records = self.records(namespace)
            destination = self._destination(model)
            todo = len(chunks) - sum(records.exists([c.id for c in chunks]))
            report = _reporter(progress, label, todo)
            listening = get_embeddings(model).reporting(report) if model is not None else nullcontext()
            with listening:
                result = index(
                    chunks,
                    records,
                    destination,
                    cleanup="scoped_full",
                    source_id_key="source",
                    key_encoder=lambda doc: doc.id,
                    batch_size=64,
                )
            if model is None:
                report(todo)
            self._delete_sources(records, destination, gone)
            self._reconcile(records, destination, model)
            if model is not None:
                stats.embedded = max(stats.embedded, result["num_added"])
                stats.chunks_deleted = max(stats.chunks_deleted, result["num_deleted"])

        now = time.time()
        with self._lock, self._manifest:
            self._manifest.executemany(
                "UPDATE tpdqa_files SET sha256 = ?, chunks = ?, indexed_at = ?, done = 1 WHERE source = ?",
                [(sha, per_source.get(s, 0), now, s) for s, sha in loaded.hashes.items()
                 if previous.get(s) is None or previous[s].sha256 != sha or not previous[s].indexed_at],
            )
            self._manifest.executemany("DELETE FROM tpdqa_files WHERE source = ?", [(s,) for s in gone])
        stats.seconds = time.perf_counter() - started
        return stats

    def _destination(self, model: str | None):
        return self.lexical if model is None else self.dense(model)

    def _delete_sources(self, records, destination, sources: list[str]) -> None:
        if not sources:
            return
        keys = records.list_keys(group_ids=sources)
        if keys:
            destination.delete(ids=keys)
            records.delete_keys(keys)

    def _reconcile(self, records, destination, model: str | None) -> None:
        """Drop chunks a killed run wrote but never recorded, if their file is gone since."""
        recorded = set(records.list_keys())
        stored = self.lexical.ids() if model is None else set(self.dense(model).get(include=[])["ids"])
        orphans = sorted(stored - recorded)
        if orphans:
            destination.delete(ids=orphans)

    # -- reading -----------------------------------------------------------------------
    def files(self, include_pending: bool = False) -> list[FileRecord]:
        query = "SELECT source, sha256, chunks, indexed_at FROM tpdqa_files"
        if not include_pending:
            query += " WHERE done = 1"
        with self._lock:
            rows = self._manifest.execute(query + " ORDER BY source").fetchall()
        return [FileRecord(*row) for row in rows]

    def is_empty(self) -> bool:
        return not self.files()

    def dense_search(self, model: str, query: str, k: int) -> list[tuple[Document, float]]:
        """Top ``k`` chunks by cosine similarity (1 - Chroma's cosine distance)."""
        store = self.dense(model)
        size = store._collection.count()  # one call: on a server each is a request
        if size == 0:
            return []
        hits = store.similarity_search_with_score(query, k=min(k, size))
        return [(doc, 1.0 - float(distance)) for doc, distance in hits]

    def models_loaded(self) -> list[str]:
        return [m for m in self.settings.embedding_models if get_embeddings(m).loaded]

    def close(self) -> None:
        self.lexical.close()
        self._manifest.close()


def _reporter(progress: Progress | None, label: str, total: int) -> Callable[[int], None]:
    done = 0
    if progress is not None:
        progress(label, 0, total)

    def report(n: int) -> None:
        nonlocal done
        done = min(total, done + n)
        if progress is not None:
            progress(label, done, total)

    return report


warnings.filterwarnings("ignore", message=".*DocumentIndex.*")
