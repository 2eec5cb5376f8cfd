"""tpdqa index --ray: a real Ray head and a real `chroma run` server, both on 127.0.0.1 inside a
network namespace that has only loopback (tests/ray_namespace.py), against a local run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tpdqa import Assistant
from tests.conftest import DEV_SET, ROOT
from tests.ray_namespace import snapshot

pytest.importorskip("ray", reason="tpdqa index --ray needs the extra tpdqa[ray] (installed by make test)")


def _loopback_namespace_works() -> bool:
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return probe.returncode == 0


def test_ray_index_is_the_local_index(tmp_path):
    if not shutil.which("unshare") or not _loopback_namespace_works():
        pytest.skip("needs `unshare -n` (root, or user namespaces): outside a loopback-only namespace a Ray head "
                    "binds this machine's own address, which tests must not use")
    documents = tmp_path / "documents"
    shutil.copytree(ROOT / "documents", documents)
    (documents / "notes").mkdir()
    (documents / "notes" / "harbour.md").write_text(
        "# Harbour survey\n\nThe lighthouse of Port-Lumière was built in 1874 by the engineer Léonie Brasse. "
        "Its lamp is visible 22 nautical miles out to sea.\n", encoding="utf-8")
    (documents / "notes" / "broken.pdf").write_bytes(b"%PDF-1.7 this is not a PDF")
    questions = [json.loads(line)["question"] for line in DEV_SET.read_text(encoding="utf-8").splitlines()]
    questions.append("Who built the lighthouse of Port-Lumière?")

    local = Assistant(documents_dir=documents, index_dir=tmp_path / "local")
    local_stats = local.index()
    expected = json.loads(json.dumps(snapshot(local, questions)))

    run = subprocess.run(["unshare", "-n", sys.executable, str(ROOT / "tests" / "ray_namespace.py"),
                          str(documents), str(tmp_path / "ray"), *questions],
                         capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stderr[-4000:]
    got = json.loads(run.stdout)

    assert got["nodes"] == ["127.0.0.1"]  # the head took loopback, nothing else
    # the writer encoded nothing itself: every vector was computed by the cluster's actor pools
    assert got["stats"]["models_loaded"] == []
    assert (got["stats"]["chunks"], got["stats"]["added"]) == (local_stats.chunks, local_stats.added)
    assert got["stats"]["errors"] == [{"source": e.source, "reason": e.reason} for e in local_stats.errors]
    assert [e["source"] for e in got["stats"]["errors"]] == ["notes/broken.pdf"]
    for key in ("dense", "bm25", "sentences", "files"):
        assert got[key] == expected[key], key
    assert got["answers"] == expected["answers"]
    assert any("Brasse" in text for text, _ in got["answers"])
