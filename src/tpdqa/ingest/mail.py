"""E-mail: .eml (one message) and .mbox (a mailbox, one section path per message), with the
standard ``email`` and ``mailbox`` packages.

The subject is the title and section; From, To and Date lead the first paragraph, so a
question about who wrote or when finds them; the text part is the body (else the HTML part,
through the HTML reader). Attachments of a supported type are read by their own reader and
are documents of their own inside the file (:attr:`Section.part`): cited as
``mail.eml › report.pdf`` with their own title, pages and headings, listed under the e-mail.
A mailbox's messages are each such a document (``club.mbox › Choir rehearsal``).
"""

from __future__ import annotations

import email
import mailbox
import os
import tempfile
from email import policy
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

from tpdqa.ingest.base import FORMATS, READING_LIMITS, SECTION_SEP, Section, UnusableFile, reads
from tpdqa.sandbox import OverLimit, check_archive

HEADERS = ("From", "To", "Cc", "Date")


def subject_of(message: EmailMessage) -> str:
    return " ".join(str(message.get("Subject") or "").split()) or "(no subject)"


def message_sections(message: EmailMessage, part: str | None = None) -> list[Section]:
    """The message's sections; with ``part`` (a mailbox's message) all of them belong to it."""
    subject = subject_of(message)
    header = "; ".join(f"{name}: {' '.join(str(message[name]).split())}" for name in HEADERS if message.get(name))
    body_part = message.get_body(preferencelist=("plain", "html"))
    body = ""
    if body_part is not None:
        content = body_part.get_content()
        if body_part.get_content_subtype() == "html":
            sections, _ = FORMATS[".html"].read(content.encode("utf-8"))
            body = "\n\n".join(s.text for s in sections)
        else:
            body = content
    sections = [Section((subject,), "\n\n".join(p for p in (header, body) if p.strip()), part=part, part_title=subject)]
    for attachment in message.iter_attachments():
        name = Path(attachment.get_filename() or "").name
        reader = FORMATS.get(Path(name).suffix.lower())
        if not name or reader is None or Path(name).suffix.lower() in (".eml", ".mbox"):
            continue
        try:
            data = attachment.get_payload(decode=True) or b""
            attached, title = _read(reader, data)
        except (UnusableFile, OverLimit):
            continue  # an unreadable or oversized attachment: the message itself is still indexed
        inner = SECTION_SEP.join(p for p in (part, name) if p)
        sections += [Section((*((subject,) if part else ()), name, *s.headings), s.text, s.page, part=inner,
                             part_title=title or name) for s in attached]
    return sections


def _read(reader, data: bytes):
    """An attachment read as a file of its type would be (a zip container's size checked first)."""
    if reader.archive:
        check_archive(data, READING_LIMITS.get())  # the configured limits, as for the e-mail itself
    return reader.read(data)


@reads(".eml")
def read_eml(data: bytes):
    message = email.message_from_bytes(data, policy=policy.default)
    if not message.keys():
        raise UnusableFile("not an e-mail message (no headers)")
    sections = message_sections(message)
    return sections, sections[0].headings[0]


@reads(".mbox")
def read_mbox(data: bytes):
    """Each message a document of the file, under its subject."""
    handle, path = tempfile.mkstemp(suffix=".mbox")  # mailbox reads files only
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        box = mailbox.mbox(path, create=False)
        sections, seen = [], Counter()
        for raw in box:
            message = email.message_from_bytes(raw.as_bytes(), policy=policy.default)
            if not message.keys():
                continue
            subject = subject_of(message)
            seen[subject] += 1  # the same subject twice stays two documents
            sections += message_sections(message, subject if seen[subject] == 1 else f"{subject} ({seen[subject]})")
        box.close()
    finally:
        os.unlink(path)
    if not sections:
        raise UnusableFile("no message found in the mailbox")
    return sections, None
