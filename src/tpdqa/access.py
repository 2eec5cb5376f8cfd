"""Who is behind each HTTP request of a served tpdqa: the page's sessions, the API's keys.

Gradio signs users in (its ``/login`` sets an ``access-token`` cookie), but keys a page's
state and event streams by a ``session_hash`` that the browser picks and sends in URLs and
bodies. Nothing ties that hash to the signed-in user, so whoever learns one (proxy logs,
a shared screen) could read another user's answers from ``queue/data`` or act in their
session. :class:`SessionGuard`, an ASGI middleware inside Gradio's app, closes that:

- **a session belongs to the user who first used it**: a request that carries a session
  hash (query, path or JSON body) from another user gets 403 and nothing of the session;
- **a sign-in lasts while its password does**: a token signed in before ``tpdqa user add``
  changed the password (or before ``tpdqa user remove``) is dropped and answered 401.

:func:`password_check` runs the argon2 check off the event loop, one at a time, so a
flood of sign-in attempts costs one core and never stalls other users' requests.

Hand-written because Gradio has no hook for either (its ``auth_dependency`` only names
the user; it cannot see the session hash), and these are a few lines of plain ASGI.

The API (REST, ``/v1``, ``/mcp``) has no session: :class:`ApiAccess` names the owner of the
request's ``Authorization: Bearer`` key (``tpdqa user key``), or, without a users file, the
local admin of a loopback-only server, after refusing what a web page could send there
(another site's ``Origin``, a rebound ``Host``). :class:`KeyGuard` applies it to an ASGI app.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

import anyio

from tpdqa.api import ApiError, error_body
from tpdqa.users import LOCAL, User, Users, audit

log = logging.getLogger(__name__)

# Session hashes remembered (oldest dropped first): one per browser tab, so this covers
# far more open tabs than a server of this size ever holds.
MAX_SESSIONS = 100_000


def password_check(users: Users) -> Callable[[str, str], Any]:
    """Gradio's ``auth`` callable: ``users.authenticate`` in a worker thread, one check at a time."""
    one_at_a_time = anyio.CapacityLimiter(1)

    async def check(name: str, password: str) -> bool:
        return await anyio.to_thread.run_sync(users.authenticate, name, password, limiter=one_at_a_time)

    return check


class SessionGuard:
    """ASGI middleware for Gradio's app (``App(middleware=[Middleware(SessionGuard, users=...)])``)."""

    def __init__(self, app: Any, users: Users) -> None:
        self.app = app
        self.users = users
        self.owners: OrderedDict[str, str] = OrderedDict()  # session hash -> user
        self.signed: dict[str, tuple[str, str | None]] = {}  # access token -> (user, password stamp)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        gradio = scope["app"]
        path = scope["path"]
        if path.rstrip("/").endswith("/login") and scope["method"] == "POST":
            return await self._login(scope, receive, send)
        user = self._user(gradio, scope)
        if user is False:  # a token from before a password change or removal
            return await _reply(send, 401, "Your sign-in has ended (the password changed): sign in again.")
        body, receive = await _buffered(scope, receive)
        session = _session_hash(scope, body)
        if session and not user:  # Gradio leaves some session routes (heartbeat, cancel) open
            return await _reply(send, 401, "Sign in first.")
        if session and not self._claim(session, user):
            audit(user=user, action="use-session", result="refused-other-user", path=path)
            return await _reply(send, 403, "This session belongs to another user.")
        return await self.app(scope, receive, send)

    def _user(self, gradio: Any, scope: dict) -> str | None | bool:
        """The signed-in user, None if nobody is, False for a sign-in that has ended."""
        if getattr(gradio, "auth_dependency", None) is not None:
            from starlette.requests import Request

            return gradio.auth_dependency(Request(scope)) or None  # the proxy's header, checked per request
        cookies = SimpleCookie()
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookies.load(value.decode("latin-1"))
        for prefix in ("access-token-", "access-token-unsecure-"):
            morsel = cookies.get(f"{prefix}{gradio.cookie_id}")
            if morsel is None or morsel.value not in gradio.tokens:
                continue
            token = morsel.value
            user, stamp = self.signed.get(token, (gradio.tokens[token], None))
            if stamp is None or self.users.stamp(user) != stamp:
                gradio.tokens.pop(token, None)
                self.signed.pop(token, None)
                audit(user=user, action="session", result="ended-password-changed")
                return False
            return user
        return None

    def _claim(self, session: str, user: str) -> bool:
        owner = self.owners.get(session)
        if owner is None:
            self.owners[session] = user
            while len(self.owners) > MAX_SESSIONS:
                self.owners.popitem(last=False)
            return True
        return owner == user

    async def _login(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Gradio's sign-in, watched: the token it issues is noted with the password hash it was
        issued for (read as the response leaves, a few ms after the check)."""
        gradio = scope["app"]

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                for header, value in message.get("headers", []):
                    if header.lower() == b"set-cookie":
                        for key, morsel in SimpleCookie(value.decode("latin-1")).items():
                            name = gradio.tokens.get(morsel.value)
                            if key.startswith("access-token") and name:
                                self.signed[morsel.value] = (name, self.users.stamp(name))
                if len(self.signed) > MAX_SESSIONS:  # signed out since: Gradio dropped their tokens
                    self.signed = {t: v for t, v in self.signed.items() if t in gradio.tokens}
            await send(message)

        await self.app(scope, receive, watch)


def _session_hash(scope: dict, body: bytes) -> str | None:
    """The session hash a Gradio request names: ``?session_hash=``, ``/heartbeat/<hash>``,
    ``/stream/<hash>/...`` or a JSON body's ``session_hash``."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("session_hash"):
        return query["session_hash"][0]
    parts = scope["path"].strip("/").split("/")
    for marker in ("heartbeat", "stream"):
        if marker in parts[:-1]:
            return parts[parts.index(marker) + 1]
    if body[:1] == b"{":
        try:
            value = json.loads(body).get("session_hash")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None
    return None


async def _buffered(scope: dict, receive: Callable) -> tuple[bytes, Callable]:
    """A JSON request body read whole, and a ``receive`` that replays it."""
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    if scope["method"] != "POST" or not content_type.startswith(b"application/json"):
        return b"", receive
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return b"", receive
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> dict:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def _reply(send: Callable, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(error_body(status, message)).encode()
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": payload})


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
ASK_FOR_A_KEY = "an admin creates one with `tpdqa user key NAME --users FILE`"


class ApiAccess:
    """Who calls the API. With ``users``: the owner of the request's bearer key; without: the
    local admin, for requests that a program on this machine sends (no other site's ``Origin``,
    a loopback ``Host``), since a browser would otherwise let any web page post to 127.0.0.1."""

    def __init__(self, users: Users | None, local_only: bool = True) -> None:
        self.users = users
        self.local_only = local_only

    def caller(self, headers: dict[str, str], path: str) -> User:
        """The user, or :class:`~tpdqa.api.ApiError` 401/403 (refusals are audited, keys never)."""
        if self.users is None:
            if self.local_only and not _local(headers):
                audit(user=None, action="api", path=path, result="refused-cross-site")
                raise ApiError(403, "Cross-site request refused: the API of a server without users answers "
                                    "programs on this machine, not web pages.")
            return LOCAL
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            audit(user=None, action="api", path=path, result="refused-no-key")
            raise ApiError(401, f"Send an API key as `Authorization: Bearer <key>` ({ASK_FOR_A_KEY}).")
        user = self.users.user_for_key(key.strip())
        if user is None:
            audit(user=None, action="api", path=path, result="refused-bad-key")
            raise ApiError(401, f"This API key is not valid (mistyped, or revoked); {ASK_FOR_A_KEY}.")
        return user


def _local(headers: dict[str, str]) -> bool:
    host = headers.get("host", "").rpartition(":")[0] or headers.get("host", "")
    origin = headers.get("origin")
    if origin is not None:  # browsers send it on every cross-origin request, and on same-origin POSTs
        origin_host = origin.partition("://")[2].rpartition(":")[0] or origin.partition("://")[2]
        if origin_host not in LOOPBACK_HOSTS:
            return False
    return host in LOOPBACK_HOSTS


class KeyGuard:
    """ASGI wrapper: the app runs only for a known caller, found in ``scope["state"]["user"]``."""

    def __init__(self, app: Any, access: ApiAccess) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            user = self.access.caller(headers, scope["path"])
        except ApiError as exc:
            extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return await _reply(send, exc.status, exc.message, extra)
        scope.setdefault("state", {})["user"] = user
        return await self.app(scope, receive, send)
