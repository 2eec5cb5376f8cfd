"""Right passage first, allowing for OCR: the first retrieved chunk holds the gold paragraph
when their *words* mostly match, not only (as ``tpdqa eval``'s ``retrieval_hit_at_1``) when
half of the paragraph appears in it character for character, which one OCR slip per line
breaks. Also the OCR's word accuracy against the text rendering of the same articles.

    python scripts/fuzzy_hits.py eval-out/formats-squad2-scan bench/formats-squad2-scan bench/formats-squad2-pdf

The chunks come from each folder's index (``bench/index/NAME``, its BM25 store keeps their
text), the questions from ``bench/NAME.jsonl``, the ranks from the ``tpdqa eval`` report.
"""

from __future__ import annotations

import json
import re
import sys
from difflib import SequenceMatcher
from pathlib import Path

from tpdqa.lexical import LexicalIndex


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def holds(chunk: str, quote: str) -> bool:
    """At least half of the quote's words, in order, are in the chunk (or all of the chunk is in the quote)."""
    a, b = words(chunk), words(quote)
    if not a or not b:
        return False
    matched = sum(block.size for block in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
    return matched * 2 >= len(b) or matched >= 0.9 * len(a)


def indexed(folder: Path) -> dict[str, tuple[str, str]]:
    """chunk id -> (source, text), from the folder's index."""
    lexical = LexicalIndex.open(folder.parent / "index" / folder.name / "bm25.sqlite")
    return {d.id: (d.metadata.get("source", ""), d.page_content) for d in lexical.get(sorted(lexical.ids()))}


def main(report_dir: Path, documents: Path, reference: Path | None = None) -> None:
    chunks = indexed(documents)
    dataset = {json.loads(line)["id"]: json.loads(line)
               for line in (documents.parent / f"{documents.name}.jsonl").read_text().splitlines() if line.strip()}
    rows = json.loads((report_dir / "report.json").read_text())["per_question"]
    answerable = [r for r in rows if r["answerable"] and r["retrieved"]]
    exact = sum(r["first_gold_rank"] == 1 for r in answerable)
    fuzzy = sum(chunks[r["retrieved"][0]][0] == dataset[r["id"]]["gold"][0]["source"]
                and holds(chunks[r["retrieved"][0]][1], dataset[r["id"]]["gold"][0]["quote"])
                for r in answerable if r["retrieved"][0] in chunks)
    print(f"{documents.name}: {len(answerable)} answerable; right passage first, exact {exact / len(answerable):.3f}, "
          f"by words {fuzzy / len(answerable):.3f}")
    if reference is not None:
        def by_source(found: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for source, text in sorted(found.values()):
                out.setdefault(source, []).extend(words(text))
            return out

        text, ref = by_source(chunks), by_source(indexed(reference))
        pairs = [(text[s], ref[s]) for s in text if s in ref]
        same = sum(sum(b.size for b in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
                   for a, b in pairs)
        print(f"  word accuracy against {reference.name}: {same / sum(len(b) for _, b in pairs):.3f} "
              f"({sum(len(b) for _, b in pairs)} words)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)
