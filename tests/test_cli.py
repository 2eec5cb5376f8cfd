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


def test_help_documents_every_command(tmp_path):
    top = run_tpdqa("--help", cwd=tmp_path)
    assert all(cmd in top.stdout for cmd in ("index", "ask", "eval"))
    ask = run_tpdqa("ask", "--help", cwd=tmp_path)
    assert "--json" in ask.stdout and "TPDQA_" in ask.stdout
