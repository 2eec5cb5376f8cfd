"""Text from images — scanned PDF pages, photos and scans of documents — with Tesseract
(Debian's ``tesseract-ocr``, with ``-fra`` and ``-eng``; ``make setup-test`` installs it),
through pytesseract. No format of its own: :mod:`~tpdqa.ingest.pdf` and
:mod:`~tpdqa.ingest.images` call it.

The languages come from the ``ocr_languages`` setting, in the file's limits that
:func:`tpdqa.ingest.load_bytes` sets (:data:`~tpdqa.ingest.base.READING_LIMITS`).
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tpdqa.ingest.base import READING_LIMITS, UnusableFile

INSTALL = "sudo apt-get install tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng"
DPI = 300  # what Tesseract reads best; a scan's own resolution is kept when it says more
MIN_TEXT_LAYER = 20  # letters: a page with fewer has no real text layer (a scan, at most a stamped number)
MAX_WORKERS = 4  # pages read at once: each holds a rendered page (~9 MB) and a Tesseract process (~100 MB)


class NoTesseract(UnusableFile):
    """The file needs OCR and this machine has no Tesseract (or not its languages)."""


def has_text(text: str) -> bool:
    return len(re.findall(r"[^\W\d_]", text)) >= MIN_TEXT_LAYER


def ocr_pages(images: Iterable[tuple[str, Any]]) -> list[str]:
    """The text of each (what, PIL image), in order, read by one Tesseract process per core
    side by side; the images are taken from ``images`` (a generator rendering pages) a
    batch at a time, and after each batch the parsing child's time budget starts again
    (:func:`tpdqa.sandbox.keep_alive`): ``parse_timeout`` bounds a page, not a long scan.
    :class:`NoTesseract` (with the command that fixes it) when Tesseract or a language is missing."""
    from tpdqa.sandbox import keep_alive

    # Tesseract's OpenMP threads fight each other on few cores: one thread read a page in 2.8 s
    # here, the default took 21.7 s (docs/evaluation.md); pages in parallel use the cores instead.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    workers = max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))
    texts: list[str] = []
    with ThreadPoolExecutor(workers) as pool:
        batch: list[Future] = []
        for what, image in images:
            # Each task runs in a copy of this context: worker threads would not see READING_LIMITS.
            batch.append(pool.submit(contextvars.copy_context().run, ocr_image, image, what))
            if len(batch) == workers:
                texts += [f.result() for f in batch]
                batch = []
                keep_alive()
        texts += [f.result() for f in batch]
    return texts


def ocr_image(image: Any, what: str = "the image") -> str:
    """The text of one PIL image (see :func:`ocr_pages`)."""
    import pytesseract

    languages = READING_LIMITS.get().ocr_languages
    try:
        return pytesseract.image_to_string(image.convert("L"), lang=languages)
    except pytesseract.TesseractNotFoundError as exc:
        raise NoTesseract(f"{what} has no text layer and needs OCR, but Tesseract is not installed: {INSTALL} "
                          "(make setup-test does it), then index again") from exc
    except pytesseract.TesseractError as exc:
        if "Failed loading language" in str(exc) or "loading language" in str(exc).lower():
            raise NoTesseract(f"OCR needs Tesseract's languages {languages!r} (setting ocr_languages): "
                              f"install tesseract-ocr-LANG for each, e.g. {INSTALL}") from exc
        raise UnusableFile(f"OCR failed on {what} ({str(exc).strip()[:160]})") from exc
