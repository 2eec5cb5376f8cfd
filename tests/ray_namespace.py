"""A Ray head and a ``chroma run`` server on 127.0.0.1, ``tpdqa index --ray`` into them, and
what the index then holds (JSON on stdout). ``tests/test_cluster.py`` runs this inside a
network namespace that has only loopback (``unshare -n``): outside one, Ray binds the
machine's own address whatever ``--node-ip-address`` says, and tests must never use it.

    unshare -n python tests/ray_namespace.py DOCUMENTS WORK QUESTION...
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RAY_PORT, CHROMA_PORT = 6380, 8765  # a namespace of its own: nothing else listens there


def snapshot(assistant, questions: list[str]) -> dict:
    """What a user and the writer see of an index: chunk ids per list, the sentence store's
    chunks, and each question's answer with the chunks it cites."""
    store = assistant.store
    return {
        "dense": {model: sorted(store.dense(model)._collection.get(include=[])["ids"])
                  for model in assistant.settings.embedding_models},
        "bm25": sorted(store.lexical.ids()),
        "sentences": sorted(store.sentences.ids()),
        "files": [(f.source, f.chunks, f.complete) for f in store.files()],
        "answers": [(a.text, [c.chunk_id for c in a.citations]) for a in map(assistant.ask, questions)],
    }


def main(documents: str, work: str, *questions: str) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conftest import serving

    bin_dir, work_dir = Path(sys.executable).parent, Path(work)
    work_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    sessions = tempfile.mkdtemp(prefix="tpdqa-ray-", dir="/tmp")  # Ray's sockets: a path of ≤ 107 bytes
    subprocess.run([str(bin_dir / "ray"), "start", "--head", "--port", str(RAY_PORT), "--num-cpus", "2",
                    "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", sessions],
                   check=True, env=env, stdout=sys.stderr)
    try:
        url = f"http://127.0.0.1:{CHROMA_PORT}"
        chroma = [str(bin_dir / "chroma"), "run", "--path", str(work_dir / "chroma"), "--host", "127.0.0.1",
                  "--port", str(CHROMA_PORT)]
        with serving(chroma, f"{url}/api/v2/heartbeat", timeout=60, log=work_dir / "chroma.log"):
            indexed = subprocess.run(
                [str(bin_dir / "tpdqa"), "index", "--ray", f"127.0.0.1:{RAY_PORT}", "--chroma-url", url,
                 "--documents-dir", documents, "--index-dir", str(work_dir / "index"), "--json"],
                env=env, capture_output=True, text=True, timeout=900)
            if indexed.returncode:
                print(indexed.stderr[-4000:], file=sys.stderr)
                return indexed.returncode
            from tpdqa import Assistant

            assistant = Assistant(documents_dir=documents, index_dir=work_dir / "index", chroma_url=url)
            print(json.dumps({"stats": json.loads(indexed.stdout.strip().splitlines()[-1]),
                              "nodes": sorted(n["NodeManagerAddress"] for n in _ray_nodes()),
                              **snapshot(assistant, list(questions))}))
    finally:
        subprocess.run([str(bin_dir / "ray"), "stop", "--force"], env=env, capture_output=True)
        shutil.rmtree(sessions, ignore_errors=True)
    return 0


def _ray_nodes() -> list[dict]:
    import ray

    ray.init(address=f"127.0.0.1:{RAY_PORT}", log_to_driver=False)
    try:
        return ray.nodes()
    finally:
        ray.shutdown()


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
