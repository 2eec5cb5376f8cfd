"""Server mode: the same behaviour against a real `chroma run` on a loopback port."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tpdqa import Assistant
from tests.conftest import free_port


@pytest.fixture
def chroma_server(tmp_path):
    port = free_port()
    chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    proc = subprocess.Popen([chroma, "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("chroma run did not start within 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_server_mode_indexes_answers_and_stays_incremental(corpus_dir, tmp_path, chroma_server, monkeypatch):
    monkeypatch.setenv("TPDQA_CHROMA_URL", chroma_server)
    qa = Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index")
    first = qa.index()
    assert first.embedded == 8
    assert not (tmp_path / "index" / "chroma").exists()  # vectors went to the server

    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_server.rsplit(":", 1)[1]))
    counts = {c.name: c.count() for c in client.list_collections()}
    assert sorted(counts.values()) == [8, 8]

    answer = qa.ask("Which country is a leader in robotics?")
    assert not answer.refused and "Japon est leader" in answer.citations[0].quote
    again = Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index").index()
    assert again.embedded == 0 and again.unchanged == 1
