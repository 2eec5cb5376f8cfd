"""tpdqa: question answering with exact citations over a folder of documents.

    >>> from tpdqa import Assistant
    >>> Assistant().ask("What does TPD stand for?").text  # doctest: +ELLIPSIS
    '...prospérité technologique (TPD)...'
"""

from tpdqa.answer import Answer, Citation, RetrievedChunk
from tpdqa.assistant import Assistant, DocumentError, DocumentExists, QuestionError
from tpdqa.settings import Settings
from tpdqa.store import IndexBusyError, IndexStats

__all__ = ["Answer", "Assistant", "Citation", "DocumentError", "DocumentExists", "IndexBusyError", "IndexStats",
           "QuestionError", "RetrievedChunk", "Settings"]
