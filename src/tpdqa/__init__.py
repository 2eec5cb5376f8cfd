"""tpdqa: question answering with exact citations over a folder of documents.

    >>> from tpdqa import Assistant
    >>> Assistant().ask("What does TPD stand for?").text  # doctest: +ELLIPSIS
    '...prospérité technologique (TPD)...'
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Loaded on first use: a process that needs one module (the file parser's child, the CLI's
# help) does not import the store, Chroma and the encoders with the package.
_EXPORTS = {
    "Answer": "tpdqa.answer", "Citation": "tpdqa.answer", "RetrievedChunk": "tpdqa.answer",
    "Assistant": "tpdqa.assistant", "DocumentError": "tpdqa.assistant", "DocumentExists": "tpdqa.assistant",
    "NoDocuments": "tpdqa.assistant", "QuestionError": "tpdqa.assistant",
    "Settings": "tpdqa.settings",
    "IndexBusyError": "tpdqa.store", "IndexStats": "tpdqa.store",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from tpdqa.answer import Answer, Citation, RetrievedChunk
    from tpdqa.assistant import Assistant, DocumentError, DocumentExists, NoDocuments, QuestionError
    from tpdqa.settings import Settings
    from tpdqa.store import IndexBusyError, IndexStats


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tpdqa' has no attribute {name!r}")
