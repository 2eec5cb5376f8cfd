"""Language guessing, sentence splitting and the BM25 analyzer (stopwords + Snowball stems).

    >>> from tpdqa.language import guess_lang, split_sentences
    >>> guess_lang("Qui domine la production de puces mémoire ?")
    'fr'
    >>> len(split_sentences("Le Japon est leader. La Corée domine.", "fr"))
    2
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("fr", "en")
_STEMMER_NAMES = {"fr": "french", "en": "english"}
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@lru_cache(maxsize=1)
def _langid():
    """py3langid restricted to LANGUAGES. Its model ships LZMA-compressed, and inflating it took
    0.6-1.6 s of a cold ``tpdqa ask``, before retrieval can start: what the two languages need is
    kept uncompressed in tpdqa's model cache the first time (:func:`_cached_identifier`)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    try:
        return _cached_identifier(LanguageIdentifier, MODEL_FILE)
    except Exception as exc:  # noqa: BLE001 - a speed-up only (another py3langid, a full disk): load as it ships
        logging.getLogger(__name__).info("language model not cached (%s): read as py3langid ships it", exc)
        return _shipped_identifier(LanguageIdentifier, MODEL_FILE)


def _shipped_identifier(identifier_class, model_file):
    """The identifier as py3langid loads it (its LZMA file inflated), restricted to LANGUAGES."""
    identifier = identifier_class.from_model_file(model_file, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier


def _cached_identifier(identifier_class, model_file):
    """The identifier rebuilt from its arrays in the model cache (a 40 MB ``.npz``: 0.1 s), made
    from py3langid's own loading when missing or unreadable; named after the package's version and model."""
    from importlib.metadata import version

    from tpdqa.embeddings import cache_write, model_cache

    path = model_cache("langid", f"{version('py3langid')}-{Path(str(model_file)).name}-{'-'.join(LANGUAGES)}.npz")
    if path.is_file():
        try:
            return _identifier_from(path, identifier_class)
        except Exception:  # noqa: BLE001 - a damaged copy (an interrupted disk): made again below
            pass
    import numpy as np

    made = _shipped_identifier(identifier_class, model_file)
    arrays = io.BytesIO()
    np.savez(arrays, ptc=made.nb_ptc, pc=made.nb_pc, classes=np.array(made.nb_classes),
             nextmove=np.frombuffer(made.tk_nextmove, dtype=f"u{made.tk_nextmove.itemsize}"),
             row=np.frombuffer(made.tk_row, dtype=f"u{made.tk_row.itemsize}"), output=np.array(made.tk_output))
    cache_write(path, arrays.getvalue())
    return made


def _identifier_from(path: Path, identifier_class):
    from array import array

    import numpy as np

    def stdlib(values: np.ndarray) -> array:  # the identifier walks these as stdlib arrays
        out = array({2: "H", 4: "I", 8: "Q"}[values.dtype.itemsize])
        out.frombytes(memoryview(np.ascontiguousarray(values)).cast("B"))
        return out

    with np.load(path) as data:
        identifier = identifier_class(data["ptc"], data["pc"], data["classes"].tolist(), stdlib(data["nextmove"]),
                                      data["output"].tolist(), norm_probs=True, tk_row=stdlib(data["row"]))
    identifier.set_languages(list(LANGUAGES))
    return identifier


def guess_lang(text: str) -> str:
    """'fr' or 'en', whichever the text is closer to (py3langid restricted to both)."""
    sample = text[:3000]
    if not _WORD.search(sample):
        return "en"
    return _langid().classify(sample)[0]


@lru_cache(maxsize=4)
def _segmenter(lang: str):
    import pysbd

    return pysbd.Segmenter(language=lang if lang in LANGUAGES else "en", clean=False)


# pysbd ends a sentence at the "!" of a Markdown image, ``![alt](url)``: the pieces are joined again.
_IMAGE_REST = re.compile(r"\[[^\]\n]*\]\([^)\s]*\)")
# Where pysbd ends sentences that go on: French era markers ("né en 200 av. J.-C. à
# Mégalopolis" came out as "né en 200 av." / "J." / "-C." / "à Mégalopolis."), circa before a
# number ("c. 1400"), a century's "s.". A break inside one of these is no break.
_NO_BREAK = re.compile(r"\b(?:av|apr?)\.\s*J\.\s?-\s?C\.|\bJ\.\s?-\s?C\.|\b(?:c|ca|env|approx|circa)\.\s+(?=\d)"
                       r"|\b[IVXLC]+e\s+s\.\s+(?=[a-zà-ÿ])")
# A piece that starts like this continues the sentence before it ("…en 1629. revolted against", "…, J.-C., il").
_CONTINUES = re.compile(r"[a-zà-ÿ,;)\]]")


def split_sentences(text: str, lang: str) -> list[str]:
    """Sentences of one paragraph, each an exact substring of it (pysbd's rules:
    abbreviations, « », decimals; pieces it cuts too early are joined again)."""
    sentences: list[str] = []
    first = None  # where the last sentence starts in text (None: pysbd changed its text, keep it as given)
    raw, at = "", 0  # the previous segment as pysbd gave it (it keeps the text: "!" then "[" means adjacent)
    guarded = [m.span() for m in _NO_BREAK.finditer(text)]
    for segment in _segmenter(lang).segment(text):
        stripped = segment.strip()
        start = text.find(stripped, at) if stripped else -1
        if start >= 0 and first is not None and (
                (raw.endswith("!") and _IMAGE_REST.match(stripped)) or _CONTINUES.match(stripped)
                or any(a < at < b for a, b in guarded)):
            at = start + len(stripped)
            sentences[-1] = text[first:at]
        elif stripped:
            first = start if start >= 0 else None
            at = start + len(stripped) if start >= 0 else at
            sentences.append(stripped)
        raw = segment
    return sentences


def split_paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]


@lru_cache(maxsize=4)
def _stemmer(lang: str):
    import Stemmer

    return Stemmer.Stemmer(_STEMMER_NAMES.get(lang, "english"))


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_FRENCH

    # One list for both: a French word in an English query (or the reverse) is noise too.
    return frozenset(fold(w) for w in (*STOPWORDS_EN, *STOPWORDS_FRENCH))


def fold(token: str) -> str:
    """Lowercase and strip accents: 'Corée' and 'coree' meet."""
    if token.isascii():  # most words: nothing to strip (a quarter of a question's analysis time)
        return token.lower()
    decomposed = unicodedata.normalize("NFKD", token.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """Lowercased word tokens; elisions (l’, d’, qu’) fall apart on the apostrophe."""
    return [w.lower() for w in _WORD.findall(unicodedata.normalize("NFKC", text))]


def analyze(text: str, langs: tuple[str, ...] | str) -> list[str]:
    """BM25 terms: words minus stopwords, stemmed in each given language, accent-folded.

    Documents are analyzed in their own language; a query in its language plus the
    documents' ones, so that cognates ('robotics' / 'robotique' -> 'robot') meet.
    """
    if isinstance(langs, str):
        langs = (langs,)
    stop = _stopwords()
    tokens = [w for w in words(text) if fold(w) not in stop and (len(w) > 1 or w.isdigit())]
    terms: list[str] = []
    for lang in langs:
        terms.extend(fold(t) for t in _stemmer(lang).stemWords(tokens))
    return terms
