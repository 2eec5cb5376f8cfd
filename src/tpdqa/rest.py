"""The REST API, ``/api/v1``: ask, search, documents, re-index, status (OpenAPI at
``/api/v1/openapi.json``, interactive docs at ``/api/v1/docs``).

    curl -s localhost:7860/api/v1/ask -H 'content-type: application/json' \\
         -d '{"question": "Qui domine la production de puces mémoire ?"}'

Each handler names the caller (:class:`~tpdqa.access.ApiAccess`) and makes one call of
:mod:`tpdqa.api` in a worker thread; errors are JSON (:func:`tpdqa.api.error_body`).
"""


import itertools
import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, File, Form, Query, Request, Security, UploadFile
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPBearer
from fastapi.sse import format_sse_event
from pydantic import BaseModel, Field

from tpdqa import api
from tpdqa.access import ApiAccess
from tpdqa.answer import Answer
from tpdqa.api import IndexingState, Turn
from tpdqa.assistant import Assistant
from tpdqa.users import User

# Documented in the OpenAPI document; the caller is named from the request's headers.
BEARER = HTTPBearer(auto_error=False, description="An API key: `tpdqa user key NAME --users FILE` prints one.")


class Error(BaseModel):
    code: str
    status: int
    message: str


class ErrorBody(BaseModel):
    error: Error


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses (all with :class:`ErrorBody`)."""
    return {status: {"model": ErrorBody, "description": api.ERROR_CODES[status]} for status in statuses}


class AskRequest(BaseModel):
    question: str = Field(description="The question, in French or English.")
    history: list[Turn] = Field(default_factory=list, description="The conversation so far, oldest first.")
    collections: list[str] | None = Field(None, description="Answer from these collections only "
                                                            "(within the caller's); null: all the caller's.")


def caller_of(access: ApiAccess) -> Callable[..., User]:
    """The FastAPI dependency that names the caller (or raises 401/403)."""
    def caller(request: Request, _key: Annotated[Any, Security(BEARER)] = None) -> User:
        return access.caller({k.lower(): v for k, v in request.headers.items()}, request.url.path)
    return caller


def in_thread(assistant: Assistant, limiter: anyio.CapacityLimiter | None = None):
    """Run a blocking call of :mod:`tpdqa.api` off the event loop; its errors as :class:`~tpdqa.api.ApiError`."""
    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(partial(fn, assistant, *args, **kwargs), limiter=limiter)
        except Exception as exc:  # noqa: BLE001 - every failure reaches the client as a status and a line
            raise api.api_error(exc, assistant) from exc
    return run


async def started(run: Callable[..., Any], pieces: Iterator[Any]) -> Iterator[Any]:
    """``pieces`` with its first item already made (by ``run``, a :func:`in_thread` runner): the
    checks and the retrieval happen there, so their errors are a status, not an event midway."""
    first = await run(lambda _assistant: next(pieces, None))
    return itertools.chain([] if first is None else [first], pieces)


def sse_answer(assistant: Assistant, pieces: Iterator[str | Answer]) -> Iterator[bytes]:
    """Server-sent events: ``delta`` (``{"text"}``) as the answer comes, then ``answer`` (the
    whole :class:`~tpdqa.answer.Answer`), or ``error`` (an error body) if it fails midway."""
    try:
        for item in pieces:
            if isinstance(item, Answer):
                yield format_sse_event(event="answer", data_str=item.model_dump_json())
            else:
                yield format_sse_event(event="delta", data_str=json.dumps({"text": item}, ensure_ascii=False))
    except Exception as exc:  # noqa: BLE001 - the status line is sent: the error is an event
        yield format_sse_event(event="error", data_str=json.dumps(api.api_error(exc, assistant).body))


def rest_router(assistant: Assistant, indexing: IndexingState, access: ApiAccess,
                answering: anyio.CapacityLimiter) -> APIRouter:
    """``answering``: the limiter every door's questions share (``concurrency`` at a time)."""
    router = APIRouter(prefix="/api/v1", tags=["tpdqa"])
    Caller = Annotated[User, Depends(caller_of(access))]
    asking = in_thread(assistant, answering)
    run = in_thread(assistant)
    upload_limit = (assistant.settings.max_upload_mb * 1024 * 1024 + 65536) * api.MAX_FILES_PER_UPLOAD

    @router.post("/ask", response_model=Answer, responses={
        200: {"content": {"text/event-stream": {}},
              "description": "The Answer; with ?stream=true, events `delta` then `answer` (or `error`)."},
        **errors(400, 401, 403, 422, 503)})
    async def ask(body: AskRequest, user: Caller,
                  stream: Annotated[bool, Query(description="stream server-sent events")] = False) -> Any:
        """Answer a question from the documents, with citations; or say that they do not hold the answer."""
        history = [t.model_dump() for t in body.history]
        if not stream:
            return await asking(api.ask, user, body.question, history, body.collections)
        pieces = await started(asking, api.stream(assistant, user, body.question, history, body.collections))
        return StreamingResponse(sse_answer(assistant, pieces), media_type="text/event-stream")

    @router.get("/search", response_model=api.SearchResult, responses=errors(400, 401, 403, 422, 503))
    async def search(user: Caller, q: Annotated[str, Query(description="what to look for")],
                     k: Annotated[int | None, Query(ge=1, le=50, description="passages (default: setting k)")] = None,
                     collections: Annotated[list[str] | None, Query(description="repeat for several")] = None
                     ) -> api.SearchResult:
        """The fused retrieval alone (dense lists and BM25): the best passages, best first."""
        return await asking(api.search, user, q, k, collections)

    @router.get("/documents", response_model=api.DocumentList, responses=errors(401, 403))
    async def documents(user: Caller) -> api.DocumentList:
        """The indexed documents the caller may read (admins also see those that could not be indexed)."""
        return await run(api.documents, user)

    @router.post("/documents", response_model=api.UploadResult, status_code=201, max_body_size=upload_limit,
                 responses=errors(400, 401, 403, 409, 413, 422, 503))
    async def upload(user: Caller, file: Annotated[list[UploadFile], File(description="repeat for several")],
                     if_exists: Annotated[Literal["fail", "replace", "keep_both"], Form(
                         description="a name already taken: fail (409), replace it, or keep both "
                                     "(the upload gets a new name)")] = "fail") -> api.UploadResult:
        """Add documents (admins), then index them: answerable when this returns. Nothing is
        written unless every file passes (name, type, size, name taken)."""
        files = [(f.filename or "", await f.read()) for f in file]
        return await run(api.upload, user, files, "error" if if_exists == "fail" else if_exists, indexing)

    @router.delete("/documents/{source:path}", response_model=api.IndexReport, responses=errors(401, 403, 404, 503))
    async def delete(user: Caller, source: str) -> api.IndexReport:
        """Delete a document from the folder (admins), then index."""
        return await run(api.delete, user, source, indexing)

    @router.post("/reindex", response_model=api.IndexReport, responses=errors(401, 403, 503))
    async def reindex(user: Caller) -> api.IndexReport:
        """Bring the index up to date with the documents folder (admins; only changes are embedded)."""
        return await run(api.reindex, user, indexing)

    @router.get("/status", response_model=api.Status, responses=errors(401, 403))
    async def status(user: Caller) -> api.Status:
        """Documents and passages the caller may read, the index generation, a running index job's progress."""
        return await run(api.status, user, indexing)

    return router
