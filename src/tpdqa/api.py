"""What every programmatic door returns, and the calls behind them, made for one user.

The REST API (:mod:`tpdqa.rest`), the OpenAI-compatible one (:mod:`tpdqa.openai_api`) and
the MCP server (:mod:`tpdqa.mcp_server`) are transports: each names the caller (a
:class:`~tpdqa.users.User`) and calls these functions, so that roles, collections and the
audit log are applied once, here, the same way for every door and for the chat page.

    >>> from langchain_core.documents import Document
    >>> from tpdqa.api import Passage
    >>> Passage.of(Document("Le Japon est leader.", id="c1",
    ...                     metadata={"source": "a.txt", "section": "Robots", "score": 0.5})).section
    'a.txt › Robots'
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

from tpdqa.answer import Answer, RetrievedChunk
from tpdqa.assistant import (Assistant, DocumentError, DocumentExists, DocumentNotFound, DocumentTooLarge,
                             NoDocuments, QuestionError, explain)
from tpdqa.ingest import collection_of
from tpdqa.store import IndexBusyError, IndexStats, Progress
from tpdqa.users import User, audit

log = logging.getLogger(__name__)

# Files one upload request may carry (each up to max_upload_mb).
MAX_FILES_PER_UPLOAD = 20

# The error codes of every door's JSON errors, by HTTP status.
ERROR_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
               413: "too_large", 422: "invalid_request", 500: "internal_error", 503: "unavailable"}


class ApiError(Exception):
    """An error for an API caller: an HTTP status and one line that says what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message

    @property
    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message)


def error_body(status: int, message: str) -> dict[str, Any]:
    """``{"error": {"code", "status", "message"}}``: what every door answers on an error
    (OpenAI's clients read ``error.message`` from it too)."""
    return {"error": {"code": ERROR_CODES.get(status, "error"), "status": status, "message": message}}


def api_error(exc: BaseException, assistant: Assistant) -> ApiError:
    """``exc`` as the status a client can act on, with :func:`~tpdqa.assistant.explain`'s line."""
    if isinstance(exc, ApiError):
        return exc
    status = (409 if isinstance(exc, DocumentExists) else 413 if isinstance(exc, DocumentTooLarge)
              else 404 if isinstance(exc, DocumentNotFound) else 400 if isinstance(exc, (QuestionError, DocumentError))
              else 503 if isinstance(exc, (NoDocuments, IndexBusyError)) else 500)
    if status == 500:
        log.exception("API call failed", exc_info=exc)
    return ApiError(status, explain(exc, assistant.settings.index_dir))


# -- what the doors return -------------------------------------------------------------------

class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class Passage(RetrievedChunk):
    """One retrieved passage: where it is, and its fused retrieval score (``Passage.of(doc)``)."""


class Cited(BaseModel):
    """A citation as the chat-completions and MCP doors give it (the REST ``/ask`` gives the whole
    :class:`~tpdqa.answer.Citation`)."""

    n: int = Field(description="The marker number, [n] in the answer text.")
    source: str
    section: str | None = None
    page: int | None = None
    quote: str = Field(description="The sentence(s) of the passage that support the answer.")
    sentences: list[str] = Field(default_factory=list)
    chunk_id: str


class CitedAnswer(BaseModel):
    """An answer as the chat-completions and MCP doors give it."""

    text: str = Field(description="The answer, with [n] markers; or why the documents do not answer.")
    refused: bool = Field(description="True when the documents do not hold the answer.")
    citations: list[Cited]

    @classmethod
    def of(cls, answer: Answer) -> CitedAnswer:
        return cls(text=answer.text, refused=answer.refused,
                   citations=[Cited(**c.model_dump(include=set(Cited.model_fields))) for c in answer.citations])


class SearchResult(BaseModel):
    query: str
    passages: list[Passage]


class NotIndexed(BaseModel):
    source: str
    reason: str


class DocumentPart(BaseModel):
    """A document inside a file: an e-mail's attachment, a mailbox's message."""

    name: str = Field(description="Its place in the file, as citations show it after the file: 'report.pdf'.")
    title: str
    chunks: int


class DocumentInfo(BaseModel):
    source: str
    collection: str
    chunks: int
    sha256: str
    indexed_at: datetime
    parts: list[DocumentPart] = Field(default_factory=list,
                                      description="Documents inside the file (removed with it).")


class DocumentList(BaseModel):
    documents: list[DocumentInfo]
    not_indexed: list[NotIndexed] = Field(default_factory=list,
                                          description="Files that could not be indexed, and why (admins only).")


class IndexReport(BaseModel):
    """What an index run did (files, then passages)."""

    added: int
    updated: int
    deleted: int
    unchanged: int
    failed: int
    chunks: int
    embedded: int
    chunks_deleted: int
    seconds: float
    errors: list[NotIndexed]

    @classmethod
    def of(cls, stats: IndexStats) -> IndexReport:
        return cls(**stats.as_dict())


class Saved(BaseModel):
    name: str = Field(description="The uploaded file's name.")
    saved_as: str = Field(description="Its name in the documents folder (differs with if_exists=keep_both).")


class UploadResult(BaseModel):
    saved: list[Saved]
    index: IndexReport


class IndexingProgress(BaseModel):
    running: bool
    stage: str = Field(description="The running stage (e.g. an encoder's name), empty when idle.")
    done: int
    total: int
    last: str = Field(description="What the last run of this server did, or why it failed.")
    watching: bool


class Status(BaseModel):
    documents: int = Field(description="Indexed (searchable) documents the caller may read.")
    passages: int
    complete: int = Field(description="Of those, the documents every encoder has read (progressive indexing: "
                                      "searchable first, complete behind).")
    collections: list[str] = Field(description="The collections the caller may read.")
    generation: str | None = Field(description="Changes whenever the index does (any process).")
    indexing: IndexingProgress


# -- index runs of a server ------------------------------------------------------------------

@dataclass
class IndexingState:
    """The index runs of this server (at start, on a watched change, from the page or the API),
    read by the page's header and ``/api/v1/status``."""

    running: bool = False
    stage: str = ""
    done: int = 0
    total: int = 0
    last: str = ""  # what the last run did, or why it failed
    watching: bool = False

    def run(self, assistant: Assistant, progress: Progress | None = None) -> IndexStats | None:
        """One index run, its progress also given to ``progress``; None if it failed (``last`` says why)."""
        self.running, self.stage, self.done, self.total = True, "", 0, 0

        def report(stage: str, done: int, total: int) -> None:
            self.stage, self.done, self.total = stage, done, total
            if progress is not None:
                progress(stage, done, total)

        try:
            stats = assistant.index(progress=report)
            self.last = "Last indexing: " + stats_line(stats)
            return stats
        except Exception as exc:  # noqa: BLE001 - said in one line, the server goes on
            log.exception("indexing failed")
            self.last = f"Indexing failed: {explain(exc, assistant.settings.index_dir)}"
            return None
        finally:
            self.running = False

    def progress(self) -> IndexingProgress:
        return IndexingProgress(running=self.running, stage=self.stage, done=self.done, total=self.total,
                                last=self.last, watching=self.watching)


def stats_line(stats: IndexStats) -> str:
    return (f"{stats.added} added, {stats.updated} updated, {stats.deleted} deleted, {stats.failed} skipped; "
            f"{stats.embedded} passages embedded in {stats.seconds:.1f}s.")


# -- the calls ---------------------------------------------------------------------------------

def ask(assistant: Assistant, user: User, question: str, history: list[Any] | None = None,
        collections: list[str] | None = None) -> Answer:
    """The answer, from the collections ``user`` may read (narrowed to ``collections``)."""
    return assistant.ask(question, history=history, collections=user.scope(assistant.collections(), collections))


def stream(assistant: Assistant, user: User, question: str, history: list[Any] | None = None,
           collections: list[str] | None = None) -> Iterator[str | Answer]:
    """:func:`ask`, its text piece by piece, then the checked Answer."""
    yield from assistant.stream(question, history=history,
                                collections=user.scope(assistant.collections(), collections))


def search(assistant: Assistant, user: User, query: str, k: int | None = None,
           collections: list[str] | None = None) -> SearchResult:
    """The fused retrieval alone, in the collections ``user`` may read."""
    docs = assistant.search(query, k=k, collections=user.scope(assistant.collections(), collections))
    return SearchResult(query=query, passages=[Passage.of(d) for d in docs])


def documents(assistant: Assistant, user: User) -> DocumentList:
    """The indexed documents ``user`` may read; for admins, also those that could not be indexed."""
    store = assistant.current_store()
    readable = set(user.may_read(assistant.collections()))
    parts = store.parts()
    listed = [DocumentInfo(source=f.source, collection=collection_of(f.source), chunks=f.chunks, sha256=f.sha256,
                           indexed_at=datetime.fromtimestamp(f.indexed_at, timezone.utc),
                           parts=[DocumentPart(**asdict(p)) for p in parts.get(f.source, ())])
              for f in store.files() if collection_of(f.source) in readable]
    failed = [NotIndexed(source=e.source, reason=e.reason) for e in store.failures()] if user.is_admin else []
    return DocumentList(documents=listed, not_indexed=failed)


def status(assistant: Assistant, user: User, indexing: IndexingState) -> Status:
    store = assistant.current_store()
    present = assistant.collections()
    files, chunks = store.counts(user.scope(present))
    _, complete, _ = store.phases(user.scope(present))
    return Status(documents=files, passages=chunks, complete=complete, collections=user.may_read(present),
                  generation=store.generation, indexing=indexing.progress())


def require_admin(user: User, action: str, **fields: Any) -> None:
    """:class:`ApiError` 403 (and an audit line) unless ``user`` is an admin."""
    if not user.is_admin:
        audit(user=user.name, action=action, result="refused-not-admin", **fields)
        raise ApiError(403, f"Only an admin may {action}; {user.name} is a {user.role}.")


def upload(assistant: Assistant, user: User, files: list[tuple[str, bytes]], if_exists: str,
           indexing: IndexingState) -> UploadResult:
    """Save ``files`` in the documents folder, then index. Every file is checked (name, type,
    size, a name taken) before any is written: a refused request changes nothing."""
    require_admin(user, "upload documents", files=[name for name, _ in files])
    if not files:
        raise ApiError(400, "No file in the request: send each document as a multipart field named 'file'.")
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise ApiError(413, f"{len(files)} files in one request; send at most {MAX_FILES_PER_UPLOAD} at a time.")
    names = [name for name, _ in files]
    if len(set(names)) < len(names):
        raise ApiError(409, f"Two files of this request are named {max(names, key=names.count)}: rename one.")
    try:
        for name, data in files:
            assistant.check_document(name, len(data), if_exists)
        saved = [Saved(name=name, saved_as=assistant.add_document(name, data, if_exists=if_exists))
                 for name, data in files]
    except DocumentError as exc:
        audit(user=user.name, action="upload", files=[name for name, _ in files], result="refused", reason=str(exc))
        raise api_error(exc, assistant) from exc
    for item, (_, data) in zip(saved, files):
        audit(user=user.name, action="upload", file=item.saved_as, bytes=len(data), mode=if_exists)
    return UploadResult(saved=saved, index=reindex(assistant, user, indexing))


def delete(assistant: Assistant, user: User, source: str, indexing: IndexingState) -> IndexReport:
    """Remove ``source`` from the documents folder, then index."""
    require_admin(user, "delete documents", file=source)
    if collection_of(source) not in user.may_read([collection_of(source)]):
        audit(user=user.name, action="delete", file=source, result="refused-collection")
        raise ApiError(403, f"{user.name} may not change the collection {collection_of(source)!r}.")
    try:
        assistant.remove_document(source)
    except DocumentError as exc:
        audit(user=user.name, action="delete", file=source, result="refused", reason=str(exc))
        raise api_error(exc, assistant) from exc
    audit(user=user.name, action="delete", file=source)
    return reindex(assistant, user, indexing)


def reindex(assistant: Assistant, user: User, indexing: IndexingState) -> IndexReport:
    """Bring the index up to date with the folder (only changes are embedded)."""
    require_admin(user, "re-index")
    audit(user=user.name, action="re-index")
    stats = indexing.run(assistant)
    if stats is None:
        raise ApiError(503, indexing.last)
    return IndexReport.of(stats)
