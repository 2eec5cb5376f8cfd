"""Indexing records: which chunk ids each destination holds, read by LangChain's ``index``.

LangChain's ``SQLRecordManager`` would do, but its table keeps a uuid beside every record,
the namespace and the file as text in each row, and an index on every column, some twice:
2.9 KB a chunk over the five destinations, a fifth of an index at 100k chunks. This
``RecordManager`` keeps what ``index`` asks for (key, file, time) in one table keyed by
(namespace, key), namespaces and files as small integers, one index by file: about 0.6 KB
a chunk. Records an older version wrote in LangChain's table move over once, on open.

    >>> from tpdqa.records import SQLiteRecordManager
    >>> records = SQLiteRecordManager("local|tpdqa-use", ":memory:")
    >>> records.create_schema()
    >>> records.update(["a", "b"], group_ids=["x.txt", "y.txt"])
    >>> records.exists(["a", "c"]), records.list_keys(group_ids=["y.txt"])
    ([True, False], ['b'])
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.indexing import RecordManager

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tpdqa_namespaces (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS tpdqa_groups (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS tpdqa_records (
    namespace INTEGER NOT NULL, key TEXT NOT NULL, grp INTEGER, updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tpdqa_records_by_group ON tpdqa_records (grp);
"""

log = logging.getLogger(__name__)

_CHUNK = 500  # keys a statement (SQLite's variable limit)


def select_in(conn: sqlite3.Connection, query: str, keys: Sequence[Any], *leading: object) -> list[tuple]:
    """Rows of ``query`` + `` IN (keys)``, ``_CHUNK`` keys a statement; ``leading``: the
    query's own parameters, before the keys."""
    rows: list[tuple] = []
    for start in range(0, len(keys), _CHUNK):
        part = list(keys[start:start + _CHUNK])
        rows += conn.execute(f"{query} IN ({','.join('?' * len(part))})", [*leading, *part]).fetchall()
    return rows


def release_free_pages(conn: sqlite3.Connection) -> None:
    """Give the pages deleted rows left back to the disk (a file made with incremental auto-vacuum)."""
    conn.executescript("PRAGMA incremental_vacuum;")  # to the end: execute() frees one page a step


class SQLiteRecordManager(RecordManager):
    """LangChain ``RecordManager`` over one SQLite file (``index/records.sqlite``)."""

    def __init__(self, namespace: str, path: str | Path) -> None:
        super().__init__(namespace)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        self._ns: int | None = None

    # -- schema ---------------------------------------------------------------------------
    def create_schema(self) -> None:
        with self._lock, self._conn:
            self._conn.executescript(_SCHEMA)
            moved = self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'upsertion_record'").fetchone()
            if moved:
                self._move_langchain_records()
            self._conn.execute("INSERT OR IGNORE INTO tpdqa_namespaces (name) VALUES (?)", (self.namespace,))
            self._ns = self._conn.execute("SELECT id FROM tpdqa_namespaces WHERE name = ?",
                                          (self.namespace,)).fetchone()[0]
        if moved:
            try:
                self._conn.execute("VACUUM")  # give the old table's pages back to the disk
            except sqlite3.OperationalError as error:  # another process holds the file open
                log.info("records.sqlite not vacuumed after moving the records (%s); it keeps its size", error)

    def _move_langchain_records(self) -> None:
        """Every namespace's records from ``SQLRecordManager``'s table, then that table dropped."""
        self._conn.execute("INSERT OR IGNORE INTO tpdqa_namespaces (name) SELECT DISTINCT namespace FROM upsertion_record")
        self._conn.execute("INSERT OR IGNORE INTO tpdqa_groups (name) SELECT DISTINCT group_id FROM upsertion_record "
                           "WHERE group_id IS NOT NULL")
        self._conn.execute(
            "INSERT OR REPLACE INTO tpdqa_records SELECT n.id, r.key, g.id, r.updated_at FROM upsertion_record r "
            "JOIN tpdqa_namespaces n ON n.name = r.namespace LEFT JOIN tpdqa_groups g ON g.name = r.group_id"
        )
        self._conn.execute("DROP TABLE upsertion_record")

    async def acreate_schema(self) -> None:
        self.create_schema()

    # -- RecordManager ----------------------------------------------------------------------
    def get_time(self) -> float:
        return time.time()

    async def aget_time(self) -> float:
        return self.get_time()

    def update(self, keys: Sequence[str], *, group_ids: Sequence[str | None] | None = None,
               time_at_least: float | None = None) -> None:
        if group_ids is not None and len(keys) != len(group_ids):
            raise ValueError(f"update: {len(keys)} keys but {len(group_ids)} group ids")
        now = self.get_time()
        if time_at_least is not None and time_at_least > now:
            raise ValueError("time_at_least must be in the past")
        groups = self._group_ids([g for g in (group_ids or []) if g is not None], create=True)
        rows = [(self._namespace(), key, groups.get(group_ids[i]) if group_ids else None, now)
                for i, key in enumerate(keys)]
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT INTO tpdqa_records VALUES (?, ?, ?, ?) ON CONFLICT (namespace, key) "
                "DO UPDATE SET grp = excluded.grp, updated_at = excluded.updated_at", rows)

    async def aupdate(self, keys: Sequence[str], *, group_ids: Sequence[str | None] | None = None,
                      time_at_least: float | None = None) -> None:
        self.update(keys, group_ids=group_ids, time_at_least=time_at_least)

    def exists(self, keys: Sequence[str]) -> list[bool]:
        with self._lock:
            found = {row[0] for row in select_in(self._conn, "SELECT key FROM tpdqa_records WHERE namespace = ? AND key",
                                                  list(keys), self._namespace())}
        return [key in found for key in keys]

    async def aexists(self, keys: Sequence[str]) -> list[bool]:
        return self.exists(keys)

    def list_keys(self, *, before: float | None = None, after: float | None = None,
                  group_ids: Sequence[str] | None = None, limit: int | None = None) -> list[str]:
        where, args = ["namespace = ?"], [self._namespace()]
        if before is not None:
            where.append("updated_at < ?")
            args.append(before)
        if after is not None:
            where.append("updated_at > ?")
            args.append(after)
        if group_ids is not None:
            ids = list(self._group_ids(list(group_ids), create=False).values())
            if not ids:
                return []
            where.append(f"grp IN ({','.join('?' * len(ids))})")
            args += ids
        query = f"SELECT key FROM tpdqa_records WHERE {' AND '.join(where)}" + (f" LIMIT {int(limit)}" if limit else "")
        with self._lock:
            return [row[0] for row in self._conn.execute(query, args)]

    async def alist_keys(self, *, before: float | None = None, after: float | None = None,
                         group_ids: Sequence[str] | None = None, limit: int | None = None) -> list[str]:
        return self.list_keys(before=before, after=after, group_ids=group_ids, limit=limit)

    def delete_keys(self, keys: Sequence[str]) -> None:
        with self._lock, self._conn:
            self._conn.executemany("DELETE FROM tpdqa_records WHERE namespace = ? AND key = ?",
                                   [(self._namespace(), key) for key in keys])

    async def adelete_keys(self, keys: Sequence[str]) -> None:
        self.delete_keys(keys)

    def close(self) -> None:
        self._conn.close()

    # -- helpers ----------------------------------------------------------------------------
    def _namespace(self) -> int:
        if self._ns is None:
            raise RuntimeError("SQLiteRecordManager: call create_schema() first")
        return self._ns

    def _group_ids(self, names: list[str], create: bool) -> dict[str, int]:
        """File name -> its integer id (new names get one when ``create``)."""
        names = list(dict.fromkeys(names))
        with self._lock, self._conn:
            if create:
                self._conn.executemany("INSERT OR IGNORE INTO tpdqa_groups (name) VALUES (?)", [(n,) for n in names])
            return dict(select_in(self._conn, "SELECT name, id FROM tpdqa_groups WHERE name", names))
