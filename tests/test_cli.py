"""The command line, as a user runs it (subprocesses, real models, temp folders)."""

from __future__ import annotations

import json

from tests.conftest import run_tpdqa


def test_ask_builds_the_index_and_prints_numbered_sources(corpus_dir, tmp_path):
    result = run_tpdqa("ask", "Qui domine la production de puces mémoire ?", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "No index yet" in result.stderr
    assert "[1]" in result.stdout and "Sources:" in result.stdout
    assert "[1] tpd-asie-2025.txt" in result.stdout
    assert "la Corée du Sud domine la production de puces mémoire" in result.stdout

    as_json = run_tpdqa("ask", "What does TPD stand for?", "--json", cwd=tmp_path)
    answer = json.loads(as_json.stdout)
    assert answer["refused"] is False and answer["citations"][0]["source"] == "tpd-asie-2025.txt"
    assert "No index yet" not in as_json.stderr


def test_bad_questions_and_folders_exit_with_a_message_not_a_traceback(corpus_dir, tmp_path):
    empty = run_tpdqa("ask", "  ", cwd=tmp_path)
    long = run_tpdqa("ask", "?" * 2500, cwd=tmp_path)
    missing = run_tpdqa("index", "--documents-dir", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert empty.returncode == 2 and "question is empty" in empty.stderr
    assert long.returncode == 2 and "2500 characters" in long.stderr
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert "Traceback" not in empty.stderr + long.stderr + missing.stderr


def test_a_document_too_short_to_quote_does_not_break_the_answers_beside_it(tmp_path):
    docs = tmp_path / "documents"
    docs.mkdir()
    (docs / "sigma.txt").write_text("The sigma lab is in Oslo. It opened in 2020.\n", encoding="utf-8")
    (docs / "short.txt").write_text("mu text\n", encoding="utf-8")
    result = run_tpdqa("ask", "Where is the sigma lab?", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert not answer["refused"] and "Oslo" in answer["text"] and answer["citations"][0]["source"] == "sigma.txt"


def test_ask_marks_the_words_that_answer_in_bold(tmp_path):
    docs = tmp_path / "documents"
    docs.mkdir()
    (docs / "sigma.txt").write_text("The sigma lab publishes a yearly report on fisheries. The lab moved to Oslo in "
                                    "2021, after ten years in Bergen.\n", encoding="utf-8")
    result = run_tpdqa("ask", "Where did the sigma lab move to?", "--reader", "auto", cwd=tmp_path)  # piped: **
    assert result.returncode == 0, result.stderr[-2000:]
    answer = result.stdout.split("\n\nSources:")[0]
    assert "**Oslo" in answer and answer.count("**") == 2, answer


def test_a_missing_or_empty_documents_folder_says_so_and_leaves_nothing_behind(tmp_path):
    missing = run_tpdqa("ask", "Where is the lab?", cwd=tmp_path)
    assert missing.returncode == 1 and "documents folder documents does not exist" in missing.stderr
    assert not (tmp_path / "index").exists()  # no empty index left behind
    (tmp_path / "documents").mkdir()
    for _ in range(2):
        empty = run_tpdqa("ask", "Where is the lab?", cwd=tmp_path)
        assert empty.returncode == 1 and "is empty: put" in empty.stderr and "Traceback" not in empty.stderr
        assert "No index yet" not in empty.stderr


def test_a_missing_users_file_is_named_as_missing(tmp_path):
    listed = run_tpdqa("user", "list", "--users", "missing.toml", cwd=tmp_path)
    served = run_tpdqa("serve", "--users", "missing.toml", "--port", "1", cwd=tmp_path)
    for result in (listed, served):
        assert result.returncode == 1 and "missing.toml does not exist" in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr


def test_help_documents_every_command(tmp_path):
    top = run_tpdqa("--help", cwd=tmp_path)
    assert all(cmd in top.stdout for cmd in ("index", "ask", "eval"))
    ask = run_tpdqa("ask", "--help", cwd=tmp_path)
    assert "--json" in ask.stdout and "TPDQA_" in ask.stdout


def test_ask_names_the_section_of_each_source_and_never_quotes_a_heading(tmp_path):
    from tests.test_ingest import _docx_with_headings

    docs = tmp_path / "documents"
    docs.mkdir()
    _docx_with_headings(docs / "micron.docx")
    (docs / "usines.md").write_text(
        "# Usines de puces\n\n## Samsung au Texas\n\nSamsung construit une usine de puces avancées à Taylor, "
        "au Texas, pour dix-sept milliards de dollars.\n", encoding="utf-8")

    result = run_tpdqa("ask", "Combien le Japon a-t-il versé de subventions à Micron ?", cwd=tmp_path)
    answer = json.loads(run_tpdqa("ask", "Où Samsung construit-il son usine ?", "--json", cwd=tmp_path).stdout)

    assert result.returncode == 0, result.stderr
    assert "[1] micron.docx › Micron au Japon › Une politique d'attraction des fabricants" in result.stdout
    assert "1,5 milliard de dollars" in result.stdout
    assert answer["refused"] is False
    assert answer["citations"][0]["section"] == "usines.md › Usines de puces › Samsung au Texas"
    assert "Taylor" in answer["citations"][0]["quote"]
    headings = {"Usines de puces", "Samsung au Texas", "Micron au Japon", "Une politique d'attraction des fabricants"}
    assert not any(h in answer["citations"][0]["quote"] for h in headings)


def test_an_unreadable_index_is_one_line_saying_what_to_do(corpus_dir, tmp_path):
    assert run_tpdqa("index", cwd=tmp_path).returncode == 0
    (tmp_path / "index" / "records.sqlite").write_bytes(b"this is not a database" * 100)
    result = run_tpdqa("ask", "Qui domine la production de puces mémoire ?", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "cannot be read" in result.stderr and "delete index" in result.stderr


def test_ask_in_one_collection(corpus_dir, tmp_path):
    (corpus_dir / "sales").mkdir()
    (corpus_dir / "sales" / "offer.txt").write_text(
        "The sales team chose the discount code LAVENDER-42 for the spring offer.\n", encoding="utf-8")
    question = "What is the discount code of the spring offer?"
    outside = run_tpdqa("ask", question, "--collection", "default", "--json", cwd=tmp_path)
    inside = run_tpdqa("ask", question, "--collection", "sales", "--json", cwd=tmp_path)
    assert json.loads(outside.stdout)["refused"] is True
    answer = json.loads(inside.stdout)
    assert answer["refused"] is False and answer["citations"][0]["source"] == "sales/offer.txt"
