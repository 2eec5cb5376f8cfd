"""The persistent store in ``index/`` and the incremental sync of a documents folder.

What lives there:

- ``chroma/``: one Chroma collection per embedding model, vectors only (the texts are in
  ``bm25.sqlite``: :mod:`tpdqa.vectors`), or the same collections, texts included, on a
  ``chroma run`` server when ``chroma_url`` is set;
- ``records.sqlite``: the indexing records LangChain's ``index`` keeps (:mod:`tpdqa.records`),
  one namespace per destination, plus the file manifest;
- ``bm25.sqlite``: the lexical index (:mod:`tpdqa.lexical`), which also holds every chunk's
  text and metadata once: dense hits are read back from it by id;
- ``sentences.sqlite``: each chunk's quotable sentences and their vectors, and word
  vectors, for the answerer (:mod:`tpdqa.sentences`);
- ``write.lock``: held by the one process that indexes (CLI, chat, a second server);
  another waits for it (``lock_timeout``) instead of writing beside it.

Several processes may read one index while one writes it. The SQLite files are shared
as they are; Chroma's local client keeps its vector index in memory and does not see
another process's writes, so each sync ends by writing a new *generation* and a reader
that finds a generation it did not write reopens its Chroma client before its next
search (:meth:`Store.refresh`). A store whose files were deleted under it reports
:meth:`Store.lost`; the :class:`~tpdqa.assistant.Assistant` then rebuilds it.

A sync reads the folder, chunks it and hands the chunks to LangChain's
``langchain_core.indexing.index`` once per destination: a file whose bytes were fully
indexed (with the same chunking and destinations) is not even parsed, chunks whose id
is already recorded are skipped without embedding, new ones are embedded and written,
chunks of a changed file that no longer exist are deleted (``cleanup="scoped_full"``),
and files gone from the folder are deleted from every destination. Writes happen before
their record, so a killed run leaves chunks that the next run finds and completes.

A sync has two phases. *Searchable*: BM25, the sentences and the fastest encoder (USE)
take the changed files, which are then marked searchable and answerable by every reader
(a new generation). *Complete*: the slower encoders (e5, MiniLM) fill in behind; until
then retrieval scales a pending chunk's fused score to the lists that can hold it
(:func:`tpdqa.retrieval.fuse`). A run killed between the phases leaves files searchable,
and the next run completes them.

    >>> from tpdqa.settings import Settings
    >>> from tpdqa.store import Store
    >>> store = Store(Settings(documents_dir="documents", index_dir="index"))
    >>> stats = store.sync()
    >>> stats.failed
    0
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from filelock import FileLock, Timeout
from langchain_core.documents import Document

from tpdqa.embeddings import collection_name, get_embeddings
from tpdqa.ingest import INGEST_VERSION, FileError, collection_of, load_folder, parse_side_by_side, sql_in_collections
from tpdqa.lexical import LexicalIndex
from tpdqa.records import SQLiteRecordManager, release_free_pages
from tpdqa.sentences import SentenceIndex
from tpdqa.settings import USE_MODEL, Settings

log = logging.getLogger(__name__)

# (stage, done, total): "reading files", "searchable · BM25", "complete · embedding <model>", ...;
# used by the CLI's and UI's progress bars.
Progress = Callable[[str, int, int], None]
# The stage reported (with total 0) while another process holds the index's write lock.
WAITING = "waiting for another process to finish indexing"
READING = "reading files"  # a stage counted in files, not chunks
SEARCHABLE, COMPLETE = "searchable", "complete"  # the two phases: each other stage's label starts with one
# The files of an index this module owns: what a rebuild removes (documents are the source of truth).
INDEX_FILES = ("records.sqlite", "bm25.sqlite", "sentences.sqlite")


class IndexBusyError(RuntimeError):
    """Another process kept the index's write lock past ``lock_timeout``."""


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
    searchable_s: float = 0.0  # when every changed file could be found (BM25, sentences, the fastest encoder)
    complete_s: float = 0.0  # when the slower encoders had them too (= seconds; 0: stopped when searchable)

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
    done: bool = True  # False: not searchable yet (changed since, or a run was stopped)
    complete: bool = True  # False: searchable, but the slower encoders have not read it yet


@dataclass(frozen=True)
class PartRecord:
    """A document inside an indexed file (an e-mail's attachment, a mailbox's message)."""

    name: str
    title: str
    chunks: int


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
        self._searches = _SharedLock()  # searches share Chroma's client; reopening it waits for them
        self._refreshed = float("-inf")
        self.lexical = LexicalIndex.open(self.index_dir / "bm25.sqlite")
        self.sentences = SentenceIndex.open(self.index_dir / "sentences.sqlite", get_embeddings(USE_MODEL))
        self._manifest = sqlite3.connect(str(self.index_dir / "records.sqlite"), check_same_thread=False,
                                         timeout=30)
        self._manifest.execute("PRAGMA auto_vacuum = INCREMENTAL")  # a new file only: see release_free_pages
        with self._manifest:
            # Two processes may open a new or older index at once (two `tpdqa index` runs): the
            # schema is checked and changed by one at a time (the second sees the first's columns).
            self._manifest.execute("BEGIN IMMEDIATE")
            self._manifest.execute(
                "CREATE TABLE IF NOT EXISTS tpdqa_files (source TEXT PRIMARY KEY, sha256 TEXT, chunks INTEGER, "
                "indexed_at REAL, done INTEGER, complete INTEGER DEFAULT 1)"
            )
            self._manifest.execute("CREATE TABLE IF NOT EXISTS tpdqa_meta (key TEXT PRIMARY KEY, value TEXT)")
            self._manifest.execute("CREATE TABLE IF NOT EXISTS tpdqa_failed (source TEXT PRIMARY KEY, reason TEXT)")
            self._manifest.execute("CREATE TABLE IF NOT EXISTS tpdqa_parts (source TEXT, part TEXT, title TEXT, "
                                   "chunks INTEGER, PRIMARY KEY (source, part))")
            columns = {row[1] for row in self._manifest.execute("PRAGMA table_info(tpdqa_files)")}
            if "complete" not in columns:  # an index from before progressive indexing: all complete
                self._manifest.execute("ALTER TABLE tpdqa_files ADD COLUMN complete INTEGER DEFAULT 1")
        self._manifest.create_function("collection_of", 1, collection_of, deterministic=True)
        self._generation = self._meta("generation")
        self._collections: tuple[str | None, list[str]] | None = None  # (generation, names)
        self._incomplete: tuple[str | None, frozenset[str]] | None = None  # (generation, sources)
        self._identity = {name: _identity(self.index_dir / name) for name in INDEX_FILES}

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
                self._identity["chroma/chroma.sqlite3"] = _identity(self.index_dir / "chroma" / "chroma.sqlite3")
        return self._client

    def dense(self, model: str):
        """The langchain-chroma store of one embedding model (cosine space); locally, vectors
        only (:mod:`tpdqa.vectors`: the texts are in the BM25 index)."""
        with self._lock:
            if model not in self._dense:
                if self.settings.chroma_url:
                    from langchain_chroma import Chroma
                else:
                    from tpdqa.vectors import VectorsOnlyChroma as Chroma

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
                manager = SQLiteRecordManager(namespace, self.index_dir / "records.sqlite")
                manager.create_schema()
                self._records[namespace] = manager
            return self._records[namespace]

    def _destinations(self) -> list[tuple[str, str, str | Any]]:
        """(label, record namespace, target) for every index a chunk goes to: a model name
        (its Chroma collection, opened only when written to) or a local index (BM25, the
        answerer's sentences)."""
        out: list[tuple[str, str, str | Any]] = [
            (f"embedding {m}", f"{self.target}|{collection_name(m)}", m) for m in self.settings.embedding_models]
        out.append(("BM25", "lexical|bm25-fts5-v1", self.lexical))
        out.append(("sentences", f"sentences|{collection_name(USE_MODEL)}-v4", self.sentences))
        return out

    def later_models(self) -> list[str]:
        """The encoders of the *complete* phase: all but the fastest (USE when configured, else
        the first). The others (the fastest, BM25, the sentences) make a file searchable."""
        models = self.settings.embedding_models
        first = USE_MODEL if USE_MODEL in models else models[0] if models else None
        return [m for m in models if m != first]

    def _signature(self) -> str:
        """What the chunks of an unchanged file depend on: when it changes, every file is read again."""
        return json.dumps({"ingest": INGEST_VERSION, "ocr": self.settings.ocr_languages,
                           "chunk_size": self.settings.chunk_size,
                           "chunk_overlap": self.settings.chunk_overlap,
                           "destinations": [namespace for _, namespace, _ in self._destinations()]})

    # -- sync --------------------------------------------------------------------------
    def sync(self, progress: Progress | None = None, searchable_only: bool = False, cluster: Any = None) -> IndexStats:
        """Bring every index up to date with the documents folder (see module doc); with
        ``searchable_only``, stop after the searchable phase (the next sync completes it);
        with ``cluster`` (:class:`tpdqa.cluster.RayCluster`), files are parsed and each phase's
        texts encoded there, and this process writes what comes back.

        One process writes at a time: while another holds ``write.lock``, this one reports
        :data:`WAITING` and waits up to ``lock_timeout`` seconds, then raises :class:`IndexBusyError`.
        """
        with self._sync_lock, self._write_lock(progress):
            self.refresh()  # what another process wrote before us, seen through a current client
            self._label_collections()
            for _, namespace, _ in self._destinations():  # records an older version wrote move over now
                self.records(namespace)
            return self._sync(progress, searchable_only, cluster)

    def _label_collections(self) -> None:
        """Once per index: chunks written before collections existed get their ``collection``
        metadata (Chroma filters on it), without re-embedding."""
        if self._meta("collections") == "1":
            return
        if self._meta("signature") is not None:  # an index from before: label what it holds
            for model in self.settings.embedding_models:
                collection = self.dense(model)._collection
                for offset in range(0, collection.count(), 1000):
                    got = collection.get(include=["metadatas"], limit=1000, offset=offset)
                    bare = {i: m or {} for i, m in zip(got["ids"], got["metadatas"]) if "collection" not in (m or {})}
                    sources = {d.id: d.metadata.get("source", "") for d in self.lexical.get(list(bare))}  # vectors-only
                    todo = [(i, {**m, "collection": collection_of(m.get("source") or sources.get(i, ""))})
                            for i, m in bare.items()]
                    if todo:
                        collection.update(ids=[i for i, _ in todo], metadatas=[m for _, m in todo])
        with self._lock, self._manifest:
            self._manifest.execute("INSERT OR REPLACE INTO tpdqa_meta VALUES ('collections', '1')")

    @contextmanager
    def _write_lock(self, progress: Progress | None):
        lock = FileLock(self.index_dir / "write.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.warning("%s: another process is indexing %s; waiting for it", WAITING, self.index_dir)
            if progress is not None:
                progress(WAITING, 0, 0)
            try:
                lock.acquire(timeout=self.settings.lock_timeout)
            except Timeout:
                raise IndexBusyError(
                    f"Another process has been indexing {self.index_dir} for over {self.settings.lock_timeout:.0f} s "
                    f"(it holds {lock.lock_file}): let it finish or stop it, then index again "
                    "(or raise TPDQA_LOCK_TIMEOUT).") from None
        try:
            yield
        finally:
            lock.release()

    def _sync(self, progress: Progress | None, searchable_only: bool = False, cluster: Any = None) -> IndexStats:
        started = time.perf_counter()
        previous = {r.source: r for r in self.files(include_pending=True)}
        signature = self._signature()
        same_setup = self._meta("signature") == signature
        # Files whose bytes were fully indexed under the same setup are not even parsed.
        indexed = {s: r.sha256 for s, r in previous.items() if r.done and r.complete} if same_setup else {}
        loaded = load_folder(self.settings.documents_dir, indexed=indexed, limits=self.settings.limits(),
                             chunking=(self.settings.chunk_size, self.settings.chunk_overlap),
                             progress=(lambda done, total: progress(READING, done, total)) if progress else None,
                             parse=cluster.parse if cluster is not None else parse_side_by_side(self.settings.parse_workers))
        chunks = loaded.chunks
        per_source = Counter(c.metadata["source"] for c in chunks)
        parts = Counter((c.metadata["source"], c.metadata["part"], c.metadata["title"])
                        for c in chunks if c.metadata.get("part"))
        failed_sources = {e.source for e in loaded.errors}
        gone = [s for s in previous if s not in loaded.hashes and s not in failed_sources]
        interrupted = any(not (r.done and r.complete) for r in previous.values())

        stats = IndexStats(failed=len(loaded.errors), errors=list(loaded.errors),
                           chunks=len(chunks) + sum(previous[s].chunks for s in loaded.unchanged))
        for source, sha in loaded.hashes.items():
            old = previous.get(source)
            if old is None or not old.indexed_at:
                stats.added += 1
            elif old.sha256 != sha:
                stats.updated += 1
            else:
                stats.unchanged += 1
        stats.deleted = len(gone)
        failures_changed = self._write_failures(loaded.errors)
        if not loaded.sources and not gone and not interrupted and same_setup:
            if failures_changed:
                self._new_generation()
            stats.seconds = time.perf_counter() - started
            return stats  # nothing changed: no record, model or Chroma call

        # Mark first, index second: a killed run leaves these 'pending', and a file
        # deleted before the next run is still known and gets cleaned up.
        with self._lock, self._manifest:
            self._manifest.executemany(
                "INSERT INTO tpdqa_files (source, sha256, chunks, indexed_at, done, complete) VALUES (?, ?, ?, 0, 0, 0) "
                "ON CONFLICT(source) DO UPDATE SET done = CASE WHEN sha256 = excluded.sha256 THEN done ELSE 0 END, "
                "complete = CASE WHEN sha256 = excluded.sha256 THEN complete ELSE 0 END",
                [(s, loaded.hashes[s], per_source.get(s, 0)) for s in loaded.sources],
            )

        # Two phases: a file is answerable once BM25, the sentences and the fastest encoder
        # hold it (searchable); the slower encoders fill in behind (complete).
        later = set(self.later_models())
        destinations = self._destinations()
        second = [d for d in destinations if isinstance(d[2], str) and d[2] in later]
        first = [d for d in destinations if d not in second]
        check = interrupted or not same_setup
        with self._computed_ahead(cluster, first, chunks, loaded.units, SEARCHABLE, progress):
            for label, namespace, target in first:
                self._index_into(chunks, f"{SEARCHABLE} · {label}", namespace, target, gone, check, stats, progress)
        for _, namespace, target in second:  # gone and replaced text must not be found meanwhile
            self._drop_stale(self.records(namespace), self.dense(target), chunks, loaded.sources, gone)
        now = time.time()
        with self._lock, self._manifest:
            self._manifest.executemany(
                "UPDATE tpdqa_files SET sha256 = ?, chunks = ?, indexed_at = ?, done = 1, complete = ? WHERE source = ?",
                [(loaded.hashes[s], per_source.get(s, 0), now, int(not second), s) for s in loaded.sources],
            )
            self._manifest.executemany("DELETE FROM tpdqa_files WHERE source = ?", [(s,) for s in gone])
            self._manifest.executemany("DELETE FROM tpdqa_parts WHERE source = ?",
                                       [(s,) for s in (*loaded.sources, *gone)])
            self._manifest.executemany("INSERT OR REPLACE INTO tpdqa_parts VALUES (?, ?, ?, ?)",
                                       [(*key, n) for key, n in parts.items()])
            self._manifest.execute("INSERT OR REPLACE INTO tpdqa_meta VALUES ('signature', ?)", (signature,))
        self._new_generation()
        stats.seconds = stats.searchable_s = time.perf_counter() - started

        if second and not searchable_only:
            with self._computed_ahead(cluster, second, chunks, loaded.units, COMPLETE, progress):
                for label, namespace, target in second:  # gone files: already dropped above
                    self._index_into(chunks, f"{COMPLETE} · {label}", namespace, target, [], check, stats, progress)
            with self._lock, self._manifest:
                self._manifest.executemany("UPDATE tpdqa_files SET complete = 1 WHERE source = ?",
                                           [(s,) for s in loaded.sources])
            self._new_generation()
            stats.seconds = stats.complete_s = time.perf_counter() - started
        elif not second:
            stats.complete_s = stats.searchable_s
        if stats.deleted or stats.updated or stats.chunks_deleted:
            self.release_free_pages()
        return stats

    def release_free_pages(self) -> None:
        """Deleted chunks leave free pages in the SQLite files; an index made since 2026-12-02
        (incremental auto-vacuum) gives them back after each sync that deleted some. Chroma's
        own file is Chroma's."""
        self.lexical.release_free_pages()
        self.sentences.release_free_pages()
        with self._lock:
            release_free_pages(self._manifest)

    def _index_into(self, chunks: list[Document], label: str, namespace: str, target: str | Any, gone: list[str],
                    check: bool, stats: IndexStats, progress: Progress | None) -> None:
        """One destination brought up to date with ``chunks`` (LangChain's ``index``)."""
        from langchain_core.indexing import index

        records = self.records(namespace)
        local = not isinstance(target, str)
        destination = target if local else self.dense(target)
        todo = len(chunks) - sum(records.exists([c.id for c in chunks]))
        report = _reporter(progress, label, todo)
        listening = _batches(destination, report) if local else get_embeddings(target).reporting(report)
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
        self._delete_sources(records, destination, gone)
        if check:
            self._reconcile(records, destination, local)
        if not local:
            stats.embedded = max(stats.embedded, result["num_added"])
            stats.chunks_deleted = max(stats.chunks_deleted, result["num_deleted"])

    @contextmanager
    def _computed_ahead(self, cluster: Any, destinations: list[tuple[str, str, str | Any]], chunks: list[Document],
                        units: dict[str, list[str]], phase: str, progress: Progress | None):
        """The sentence store takes each chunk's units as parsing split them; with a cluster, the
        phase's encoders run there first, over every text its destinations will ask them for
        (chunks not recorded yet; for the sentence store, their sentences and new words), and
        serve those vectors to this process's writes."""
        with ExitStack() as stack:
            stack.enter_context(self.sentences.precomputed_units(units))
            if cluster is None:
                yield
                return
            wanted: dict[str, list[str]] = {}
            for _, namespace, target in destinations:
                exists = self.records(namespace).exists([c.id for c in chunks])
                todo = [c for c, known in zip(chunks, exists) if not known]
                if isinstance(target, str):
                    wanted.setdefault(target, []).extend(c.page_content for c in todo)
                elif target is self.sentences:
                    wanted.setdefault(USE_MODEL, []).extend(self.sentences.texts_to_encode(todo))
            for model, texts in wanted.items():
                report = _reporter(progress, f"{phase} · embedding {model} on Ray", len(set(texts)))
                stack.enter_context(get_embeddings(model).precomputed(cluster.vectors(model, texts, report)))
            yield

    def _drop_stale(self, records, destination, chunks: list[Document], sources: list[str], gone: list[str]) -> None:
        """Before a later encoder reads the changed files: its chunks of files gone, and those of
        changed files that are no longer in them, are deleted now (what ``index`` would do)."""
        self._delete_sources(records, destination, gone)
        current = {c.id for c in chunks}
        stale = [key for key in records.list_keys(group_ids=list(sources)) if key not in current] if sources else []
        if stale:
            destination.delete(ids=stale)
            records.delete_keys(stale)

    def _meta(self, key: str) -> str | None:
        with self._lock:
            row = self._manifest.execute("SELECT value FROM tpdqa_meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _new_generation(self) -> None:
        """Tell other processes that the index changed (they reopen their Chroma client)."""
        with self._lock, self._manifest:
            self._generation = uuid.uuid4().hex
            self._manifest.execute("INSERT OR REPLACE INTO tpdqa_meta VALUES ('generation', ?)", (self._generation,))

    def _write_failures(self, errors: list[FileError]) -> bool:
        """Files that could not be indexed, with their reason, for every process to list."""
        current = {(e.source, e.reason) for e in errors}
        with self._lock, self._manifest:
            if set(self._manifest.execute("SELECT source, reason FROM tpdqa_failed").fetchall()) == current:
                return False
            self._manifest.execute("DELETE FROM tpdqa_failed")
            self._manifest.executemany("INSERT OR REPLACE INTO tpdqa_failed VALUES (?, ?)", sorted(current))
        return True

    def _delete_sources(self, records, destination, sources: list[str]) -> None:
        if not sources:
            return
        keys = records.list_keys(group_ids=sources)
        if keys:
            destination.delete(ids=keys)
            records.delete_keys(keys)

    def _reconcile(self, records, destination, local: bool) -> None:
        """Drop chunks a killed run wrote but never recorded, if their file is gone since."""
        if self.settings.chroma_url and not local:
            # A shared server also holds other replicas' chunks, which these records do not know.
            return
        recorded = set(records.list_keys())
        stored = destination.ids() if local else set(destination.get(include=[])["ids"])
        orphans = sorted(stored - recorded)
        if orphans:
            destination.delete(ids=orphans)

    # -- other processes ---------------------------------------------------------------
    @property
    def generation(self) -> str | None:
        """Changes whenever a sync (from any process) changed the index."""
        return self._meta("generation")

    def refresh(self) -> bool:
        """Reopen Chroma's local client if another process changed the index since this one
        last looked (its in-memory vector index would miss the new chunks); True if it did."""
        current = self.generation
        with self._lock:
            if current == self._generation:
                return False
        with self._searches.exclusive(), self._lock:
            self._generation = current
            if self._client is None or self.settings.chroma_url:
                return False  # a server always answers with its current state
            client, self._client, self._dense = self._client, None, {}
            client.close()
        log.info("index %s changed in another process: Chroma client reopened", self.index_dir)
        return True

    def lost(self) -> bool:
        """True if a file of this index was deleted or replaced since it was opened."""
        return any(_identity(self.index_dir / name) != ident for name, ident in list(self._identity.items()))

    def discard(self) -> None:
        """Close the store and delete what is left of its files (a rebuild starts from the documents)."""
        self.close()
        for name in INDEX_FILES:
            for suffix in ("", "-journal", "-wal", "-shm"):
                (self.index_dir / f"{name}{suffix}").unlink(missing_ok=True)
        if not self.settings.chroma_url:
            shutil.rmtree(self.index_dir / "chroma", ignore_errors=True)

    # -- replicas ----------------------------------------------------------------------
    def refresh_from_server(self, every: float = 2.0) -> int:
        """With a Chroma server shared by several replicas: bring the local BM25 index in line
        with the server's chunks (those another replica indexed, or deleted). One count request
        when nothing changed, at most once per ``every`` seconds; returns the rows changed."""
        if not self.settings.chroma_url or time.monotonic() - self._refreshed < every:
            return 0
        self._refreshed = time.monotonic()
        collection = self.dense(self.settings.embedding_models[0])._collection
        if collection.count() == self.lexical.count():
            return 0
        if not self._sync_lock.acquire(blocking=False):
            return 0  # this replica is indexing: never make a question wait for it; next time
        try:
            shared = set(collection.get(include=[])["ids"])
            local = self.lexical.ids()
            missing, extra = sorted(shared - local), sorted(local - shared)
            for start in range(0, len(missing), 500):
                got = collection.get(ids=missing[start:start + 500], include=["documents", "metadatas"])
                self.lexical.upsert([Document(id=i, page_content=text, metadata=meta or {})
                                     for i, text, meta in zip(got["ids"], got["documents"], got["metadatas"])])
            if extra:
                self.lexical.delete(extra)
        finally:
            self._sync_lock.release()
        return len(missing) + len(extra)

    # -- reading -----------------------------------------------------------------------
    def files(self, include_pending: bool = False) -> list[FileRecord]:
        query = "SELECT source, sha256, chunks, indexed_at, done = 1, complete = 1 FROM tpdqa_files"
        if not include_pending:
            query += " WHERE done = 1"
        with self._lock:
            rows = self._manifest.execute(query + " ORDER BY source").fetchall()
        return [FileRecord(*row[:4], done=bool(row[4]), complete=bool(row[5])) for row in rows]

    def incomplete(self) -> frozenset[str]:
        """Searchable files the later encoders have not read yet (read once per generation)."""
        generation, cached = self._generation, self._incomplete
        if cached is None or cached[0] != generation:
            with self._lock:
                rows = self._manifest.execute("SELECT source FROM tpdqa_files WHERE done = 1 AND complete = 0").fetchall()
            cached = self._incomplete = (generation, frozenset(r[0] for r in rows))
        return cached[1]

    def phases(self, collections: list[str] | None = None) -> tuple[int, int, int]:
        """(searchable, complete, known) files in ``collections`` (None: all): indexing's progress."""
        where, params = sql_in_collections(collections)
        with self._lock:
            row = self._manifest.execute("SELECT COALESCE(SUM(done = 1), 0), COALESCE(SUM(done = 1 AND complete = 1), 0), "
                                         f"COUNT(*) FROM tpdqa_files WHERE 1{where}", params).fetchone()
        return row[0], row[1], row[2]

    def parts(self) -> dict[str, list[PartRecord]]:
        """The documents inside indexed files (attachments, mailbox messages), by file, in file order."""
        with self._lock:
            rows = self._manifest.execute(
                "SELECT p.source, p.part, p.title, p.chunks FROM tpdqa_parts p JOIN tpdqa_files f "
                "ON f.source = p.source AND f.done = 1 ORDER BY p.source, p.rowid").fetchall()
        out: dict[str, list[PartRecord]] = {}
        for source, *part in rows:
            out.setdefault(source, []).append(PartRecord(*part))
        return out

    def has_file(self, source: str) -> bool:
        """Whether ``source`` is indexed (one row read, whatever the folder's size)."""
        with self._lock:
            return self._manifest.execute("SELECT 1 FROM tpdqa_files WHERE source = ? AND done = 1",
                                          (source,)).fetchone() is not None

    def failures(self) -> list[FileError]:
        """Files the last sync (of any process) could not index, with the reason."""
        with self._lock:
            rows = self._manifest.execute("SELECT source, reason FROM tpdqa_failed ORDER BY source").fetchall()
        return [FileError(*row) for row in rows]

    def collections(self) -> list[str]:
        """The collections that indexed documents belong to (read once per generation: at
        100k files a scan costs tens of ms, too much before every question)."""
        generation, cached = self._generation, self._collections
        if cached is None or cached[0] != generation:
            with self._lock:
                rows = self._manifest.execute(
                    "SELECT DISTINCT collection_of(source) FROM tpdqa_files WHERE done = 1").fetchall()
            cached = self._collections = (generation, sorted(r[0] for r in rows))
        return list(cached[1])

    def counts(self, collections: list[str] | None = None) -> tuple[int, int]:
        """(documents, passages) indexed, in ``collections`` (None: all)."""
        where, params = sql_in_collections(collections)
        with self._lock:
            files, chunks = self._manifest.execute(
                f"SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM tpdqa_files WHERE done = 1{where}", params).fetchone()
        return files, chunks

    def is_empty(self) -> bool:
        # Asked before every question: one row, not the whole manifest (100 ms at 100k files).
        with self._lock:
            return self._manifest.execute("SELECT 1 FROM tpdqa_files WHERE done = 1 LIMIT 1").fetchone() is None

    def embed_query(self, model: str, query: str) -> list[float]:
        return get_embeddings(model).embed_query(query)

    def dense_search(self, model: str, query: str, k: int, collections: list[str] | None = None
                     ) -> list[tuple[Document, float]]:
        """Top ``k`` chunks by cosine similarity (1 - Chroma's cosine distance)."""
        return self.dense_search_by_vector(model, self.embed_query(model, query), k, collections)

    def dense_search_by_vector(self, model: str, vector: list[float], k: int, collections: list[str] | None = None
                               ) -> list[tuple[Document, float]]:
        """``collections``: only chunks of these collections, filtered inside Chroma's search."""
        if collections is not None and not collections:
            return []
        where = None if collections is None else {"collection": {"$in": list(collections)}}
        # No count() first: Chroma returns fewer hits from a small or empty collection, and at
        # 100k chunks a count took longer than the search.
        with self._searches.shared():
            collection = self.dense(model)._collection
            # Distances only: asking Chroma for texts and metadata too read its metadata segment
            # for every hit, which the BM25 index already holds: a search at 163k chunks took
            # 6.2-6.7 ms, 2.7-3.5 ms now.
            # HNSW is approximate, and Chroma searches with ef = max(ef_search 100, n_results): asked
            # for 40, the two-phase and one-run indexes of one folder each missed a true nearest
            # chunk (2 answers of 823 differed), and at 163k chunks recall@40 was 0.82-0.91. Asked
            # for DENSE_CANDIDATES: 823 of 823 identical, recall@40 0.90-0.97, <= 1.3 ms more a search
            # (scripts/bench.py --recall).
            found = collection.query(query_embeddings=[vector], n_results=max(k, DENSE_CANDIDATES), where=where,
                                     include=["distances"])
            ids, distances = found["ids"][0][:k], found["distances"][0][:k]
            stored = {doc.id: doc for doc in self.lexical.get(ids)}
            # A server's chunk this process never indexed: its text and metadata from Chroma.
            missing = [i for i in ids if i not in stored]
            if missing:
                extra = collection.get(ids=missing, include=["documents", "metadatas"])
                for chunk_id, text, metadata in zip(extra["ids"], extra["documents"], extra["metadatas"]):
                    if text is not None:
                        stored[chunk_id] = Document(id=chunk_id, page_content=text, metadata=metadata or {})
        return [(stored[i], 1.0 - float(d)) for i, d in zip(ids, distances) if i in stored]

    def models_loaded(self) -> list[str]:
        return [m for m in self.settings.embedding_models if get_embeddings(m).loaded]

    def close(self) -> None:
        self.lexical.close()
        self.sentences.close()
        self._manifest.close()
        for manager in self._records.values():
            manager.close()
        if self._client is not None and not self.settings.chroma_url:
            self._client.close()
        self._client, self._dense, self._records = None, {}, {}


DENSE_CANDIDATES = 200  # hits asked of Chroma's HNSW for each dense search, whatever k (see dense_search_by_vector)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class _SharedLock:
    """Many holders at once, or one exclusive holder: searches share Chroma's client, and
    closing it must wait for them (the standard library has no readers-writer lock)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextmanager
    def shared(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and not self._shared)
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


@contextmanager
def _batches(destination, report: Callable[[int], None]):
    """Progress of a local index: it calls ``on_batch`` after each batch it writes."""
    destination.on_batch = report
    try:
        yield
    finally:
        destination.on_batch = None


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
