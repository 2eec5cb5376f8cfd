"""Images of documents (.png .jpg .jpeg .tif .tiff, multi-page TIFF scans): their text by
OCR (:mod:`tpdqa.ingest.ocr`), reflowed like a PDF's; each frame is a page in citations."""

from __future__ import annotations

import io
import warnings

from tpdqa.ingest.base import UnusableFile, reads
from tpdqa.ingest.ocr import ocr_pages
from tpdqa.ingest.pdf import page_sections


@reads(".png", ".jpg", ".jpeg", ".tif", ".tiff")
def read_image(data: bytes):
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # a bomb is refused, not decoded
            image = Image.open(io.BytesIO(data))
            frames = [frame.copy() for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        raise UnusableFile(f"corrupt or unreadable image ({exc.__class__.__name__}: {exc})") from exc
    pages = ocr_pages(("this image" if len(frames) == 1 else f"page {n} of this image", frame)
                      for n, frame in enumerate(frames, start=1))
    return page_sections(pages)
