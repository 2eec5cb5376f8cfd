"""Files that cannot be read, made by the test for every supported format: each is listed as not
indexed with a reason, the good files beside them are indexed, no traceback reaches the user, and
a zip bomb costs the run neither its memory nor its time (real `tpdqa index` processes)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import run_tpdqa

GOOD = "The sigma laboratory opened its new clean room in Oslo in 2020, after three years of work.\n"

CONTENT_TYPES = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                 '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                 '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                 '<Default Extension="xml" ContentType="application/xml"/>'
                 '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                 'wordprocessingml.document.main+xml"/></Types>')
RELS = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'officeDocument" Target="word/document.xml"/></Relationships>')
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def docx(document_xml: str | None = None, stream: tuple[bytes, int] | None = None) -> bytes:
    """A .docx package around ``document_xml``, or around ``stream`` = (chunk, times) written
    piece by piece (a member far larger than memory would hold as one string)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", CONTENT_TYPES)
        z.writestr("_rels/.rels", RELS)
        if stream is None:
            z.writestr("word/document.xml", document_xml)
        else:
            chunk, times = stream
            with z.open("word/document.xml", "w", force_zip64=True) as member:
                member.write(f'<w:document {W}><w:body><w:p><w:r><w:t>'.encode())
                for _ in range(times):
                    member.write(chunk)
                member.write(b"</w:t></w:r></w:p></w:body></w:document>")
    return buffer.getvalue()


def good_docx() -> bytes:
    import docx as python_docx

    document = python_docx.Document()
    document.add_paragraph("The tau observatory was built on a hill above Tromsø in 1928.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def good_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, "The rho archive keeps the harbour's shipping records since 1850 in a vault.")
    return bytes(pdf.output())


def encrypted_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(good_pdf())))
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def bombs() -> dict[str, bytes]:
    """Two .docx bombs: 1 GiB of text in a 1 MB file, and 64 MiB of small paragraphs in ~200 KB."""
    paragraph = f"</w:t></w:r></w:p><w:p><w:r><w:t>x".encode()
    return {"bomb.docx": docx(stream=(b"A" * (1 << 20), 1024)),
            "many-paragraphs.docx": docx(stream=(paragraph * ((1 << 20) // len(paragraph)), 64))}


def malformed() -> dict[str, bytes]:
    """What a shared folder holds by mistake, for every supported format."""
    pdf, document = good_pdf(), good_docx()
    garbage = bytes(range(256)) * 64
    return {
        **{f"empty{suffix}": b"" for suffix in (".txt", ".md", ".html", ".pdf", ".docx")},
        **{f"binary-renamed{suffix}": garbage for suffix in (".txt", ".md", ".html", ".pdf", ".docx")},
        "truncated.pdf": pdf[: len(pdf) // 2],
        "truncated.docx": document[: len(document) // 2],
        "wrong-magic.pdf": b"%PDX-9.9 this is not a PDF at all\n" * 20,
        "wrong-magic.docx": b"PK\x03\x04 but nothing after the signature" * 10,
        "bad-xml.docx": docx(f"<w:document {W}><w:body><w:p><w:r><w:t>unclosed</w:body>"),
        "deep.docx": docx(f"<w:document {W}><w:body>" + "<w:p>" * 100_000 + "</w:p>" * 100_000 + "</w:body></w:document>"),
        "deep.html": ("<html><body>" + "<div>" * 100_000 + "deep text" + "</div>" * 100_000 + "</body></html>").encode(),
        "encrypted.pdf": encrypted_pdf(),
        **bombs(),
    }


def index_json(cwd: Path) -> tuple[subprocess.CompletedProcess, dict, float, int]:
    """`tpdqa index --json` in ``cwd``: the process, its statistics, its wall time and peak memory
    (KB: the largest of the process and the children it reaped, as wait4 reports it)."""
    out, err = cwd / "index.out", cwd / "index.err"
    started = time.monotonic()
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "tpdqa.cli", "index", "--json"], cwd=cwd, text=True,
                                stdout=stdout, stderr=stderr)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(), err.read_text())
    stats = json.loads(done.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}
    return done, stats, seconds, usage.ru_maxrss


def test_every_malformed_file_is_listed_with_a_reason_and_the_good_files_are_indexed(tmp_path):
    docs = tmp_path / "documents"
    docs.mkdir()
    (docs / "sigma.txt").write_text(GOOD, encoding="utf-8")
    (docs / "tau.docx").write_bytes(good_docx())
    (docs / "rho.pdf").write_bytes(good_pdf())
    # odd but readable: indexed, in their time budget
    (docs / "huge-line.txt").write_text("word " * 2_000_000, encoding="utf-8")  # 10 MB, one line, no full stop
    (docs / "deep.md").write_text("> " * 50_000 + "The upsilon note is quoted fifty thousand times deep.\n")
    bad = malformed()
    for name, data in bad.items():
        (docs / name).write_bytes(data)
    before = {p.name: p.read_bytes() for p in docs.iterdir()}

    result = run_tpdqa("index", "--json", cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "invalid pdf header" not in result.stderr.lower()
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    reasons = {e["source"]: e["reason"] for e in stats["errors"]}
    assert set(reasons) == set(bad), sorted(set(bad) ^ set(reasons))
    assert stats["failed"] == len(bad) and stats["added"] == 5  # the good files, the long line, the deep quote
    assert "zip bomb" in reasons["bomb.docx"] and "zip bomb" in reasons["many-paragraphs.docx"]
    assert "encrypted" in reasons["encrypted.pdf"] and reasons["empty.pdf"] == "empty file"
    assert all(len(reason) < 300 and "\n" not in reason for reason in reasons.values()), reasons
    listed = run_tpdqa("index", cwd=tmp_path)  # the plain run names each skipped file, with its reason
    assert {f"skipped {name}: {reason}" for name, reason in reasons.items()} <= {line.strip() for line in listed.stderr.splitlines()}
    assert {p.name: p.read_bytes() for p in docs.iterdir()} == before  # nothing touched, nothing lost

    for question, expected in (("Where did the sigma laboratory open its clean room?", "Oslo"),
                               ("When was the tau observatory built?", "1928"),
                               ("Since when does the rho archive keep shipping records?", "1850")):
        answer = run_tpdqa("ask", question, "--json", cwd=tmp_path)
        assert answer.returncode == 0 and "Traceback" not in answer.stderr, answer.stderr[-2000:]
        assert expected in json.loads(answer.stdout)["text"]


def test_a_broken_and_a_bomb_docx_cost_the_run_neither_memory_nor_time(tmp_path):
    plain, hostile = tmp_path / "plain", tmp_path / "hostile"
    for base in (plain, hostile):
        (base / "documents").mkdir(parents=True)
        (base / "documents" / "tau.docx").write_bytes(good_docx())
    (hostile / "documents" / "broken.docx").write_bytes(docx(f"<w:document {W}><w:body><w:p>"))
    (hostile / "documents" / "bomb.docx").write_bytes(bombs()["bomb.docx"])

    baseline, base_stats, base_seconds, base_peak = index_json(plain)
    assert baseline.returncode == 0, baseline.stderr[-2000:]
    result, stats, seconds, peak = index_json(hostile)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert stats["added"] == base_stats["added"] == 1 and stats["chunks"] == base_stats["chunks"]
    assert {e["source"] for e in stats["errors"]} == {"broken.docx", "bomb.docx"}
    assert seconds <= base_seconds + 10, (seconds, base_seconds)
    assert peak <= base_peak + 300 * 1024, (peak, base_peak)  # KB


def steps(count: int, seconds: float, report: bool) -> int:
    """A reader that works in ``count`` steps (like OCR page by page), reporting each or not."""
    from tpdqa.sandbox import keep_alive

    for _ in range(count):
        time.sleep(seconds)
        if report:
            keep_alive()
    return count


def test_the_time_budget_bounds_each_reported_step_so_a_long_scan_is_not_skipped(monkeypatch):
    """A 100-page scan reports each page read; a file that hangs reports nothing and is stopped."""
    from tpdqa.sandbox import Limits, OverLimit, Sandbox

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))  # the child imports ``steps`` from here
    child = Sandbox()
    try:
        limits = Limits(timeout_s=2)
        # the child is up and has imported this module (pytest and all: a budget of its own on a busy machine)
        assert child.run(steps, (0, 0, True), Limits(timeout_s=120)) == 0
        assert child.run(steps, (8, 0.5, True), limits) == 8  # 4 s in all, 0.5 s between reports
        with pytest.raises(OverLimit, match="without progress"):
            child.run(steps, (8, 0.5, False), limits)
        assert child.run(steps, (1, 0, True), limits) == 1  # a fresh child took the stopped one's place
    finally:
        child.close()


def test_a_busy_machine_does_not_make_the_first_file_too_slow_to_read(tmp_path, monkeypatch):
    """The reader's start-up is not charged to the first file: on a loaded machine starting
    Python and importing the parsers took minutes, and a small Markdown file was skipped as
    "too large or malformed". Stand-in for the busy machine: a ``sitecustomize`` that makes
    the child's start-up last 3 s, against a 2 s budget per file."""
    from tpdqa.ingest import FileError, parse_file
    from tpdqa.sandbox import Limits, Sandbox

    (tmp_path / "sitecustomize.py").write_text("import time\ntime.sleep(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    child = Sandbox()
    try:
        parsed = parse_file("notes.md", "# Notes\n\nLe tunnel a coûté 15 milliards.\n".encode(), Limits(timeout_s=2),
                            box=child)
        assert not isinstance(parsed, FileError), parsed
        documents, _, _ = parsed
        assert any("15 milliards" in document.page_content for document in documents), documents
    finally:
        child.close()


def test_a_file_reader_that_cannot_start_is_named_not_the_file(tmp_path, monkeypatch):
    """A broken install (the child dies before it is ready) is reported as the reader's failure,
    with what to check, not as a malformed document. Stand-in for the broken install: a
    ``sitecustomize`` that ends the child at once."""
    from tpdqa.ingest import FileError, parse_file
    from tpdqa.sandbox import Limits, Sandbox

    (tmp_path / "sitecustomize.py").write_text("import os\nos._exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    parsed = parse_file("notes.md", b"# Notes\n\nHello.\n", Limits(timeout_s=2), box=Sandbox())
    assert isinstance(parsed, FileError) and "could not start" in parsed.reason and "exit code 3" in parsed.reason, parsed
