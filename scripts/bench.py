"""Speed benchmark: indexing, re-indexing, answering and serving at 1k, 10k and 100k passages.

    .venv/bin/python scripts/bench.py                          # 1k and 10k, default models
    .venv/bin/python scripts/bench.py --sizes 1000,10000,100000 --json docs/bench.json
    .venv/bin/python scripts/bench.py --sizes 1000 --serve     # + 1/4/16 concurrent clients (page, REST)
    .venv/bin/python scripts/bench.py --sizes 1000,100000 --ask-only --reader off   # asking only, reader off

Passages are paragraphs of the public data in ../shared/data (PIAF, SQuAD 1.1 dev,
SciFact), one .txt file each. A size larger than the pool reuses texts under new file
names; their chunks are new ids (Chroma, BM25 and the sentence index store them all),
but the vector of a text already encoded is reused instead of re-encoded (LangChain's
``CacheBackedEmbeddings`` over a file store in ``--work``): the output says which sizes
did so, and their index throughput is then not an encoder figure. Only the smallest
size is indexed without that cache, and its encoders are also timed raw on the very
same chunk texts, which gives the ratio of ``tpdqa index`` to raw encoding.

Every figure is printed with the machine's 1-minute load average beside it (a busy
machine explains a slow figure), and all of them are written to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TPDQA = Path(sys.executable).with_name("tpdqa")
FIGURES: dict = {}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def report(size: str, name: str, value, unit: str = "") -> None:
    FIGURES.setdefault(size, {})[name] = value
    FIGURES[size].setdefault("load", {})[name] = load()
    print(f"  {name:<34} {value}{(' ' + unit) if unit else ''}   (load {load()})", flush=True)


def pool() -> tuple[list[str], list[tuple[str, str]]]:
    """Unique passages and (question, passage) pairs from the public data, seeded order."""
    texts: list[str] = []
    questions: list[tuple[str, str]] = []
    from tpdqa.evaluation import benchmark_data

    benchmark_data(DATA)
    for path in (DATA / "piaf-v1.1" / "piaf-v1.1.json", DATA / "squad-v1.1-dev" / "dev-v1.1.json"):
        for article in json.loads(path.read_text())["data"]:
            for paragraph in article["paragraphs"]:
                texts.append(paragraph["context"])
                questions += [(qa["question"], paragraph["context"]) for qa in paragraph["qas"][:1]]
    with open(DATA / "beir-scifact" / "corpus.jsonl") as corpus:
        texts += [json.loads(line)["text"] for line in corpus]
    texts = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
    random.Random(7).shuffle(texts)
    random.Random(7).shuffle(questions)
    return texts, questions


def write_folder(folder: Path, texts: list[str], size: int) -> None:
    """``size`` files, 1,000 per subfolder, texts reused in order when size > len(texts)."""
    if folder.exists() and len(list(folder.rglob("*.txt"))) == size:
        return
    shutil.rmtree(folder, ignore_errors=True)
    for i in range(size):
        target = folder / f"part{i // 1000:03d}" / f"p{i:06d}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(texts[i % len(texts)] + "\n", encoding="utf-8")


def env_for(documents: Path, index: Path, models: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPDQA_")}
    env.update(TPDQA_DOCUMENTS_DIR=str(documents), TPDQA_INDEX_DIR=str(index),
               TPDQA_EMBEDDING_MODELS=",".join(models))
    return env


def timed_run(args: list[str], env: dict[str, str]) -> tuple[float, str, str]:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout, done.stderr


def use_vector_cache(models: list[str], cache: Path) -> None:
    """Reuse the vector of an already encoded text (sizes beyond the unique pool)."""
    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_classic.storage import LocalFileStore

    from tpdqa.embeddings import collection_name, get_embeddings
    from tpdqa.settings import USE_MODEL

    for model in dict.fromkeys([*models, USE_MODEL]):  # USE is also the answerer's judge: sentences, words
        lazy = get_embeddings(model)
        if isinstance(lazy._model, CacheBackedEmbeddings):
            continue
        store = LocalFileStore(str(cache / collection_name(model)))
        lazy._model = CacheBackedEmbeddings.from_bytes_store(lazy.model, store, namespace="v1",
                                                             key_encoder="sha256")


def raw_encoders(models: list[str], texts: list[str], size: str) -> float:
    """Seconds the bare encoders take for ``texts`` (one batch per 64, as indexing sends)."""
    from tpdqa.embeddings import get_embeddings

    total = 0.0
    for model in models:
        encoder = get_embeddings(model).model
        encoder.embed_documents(texts[:8])  # warm: first call pays one-time setup
        started = time.perf_counter()
        for i in range(0, len(texts), 64):
            encoder.embed_documents(texts[i:i + 64])
        seconds = time.perf_counter() - started
        report(size, f"raw {model}", round(len(texts) / seconds, 1), "chunks/s")
        total += seconds
    return total


def raw_judge(docs: list, size: str) -> float:
    """Seconds bare USE takes for what the answerer's sentence store encodes at indexing:
    every chunk's quotable units and their distinct content words (part of the encoder work
    an index run does, beside the chunks)."""
    from tpdqa.embeddings import get_embeddings
    from tpdqa.sentences import chunk_units, content_words
    from tpdqa.settings import USE_MODEL

    units = list(dict.fromkeys(u for d in docs for u in chunk_units(d)))
    words = list(dict.fromkeys(w for u in units for w in content_words(u)))
    encoder = get_embeddings(USE_MODEL).model
    encoder.embed_documents(units[:8])
    total = 0.0
    for name, texts in (("sentences", units), ("words", words)):
        started = time.perf_counter()
        for i in range(0, len(texts), 64):
            encoder.embed_documents(texts[i:i + 64])
        seconds = time.perf_counter() - started
        report(size, f"raw USE, {len(texts):,} {name}", round(seconds, 1), "s")
        total += seconds
    return total


def seed_vector_cache(models: list[str], vectors: dict[str, dict[str, object]]) -> None:
    """Put a finished index's vectors in the cache (:func:`use_vector_cache`), so a larger size
    built from the same texts encodes none of them again."""
    from tpdqa.embeddings import get_embeddings
    from tpdqa.settings import USE_MODEL

    for model in dict.fromkeys([*models, USE_MODEL]):
        store = get_embeddings(model)._model.document_embedding_store
        items = [(text, [float(x) for x in vector]) for text, vector in vectors.get(model, {}).items()]
        for i in range(0, len(items), 1000):
            store.mset(items[i:i + 1000])
        print(f"  seeded the vector cache with {len(items):,} {model} vectors", flush=True)


WARM = r"""
import inspect, json, resource, statistics, sys, time
from tpdqa import Assistant
questions = json.loads(sys.stdin.read())
qa = Assistant()
qa.ask(questions[0])  # loads the models
staged = "timings" in inspect.signature(qa.ask).parameters  # older versions: totals only
totals, stages = [], {}
for q in questions:
    timings = {}
    started = time.perf_counter()
    qa.ask(q, timings=timings) if staged else qa.ask(q)
    totals.append(1000 * (time.perf_counter() - started))
    for name, seconds in timings.items():
        stages.setdefault(name, []).append(1000 * seconds)
pct = lambda xs, p: round(sorted(xs)[min(len(xs) - 1, int(p * len(xs)))], 1)
print(json.dumps({"p50": pct(totals, 0.5), "p95": pct(totals, 0.95),
                  "stages": {k: {"p50": pct(v, 0.5), "p95": pct(v, 0.95)} for k, v in stages.items()},
                  "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def bench_size(size: int, texts: list[str], questions: list[tuple[str, str]], models: list[str],
               work: Path, cached: bool, one_run: bool = False, reader: str = "auto") -> None:
    from tpdqa import Assistant
    from tpdqa.ingest import chunk_documents, load_folder

    label = f"{size // 1000}k"
    print(f"\n== {size:,} passages{' (vectors of repeated texts reused: not an encoder figure)' if cached else ''}")
    FIGURES.setdefault(label, {})["vector_cache"] = cached
    documents, index = work / label / "documents", work / label / "index"
    write_folder(documents, texts, size)
    shutil.rmtree(index, ignore_errors=True)

    qa = Assistant(documents_dir=documents, index_dir=index, embedding_models=models)
    if not cached:
        folder = load_folder(documents)
        chunks = chunk_documents(folder.documents, qa.settings.chunk_size, qa.settings.chunk_overlap)
        raw = raw_encoders(models, [c.page_content for c in chunks], label)
        report(label, "raw encoders, all models", round(len(chunks) / raw, 1), "chunks/s")
        judge = raw_judge(chunks, label)
        report(label, "raw, all encoder work (chunks, sentences, words)", round(raw + judge, 1), "s")
    shown = {t.strip(): i for i, t in enumerate(texts[:size])}
    probes = [(q, shown[t.strip()]) for q, t in questions if t.strip() in shown][:60]

    def found() -> str:  # questions whose passage's file is among the 5 passages retrieved
        hits = sum(any(d.metadata["source"].endswith(f"p{i:06d}.txt") for d in qa.search(q, k=5)) for q, i in probes)
        return f"{hits}/{len(probes)}"

    started = time.perf_counter()
    if one_run:  # as a user runs it: one `tpdqa index`, both phases in one process
        stats = qa.index()
        seconds, searchable = time.perf_counter() - started, stats.searchable_s
    else:  # two runs, the questions asked in between, when only the searchable phase has run
        stats = qa.index(searchable_only=True)
        searchable = time.perf_counter() - started
        report(label, "right passage in top 5, searchable", found())
        started = time.perf_counter()
        qa.index()
        seconds = searchable + time.perf_counter() - started
    report(label, "right passage in top 5, complete", found())
    report(label, "chunks", stats.chunks)
    report(label, "time to searchable", round(searchable, 1), "s")
    report(label, "time to complete", round(seconds, 1), "s")
    report(label, "searchable / complete", round(searchable / seconds, 3))
    report(label, "tpdqa index", round(stats.chunks / seconds, 1), "chunks/s")
    if not cached:
        report(label, "index / raw encoders (chunks only)", round(raw / seconds, 3))
        report(label, "index / raw, all encoder work", round((raw + judge) / seconds, 3))
    qa.store.close()

    env = env_for(documents, index, models)
    noop, _, _ = timed_run([str(TPDQA), "index"], env)
    report(label, "no-op re-index (process)", round(noop, 2), "s")
    changed = next(documents.rglob("*.txt"))
    changed.write_text(changed.read_text() + "Une phrase ajoutée pour le banc d'essai.\n")
    one, _, _ = timed_run([str(TPDQA), "index"], env)
    report(label, "one changed file (process)", round(one, 2), "s")

    bench_ask(label, work, models, questions, reader)
    disk = sum(p.stat().st_size for p in index.rglob("*") if p.is_file())
    report(label, "index on disk", round(disk / 1e6, 1), "MB")
    report(label, "index on disk per chunk", round(disk / stats.chunks / 1e3, 2), "KB")
    for part, size in disk_parts(index).items():
        report(label, f"  {part}", f"{size / 1e6:.1f} MB, {size / stats.chunks / 1e3:.2f} KB a chunk")


def bench_ask(label: str, work: Path, models: list[str], questions: list[tuple[str, str]], reader: str) -> None:
    """Warm ``ask`` (60 pool questions in one process, each stage's p50/p95; with the reader on,
    ``reader`` is its part of ``answer``) and one cold ``tpdqa ask``, on the index in ``work``."""
    documents, index = work / label / "documents", work / label / "index"
    env = {**env_for(documents, index, models), "TPDQA_READER": reader}
    FIGURES.setdefault(label, {})["reader"] = reader
    asked = [q for q, _ in questions[:60]]
    done = subprocess.run([sys.executable, "-c", WARM], input=json.dumps(asked), env=env, capture_output=True,
                          text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    warm = json.loads(done.stdout.strip().splitlines()[-1])
    report(label, "warm ask p50", warm["p50"], "ms")
    report(label, "warm ask p95", warm["p95"], "ms")
    for stage, figures in warm["stages"].items():
        report(label, f"  {stage} p50/p95", f"{figures['p50']}/{figures['p95']}", "ms")
    report(label, "warm process RSS", warm["rss_mb"], "MB")

    cold, _, stderr = timed_run([str(TPDQA), "ask", asked[1]], env)
    report(label, "cold tpdqa ask", round(cold, 2), "s")
    report(label, "'Loading weights' on stderr", "Loading weights" in stderr)


def disk_parts(index: Path) -> dict[str, int]:
    """Bytes of each part of an index: Chroma's SQLite file and vector files, and for every
    SQLite file its tables and indexes (SQLite's dbstat)."""
    import sqlite3

    parts = {"chroma vector files (HNSW)": sum(p.stat().st_size for p in (index / "chroma").glob("*/*"))}
    for path in [index / "chroma" / "chroma.sqlite3", *sorted(index.glob("*.sqlite"))]:
        if not path.exists():
            continue
        parts[f"{path.name} (file)"] = path.stat().st_size
        with sqlite3.connect(path) as db:
            for name, size in db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 6"):
                parts[f"{path.name}: {name}"] = size
    return parts


class Precomputed:
    """Vectors read back from a finished index, served to a new sync as a cluster's encoders
    would serve them (:mod:`tpdqa.cluster`): what is left is the single writer's own work."""

    parse = None  # files are parsed here (timed apart)

    def __init__(self, vectors: dict[str, dict[str, object]]) -> None:
        self._vectors, self.missing = vectors, 0

    def vectors(self, model: str, texts: list[str], progress=None) -> dict:
        known = self._vectors.get(model, {})
        self.missing += sum(t not in known for t in set(texts))
        return known


def index_vectors(documents: Path, index: Path, models: list[str]) -> dict[str, dict[str, object]]:
    """text -> vector of every model in a finished index (the sentence store's too)."""
    import sqlite3

    from tpdqa import Assistant
    from tpdqa.sentences import unpack, unpack_units
    from tpdqa.settings import USE_MODEL

    qa = Assistant(documents_dir=documents, index_dir=index, embedding_models=models)
    store = qa.store
    text_of = {d.id: d.page_content for d in store.lexical.get(sorted(store.lexical.ids()))}
    out: dict[str, dict[str, object]] = {}
    for model in models:
        collection, vectors = store.dense(model)._collection, out.setdefault(model, {})
        for offset in range(0, collection.count(), 1000):
            got = collection.get(include=["embeddings"], limit=1000, offset=offset)
            vectors.update((text_of[i], v) for i, v in zip(got["ids"], got["embeddings"]))
    judge = out.setdefault(USE_MODEL, {})
    with sqlite3.connect(index / "sentences.sqlite") as db:
        for units, blob in db.execute("SELECT units, vectors FROM sentences"):
            units = unpack_units(units)
            if units:
                judge.update(zip(units, unpack(blob, len(units))))
        judge.update((w, unpack(b, 1)[0]) for w, b in db.execute("SELECT word, vector FROM words"))
    qa.store.close()
    return out


def bench_writer(label: str, work: Path, models: list[str]) -> None:
    """The single writer's ceiling: chunks/s a sync writes (records, BM25, sentence store,
    Chroma) when every vector comes precomputed, as with ``tpdqa index --ray``."""
    from tpdqa import Assistant
    from tpdqa.ingest import load_folder

    documents, index = work / label / "documents", work / label / "index"
    vectors = index_vectors(documents, index, models)
    shutil.rmtree(work / label / "writer-index", ignore_errors=True)
    qa = Assistant(documents_dir=documents, index_dir=work / label / "writer-index", embedding_models=models)
    started = time.perf_counter()
    load_folder(documents, chunking=(qa.settings.chunk_size, qa.settings.chunk_overlap))
    parsing = time.perf_counter() - started
    cluster = Precomputed(vectors)
    started = time.perf_counter()
    stats = qa.index(cluster=cluster)
    seconds = time.perf_counter() - started
    report(label, "writer: texts not precomputed", cluster.missing)
    report(label, "writer: models loaded", ",".join(qa.store.models_loaded()) or "none")
    report(label, "writer: parse, chunk, split sentences", round(len(list(documents.rglob('*.txt'))) / parsing, 1),
           "files/s")
    report(label, "writer ceiling (vectors precomputed)", round(stats.chunks / max(1e-9, seconds - parsing), 1),
           "chunks/s")
    qa.store.close()


def bench_recall(label: str, work: Path, models: list[str], questions: list[tuple[str, str]], n: int = 200) -> None:
    """Each dense list's HNSW recall against exact search, for 40 hits asked and for what a
    search asks (store.DENSE_CANDIDATES): the share of the exact top 40 reached (a hit counts
    when its cosine reaches the exact 40th's: repeated texts tie), and how often the best is found."""
    import numpy as np

    from tpdqa import Assistant
    from tpdqa.store import DENSE_CANDIDATES

    qa = Assistant(documents_dir=work / label / "documents", index_dir=work / label / "index", embedding_models=models)
    store, k = qa.store, 40
    asked = [q for q, _ in questions[:n]]
    for model in models:
        collection = store.dense(model)._collection
        stored = np.vstack([np.asarray(collection.get(include=["embeddings"], limit=5000, offset=o)["embeddings"],
                                       dtype=np.float32) for o in range(0, collection.count(), 5000)])
        stored /= np.linalg.norm(stored, axis=1, keepdims=True)
        vectors = np.asarray([store.embed_query(model, question) for question in asked], dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        exact = np.sort(vectors @ stored.T, axis=1)[:, ::-1][:, :k] - 1e-5  # each question's exact top k cosines
        for hits in sorted({k, DENSE_CANDIDATES}):
            reached, best, seconds = [], 0, []
            for vector, top in zip(vectors, exact):
                started = time.perf_counter()
                found = collection.query(query_embeddings=[vector.tolist()], n_results=hits, include=["distances"])
                seconds.append(time.perf_counter() - started)
                cosines = 1.0 - np.asarray(found["distances"][0][:k])
                reached.append(float(np.mean(cosines >= top[-1])))
                best += bool(cosines[0] >= top[0])
            name = f"{model.split('/')[-1]}, {hits} hits asked"
            report(label, f"HNSW recall@{k} ({name})", round(float(np.mean(reached)), 3))
            report(label, f"HNSW best found ({name})", f"{best}/{len(asked)}")
            report(label, f"HNSW search p50 ({name})", round(1000 * float(np.median(seconds)), 2), "ms")
    store.close()


SERVE_CLIENT = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
url, clients, door, questions = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.stdin.read())
if door == "gradio":  # the page's /ask through Gradio's queue
    from gradio_client import Client
    pool = [Client(url, verbose=False) for _ in range(clients)]
    ask = lambda i, q: pool[i % clients].predict(q, api_name="/ask")
else:  # the REST API
    import httpx
    pool = [httpx.Client(base_url=url, timeout=600) for _ in range(clients)]
    ask = lambda i, q: pool[i % clients].post("/api/v1/ask", json={"question": q}).raise_for_status()
def one(i):
    started = time.perf_counter()
    ask(i, questions[i % len(questions)])
    return time.perf_counter() - started
n = max(clients * 4, 16)
started = time.perf_counter()
with ThreadPoolExecutor(clients) as ex:
    times = sorted(ex.map(one, range(n)))
wall = time.perf_counter() - started
print(json.dumps({"p50": round(times[len(times) // 2], 3), "p95": round(times[min(n - 1, int(0.95 * n))], 3),
                  "answers_per_s": round(n / wall, 2)}))
"""


IN_PROCESS = r"""
import json, statistics, sys, time
from tpdqa import Assistant
questions = json.loads(sys.stdin.read())
qa = Assistant()
for q in questions[:2]:
    qa.ask(q)
times = []
for q in questions * 2:
    started = time.perf_counter()
    qa.ask(q)
    times.append(time.perf_counter() - started)
print(json.dumps({"p50": round(statistics.median(times) * 1000, 1)}))
"""
API_ONE = r"""
import json, statistics, sys, time
import httpx
url, questions = sys.argv[1], json.loads(sys.stdin.read())
client = httpx.Client(base_url=url, timeout=600)
times = []
for q in questions * 2:
    started = time.perf_counter()
    client.post("/api/v1/ask", json={"question": q}).raise_for_status()
    times.append(time.perf_counter() - started)
print(json.dumps({"p50": round(statistics.median(times) * 1000, 1)}))
"""


def bench_serve(work: Path, models: list[str]) -> None:
    """1, 4 and 16 concurrent clients of the page's /ask and of the REST API on the bundled
    corpus; the REST API's overhead over ``Assistant.ask`` (one client, warm, same questions)."""
    import socket
    import urllib.request

    print("\n== serve: concurrent /ask clients, bundled corpus")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = env_for(ROOT / "documents", work / "serve-index", models)
    server = subprocess.Popen([str(TPDQA), "serve", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(1)
        questions = [json.loads(line)["question"] for line in
                     (ROOT / "tests" / "data" / "tpd_dev.jsonl").read_text().splitlines() if line.strip()]
        subprocess.run([sys.executable, "-c", SERVE_CLIENT, url, "1", "gradio"], input=json.dumps(questions[:2]),
                       capture_output=True, text=True)  # warm the models
        for door in ("gradio", "api"):
            for clients in (1, 4, 16):
                figures = python_json(SERVE_CLIENT, [url, str(clients), door], questions, env)
                report(f"serve {door}", f"{clients} clients p50/p95", f"{figures['p50']}/{figures['p95']}", "s")
                report(f"serve {door}", f"{clients} clients throughput", figures["answers_per_s"], "answers/s")
        api_p50 = python_json(API_ONE, [url], questions, env)["p50"]
    finally:
        server.terminate()
        server.wait(30)
    direct_p50 = python_json(IN_PROCESS, [], questions, env)["p50"]  # the server stopped: the same machine, quiet
    report("serve api", "one client, warm: /api/v1/ask p50", api_p50, "ms")
    report("serve api", "Assistant.ask p50 (in process)", direct_p50, "ms")
    report("serve api", "overhead of the REST door", round(api_p50 - direct_p50, 1), "ms")


def python_json(code: str, args: list[str], questions: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], input=json.dumps(questions), capture_output=True,
                          text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    from tpdqa.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000",
                        help="passage counts, comma-separated (default 1000,10000; '' with --serve: serving only)")
    parser.add_argument("--models", help="embedding models, comma-separated (default: the default settings')")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "tpdqa-bench",
                        help="folder for the documents, indexes and vector cache (kept between runs)")
    parser.add_argument("--uncached", type=int, default=1000,
                        help="sizes up to this are encoded from scratch and compared with the raw encoders "
                             "(default 1000); larger ones reuse the vectors of repeated texts")
    parser.add_argument("--serve", action="store_true",
                        help="also time 1, 4 and 16 concurrent clients of the page's /ask and of /api/v1/ask, and "
                             "the REST door's overhead over Assistant.ask")
    parser.add_argument("--writer", action="store_true",
                        help="then the single writer's ceiling at each size: a new index written from the finished "
                             "one's vectors (as tpdqa index --ray gets them from a cluster), chunks/s")
    parser.add_argument("--writer-only", action="store_true",
                        help="only the writer's ceiling, from indexes a previous run left in --work")
    parser.add_argument("--one-run", action="store_true",
                        help="index each size in one run (both phases in one process, as `tpdqa index` does) "
                             "instead of two (searchable only, questions, then complete)")
    parser.add_argument("--unique", type=int,
                        help="build every folder from the first N passages of the pool only, so the sizes above "
                             "--uncached reuse the vectors of the uncached one (seeded into the cache)")
    parser.add_argument("--recall", action="store_true",
                        help="only each dense list's HNSW recall@40 against exact search at each size, for 40 hits "
                             "asked and for what a search asks (store.DENSE_CANDIDATES), from indexes a previous run "
                             "left in --work")
    parser.add_argument("--reader", default="auto",
                        help="the answerer's reader while asking: auto (default, the default setting: French and "
                             "English questions read; the pool's questions are both), off, or a reader.pt "
                             "path (a candidate from scripts/train_reader.py --export --export-dir)")
    parser.add_argument("--ask-only", action="store_true",
                        help="only the warm and cold ask at each size, from indexes a previous run left in --work")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    models = args.models.split(",") if args.models else Settings().embedding_models
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    texts, questions = pool() if sizes else ([], [])
    texts = texts[:args.unique] if args.unique else texts
    print(f"{len(texts):,} unique passages; models: {', '.join(models)}; {os.cpu_count()} cores")
    FIGURES["meta"] = {"models": models, "unique_passages": len(texts), "cores": os.cpu_count(),
                       "date": time.strftime("%Y-%m-%d %H:%M")}
    seeded = False
    for size in sizes:
        cached = size > args.uncached
        if args.ask_only:
            print(f"\n== {size:,} passages, asking (reader {args.reader})")
            bench_ask(f"{size // 1000}k", args.work, models, questions, args.reader)
        elif not (args.writer_only or args.recall):
            if cached:
                use_vector_cache(models, args.work / "vector-cache")
                seed = args.work / f"{args.uncached // 1000}k"
                if args.unique and not seeded and (seed / "index").exists():
                    seed_vector_cache(models, index_vectors(seed / "documents", seed / "index", models))
                    seeded = True
            bench_size(size, texts, questions, models, args.work, cached=cached, one_run=args.one_run,
                       reader=args.reader)
        if args.writer or args.writer_only:
            bench_writer(f"{size // 1000}k", args.work, models)
        if args.recall:
            bench_recall(f"{size // 1000}k", args.work, models, questions)
    if args.serve:
        bench_serve(args.work, models)
    if args.json:
        args.json.write_text(json.dumps(FIGURES, indent=2, ensure_ascii=False))
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
