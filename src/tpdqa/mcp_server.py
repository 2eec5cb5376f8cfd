"""tpdqa as an MCP server: the documents as tools that assistants and agents call.

- streamable HTTP at ``/mcp`` of ``tpdqa serve`` (``Authorization: Bearer <key>`` when the
  server has users: the key's role and collections apply to every tool);
- ``tpdqa mcp``: stdio, for desktop assistants that start it as a command (the person who
  runs it reads everything, as with ``tpdqa ask``).

Tools: ``search_documents(query, k, collections)``, ``ask(question, collections)``,
``list_documents()``; each result is structured content (schemas in the tool list) and a
readable text.

    >>> from tpdqa import Assistant
    >>> server = build_mcp(Assistant())
    >>> import anyio; sorted(t.name for t in anyio.run(server.list_tools))
    ['ask', 'list_documents', 'search_documents']
"""


from collections.abc import Callable
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from tpdqa import api
from tpdqa.api import CitedAnswer, DocumentList, SearchResult
from tpdqa.assistant import Assistant
from tpdqa.users import LOCAL, User

INSTRUCTIONS = ("Search and question a folder of documents (French and English). Answers quote the "
                "documents and cite them with [n] markers; when the documents do not hold the answer, "
                "the answer says so (refused: true).")

Collections = Annotated[list[str] | None, Field(
    description="only these collections (top-level folders of the documents; 'default' for the files at "
                "its top level); null: every collection you may read")]


def result(model: BaseModel, text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=model.model_dump(mode="json"))


def search_text(found: SearchResult) -> str:
    if not found.passages:
        return "No passage found."
    return "\n\n".join(f"[{i}] {p.section or p.source}" + (f", page {p.page}" if p.page else "")
                       + f" (score {p.score:.3f})\n{p.text}" for i, p in enumerate(found.passages, 1))


def answer_text(answer: CitedAnswer) -> str:
    lines = [answer.text]
    if answer.citations:
        lines.append("\nSources:")
        lines += [f"[{c.n}] {c.section or c.source}" + (f", page {c.page}" if c.page else "") + f" — « {c.quote} »"
                  for c in answer.citations]
    return "\n".join(lines)


def documents_text(listed: DocumentList) -> str:
    lines = [f"{d.source} ({d.chunks} passages, indexed {d.indexed_at:%Y-%m-%d %H:%M} UTC)" for d in listed.documents]
    lines += [f"{e.source}: not indexed ({e.reason})" for e in listed.not_indexed]
    return "\n".join(lines) or "No document is indexed."


def build_mcp(assistant: Assistant, default_user: User | None = LOCAL,
              answering: anyio.CapacityLimiter | None = None) -> MCPServer:
    """The MCP server of ``assistant``. Over HTTP, each call acts for the user
    :class:`~tpdqa.access.KeyGuard` found (``default_user=None``: none found is refused);
    over stdio, for ``default_user``."""
    server = MCPServer(name="tpdqa", instructions=INSTRUCTIONS, log_level="WARNING")

    def caller(ctx: Context) -> User:
        request = ctx.request_context.request
        user = getattr(request, "scope", {}).get("state", {}).get("user") if request is not None else None
        if user is None and default_user is None:
            raise ToolError("No user: send an API key as `Authorization: Bearer <key>`.")
        return user or default_user

    async def call(fn: Callable[..., Any], ctx: Context, *args: Any, limiter: anyio.CapacityLimiter | None = None):
        user = caller(ctx)
        try:
            return await anyio.to_thread.run_sync(lambda: fn(assistant, user, *args), limiter=limiter)
        except Exception as exc:  # noqa: BLE001 - a tool error the model reads, one line
            raise ToolError(api.api_error(exc, assistant).message) from exc

    @server.tool()
    async def search_documents(
        query: Annotated[str, Field(description="what to look for, in French or English")],
        ctx: Context,
        k: Annotated[int, Field(ge=1, le=50, description="how many passages")] = 5,
        collections: Collections = None,
    ) -> Annotated[CallToolResult, SearchResult]:
        """Find the passages of the documents that best match a query (hybrid dense + BM25 retrieval),
        best first, each with its document, section, page and score."""
        found = await call(api.search, ctx, query, k, collections, limiter=answering)
        return result(found, search_text(found))

    @server.tool()
    async def ask(
        question: Annotated[str, Field(description="the question, in French or English")],
        ctx: Context,
        collections: Collections = None,
    ) -> Annotated[CallToolResult, CitedAnswer]:
        """Answer a question from the documents: the answer quotes them with [n] markers and lists its
        citations; refused is true (and the text says so) when the documents do not hold the answer."""
        answer = CitedAnswer.of(await call(api.ask, ctx, question, None, collections, limiter=answering))
        return result(answer, answer_text(answer))

    @server.tool()
    async def list_documents(ctx: Context) -> Annotated[CallToolResult, DocumentList]:
        """The indexed documents you may read: path, collection, passages, when indexed."""
        listed = await call(api.documents, ctx)
        return result(listed, documents_text(listed))

    return server

