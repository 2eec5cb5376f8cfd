"""Server mode: the same behaviour against a real `chroma run` on a loopback port."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tpdqa import Assistant
from tests.conftest import free_port, serving


def test_server_mode_indexes_answers_and_stays_incremental(corpus_dir, tmp_path, chroma_server, monkeypatch):
    monkeypatch.setenv("TPDQA_CHROMA_URL", chroma_server)
    qa = Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index")
    first = qa.index()
    assert first.embedded == 8
    assert not (tmp_path / "index" / "chroma").exists()  # vectors went to the server

    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_server.rsplit(":", 1)[1]))
    counts = {c.name: c.count() for c in client.list_collections()}
    assert sorted(counts.values()) == [8] * len(qa.settings.embedding_models)  # one collection per model

    answer = qa.ask("Which country is a leader in robotics?")
    assert not answer.refused and "Japon est leader" in answer.citations[0].quote
    again = Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index").index()
    assert again.embedded == 0 and again.unchanged == 1


def test_two_replicas_on_one_chroma_server_answer_each_others_documents(tmp_path, chroma_server):
    """Two `tpdqa serve` processes, each with its own folders, share one `chroma run`: a file
    indexed through replica A is answered, with its citation, by replica B."""
    import os
    import time

    from gradio_client import Client

    from tests.conftest import CORPUS

    question = "How much money did the lighthouse keeper ask for?"
    replicas = {}
    for name in ("a", "b"):
        docs = tmp_path / f"{name}-documents"
        docs.mkdir()
        shutil.copy(CORPUS, docs / CORPUS.name)
        replicas[name] = (docs, tmp_path / f"{name}-index", free_port())
    (replicas["a"][0] / "lighthouse.txt").write_text(
        "The harbour committee met on Tuesday to discuss the lighthouse repairs.\n"
        "The lighthouse keeper asked for a new lens and a budget of 40,000 euros.\n", encoding="utf-8")
    env = {**os.environ, "TPDQA_CHROMA_URL": chroma_server}
    tpdqa = str(Path(sys.executable).with_name("tpdqa"))

    def command(name):
        docs, index, port = replicas[name]
        return [tpdqa, "serve", "--port", str(port), "--documents-dir", str(docs), "--index-dir", str(index)]

    url = {name: f"http://127.0.0.1:{replicas[name][2]}/" for name in replicas}
    with serving(command("a"), url["a"], timeout=120, log=tmp_path / "a.log", env=env), \
            serving(command("b"), url["b"], timeout=120, log=tmp_path / "b.log", env=env):
        a, b = Client(url["a"], verbose=False), Client(url["b"], verbose=False)
        deadline = time.monotonic() + 300
        while a.predict(question, api_name="/ask")["refused"]:  # A indexes its folder in the background
            assert time.monotonic() < deadline, (tmp_path / "a.log").read_text()[-3000:]
            time.sleep(2)
        answer = b.predict(question, api_name="/ask")
        assert not answer["refused"], answer
        assert answer["citations"][0]["source"] == "lighthouse.txt"
        assert "40,000 euros" in answer["citations"][0]["quote"]
        # B still answers from its own documents
        own = b.predict("Which country is a leader in robotics?", api_name="/ask")
        assert not own["refused"] and own["citations"][0]["source"] == CORPUS.name
    assert not (replicas["b"][0] / "lighthouse.txt").exists()
