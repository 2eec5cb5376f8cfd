"""``Assistant``: the one facade the CLI, the UI, the evaluation and scripts use.

    >>> from tpdqa import Assistant
    >>> qa = Assistant()                      # ./documents and ./index
    >>> stats = qa.index()                    # incremental
    >>> answer = qa.ask("Qui domine la production de puces mémoire ?")
    >>> answer.citations[0].source
    'tpd-asie-2025.txt'
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from tpdqa.answer import Answer, ExtractiveAnswerer
from tpdqa.chain import as_messages, build_chain, stream_chain
from tpdqa.embeddings import get_embeddings
from tpdqa.generate import GenerativeAnswerer, chat_model
from tpdqa.reader import load_reader_soon
from tpdqa.retrieval import HybridRetriever
from tpdqa.settings import USE_MODEL, Settings
from tpdqa.ingest import SUPPORTED_SUFFIXES, iter_files
from tpdqa.store import FileRecord, IndexBusyError, IndexStats, Progress, Store

log = logging.getLogger(__name__)


class QuestionError(ValueError):
    """A question that cannot be asked (empty, too long); the message says why."""


class DocumentError(ValueError):
    """A document that cannot be added or removed; the message says why."""


class NoDocuments(FileNotFoundError):
    """Nothing to answer from: the documents folder is missing, empty, or none of its files could be indexed."""


class DocumentTooLarge(DocumentError):
    """An added document over ``max_upload_mb``."""


class DocumentNotFound(DocumentError):
    """A document to remove that is not in the folder."""


class DocumentExists(DocumentError):
    """An added document has the name of one already in the folder (``if_exists`` decides)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"A document named {name} already exists: replace it, or keep both under a new name.")
        self.name = name


class Assistant:
    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self.settings = settings.model_copy(update=overrides) if settings else Settings(**overrides)
        self._answerers: dict[str, ExtractiveAnswerer | GenerativeAnswerer] = {}
        self._rebuilding = threading.Lock()
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
            return ExtractiveAnswerer(judge, min_support=settings.min_support, sentences=self.store.sentences,
                                      reader=load_reader_soon(settings.reader), lexicon=self.store.lexical,
                                      reader_languages=tuple(settings.reader_languages))
        return GenerativeAnswerer(model, judge, context_tokens=settings.llm_context_tokens,
                                  max_tokens=settings.llm_max_tokens)

    @property
    def chain(self):
        return build_chain(self.retriever, self.answerer)

    def index(self, progress: Progress | None = None, searchable_only: bool = False, cluster: Any = None) -> IndexStats:
        """Bring the index up to date with the documents folder (only changes are embedded);
        ``searchable_only``: stop after the searchable phase (a later run completes it);
        ``cluster``: parse and encode on a Ray cluster (:class:`tpdqa.cluster.RayCluster`)."""
        self.check_folder()  # before the store: a missing folder leaves no empty index behind
        return self.current_store().sync(progress=progress, searchable_only=searchable_only, cluster=cluster)

    def check_documents(self) -> list[Path]:
        """The files of the documents folder; :class:`NoDocuments` if it does not exist."""
        return iter_files(self.check_folder())

    def check_folder(self) -> Path:
        folder = Path(self.settings.documents_dir)
        if not folder.is_dir():
            raise NoDocuments(f"The documents folder {folder} does not exist: create it and put "
                              f"{' '.join(SUPPORTED_SUFFIXES)} files in it, or point --documents-dir "
                              "(TPDQA_DOCUMENTS_DIR) at yours.")
        return folder

    def current_store(self) -> Store:
        """The store, current with what other processes wrote; rebuilt if its files were deleted."""
        store = self.store
        if not store.lost():
            store.refresh()
            return store
        with self._rebuilding:
            if self.store is store:  # another thread may have rebuilt it already
                log.warning("The index in %s was deleted or replaced while in use: rebuilding it from %s",
                            self.settings.index_dir, self.settings.documents_dir)
                store.discard()
                for name in ("store", "retriever"):
                    self.__dict__.pop(name, None)
                self._answerers.clear()
        return self.store

    def ask(self, question: str, history: list[Any] | None = None, llm: str | None = None,
            timings: dict[str, float] | None = None, collections: list[str] | None = None) -> Answer:
        """Answer ``question`` from the documents, with citations, or refuse.

        ``history`` is the conversation so far: ``[{"role": "user"|"assistant", "content": ...}]``
        (Gradio's messages format) or ``[(user, assistant), ...]`` pairs. ``timings``, if
        given, receives the seconds of each stage (embed/search per model, bm25, fusion, answer;
        reader: the reader's part of answer, when it is on).
        ``collections`` limits the answer to documents of those collections (top-level
        folders of the documents folder; ``default`` for files at its top level); None: all.
        """
        question = self._ready(question)
        chain = build_chain(self.retriever, self.answerer_for(llm or self.settings.llm))
        return chain.invoke({"question": question, "history": self.bounded_history(history), "timings": timings,
                             "collections": collections})

    def search(self, query: str, k: int | None = None, collections: list[str] | None = None) -> list[Document]:
        """The fused retrieval alone: the ``k`` best passages for ``query`` (``metadata``: source,
        section, page, score), in ``collections`` (None: all) — what an agent or another
        pipeline wants from the documents."""
        query = self._ready(query)
        return self.retriever.invoke(query, k=k or self.settings.k, collections=collections)

    def add_document(self, name: str, data: bytes, if_exists: str = "error") -> str:
        """Write an uploaded file into the documents folder (``index()`` makes it answerable);
        returns the name it was saved under.

        The name must be a plain file name with a supported suffix; anything that could
        land outside the documents folder is refused, as is a file over ``max_upload_mb``.
        A name already taken raises :class:`DocumentExists` unless ``if_exists`` is
        ``"replace"`` or ``"keep_both"`` (saved as ``name-2.ext``, ``name-3.ext``, ...).
        """
        target_name = self.check_document(name, len(data), if_exists)
        folder = Path(self.settings.documents_dir)
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / target_name).exists() and if_exists == "keep_both":
            stem, suffix = Path(target_name).stem, Path(target_name).suffix
            n = 2
            while (folder / f"{stem}-{n}{suffix}").exists():
                n += 1
            target_name = f"{stem}-{n}{suffix}"
        # Written beside, then renamed: a watcher or another process never reads half a file.
        partial = folder / f".{target_name}.part"
        partial.write_bytes(data)
        partial.replace(folder / target_name)
        return target_name

    def check_document(self, name: str, size: int, if_exists: str = "error") -> str:
        """What :meth:`add_document` checks, without writing: the name, its type, ``size``
        (bytes) against ``max_upload_mb``, and a name already taken with ``if_exists="error"``."""
        target_name = safe_document_name(name)
        if if_exists not in ("error", "replace", "keep_both"):
            raise DocumentError(f"if_exists={if_exists!r}: use 'error', 'replace' or 'keep_both'.")
        limit = self.settings.max_upload_mb * 1024 * 1024
        if size > limit:
            raise DocumentTooLarge(
                f"{target_name} is {size / 1048576:.1f} MB; the limit is {self.settings.max_upload_mb} MB "
                "(TPDQA_MAX_UPLOAD_MB)."
            )
        if if_exists == "error" and (Path(self.settings.documents_dir) / target_name).exists():
            raise DocumentExists(target_name)
        return target_name

    def remove_document(self, source: str) -> None:
        """Delete a document from the folder (``index()`` then drops its passages)."""
        folder = Path(self.settings.documents_dir).resolve()
        path = (folder / source).resolve()
        if folder not in path.parents or not path.is_file():
            raise DocumentNotFound(f"No document named {source!r} in {folder}.")
        path.unlink()

    def documents(self) -> list[FileRecord]:
        """The indexed documents: source, sha256, chunks, indexed_at (epoch seconds)."""
        return self.current_store().files()

    def stream(self, question: str, history: list[Any] | None = None, llm: str | None = None,
               collections: list[str] | None = None) -> Iterator[str | Answer]:
        """Like :meth:`ask`, yielding the answer's text as it comes, then the checked Answer."""
        question = self._ready(question)
        answerer = self.answerer_for(llm or self.settings.llm)
        yield from stream_chain(self.retriever, answerer,
                                {"question": question, "history": self.bounded_history(history),
                                 "collections": collections})

    def collections(self) -> list[str]:
        """The collections of the indexed documents: ``default`` (files at the top level of the
        documents folder) and each top-level folder."""
        return self.current_store().collections()

    def _ready(self, question: Any) -> str:
        """The checked question, with an index to answer from (built on first use)."""
        question = self.check_question(question)
        self.check_folder()
        store = self.current_store()
        if store.is_empty():  # the folder is only listed then: a scan costs seconds at 100k files
            files = self.check_documents()
            if files:
                self.index()
                store = self.current_store()
            if store.is_empty() and not self.settings.chroma_url:
                self._nothing_indexed(files)
        store.refresh_from_server()  # replicas: chunks another replica indexed get into BM25
        return question

    def bounded_history(self, history: list[Any] | None) -> list[dict[str, str]]:
        """The conversation as the answerer reads it: the last ``max_history_turns`` turns,
        each cut to its last ``max_history_chars`` characters. A request's history is text
        like its question: unbounded, one turn of 100,000 characters would cost as much as
        a hundred questions (and was read with every follow-up)."""
        last = self.settings.max_history_turns
        if not last:
            return []
        turns = list(history or [])[-last:]  # cut before reading too: a request may send millions
        return as_messages(turns, self.settings.max_history_chars)[-last:]

    def _nothing_indexed(self, files: list[Path]) -> None:
        folder = self.settings.documents_dir
        if not files:
            raise NoDocuments(f"The documents folder {folder} is empty: put {' '.join(SUPPORTED_SUFFIXES)} files in "
                              "it (or upload them on the chat's Documents tab), then ask again.")
        raise NoDocuments(f"None of the {len(files)} file(s) in {folder} could be indexed: `tpdqa index` (or the "
                          "chat's Documents tab) says why for each.")

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


BIDI_CONTROLS = r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"


def safe_document_name(name: str) -> str:
    """``name`` if it is a plain, supported file name; else :class:`DocumentError`."""
    if not name or name != Path(name).name or "\\" in name or name.startswith(".") or ".." in name:
        raise DocumentError(f"Refused file name {name!r}: use a plain file name, without folders or leading dots.")
    if re.search(r"[\x00-\x1f\x7f]", name):
        raise DocumentError(f"Refused file name {name!r}: it contains control characters.")
    if re.search(BIDI_CONTROLS, name):  # "report\u202etxt.html" would show as "reportlmth.txt"
        raise DocumentError(f"Refused file name {name!r}: it contains text-direction controls that disguise "
                            "its type; rename it.")
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"{name}: unsupported file type; supported: {', '.join(SUPPORTED_SUFFIXES)}.")
    return name


def explain(exc: BaseException, index_dir: Path | str = "index") -> str:
    """One line for a person: what went wrong and what to do (the details go to the log)."""
    if isinstance(exc, (QuestionError, DocumentError, IndexBusyError, FileNotFoundError)):
        return str(exc)
    if type(exc) is ValueError and str(exc):  # tpdqa's own checks (settings, users file): already a sentence
        return str(exc).strip().splitlines()[0]
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the sqlite3 error
    if isinstance(cause, sqlite3.DatabaseError):
        detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        return (f"The index in {index_dir} cannot be read ({detail}): stop tpdqa, delete {index_dir} and start "
                "again; it is rebuilt from the documents.")
    first = (str(exc).strip().splitlines() or [""])[0]
    if len(first) > 160:
        first = first[:157] + "…"
    return f"{type(exc).__name__}: {first} (details in the server log)" if first else type(exc).__name__
