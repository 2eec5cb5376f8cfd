"""The OpenAI-compatible door, ``/v1``: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Any OpenAI client, chat front-end (Open WebUI, LibreChat) or agent framework can use the
documents as a model: ``tpdqa`` answers from every collection the key may read,
``tpdqa:<collection>`` from one. The last user message is the question, the messages before
it the conversation. The answer's text carries ``[n]`` markers; the citations ride in an
extra top-level field, ``citations``, that standard clients ignore. A refusal is a normal
completion whose text says that the documents do not hold the answer.

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:7860/v1", api_key="tpdqa-…")
    reply = client.chat.completions.create(model="tpdqa", messages=[{"role": "user", "content": "…"}])
    reply.choices[0].message.content, reply.model_extra["citations"]
"""


import json
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from tpdqa import api
from tpdqa.access import ApiAccess
from tpdqa.answer import Answer
from tpdqa.api import ApiError, CitedAnswer
from tpdqa.assistant import Assistant
from tpdqa.rest import caller_of, errors, in_thread, started
from tpdqa.users import User

MODEL = "tpdqa"


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(description="system, user or assistant (system messages are not read)")
    content: str | list[dict[str, Any]] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: the text ones
            return "\n".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens…: accepted, not used by a quoting answerer
    model: str = Field(MODEL, description="tpdqa, or tpdqa:<collection>")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


class Model(BaseModel):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = MODEL


class ModelList(BaseModel):
    object: str = "list"
    data: list[Model]


def models(assistant: Assistant, user: User) -> list[str]:
    return [MODEL, *(f"{MODEL}:{c}" for c in user.may_read(assistant.collections()))]


def collections_of(assistant: Assistant, user: User, model: str) -> list[str] | None:
    """The collections a model name reads (None: all the user's); 404, as OpenAI says, for a
    model this user does not have (another's collection looks the same as none)."""
    if model == MODEL:
        return None
    if model not in models(assistant, user):
        raise ApiError(404, f"The model {model!r} does not exist or you do not have access to it; "
                            f"GET /v1/models lists yours.")
    return [model.partition(":")[2]]


def question_and_history(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    turns = [m for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise ApiError(400, "The last message must be the user's question.")
    return turns[-1].text, [{"role": m.role, "content": m.text} for m in turns[:-1]]


def completion(answer: Answer, model: str) -> dict[str, Any]:
    cited = CitedAnswer.of(answer)
    words = len(answer.text.split())
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text, "refusal": None},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": len(answer.question.split()), "completion_tokens": words,
                      "total_tokens": len(answer.question.split()) + words},  # words, not tokens: no tokenizer
            "citations": [c.model_dump() for c in cited.citations], "refused": cited.refused}


def completion_chunks(assistant: Assistant, pieces: Iterator[str | Answer], model: str) -> Iterator[bytes]:
    """``chat.completion.chunk`` events, the last with ``finish_reason`` and the citations, then ``[DONE]``."""
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "system_fingerprint": None}

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()

    sent = ""
    try:
        yield event({"role": "assistant", "content": ""})
        for item in pieces:
            if isinstance(item, Answer):
                # the checked text: what was sent, completed (a rewrite midway is not taken back)
                if item.text.startswith(sent) and item.text != sent:
                    yield event({"content": item.text[len(sent):]})
                cited = CitedAnswer.of(item)
                yield event({}, "stop", citations=[c.model_dump() for c in cited.citations], refused=cited.refused)
            else:
                sent += item
                yield event({"content": item})
    except Exception as exc:  # noqa: BLE001 - the status line is sent: the error is an event
        yield f"data: {json.dumps(api.api_error(exc, assistant).body)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def openai_router(assistant: Assistant, access: ApiAccess, answering: anyio.CapacityLimiter) -> APIRouter:
    """``answering``: the limiter every door's questions share (``concurrency`` at a time)."""
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
    Caller = Annotated[User, Depends(caller_of(access))]
    asking = in_thread(assistant, answering)
    run = in_thread(assistant)

    @router.get("/models", response_model=ModelList, responses=errors(401, 403))
    async def list_models(user: Caller) -> ModelList:
        """``tpdqa`` (every collection the caller may read) and ``tpdqa:<collection>`` for each."""
        return ModelList(data=[Model(id=name) for name in await run(models, user)])

    @router.post("/chat/completions", responses={
        200: {"content": {"text/event-stream": {}}, "description": "A chat.completion (with `citations`); "
              "with stream, chat.completion.chunk events then `data: [DONE]`."},
        **errors(400, 401, 403, 404, 422, 503)})
    async def chat_completions(body: ChatRequest, user: Caller) -> Any:
        """Answer the last user message from the documents, the earlier messages as the conversation."""
        question, history = question_and_history(body.messages)
        collections = await run(collections_of, user, body.model)
        if not body.stream:
            answer = await asking(api.ask, user, question, history, collections)
            return completion(answer, body.model)
        pieces = await started(asking, api.stream(assistant, user, question, history, collections))
        return StreamingResponse(completion_chunks(assistant, pieces, body.model), media_type="text/event-stream")

    return router
