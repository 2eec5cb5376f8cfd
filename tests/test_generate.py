"""Checks on generated answers, fed recorded model outputs (plain strings) over the real
chunks of the bundled article and the real multilingual encoder."""

from __future__ import annotations

import pytest

from tpdqa.sentences import WordMatcher
from tpdqa.embeddings import get_embeddings
from tpdqa.generate import build_messages, check_answer, fit_passages, parse_llm, parse_markers
from tpdqa.ingest import chunk_documents, load_folder
from tests.conftest import CORPUS

Q = "Dans quels domaines le Japon et la Corée sont-ils forts ?"


@pytest.fixture(scope="module")
def passages():
    chunks = chunk_documents(load_folder(CORPUS.parent).documents, 1000, 150)
    # [1] the TPD opening, [2] Japan/Korea expertise, [3] export controls
    pick = ["Le président américain", "Les États-Unis concluent effectivement", "« Le TPD américano-coréen"]
    return [next(c for c in chunks if c.page_content.startswith(p)) for p in pick]


@pytest.fixture(scope="module")
def words():
    return WordMatcher(get_embeddings("use-multilingual-v3"))


def check(raw, passages, words, question=Q, lang="fr"):
    return check_answer(raw, question, lang, passages, words)


def test_marker_forms():
    assert parse_markers("robotique[2]. mémoire 【1】 et [1, 3] puis [Passage 2]")[1] == [2, 1, 1, 3, 2]


def test_supported_answer_keeps_citation_with_quote_from_passage(passages, words):
    answer = check("Le Japon est leader dans la robotique et les technologies spatiales [2].", passages, words)
    assert not answer.refused and answer.unsupported == []
    assert answer.citations[0].source == "tpd-asie-2025.txt"
    assert answer.citations[0].chunk_id == passages[1].id
    assert answer.citations[0].quote in passages[1].page_content


def test_marker_out_of_range_is_dropped_and_claim_repointed(passages, words):
    answer = check("La Corée du Sud domine la production de puces mémoire [7].", passages, words)
    assert "[7]" not in answer.text and "[1]" in answer.text
    assert answer.citations[0].chunk_id == passages[1].id


def test_glued_and_fullwidth_markers_and_renumbering(passages, words):
    raw = ("Les États-Unis renforcent les contrôles des exportations avec la Corée【3】. "
           "Le Japon est leader en robotique[2].")
    answer = check(raw, passages, words)
    assert [c.chunk_id for c in answer.citations] == [passages[2].id, passages[1].id]
    assert [c.n for c in answer.citations] == [1, 2]
    assert answer.text.index("[1]") < answer.text.index("[2]")


def test_list_marker_cites_each_supporting_passage(passages, words):
    raw = "Les États-Unis ont signé des accords avec le Japon et la Corée du Sud [1, 2]."
    answer = check(raw, passages, words)
    assert {c.chunk_id for c in answer.citations} <= {passages[0].id, passages[1].id}
    assert answer.citations


def test_sentence_without_marker_gets_the_passage_that_supports_it(passages, words):
    answer = check("La Corée du Sud domine la production de puces mémoire.", passages, words)
    assert not answer.refused and answer.citations[0].chunk_id == passages[1].id


def test_fabricated_claim_is_flagged(passages, words):
    raw = ("Le Japon est leader dans la robotique [2]. "
           "Le Japon a promis 500 milliards de dollars d'investissements aux États-Unis [2].")
    answer = check(raw, passages, words)
    assert not answer.refused
    assert answer.unsupported == ["Le Japon a promis 500 milliards de dollars d'investissements aux États-Unis."]
    assert "unsupported_sentences" in answer.warnings


def test_only_fabrications_become_a_refusal(passages, words):
    answer = check("Le Japon a promis 500 milliards de dollars d'investissements [1].", passages, words)
    assert answer.refused and answer.citations == []
    assert answer.text == "Je n'ai pas trouvé la réponse dans les documents."


def test_answer_in_the_wrong_language_is_flagged(passages, words):
    answer = check("Japan leads in robotics and space technologies [2].", passages, words)
    assert not answer.refused and "answer_language:en" in answer.warnings


def test_empty_answer_and_model_refusal(passages, words):
    assert check("", passages, words).refused
    refused = check("I could not find the answer in the documents.", passages, words, question="Why?", lang="en")
    assert refused.refused and refused.text == "I could not find the answer in the documents."


def test_context_budget_trims_passages(passages):
    kept = fit_passages(passages, budget_tokens=250)  # 750 characters
    assert sum(len(p.page_content) for p in kept) <= 750
    assert kept[0].page_content == passages[0].page_content
    assert len(kept) < len(passages)
    system, human = build_messages("Qui ?", "fr", kept)
    assert "[1] Le président" in human[1] and "Je n'ai pas trouvé la réponse" in system[1]


def test_llm_setting_errors_say_what_to_write():
    assert parse_llm("openai:gemma") == ("openai", "gemma")
    with pytest.raises(ValueError, match="ollama:MODEL"):
        parse_llm("gpt4")
