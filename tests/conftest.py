"""Shared fixtures: every test works in its own temp dir with real models and a real Chroma store."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "documents" / "tpd-asie-2025.txt"
DEV_SET = ROOT / "tests" / "data" / "tpd_dev.jsonl"  # the development questions, kept with the tests
CHROMIUM = os.environ.get("TPDQA_CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "test-artifacts" / "screenshots"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"no Chromium at {CHROMIUM} (make setup-test installs it)")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    # Model exports cached by a run (tpdqa.embeddings.OnnxQuestionEncoder) stay in the session.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    # No tpdqa.toml or TPDQA_* from the developer's shell leaks into a test.
    for name in list(os.environ):
        if name.startswith("TPDQA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def corpus_dir(tmp_path) -> Path:
    docs = tmp_path / "documents"
    docs.mkdir()
    shutil.copy(CORPUS, docs / CORPUS.name)
    return docs


# Questions on the three collections of team_folder
SALES = "What is the discount code of the spring offer?"
LEGAL = "Until when was the lease of the Lyon office renewed?"


def team_folder(base: Path) -> Path:
    """A documents folder with three collections: default (the bundled article), sales, legal."""
    docs = base / "documents"
    (docs / "sales").mkdir(parents=True)
    (docs / "legal").mkdir()
    shutil.copy(CORPUS, docs / CORPUS.name)
    (docs / "sales" / "offer.txt").write_text(
        "The sales team chose the discount code LAVENDER-42 for the spring offer.\n", encoding="utf-8")
    (docs / "legal" / "contract.txt").write_text(
        "The legal department renewed the lease of the Lyon office until 2031.\n", encoding="utf-8")
    return docs


@pytest.fixture(scope="session")
def bundled_assistant(tmp_path_factory):
    """An Assistant over the bundled article, indexed once for the session."""
    from tpdqa import Assistant

    base = tmp_path_factory.mktemp("bundled")
    docs = base / "documents"
    docs.mkdir()
    shutil.copy(CORPUS, docs / CORPUS.name)
    assistant = Assistant(documents_dir=docs, index_dir=base / "index")
    assistant.index()
    return assistant


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (its own browser download cannot work offline)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture
def chroma_server(tmp_path):
    """A real `chroma run` on a loopback port, its data in the test's temp dir; yields its URL."""
    port = free_port()
    chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    url = f"http://127.0.0.1:{port}"
    command = [chroma, "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1", "--port", str(port)]
    with serving(command, f"{url}/api/v2/heartbeat", timeout=60, log=tmp_path / "chroma.log"):
        yield url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(command: list[str], ready_url: str, *, timeout: float, log: Path, cwd: Path | None = None,
            env: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Run a real server process until the block ends, once ``ready_url`` answers 200."""
    import httpx

    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(ready_url, timeout=2, headers=headers).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{command[0]} did not serve {ready_url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def fresh_process(script: str, cache: Path) -> tuple[dict, str]:
    """Run ``script`` in a new Python process whose model cache is ``cache``: the JSON object its
    last line prints, and what it said on stderr."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def run_tpdqa(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600, input: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "tpdqa.cli", *args], input=input,
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
    )
