"""Server mode: the same behaviour against a real `chroma run` on a loopback port."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tpdqa import Assistant
from tests.conftest import free_port, serving


@pytest.fixture
def chroma_server(tmp_path):
    port = free_port()
    chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    url = f"http://127.0.0.1:{port}"
    command = [chroma, "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1", "--port", str(port)]
    with serving(command, f"{url}/api/v2/heartbeat", timeout=60, log=tmp_path / "chroma.log"):
        yield url


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
