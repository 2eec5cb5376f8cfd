"""A watched documents folder: re-index when files are added, changed or removed.

``tpdqa serve --watch`` and ``tpdqa index --watch`` run :func:`watch_documents`. It uses
watchfiles (inotify on Linux, polling elsewhere), which groups a burst of events into
one set; hidden files, editors' temp files and unsupported types are ignored, and a
file still being written is waited for (same size and time twice in a row) so a sync
never reads half a copy. Changes made while a sync runs are kept by the watcher and
start the next one.

    >>> import threading
    >>> from tpdqa import Assistant
    >>> from tpdqa.watch import watch_documents
    >>> stop = threading.Event()
    >>> qa = Assistant()
    >>> thread = threading.Thread(target=watch_documents, args=(qa, lambda: print(qa.index())), kwargs={"stop": stop})
    >>> stop.set()                                     # ends the loop
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import watchfiles

from tpdqa.ingest import SUPPORTED_SUFFIXES

log = logging.getLogger(__name__)


class DocumentsFilter(watchfiles.DefaultFilter):
    """Documents only: a supported suffix, nothing hidden, no Office lock file (``~$x.docx``)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder.resolve()

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        if not super().__call__(change, path):
            return False
        target = Path(path)
        try:
            parts = target.resolve().relative_to(self.folder).parts
        except ValueError:
            return False
        if not parts or any(p.startswith((".", "~")) for p in parts):
            return False
        if target.suffix.lower() in SUPPORTED_SUFFIXES:
            return True
        # a folder moved in or out holds documents of its own
        return target.is_dir() or (change == watchfiles.Change.deleted and not target.suffix)


def settle(paths: list[Path], quiet: float = 0.3, limit: float = 30.0) -> None:
    """Return once none of ``paths`` has changed size or time for ``quiet`` seconds (or after ``limit``)."""
    def state() -> list[Any]:
        out = []
        for path in paths:
            try:
                st = path.stat()
                out.append((st.st_size, st.st_mtime_ns))
            except OSError:
                out.append(None)
        return out

    deadline = time.monotonic() + limit
    before = state()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = state()
        if now == before:
            return
        before = now


def watched_folder(assistant: Any) -> Path:
    folder = Path(assistant.settings.documents_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"Cannot watch {folder}: the documents folder does not exist; create it first.")
    return folder


def watch_documents(assistant: Any, on_change: Callable[[], None], stop: threading.Event | None = None,
                    run_first: bool = False, step_ms: int = 300, debounce_ms: int = 2000) -> None:
    """Call ``on_change()`` (which re-indexes) after each settled burst of changes under the
    documents folder, until ``stop`` is set (or Ctrl+C); with ``run_first``, once as soon as
    the watcher is in place, so nothing changed during that first run is missed.
    ``step_ms``: quiet time that ends a burst; ``debounce_ms``: longest a burst is collected."""
    folder = watched_folder(assistant)
    log.info("watching %s for changes", folder)
    # yield_on_timeout: an empty set after a quiet second tells that the watcher is running.
    for changes in watchfiles.watch(folder, watch_filter=DocumentsFilter(folder), step=step_ms,
                                    debounce=debounce_ms, stop_event=stop, raise_interrupt=False,
                                    rust_timeout=1000, yield_on_timeout=True):
        if not changes:
            if run_first:
                run_first = False
                _run(on_change)
            continue
        paths = sorted({Path(p) for _, p in changes})
        log.info("documents changed: %s", ", ".join(p.name for p in paths[:5]) + (" …" if len(paths) > 5 else ""))
        settle(paths)
        _run(on_change)


def _run(on_change: Callable[[], None]) -> None:
    try:
        on_change()
    except Exception:  # noqa: BLE001 - a failed run is reported by on_change's caller; watching goes on
        log.exception("re-indexing after a change failed")
