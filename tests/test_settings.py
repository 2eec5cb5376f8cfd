"""Settings precedence: init > TPDQA_* environment > tpdqa.toml > defaults."""

from __future__ import annotations

from tpdqa import Settings


def test_precedence(tmp_path, monkeypatch):
    assert Settings().k == 5
    (tmp_path / "tpdqa.toml").write_text('k = 7\nchunk_size = 800\nembedding_models = ["use-multilingual-v3"]\n')
    assert (Settings().k, Settings().chunk_size, Settings().embedding_models) == (7, 800, ["use-multilingual-v3"])
    monkeypatch.setenv("TPDQA_K", "9")
    monkeypatch.setenv("TPDQA_EMBEDDING_MODELS", "use-multilingual-v3, my/model")
    settings = Settings()
    assert (settings.k, settings.chunk_size) == (9, 800)
    assert settings.embedding_models == ["use-multilingual-v3", "my/model"]
    assert Settings(k=3).k == 3


def test_model_collections_never_mix(tmp_path):
    from tpdqa.embeddings import collection_name

    names = {collection_name(m) for m in ("use-multilingual-v3", "sentence-transformers/all-MiniLM-L6-v2",
                                          "BAAI/bge-small-en-v1.5")}
    assert len(names) == 3
    assert collection_name("all-MiniLM-L6-v2") == collection_name("sentence-transformers/all-MiniLM-L6-v2")
