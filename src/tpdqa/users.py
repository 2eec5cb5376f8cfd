"""Who may use a served tpdqa: the users file, sign-in with back-off, roles, collections, the audit log.

A users file (TOML, written by ``tpdqa user add``) holds, per user, an argon2 hash of the
password (never the password), a role and the collections the user may read::

    [users.alice]
    password = "$argon2id$v=19$m=65536,t=3,p=4$..."
    role = "reader"                  # reader: asks; admin: also uploads, deletes, re-indexes
    collections = ["sales"]          # top-level folders of documents/; "default": its top-level files; "*": all
    keys = [{id = "k3f9a1c2", sha256 = "...", created = "2026-12-01T18:00:00Z"}]   # API keys (tpdqa user key)

    >>> import tempfile
    >>> from tpdqa.users import Users
    >>> users = Users(f"{tempfile.mkdtemp()}/users.toml")
    >>> users.add("alice", "correct horse", role="reader", collections=["sales"])
    >>> users.authenticate("alice", "correct horse"), users.authenticate("alice", "wrong")
    (True, False)
    >>> users.get("alice").may_read(["sales", "legal"])
    ['sales']
    >>> key = users.create_key("alice")           # shown once; only its SHA-256 is stored
    >>> users.user_for_key(key).name, users.user_for_key(key + "x")
    ('alice', None)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import tomlkit
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("reader", "admin")
ALL = "*"
# After this many wrong passwords in a row, a user's next try waits 1 s, then 2, 4, ... (at most 5 min).
FREE_TRIES = 10
MAX_DELAY = 300.0
# Names whose failures are remembered: anyone can try any name, so the table is bounded
# (the oldest entries go first; a flood of made-up names cannot grow it past this).
MAX_TRACKED_NAMES = 10_000

# API keys read "tpdqa-<id>.<secret>": the id finds the entry, the secret is 256 random bits.
KEY_PREFIX = "tpdqa-"

_hasher = PasswordHasher()
audit_log = logging.getLogger("tpdqa.audit")


@dataclass(frozen=True)
class User:
    name: str
    role: Literal["reader", "admin"] = "reader"
    collections: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_read(self, collections: list[str]) -> list[str]:
        """The ones of ``collections`` this user may read."""
        return [c for c in collections if ALL in self.collections or c in self.collections]

    def scope(self, present: list[str], chosen: list[str] | None = None,
              offered: list[str] | None = None) -> list[str] | None:
        """The collections a question of this user reads, among the ``present`` ones (None: all,
        which costs Chroma nothing where a filter does): those the user may read, less those
        not ``chosen`` among the ``offered`` ones (a page's picker: a collection made since the
        page loaded is in; an API call offers every collection). Narrows, never widens.

            >>> User("bob", "reader", ("sales", "hr")).scope(["default", "hr", "sales"], chosen=["sales", "legal"])
            ['sales']
        """
        allowed = self.may_read(present)
        if chosen is not None:
            offered = present if offered is None else offered
            allowed = [c for c in allowed if c in chosen or c not in offered]
        return None if ALL in self.collections and len(allowed) == len(present) else allowed


# Without a users file, the one person at 127.0.0.1 is the admin of everything.
LOCAL = User("local", "admin", (ALL,))


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class Users:
    """The users file, read again whenever it changes on disk (``tpdqa user add`` on a running server)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._users: dict[str, tuple[str, User]] = {}
        self._keys: dict[str, tuple[str, str]] = {}  # key id -> (user, sha256 of the key)
        self._mtime: int | None = None
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------
    def _load(self) -> dict[str, tuple[str, User]]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if mtime != self._mtime:
            try:
                data = tomlkit.parse(self.path.read_text(encoding="utf-8")).unwrap()
            except Exception as exc:  # noqa: BLE001 - a broken file must say where
                raise ValueError(f"Users file {self.path} cannot be read ({exc}); fix it or write it again "
                                 "with `tpdqa user add`.") from exc
            users, keys = {}, {}
            for name, entry in (data.get("users") or {}).items():
                role = entry.get("role", "reader")
                if role not in ROLES or not entry.get("password"):
                    raise ValueError(f"Users file {self.path}: user {name!r} needs a password hash and a role "
                                     f"in {ROLES}; write it again with `tpdqa user add {name}`.")
                users[name] = (entry["password"], User(name, role, tuple(entry.get("collections") or ())))
                keys.update({key["id"]: (name, key["sha256"]) for key in entry.get("keys") or ()})
            self._users, self._keys, self._mtime = users, keys, mtime
        return self._users

    def get(self, name: str | None) -> User | None:
        if not name:
            return None
        entry = self._load().get(name)
        return entry[1] if entry else None

    def names(self) -> list[str]:
        return sorted(self._load())

    # -- sign-in -----------------------------------------------------------------------
    def authenticate(self, name: str, password: str) -> bool:
        """True if ``password`` is ``name``'s. After :data:`FREE_TRIES` wrong ones in a row, a
        try that comes before the user's back-off delay is refused without being checked.
        It takes ~0.1 s of CPU (argon2): servers call it off their event loop."""
        with self._lock:
            wait = self.delay(name)
            if wait and time.monotonic() - self._failures[name].last < wait:
                self._failures[name].last = time.monotonic()
                audit(user=name, action="sign-in", result="refused-backoff")
                return False
        entry = self._load().get(name)
        ok = False
        if entry is not None:
            try:
                ok = _hasher.verify(entry[0], password)
            except (VerificationError, InvalidHashError):
                ok = False
        else:
            _hasher.hash(password)  # as slow as a real check: no hint that the name is unknown
        with self._lock:
            if ok:
                self._failures.pop(name, None)
            else:  # only failures are kept, so right tries leave nothing behind
                failures = self._failures.pop(name, None) or _Failures()
                failures.count += 1
                failures.last = time.monotonic()
                self._failures[name] = failures  # the most recent last
                while len(self._failures) > MAX_TRACKED_NAMES:
                    self._failures.popitem(last=False)
        audit(user=name, action="sign-in", result="ok" if ok else "wrong-password")
        return ok

    def delay(self, name: str) -> float:
        """Seconds the next try of ``name`` must wait after the last one (0 while tries are free)."""
        count = self._failures.get(name, _Failures()).count
        return 0.0 if count < FREE_TRIES else min(MAX_DELAY, 2.0 ** (count - FREE_TRIES))

    def tracked(self) -> int:
        """How many names have failures remembered (bounded by :data:`MAX_TRACKED_NAMES`)."""
        return len(self._failures)

    def stamp(self, name: str) -> str | None:
        """What a sign-in of ``name`` is valid for: its password hash. When ``tpdqa user add``
        changes the password (or ``remove`` drops the user), sessions signed in before end."""
        entry = self._load().get(name)
        return entry[0] if entry else None

    # -- API keys ----------------------------------------------------------------------
    def user_for_key(self, key: str) -> User | None:
        """The user an API key belongs to, None for a wrong, revoked or malformed one.

        Keys are random (256 bits), so a SHA-256 of them is as safe to store as a slow hash and
        costs nothing per request; the stored digest is compared in constant time, and the key's
        id (its public part, like a username) finds the entry without comparing against others."""
        key_id, _, secret = (key or "").removeprefix(KEY_PREFIX).partition(".")
        self._load()
        entry = self._keys.get(key_id)
        if entry is None or not secret:
            return None
        name, digest = entry
        if not hmac.compare_digest(_digest(key), digest):
            return None
        return self.get(name)

    def create_key(self, name: str) -> str:
        """A new API key for ``name`` (returned once: only its SHA-256 is written)."""
        doc, entry = self._entry(name)
        key_id = secrets.token_hex(4)
        while key_id in self._keys:
            key_id = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{key_id}.{secrets.token_urlsafe(32)}"
        keys = entry.setdefault("keys", tomlkit.array())
        keys.append({"id": key_id, "sha256": _digest(key),
                     "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
        self._write(doc)
        return key

    def revoke_keys(self, name: str, key_id: str | None = None) -> int:
        """Revoke ``name``'s key ``key_id`` (its id or the whole key), or all of them; how many went."""
        doc, entry = self._entry(name)
        keys = list(entry.get("keys") or [])
        wanted = (key_id or "").removeprefix(KEY_PREFIX).partition(".")[0]
        kept = [k for k in keys if wanted and k["id"] != wanted]
        if len(kept) < len(keys):
            entry["keys"] = kept
            self._write(doc)
        return len(keys) - len(kept)

    def key_ids(self, name: str) -> list[str]:
        self._load()
        return [key_id for key_id, (owner, _) in self._keys.items() if owner == name]

    def _entry(self, name: str):
        if not self.path.exists():
            raise ValueError(f"Users file {self.path} does not exist: add the user first with "
                             f"`tpdqa user add {name} --users {self.path}`.")
        doc = tomlkit.parse(self.path.read_text(encoding="utf-8"))
        entry = doc.get("users", {}).get(name)
        if entry is None:
            raise ValueError(f"No user {name!r} in {self.path}: add them first with `tpdqa user add {name}`.")
        return doc, entry

    # -- writing -----------------------------------------------------------------------
    def add(self, name: str, password: str, role: str = "reader", collections: list[str] | None = None) -> None:
        """Add or replace a user (the password is stored as an argon2 hash)."""
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"User name {name!r}: use letters, digits, '-', '_' or '.'.")
        if role not in ROLES:
            raise ValueError(f"Role {role!r}: use one of {', '.join(ROLES)}.")
        if len(password) < 8:
            raise ValueError("The password is too short: use at least 8 characters.")
        doc = tomlkit.parse(self.path.read_text(encoding="utf-8")) if self.path.exists() else tomlkit.document()
        users = doc.setdefault("users", tomlkit.table())
        entry = tomlkit.table()
        entry["password"] = _hasher.hash(password)
        entry["role"] = role
        entry["collections"] = list(collections or ([ALL] if role == "admin" else []))
        if name in users and users[name].get("keys"):  # a new password or role keeps the user's API keys
            entry["keys"] = users[name]["keys"]
        users[name] = entry
        self._write(doc)

    def remove(self, name: str) -> bool:
        if not self.path.exists():
            return False
        doc = tomlkit.parse(self.path.read_text(encoding="utf-8"))
        if name not in doc.get("users", {}):
            return False
        del doc["users"][name]
        self._write(doc)
        return True

    def _write(self, doc) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.part")
        partial.write_text(tomlkit.dumps(doc), encoding="utf-8")
        partial.chmod(0o600)  # hashes only, but nobody else's business
        partial.replace(self.path)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def open_audit_log(index_dir: str | Path) -> Path:
    """Write sign-ins, uploads, deletes and re-indexes (refused ones too) to ``index_dir/audit.log``,
    one JSON object a line (so no field, a user name with a newline say, can forge a line);
    the file is readable by its owner only."""
    path = Path(index_dir) / "audit.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not any(getattr(h, "baseFilename", None) == str(path.resolve()) for h in audit_log.handlers):
        private_file(path)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        audit_log.addHandler(handler)
    audit_log.setLevel(logging.INFO)
    audit_log.propagate = False
    return path


def audit(**fields: object) -> None:
    """One audit line: ``{"time": UTC, "user": ..., "action": ..., ...}`` as JSON (ASCII escapes)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    audit_log.info(json.dumps({"time": stamp, **fields}, default=str))


def private_file(path: Path) -> None:
    """Create ``path`` if needed, readable and writable by its owner only (like the users file)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
