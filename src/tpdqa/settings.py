"""One settings model for tpdqa.

Precedence, highest first: init arguments > ``TPDQA_*`` environment > ``tpdqa.toml``
(in the working directory) > defaults.

    >>> from tpdqa.settings import Settings
    >>> Settings(k=3).k
    3
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tpdqa.sandbox import Limits

USE_MODEL = "use-multilingual-v3"
E5_MODEL = "multilingual-e5-small"
MINILM_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TPDQA_", toml_file="tpdqa.toml", extra="ignore")

    documents_dir: Path = Field(Path("documents"), description="Folder of documents to answer from (read recursively).")
    index_dir: Path = Field(Path("index"), description="Folder of the persistent store: Chroma data, indexing records, BM25 index.")
    embedding_models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [USE_MODEL, E5_MODEL, MINILM_MODEL],
        description=(
            "Dense retrievers, one Chroma collection each: `use-multilingual-v3`, `multilingual-e5-small` "
            "(cross-lingual, bundled), `sentence-transformers/all-MiniLM-L6-v2` (English, bundled) or any "
            "sentence-transformers model id or local path. Comma-separated in the environment."
        ),
    )
    chunk_size: int = Field(1000, ge=200, description="Largest chunk, in characters; chunks follow paragraphs and sentences.")
    chunk_overlap: int = Field(150, ge=0, description="Characters of sentence overlap inside a long paragraph.")
    k: int = Field(5, ge=1, le=50, description="Passages returned by retrieval and considered by the answerer.")
    fetch_k: int = Field(50, ge=1, description="Candidates each retriever (dense, BM25) contributes to the fusion.")
    chroma_url: str | None = Field(None, description="URL of a Chroma server (`chroma run`); empty: a local store in index_dir.")
    min_support: float | None = Field(
        None, ge=0.0, le=1.0,
        description="The extractive answerer refuses when its calibrated probability that the sentences it would quote answer "
                    "the question is under this (0-1; higher refuses more; empty: the threshold fitted for the answerer, "
                    "with or without the reader; see docs/evaluation.md).",
    )
    reader: str = Field("auto", description=(
        "The extractive answerer's reader (docs/reader.md), a model trained here that marks the answer's words and "
        "knows when a passage does not answer: auto (default: the one shipped with tpdqa), off (sentences scored by "
        "meaning and words only), or the path of a reader.pt trained by scripts/train_reader.py. It reads the "
        "questions in reader_languages, whatever the passages' language; the others are answered as off."))
    reader_languages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["en", "fr"], description=(
            "Languages (en, fr) of the questions the reader reads; the others are answered as with reader = off. "
            "The shipped reader helps both on the fit articles it never trained on (SQuAD 2.0 accuracy 0.439 -> "
            "0.603, PIAF 0.664 -> 0.691 with false refusals 0.171 -> 0.085; asked in the other language 0.531 and 0.618; "
            "docs/reader.md). "
            "Comma-separated in the environment."))
    max_question_chars: int = Field(2000, description="Longest question accepted.")
    max_history_chars: int = Field(2000, ge=100, description=(
        "Longest text read from one earlier turn of a conversation (longer turns are cut to their end)."))
    max_history_turns: int = Field(20, ge=0, description="Earlier turns of a conversation read with a question.")
    max_file_mb: float = Field(200.0, gt=0, description="Files larger than this (MB) are not indexed, with the reason.")
    max_unpacked_mb: float = Field(256.0, gt=0, description=(
        "Largest unpacked size (MB) of a zip-based file (.docx): a bigger one, or one whose parts inflate over "
        "100-fold, is not indexed (zip bombs)."))
    parse_timeout: float = Field(120.0, gt=0, description="Seconds one file may take to parse before it is skipped (OCR: each page).")
    parse_memory_mb: int = Field(2048, ge=256, description="Memory (MB) the process that parses one file may use.")
    parse_workers: int = Field(min(4, os.cpu_count() or 1), ge=1, le=64, description=(
        "Files parsed side by side, each in a child process of its own (default: one per core, at most 4)."))
    ocr_languages: str = Field("fra+eng", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$", description=(
        "Tesseract's languages for scanned PDF pages and images, '+'-joined (each needs its tesseract-ocr-LANG "
        "package)."))
    llm: str = Field("extractive", description=(
        "Answerer: extractive (no model), ollama:MODEL, openai:MODEL (OpenAI or any compatible server with "
        "llm_base_url), llamacpp:/path/model.gguf."))
    llm_base_url: str | None = Field(None, description="Base URL of the LLM server, e.g. http://127.0.0.1:8080/v1.")
    llm_api_key: str | None = Field(None, description="API key (else OPENAI_API_KEY; none for a local server).")
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature of the LLM.")
    llm_max_tokens: int = Field(384, ge=16, description="Longest generated answer, in tokens.")
    llm_context_tokens: int = Field(4096, ge=512, description="The model's context window: passages are trimmed to fit.")
    llm_timeout: float = Field(120.0, description="Seconds to wait for the LLM server.")
    max_upload_mb: int = Field(20, ge=1, description="Largest document accepted by the chat's upload, in MB.")
    lock_timeout: float = Field(600.0, ge=0, description=(
        "Seconds an indexing run waits for another process's run on the same index before it gives up."))
    users_file: Path | None = Field(None, description=(
        "TOML file of the users who may sign in to `tpdqa serve` (written by `tpdqa user add`); none: no sign-in, "
        "and the server only binds 127.0.0.1."))
    trusted_user_header: str | None = Field(None, description=(
        "Off by default. Behind a reverse proxy that signs users in: the request header that names the user "
        "(e.g. X-Forwarded-User); that user's role and collections still come from users_file. Only safe when "
        "nothing but the proxy can reach the server."))
    concurrency: int = Field(4, ge=1, description=(
        "Questions the chat and /ask answer at once (more wait in Gradio's queue); see docs/evaluation.md."))

    def limits(self) -> Limits:
        """What reading one file may cost (see :mod:`tpdqa.sandbox`)."""
        return Limits(max_file_mb=self.max_file_mb, max_unpacked_mb=self.max_unpacked_mb,
                      timeout_s=self.parse_timeout, memory_mb=self.parse_memory_mb, ocr_languages=self.ocr_languages)

    @field_validator("embedding_models", "reader_languages", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        # Environment convenience: TPDQA_EMBEDDING_MODELS="a,b" (or TPDQA_READER_LANGUAGES="en,fr") as well as a JSON list.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("reader_languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        from tpdqa.language import LANGUAGES

        unknown = [lang for lang in value if lang not in LANGUAGES]
        if unknown:
            raise ValueError(f"unknown language {', '.join(unknown)}: the reader reads {', '.join(LANGUAGES)}")
        return value

    @field_validator("chroma_url", mode="before")
    @classmethod
    def _empty_url(cls, value: Any) -> Any:
        return value or None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))
