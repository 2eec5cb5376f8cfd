"""``Assistant``: the one facade the CLI, the UI, the evaluation and scripts use.

    >>> from tpdqa import Assistant
    >>> qa = Assistant()                      # ./documents and ./index
    >>> stats = qa.index()                    # incremental
    >>> answer = qa.ask("Qui domine la production de puces mémoire ?")
    >>> answer.citations[0].source
    'tpd-asie-2025.txt'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from tpdqa.answer import Answer, ExtractiveAnswerer
from tpdqa.chain import build_chain, stream_chain
from tpdqa.embeddings import get_embeddings
from tpdqa.generate import GenerativeAnswerer, chat_model
from tpdqa.retrieval import HybridRetriever
from tpdqa.settings import USE_MODEL, Settings
from tpdqa.ingest import SUPPORTED_SUFFIXES
from tpdqa.store import FileRecord, IndexStats, Progress, Store


class QuestionError(ValueError):
    """A question that cannot be asked (empty, too long); the message says why."""


class DocumentError(ValueError):
    """A document that cannot be added or removed; the message says why."""


class Assistant:
    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self.settings = settings.model_copy(update=overrides) if settings else Settings(**overrides)
        self._answerers: dict[str, ExtractiveAnswerer | GenerativeAnswerer] = {}
        if not self.settings.embedding_models:
            raise ValueError("embedding_models is empty: name at least one model, e.g. use-multilingual-v3")

    @cached_property
    def store(self) -> Store:
        return Store(self.settings)

    @cached_property
    def retriever(self) -> HybridRetriever:
        return HybridRetriever(
            store=self.store, models=self.settings.embedding_models, k=self.settings.k, fetch_k=self.settings.fetch_k
        )

    @property
    def answerer(self) -> ExtractiveAnswerer | GenerativeAnswerer:
        return self.answerer_for(self.settings.llm)

    def answerer_for(self, llm: str) -> ExtractiveAnswerer | GenerativeAnswerer:
        """The answerer of one ``llm`` setting (built once): the UI lets each chat choose."""
        if llm not in self._answerers:
            self._answerers[llm] = self._build_answerer(self.settings.model_copy(update={"llm": llm}))
        return self._answerers[llm]

    def _build_answerer(self, settings: Settings) -> ExtractiveAnswerer | GenerativeAnswerer:
        # The multilingual USE judges sentences, whatever the dense lists: it compares an
        # English question with a French sentence, the answerer's weights were fitted on its
        # cosines, and it is fast enough to encode every sentence and word at indexing.
        judge = get_embeddings(USE_MODEL)
        model = chat_model(settings)
        if model is None:
            return ExtractiveAnswerer(judge, min_support=settings.min_support, sentences=self.store.sentences)
        return GenerativeAnswerer(model, judge, context_tokens=settings.llm_context_tokens,
                                  max_tokens=settings.llm_max_tokens)

    @property
    def chain(self):
        return build_chain(self.retriever, self.answerer)

    def index(self, progress: Progress | None = None) -> IndexStats:
        """Bring the index up to date with the documents folder (only changes are embedded)."""
        return self.store.sync(progress=progress)

    def ask(self, question: str, history: list[Any] | None = None, llm: str | None = None,
            timings: dict[str, float] | None = None) -> Answer:
        """Answer ``question`` from the documents, with citations, or refuse.

        ``history`` is the conversation so far: ``[{"role": "user"|"assistant", "content": ...}]``
        (Gradio's messages format) or ``[(user, assistant), ...]`` pairs. ``timings``, if
        given, receives the seconds of each stage (embed/search per model, bm25, fusion, answer).
        """
        question = self._ready(question)
        chain = build_chain(self.retriever, self.answerer_for(llm or self.settings.llm))
        return chain.invoke({"question": question, "history": history or [], "timings": timings})

    def add_document(self, name: str, data: bytes) -> str:
        """Write an uploaded file into the documents folder (``index()`` makes it answerable).

        The name must be a plain file name with a supported suffix; anything that could
        land outside the documents folder is refused, as is a file over ``max_upload_mb``.
        """
        target_name = safe_document_name(name)
        limit = self.settings.max_upload_mb * 1024 * 1024
        if len(data) > limit:
            raise DocumentError(
                f"{target_name} is {len(data) / 1048576:.1f} MB; the limit is {self.settings.max_upload_mb} MB "
                "(TPDQA_MAX_UPLOAD_MB)."
            )
        folder = Path(self.settings.documents_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / target_name).write_bytes(data)
        return target_name

    def remove_document(self, source: str) -> None:
        """Delete a document from the folder (``index()`` then drops its passages)."""
        folder = Path(self.settings.documents_dir).resolve()
        path = (folder / source).resolve()
        if folder not in path.parents or not path.is_file():
            raise DocumentError(f"No document named {source!r} in {folder}.")
        path.unlink()

    def documents(self) -> list[FileRecord]:
        """The indexed documents: source, sha256, chunks, indexed_at (epoch seconds)."""
        return self.store.files()

    def stream(self, question: str, history: list[Any] | None = None, llm: str | None = None
               ) -> Iterator[str | Answer]:
        """Like :meth:`ask`, yielding the answer's text as it comes, then the checked Answer."""
        question = self._ready(question)
        answerer = self.answerer_for(llm or self.settings.llm)
        yield from stream_chain(self.retriever, answerer, {"question": question, "history": history or []})

    def _ready(self, question: Any) -> str:
        """The checked question, with an index to answer from (built on first use)."""
        question = self.check_question(question)
        if self.store.is_empty():
            self.index()
        self.store.refresh_from_server()  # replicas: chunks another replica indexed get into BM25
        return question

    def check_question(self, question: Any) -> str:
        if not isinstance(question, str) or not question.strip():
            raise QuestionError("The question is empty: type a question about the documents.")
        question = question.strip()
        limit = self.settings.max_question_chars
        if len(question) > limit:
            raise QuestionError(
                f"The question is {len(question)} characters long; the limit is {limit}. "
                "Ask a shorter question (or raise TPDQA_MAX_QUESTION_CHARS)."
            )
        return question


def safe_document_name(name: str) -> str:
    """``name`` if it is a plain, supported file name; else :class:`DocumentError`."""
    if not name or name != Path(name).name or "\\" in name or name.startswith(".") or ".." in name:
        raise DocumentError(f"Refused file name {name!r}: use a plain file name, without folders or leading dots.")
    if re.search(r"[\x00-\x1f]", name):
        raise DocumentError(f"Refused file name {name!r}: it contains control characters.")
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"{name}: unsupported file type; supported: {', '.join(SUPPORTED_SUFFIXES)}.")
    return name
