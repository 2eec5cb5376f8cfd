"""One server, one port: the chat page at ``/``, the REST API at ``/api/v1``, the
OpenAI-compatible API at ``/v1`` and MCP at ``/mcp``, on the same :class:`~tpdqa.Assistant`.

    tpdqa serve                              # http://127.0.0.1:7860 (this machine only)
    tpdqa serve --host 0.0.0.0 --users users.toml
    tpdqa serve --watch                      # re-index when documents/ changes

The page signs users in (Gradio's login, or a trusted proxy's header); the API's doors take
``Authorization: Bearer <key>`` (``tpdqa user key``). Without a users file the server binds
127.0.0.1 only and the API answers programs on this machine (:class:`~tpdqa.access.ApiAccess`).

    >>> from tpdqa import Assistant
    >>> app = build_server(Assistant())          # a FastAPI app: uvicorn.run(app) serves it
    >>> paths = app.openapi()["paths"]                 # the REST and OpenAI-compatible doors, documented
    >>> [p for p in paths if p.startswith("/v1")]
    ['/v1/models', '/v1/chat/completions']
"""

from __future__ import annotations

import sys
import threading
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import gradio as gr
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from mcp.server.transport_security import TransportSecuritySettings
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from tpdqa.access import ApiAccess, KeyGuard, SessionGuard, password_check
from tpdqa.api import ApiError, IndexingState, error_body
from tpdqa.assistant import Assistant
from tpdqa.mcp_server import build_mcp
from tpdqa.openai_api import openai_router
from tpdqa.rest import rest_router
from tpdqa.ui import CSS, HEAD, build_app
from tpdqa.users import Users, open_audit_log

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DESCRIPTION = """Question answering with exact citations over a folder of documents (French and English).

Authentication: with a users file, every call sends `Authorization: Bearer <key>` (`tpdqa user key NAME`);
without one, the server listens on 127.0.0.1 and answers programs on this machine.
Errors are `{"error": {"code", "status", "message"}}`. The OpenAI-compatible door is `/v1`, MCP is `/mcp`."""


def build_server(assistant: Assistant, users: Users | None = None, indexing: IndexingState | None = None,
                 local_only: bool = True) -> FastAPI:
    """The ASGI application: page, REST, ``/v1`` and ``/mcp``. ``local_only`` (no users, a
    loopback host): the API refuses requests a web page could have sent."""
    settings = assistant.settings
    indexing = indexing or IndexingState()
    access = ApiAccess(users, local_only)
    answering = anyio.CapacityLimiter(settings.concurrency)  # questions of every door, together
    mcp = build_mcp(assistant, default_user=None, answering=answering)
    # Stateless: each call names its user by its own key, and no session outlives a request.
    # Host and Origin are checked by ApiAccess (the SDK's check would refuse any non-loopback host).
    mcp_http = mcp.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, json_response=True,
                                       transport_security=TransportSecuritySettings(
                                           enable_dns_rebinding_protection=False))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        async with mcp.session_manager.run():
            yield

    # FastAPIOffline: the docs page's Swagger UI from the package, not from a CDN (tpdqa runs offline)
    app = FastAPIOffline(title="tpdqa", version=version("tpdqa"), description=DESCRIPTION, lifespan=lifespan,
                         openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None,
                         static_url="/api/v1/docs-static")
    app.include_router(rest_router(assistant, indexing, access, answering))
    app.include_router(openai_router(assistant, access, answering))
    endpoint = next(r.endpoint for r in mcp_http.routes if getattr(r, "path", None) == "/mcp")
    app.router.routes.append(Route("/mcp", KeyGuard(endpoint, access), methods=["GET", "POST", "DELETE"]))

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return JSONResponse(error_body(422, f"Invalid request ({details}); see /api/v1/docs."), status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code,
                            headers=exc.headers)

    demo = build_app(assistant, indexing, users)
    demo.queue(default_concurrency_limit=settings.concurrency)
    return gr.mount_gradio_app(app, demo, path="/", css=CSS, head=HEAD, show_error=True, ssr_mode=False,
                               max_file_size=f"{settings.max_upload_mb}mb", **sign_in(settings, users))


def sign_in(settings: Any, users: Users | None) -> dict[str, Any]:
    """How the page signs users in: none, Gradio's login (argon2 off the event loop), or a
    trusted proxy's header; each session hash belongs to its user (:class:`SessionGuard`)."""
    if users is None:
        return {}
    if settings.trusted_user_header:
        header = settings.trusted_user_header
        kwargs: dict[str, Any] = {"auth_dependency": lambda request: (
            request.headers.get(header) if users.get(request.headers.get(header)) else None)}
    else:
        kwargs = {"auth": password_check(users), "auth_message": "Sign in to ask the documents you may read."}
    return {**kwargs, "app_kwargs": {"middleware": [Middleware(SessionGuard, users=users)]}}


def serve(assistant: Assistant, host: str = "127.0.0.1", port: int = 7860, watch: bool = False,
          insecure: bool = False) -> None:
    """Index in the background (and on every change with ``watch``), serve everything (blocks until stopped).

    With ``users_file`` set, users sign in; without it, only ``host`` 127.0.0.1 is served unless ``insecure``."""
    import uvicorn

    settings = assistant.settings
    if settings.users_file and not Path(settings.users_file).exists():
        raise FileNotFoundError(f"Users file {settings.users_file} does not exist: create it with "
                                f"`tpdqa user add NAME --role admin --users {settings.users_file}`.")
    users = Users(settings.users_file) if settings.users_file else None
    if users is None and host not in LOOPBACK:
        if not insecure:
            raise ValueError(
                f"Refusing to serve on {host} without sign-in: anyone who reaches port {port} could read, upload and "
                "delete documents. Give --users FILE (create it with `tpdqa user add NAME --role admin`), "
                "or --insecure to serve openly anyway.")
        print(f"tpdqa: WARNING: serving on {host} without sign-in (--insecure): anyone who reaches port {port} "
              "is an admin.", file=sys.stderr, flush=True)
    if users is not None and not users.names():
        raise ValueError(f"Users file {settings.users_file} holds no user: add one with "
                         f"`tpdqa user add NAME --role admin --users {settings.users_file}`.")
    open_audit_log(settings.index_dir)

    indexing = IndexingState(running=True, watching=watch)
    run = lambda: indexing.run(assistant)  # noqa: E731
    if watch:
        from tpdqa.watch import watch_documents, watched_folder

        watched_folder(assistant)  # a missing folder stops here, with its message, not in a thread
        target, kwargs = watch_documents, {"assistant": assistant, "on_change": run, "run_first": True}
    else:
        target, kwargs = run, {}
    threading.Thread(target=target, kwargs=kwargs, daemon=True, name="tpdqa-index").start()
    app = build_server(assistant, users, indexing, local_only=users is None and host in LOOPBACK)
    print(f"tpdqa: open http://{host}:{port} in a browser; API at http://{host}:{port}/api/v1/docs, "
          f"/v1 (OpenAI-compatible), /mcp (Ctrl+C stops).", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
