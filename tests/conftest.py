"""Shared fixtures: every test works in its own temp dir with real models and a real Chroma store."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS = ROOT / "documents" / "tpd-asie-2025.txt"
DEV_SET = SHARED / "eval" / "tpd_dev.jsonl"


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_tpdqa(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600):
    return subprocess.run(
        [sys.executable, "-m", "tpdqa.cli", *args],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
    )
