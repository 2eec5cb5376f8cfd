"""What one file may cost to read, and the child process that reads it.

A document folder holds whatever users drop in it: a truncated .docx, a zip bomb, a PDF
whose streams inflate to gigabytes, a page nested ten thousand levels deep. Parsers are
third-party code (python-docx/lxml, pypdf, BeautifulSoup), so a file is checked before
parsing (size on disk; for archives, the members' unpacked sizes, count and compression
ratio) and then parsed in a child process with a memory cap (``RLIMIT_AS``) and a time
budget. A file over a limit, or that crashes or outlasts its reader, is reported as not
indexed with the reason; the indexer itself never holds its memory or waits on it.

Hand-written because no well-kept library runs a callable in a reusable child process
that is replaced when it dies or overruns: ``concurrent.futures`` cannot kill a running
task, ``multiprocessing.Pool`` waits forever for a task whose worker was killed, and both
start workers by fork or by spawn (see :meth:`Sandbox._start`).

    >>> from tpdqa.sandbox import Limits, check_archive
    >>> import io, zipfile
    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
    ...     z.writestr("word/document.xml", "<w/>" * 5_000_000)
    >>> check_archive(buffer.getvalue(), Limits(max_unpacked_mb=10))
    Traceback (most recent call last):
    ...
    tpdqa.sandbox.OverLimit: it unpacks to 19 MB, over the 10 MB limit for one file (TPDQA_MAX_UNPACKED_MB): a zip bomb, or too large to read
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

MB = 1024 * 1024
STARTUP_S = 600.0  # a child slower than this to import the readers is broken, not busy


class ParseFailure(Exception):
    """What a parser raised in the child, when its own exception cannot cross the pipe
    (lxml's XMLSyntaxError cannot be pickled): its type's name and message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.kind, self.message = kind, message

    def __str__(self) -> str:
        return self.message


class OverLimit(Exception):
    """A file that one of the :class:`Limits` refuses; the message says which and what to do."""


@dataclass(frozen=True)
class Limits:
    """What reading one file may cost (settings ``max_file_mb``, ``max_unpacked_mb``,
    ``parse_timeout``, ``parse_memory_mb``), and the one setting of how it is read that the
    child needs (``ocr_languages``). ``timeout_s`` bounds each step a reader reports through
    :func:`keep_alive` (an OCR'd page), the whole file for readers that report none."""

    max_file_mb: float = 200.0
    max_unpacked_mb: float = 256.0
    max_members: int = 10_000
    # Office XML compresses 5-20x; a member that inflates 100x beyond its first MB is built to.
    max_ratio: float = 100.0
    timeout_s: float = 120.0
    memory_mb: int = 2048
    ocr_languages: str = "fra+eng"


def check_size(size: int, limits: Limits) -> None:
    if size > limits.max_file_mb * MB:
        raise OverLimit(f"it is {size / MB:.0f} MB, over the {limits.max_file_mb:.0f} MB limit for one file "
                        "(TPDQA_MAX_FILE_MB): split it, or raise the limit")


def check_archive(data: bytes, limits: Limits) -> None:
    """Refuse a zip container (.docx and the like) that would unpack beyond the limits, before
    any parser opens it. The sizes are the archive's own declarations, which bound what
    :mod:`zipfile` will ever inflate (a member that inflates past its declared size fails its CRC)."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise OverLimit(f"not a valid zip container, as this file type must be ({exc})") from exc
    if len(members) > limits.max_members:
        raise OverLimit(f"it holds {len(members)} archive members, over the limit of {limits.max_members}")
    unpacked = sum(m.file_size for m in members)
    if unpacked > limits.max_unpacked_mb * MB:
        raise OverLimit(f"it unpacks to {unpacked / MB:.0f} MB, over the {limits.max_unpacked_mb:.0f} MB limit for "
                        "one file (TPDQA_MAX_UNPACKED_MB): a zip bomb, or too large to read")
    for m in members:
        if m.file_size > MB and m.file_size > limits.max_ratio * max(m.compress_size, 1):
            raise OverLimit(f"its member {m.filename} inflates {m.file_size / max(m.compress_size, 1):.0f}-fold "
                            f"({m.compress_size} bytes to {m.file_size / MB:.0f} MB): a zip bomb, not a document")


class Sandbox:
    """One child process that runs functions under a memory cap; replaced when it dies or
    overruns its time budget. Calls are serialised (one file at a time)."""

    def __init__(self) -> None:
        self._process: Any = None
        self._conn: Any = None
        self._memory_mb: int | None = None
        self._lock = threading.Lock()

    def run(self, function: Callable[..., Any], args: tuple, limits: Limits) -> Any:
        """``function(*args)`` in the child; :class:`OverLimit` if it overran, ran out of
        memory or crashed. ``function`` must be importable by name (spawn pickles it)."""
        with self._lock:
            if self._process is None or self._process.poll() is not None or self._memory_mb != limits.memory_mb:
                self._start(limits.memory_mb)
            try:
                self._conn.send((function, args))
            except OSError:  # the child died between two files: a fresh one takes this file
                self._start(limits.memory_mb)
                self._conn.send((function, args))
            status = "alive"
            while status == "alive":  # each step the reader reports (a page read by OCR) renews the budget
                deadline = time.monotonic() + limits.timeout_s
                while not self._conn.poll(0.05):
                    if time.monotonic() > deadline:
                        self.close()
                        raise OverLimit(f"reading it took over {limits.timeout_s:.0f} s without progress "
                                        "(TPDQA_PARSE_TIMEOUT): the file is too large or malformed")
                try:
                    status, value = self._conn.recv()
                except (EOFError, OSError):  # the child died: killed for its memory, or a parser crashed
                    code = self._exit_code()
                    self.close()
                    raise OverLimit(f"its reader stopped (exit code {code}) while parsing it: it may need more than "
                                    f"{limits.memory_mb} MB of memory (TPDQA_PARSE_MEMORY_MB), or be malformed"
                                    ) from None
        if status == "memory":
            raise OverLimit(f"reading it needs more than {limits.memory_mb} MB of memory (TPDQA_PARSE_MEMORY_MB)")
        if status == "error":
            raise value
        return value

    def _start(self, memory_mb: int) -> None:
        """A fresh Python running :func:`child`, talking over two pipes. A plain subprocess, not
        multiprocessing: fork would copy the indexer's threads (torch, Chroma) half-way, and
        spawn re-imports the caller's ``__main__`` (a script without a main guard, stdin)."""
        self.close()
        child_reads, parent_writes = os.pipe()
        parent_reads, child_writes = os.pipe()
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from tpdqa.sandbox import child; child(sys.argv[1:])",
             str(child_reads), str(child_writes), str(memory_mb)],
            pass_fds=(child_reads, child_writes), stdin=subprocess.DEVNULL, close_fds=True,
        )
        os.close(child_reads)
        os.close(child_writes)
        self._process, self._memory_mb = process, memory_mb
        self._conn = _Pipe(Connection(parent_reads, writable=False), Connection(parent_writes, readable=False))
        # The child's start-up (Python, the readers' imports) is not one file's reading: on a
        # busy machine it took minutes, and the first file was skipped as "too slow to read".
        deadline = time.monotonic() + STARTUP_S
        while not self._conn.poll(0.05) and process.poll() is None and time.monotonic() <= deadline:
            pass
        try:
            if self._conn.poll(0):
                self._conn.recv()  # "ready"
                return
        except (EOFError, OSError):  # it died before saying so: the pipe is at its end
            pass
        code = self._exit_code()
        self.close()
        raise OverLimit(f"the file reader could not start (exit code {code}, waited up to {STARTUP_S:.0f} s)"
                        ": check that tpdqa's dependencies import (python -c 'import tpdqa.ingest')")

    def _exit_code(self) -> int | None:
        """The exit code of a child whose pipe closed (None: still running after 5 s). Its pipe
        may close a moment before it is reaped: poll() alone said "exit code None"."""
        try:
            return self._process.wait(5) if self._process is not None else None
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        if self._process is not None:
            self._conn.close()
            self._process.kill()
            self._process.wait(5)
        self._process = self._conn = self._memory_mb = None


class _Pipe:
    """A two-way connection made of two one-way pipes (a child's inherited descriptors)."""

    def __init__(self, reader: Connection, writer: Connection) -> None:
        self.reader, self.writer = reader, writer

    def send(self, obj: Any) -> None:
        self.writer.send(obj)

    def recv(self) -> Any:
        return self.reader.recv()

    def poll(self, timeout: float) -> bool:
        return self.reader.poll(timeout)

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


_child_conn: _Pipe | None = None  # set in the child: where keep_alive reports


def keep_alive() -> None:
    """Called by a reader in the child after each long step of one file (a page read by OCR):
    the file's time budget (``parse_timeout``) starts again, so it bounds a step, not a
    100-page scan. A no-op outside the child (a file read in the caller's process)."""
    if _child_conn is not None:
        _child_conn.send(("alive", None))


def _serve(conn: _Pipe, memory_mb: int) -> None:
    """The child: cap its own memory, then run what it is sent until the pipe closes."""
    import resource
    import warnings

    global _child_conn
    _child_conn = conn
    from tpdqa.ingest import read_file

    read_file(b"Ready.", "ready.txt", Limits(), None)  # the readers' imports and language model, before any budget
    conn.send(("ready", None))
    limit = memory_mb * MB
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    # Parsers' own chatter ("invalid pdf header") would reach the user's terminal before
    # tpdqa's one-line reason for the same file.
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    warnings.simplefilter("ignore")
    while True:
        try:
            function, args = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            reply = ("ok", function(*args))
        except MemoryError:
            reply = ("memory", None)
        except BaseException as exc:  # noqa: BLE001 - any parser failure goes back as the file's reason
            reply = ("error", exc if _picklable(exc) else ParseFailure(type(exc).__name__, str(exc)))
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("memory", None))


def _picklable(exc: BaseException) -> bool:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return True
    except Exception:  # noqa: BLE001
        return False


sandbox = Sandbox()
atexit.register(sandbox.close)
_pool: list[Sandbox] = [sandbox]
_pool_lock = threading.Lock()


def sandboxes(n: int) -> list[Sandbox]:
    """``n`` children for files read side by side (the first is :data:`sandbox`), kept for the
    process's life like it."""
    with _pool_lock:
        while len(_pool) < n:
            _pool.append(Sandbox())
            atexit.register(_pool[-1].close)
        return _pool[:n]


def child(argv: list[str]) -> None:
    """The child that :class:`Sandbox` starts: ``READ_FD WRITE_FD MEMORY_MB``."""
    _serve(_Pipe(Connection(int(argv[0]), writable=False), Connection(int(argv[1]), readable=False)), int(argv[2]))
