"""Fit the extractive answerer's sentence scorer and refusal model on the fit split only.

Reads the sets written by ``scripts/generalisation.py`` (``*-fit.jsonl`` and their
folders), runs the chat's own retriever and the answerer's feature extraction on every
question, then fits two logistic regressions (scikit-learn):

- sentence scorer: does this sentence hold a gold answer span? (answerable questions);
- refusal model: does the answer hold the answer? (label 1: answerable and the quoted
  sentences hold a gold span; 0: unanswerable; answerable questions whose quoted
  sentences miss are left out, since answering and refusing them are both wrong).

It prints the weights to paste into ``tpdqa/answer.py`` and the fit-split accuracy for
each ``min_support`` threshold. Report sets are never read here.

    python scripts/fit_answerer.py --bench bench --index-root bench/index
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np


CROSS = "-x"  # a set's questions asked in the other language (SET-x.jsonl), of the set's own folder


def folder_of(name: str) -> str:
    """The set whose folder (and questions, translated) a set asks: SET for SET-x."""
    return name.removesuffix(CROSS)


def collect(bench: Path, index_root: Path, name: str, reader: str = "off",
            only: Callable[[str], bool] | None = None) -> list[dict]:
    """Features of ``name``'s questions (those whose id ``only`` accepts, if given)."""
    from tqdm import tqdm

    from tpdqa import Assistant
    from tpdqa.evaluation import fold, read_dataset
    from tpdqa.language import LANGUAGES, guess_lang

    # every language read: the reader's weights are fitted on English and French questions
    folder = folder_of(name)
    assistant = Assistant(documents_dir=bench / folder, index_dir=index_root / folder, reader=reader,
                          reader_languages=list(LANGUAGES))
    assistant.index()
    answerer = assistant.answerer
    rows = []
    questions = [q for q in read_dataset(bench / f"{name}.jsonl") if only is None or only(q.id)]
    for q in tqdm(questions, desc=name, unit="q"):
        lang = guess_lang(q.question)
        docs = assistant.retriever.invoke(q.question, lang=lang)
        found = answerer.candidates(q.question, lang, docs)
        if found is None:
            continue
        spans = [fold(s) for group in q.answer_keywords for s in group]
        labels = np.array([any(s in fold(sentence) for s in spans) for _, _, sentence in found.items], dtype=bool)
        # documents dropped from the kept candidates: the cache stays small
        rows.append({"id": q.id, "set": name, "answerable": q.answerable, "labels": labels,
                     "found": dataclasses.replace(found, items=[(r, None, s) for r, _, s in found.items])})
    return rows


def fit(rows: list[dict], c: float = 1.0) -> dict:
    from sklearn.linear_model import LogisticRegression

    from tpdqa import answer

    read = any(r["found"].read for r in rows)  # fitted with the reader's columns (the READER_* weights)
    # questions the reader did not read (a table as first passage) keep the off weights
    rows = [r for r in rows if r["found"].read == read]
    prefix = "READER_" if read else ""
    names = [*answer.QUESTION_FEATURES, *(answer.READER_QUESTION_FEATURES if read else ())]
    positive = [r for r in rows if r["answerable"] and r["labels"].any()]
    X = np.concatenate([r["found"].features for r in positive])
    y = np.concatenate([r["labels"] for r in positive])
    sentence = LogisticRegression(C=c, max_iter=2000).fit(X, y)
    setattr(answer, prefix + "SENTENCE_WEIGHTS", sentence.coef_[0].astype(np.float32))
    setattr(answer, prefix + "SENTENCE_BIAS", float(sentence.intercept_[0]))

    Q, labels, keep, bests = [], [], [], []
    for r in rows:
        scores, best = decide(r)
        holds = answer_holds_span(r, scores, best)
        bests.append(holds)
        Q.append(r["found"].question_features(best, scores))
        labels.append(1 if r["answerable"] and holds else 0)
        keep.append(not (r["answerable"] and not holds))
    Q, labels, keep = np.array(Q), np.array(labels), np.array(keep)
    # A feature enters the refusal model only if it points the same way in every corpus:
    # SQuAD 2.0's near misses reuse the paragraph's words, PIAF's withheld articles do not,
    # so word evidence means opposite things there and would not carry to a user's documents.
    sets = np.array([r["set"] for r in rows])
    signs = []
    for name in sorted(set(sets)):
        part = keep & (sets == name)
        if len(set(labels[part])) < 2:
            continue
        alone = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(Q[part], labels[part])
        signs.append(np.sign(alone.coef_[0]))
    agree = np.all(np.array(signs) == signs[0], axis=0) if signs else np.ones(Q.shape[1], dtype=bool)
    # The answer type is a rule (a typed question whose best sentence lacks the type is
    # refused before the model), so the model does not see it.
    agree &= ~np.isin(np.arange(Q.shape[1]), [names.index("best_type_found"), names.index("best_type_missing")])
    # ... and only with the sign its meaning gives it: more of the question's words met in
    # the passages, a better score or meaning never lowers the odds of an answer. Fitted
    # jointly, correlated word features can take the opposite sign (one offsetting
    # another), and then a user's near miss ("who is the mayor", a word the documents never
    # say) scores above an answerable question. The feature most against its sign leaves, and
    # the model is fitted again, until none is.
    agree &= np.array([f in answer.EXPECTED_SIGNS for f in names])
    expected = np.array([answer.EXPECTED_SIGNS.get(f, 0) for f in names])
    while True:
        refusal = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(Q[keep][:, agree], labels[keep])
        coef = np.zeros(Q.shape[1])
        coef[agree] = refusal.coef_[0]
        against = agree & (coef * expected < 0)
        if not against.any():
            break
        agree[int(np.argmin(np.where(against, coef * expected, np.inf)))] = False
    setattr(answer, prefix + "REFUSAL_WEIGHTS", coef.astype(np.float32))
    setattr(answer, prefix + "REFUSAL_BIAS", float(refusal.intercept_[0]))
    print("refusal features kept:", [f for f, a in zip(names, agree) if a])
    return {"sentence": sentence, "Q": Q, "best_ok": np.array(bests), "prefix": prefix, "rows": rows}


def decide(row: dict) -> tuple[np.ndarray, int]:
    """Sentence scores and the sentence the answerer judges, as ``ExtractiveAnswerer`` does."""
    scores = row["found"].sentence_scores()
    return scores, row["found"].best(scores)


def probability(row: dict, missing_word: float | None = None) -> float:
    """The answerer's support for a question; with ``missing_word``, 0 as well when a word of
    the question is met in the first passages under that (a candidate gate, tried here only)."""
    evidence = row["found"].evidence
    if missing_word is not None and (evidence.min() if evidence.size else 0.0) < missing_word:
        return 0.0
    scores, best = decide(row)
    return row["found"].answer_probability(best, scores)


def answer_holds_span(row: dict, scores: np.ndarray, best: int) -> bool:
    """Whether the sentences the answerer would quote hold a gold span."""
    return bool(row["labels"][row["found"].answer_sentences(scores, best)].any())


def margin_curve(rows: list[dict]) -> None:
    """For each SECOND_SENTENCE_MARGIN: answerable questions whose quoted sentences hold
    a span, and the share of answers that quote two sentences."""
    from tpdqa import answer

    chosen = answer.SECOND_SENTENCE_MARGIN
    for margin in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 99.0):
        answer.SECOND_SENTENCE_MARGIN = margin
        for name in sorted({r["set"] for r in rows}):
            held = two = n = 0
            for r in rows:
                if r["set"] != name or not r["answerable"]:
                    continue
                scores, best = decide(r)
                n += 1
                held += answer_holds_span(r, scores, best)
                two += len(r["found"].answer_sentences(scores, best)) > 1
            print(f"  margin {margin}: {name} holds a span {held / n:.3f}, two sentences {two / n:.3f}")
    answer.SECOND_SENTENCE_MARGIN = chosen


@functools.lru_cache(maxsize=None)
def articles_of(question_set: Path) -> dict[str, int]:
    """Question id -> article index, from a set written by scripts/generalisation.py."""
    lines = question_set.read_text(encoding="utf-8").splitlines()
    return {q["id"]: q["article"] for q in map(json.loads, lines)}


def crossed(lines: list[str], splits: tuple[str, ...]) -> list[str]:
    """The questions of ``lines`` that the developers translated (scripts/data/cross-language-questions.jsonl,
    those of ``splits``), asked in the other language: same gold, same keywords, id + "-x"."""
    from train_reader import CROSS_FILE, translated_rows

    translated = {row["original"]: row for split in splits for row in translated_rows(CROSS_FILE, split)}
    return [json.dumps({**q, "id": f"{q['id']}{CROSS}", "lang": row["lang"], "question": row["question"]},
                       ensure_ascii=False)
            for q in map(json.loads, lines) if (row := translated.get(q["question"].strip()))]


def write_lines(path: Path, lines: list[str], what: str) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"{path}: {len(lines)} {what}")


def write_cross(bench: Path, name: str) -> None:
    """BENCH/SET-x.jsonl: every translated question of BENCH/SET.jsonl (reader training and validation
    articles), asked in the other language, for fitting the answerer on both."""
    lines = (bench / f"{folder_of(name)}.jsonl").read_text(encoding="utf-8").splitlines()
    write_lines(bench / f"{name}.jsonl", crossed(lines, ("train", "validation")), "questions asked in the other language")


def write_held_out(bench: Path, sets: list[str], out: Path) -> None:
    """Each set's questions of articles the reader never trained on, as OUT/SET-heldout.jsonl: the
    slice on which `tpdqa eval` checks a min_support through the whole pipeline; and those of them
    asked in the other language, as OUT/SET-heldout-cross.jsonl."""
    out.mkdir(parents=True, exist_ok=True)
    for name in sets:
        lines = (bench / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if reader_never_saw(bench, {"set": name, "id": json.loads(line)["id"]})]
        write_lines(out / f"{name}-heldout.jsonl", kept, "questions")
        write_lines(out / f"{name}-heldout-cross.jsonl", crossed(kept, ("validation",)),
                    "questions asked in the other language")


def article_of(bench: Path, row: dict) -> tuple[str, int]:
    """The row's dataset ("squad2" or "piaf") and article index, as scripts/train_reader.py names them."""
    return ("squad2" if row["set"].startswith("squad2") else "piaf",
            articles_of(bench / f"{row['set']}.jsonl")[row["id"]])


def reader_never_saw(bench: Path, row: dict) -> bool:
    """Whether the row's article is in the reader's validation slice (never trained on)."""
    from train_reader import validation_article

    return validation_article(*article_of(bench, row))


def article_fold(bench: Path, row: dict) -> int:
    """The half of the fit articles (scripts/train_reader.py's fold_of) that the row's article is in."""
    from train_reader import fold_of

    return fold_of(*article_of(bench, row))


def cross_fitted(bench: Path, index_root: Path, names: list[str], readers: list[str],
                 cache: Path | None = None) -> list[dict]:
    """The sets' rows, each read by the reader trained without its article's half (``readers[k]``
    trained with ``--fold k``): margins of a reader that never saw the answer, on every fit question.
    Each reader reads only its half; with ``cache``, each half is kept as soon as it is read
    (CACHE-SET-foldK.pkl), so fold 0's halves can be read while fold 1 still trains."""
    rows = []
    for k, reader in enumerate(readers):
        for name in names:
            part = cache.with_name(f"{cache.stem}-{name}-fold{k}.pkl") if cache else None
            if part and part.exists():
                rows += pickle.loads(part.read_bytes())
                continue
            if not Path(reader).exists():
                raise SystemExit(f"{reader}: no such reader; train it (scripts/train_reader.py --fold {k}) "
                                 "and export it, then run this again (the halves read so far are kept)")
            read = collect(bench, index_root, name, reader,
                           only=lambda id_, name=name, k=k: article_fold(bench, {"set": name, "id": id_}) == k)
            if part:
                part.write_bytes(pickle.dumps(read))
            rows += read
    return rows


def passage_curve(rows: list[dict]) -> None:
    """With the reader: for each PASSAGE_RANK_PRIOR, the answerable questions whose first passage
    holds a gold span (retrieval's order: prior infinite)."""
    from tpdqa import answer

    chosen = answer.PASSAGE_RANK_PRIOR
    for prior in (0.0, 0.1, 0.2, 0.5, 1.0, 1e9):
        answer.PASSAGE_RANK_PRIOR = prior
        for name in sorted({r["set"] for r in rows}):
            first = [r["found"].passage_order(len(r["found"].readings))[0] in
                     {rank for (rank, _, _), gold in zip(r["found"].items, r["labels"]) if gold}
                     for r in rows if r["set"] == name and r["answerable"] and r["found"].readings]
            print(f"  prior {prior:g}: {name} first passage holds a span {np.mean(first):.3f}")
    answer.PASSAGE_RANK_PRIOR = chosen


def accuracy(rows: list[dict], probabilities: np.ndarray, best_ok: np.ndarray, threshold: float) -> dict:
    answerable = np.array([r["answerable"] for r in rows])
    answered = probabilities >= threshold
    correct = np.where(answerable, answered & best_ok, ~answered)
    return {"accuracy": round(float(correct.mean()), 4),
            "span_when_answerable": round(float((answered & best_ok)[answerable].mean()), 4),
            "false_refusal": round(float((~answered)[answerable].mean()), 4),
            "refusal_accuracy": round(float((~answered)[~answerable].mean()), 4) if (~answerable).any() else None}


def main(argv: list[str] | None = None) -> int:
    from tpdqa import answer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=Path("bench"))
    parser.add_argument("--index-root", type=Path, default=Path("bench/index"))
    parser.add_argument("--sets", nargs="+", default=["squad2-fit", "piaf-fit"],
                        help="question sets of BENCH; SET-x: SET's translated questions asked in the other language "
                             "(written from scripts/data/cross-language-questions.jsonl), of SET's folder")
    parser.add_argument("--cache", type=Path, help="pickle of collected features (reused when present)")
    parser.add_argument("--reader", default="off",
                        help="fit the answerer with this reader (auto: the shipped one, or a reader.pt path); "
                             "default off: the weights used without a reader; not read when --reader-folds is given")
    parser.add_argument("--reader-folds", nargs=2, metavar=("FOLD0", "FOLD1"),
                        help="cross-fitted: two reader.pt files trained with scripts/train_reader.py --fold 0 and "
                             "--fold 1; each question is read by the one that never trained on its article, so the answerer "
                             "is fitted on margins like those the reader trained on every fit article gives on a "
                             "user's documents (the weights printed are for that reader)")
    parser.add_argument("--held-out", action="store_true",
                        help="weights fitted on every fit question, min_support chosen (and figures printed) on "
                             "those of fit articles the reader never trained on (SQuAD 2.0 article 7, every tenth "
                             "PIAF fit article: scripts/train_reader.py's validation slice); on the others its "
                             "margins are those of a model that has seen the answers")
    parser.add_argument("--max-false-refusals", nargs="+", default=[], metavar="SET=RATE",
                        help="highest false-refusal rate min_support may give in a set (default 0.15 in each)")
    parser.add_argument("--write-held-out", type=Path, metavar="DIR",
                        help="only write each set's never-trained-on questions to DIR/SET-heldout.jsonl (for tpdqa eval)")
    args = parser.parse_args(argv)
    if args.write_held_out:
        write_held_out(args.bench, args.sets, args.write_held_out)
        return 0
    if args.cache and args.cache.exists():
        rows = pickle.loads(args.cache.read_bytes())
    else:
        for name in args.sets:
            if name.endswith(CROSS):
                write_cross(args.bench, name)
        if args.reader_folds:
            rows = cross_fitted(args.bench, args.index_root, args.sets, args.reader_folds, args.cache)
        else:
            rows = [row for name in args.sets for row in collect(args.bench, args.index_root, name, args.reader)]
        if args.cache:
            args.cache.write_bytes(pickle.dumps(rows))
    model = fit(rows)
    rows = model["rows"]  # those it was fitted on: with the reader, the questions it read
    caps = {name: 0.15 for name in args.sets} | {k: float(v) for k, v in (c.split("=") for c in args.max_false_refusals)}
    if args.held_out:  # fitted on all; judged from here on where the reader's margins are honest
        kept = np.array([reader_never_saw(args.bench, r) for r in rows])
        rows, model["best_ok"] = [r for r, k in zip(rows, kept) if k], model["best_ok"][kept]
        print(f"held-out articles: {len(rows)} questions")
    print("second sentence of the same passage, by SECOND_SENTENCE_MARGIN:")
    margin_curve(rows)
    if model["prefix"]:
        print("passage order, by PASSAGE_RANK_PRIOR:")
        passage_curve(rows)
    for name in ("SENTENCE_WEIGHTS", "SENTENCE_BIAS", "REFUSAL_WEIGHTS", "REFUSAL_BIAS"):
        value = getattr(answer, model["prefix"] + name)
        shown = [round(float(w), 4) for w in value] if np.ndim(value) else round(float(value), 4)
        print(model["prefix"] + name, "=", json.dumps(shown))
    # A missing-word gate and min_support together: for each gate (None: none), the highest
    # min_support that keeps false refusals <= 0.15 in every fit set; the pair with the best
    # mean accuracy. On the fit split every gate lost, so tpdqa.answer has none.
    sets = np.array([r["set"] for r in rows])
    answerable = np.array([r["answerable"] for r in rows])
    results = []
    for gate in (None, 0.4, 0.45, 0.5, 0.55):
        probabilities = np.array([probability(r, gate) for r in rows])
        chosen = max((t for t in np.arange(0.05, 0.9, 0.01).round(2)
                      if all((probabilities[(sets == name) & answerable] < t).mean() <= caps[name]
                             for name in args.sets)),
                     default=0.05)
        scores = {name: accuracy([r for r in rows if r["set"] == name], probabilities[sets == name],
                                 model["best_ok"][sets == name], chosen) for name in args.sets}
        mean = float(np.mean([v["accuracy"] for v in scores.values()]))
        print(f"missing-word gate {gate}: min_support {chosen}, mean accuracy {mean:.4f}", scores)
        results.append((mean, gate, chosen, probabilities))
    _, gate, chosen, probabilities = max(results, key=lambda r: r[0])
    print("chosen: missing-word gate", gate, " min_support =", chosen)
    for name in [*args.sets, "all"]:
        mask = np.array([name == "all" or r["set"] == name for r in rows])
        subset = [r for r, m in zip(rows, mask) if m]
        print(name, "best sentence holds a span (answerable):",
              round(float(model["best_ok"][mask][[r["answerable"] for r in subset]].mean()), 4))
        for threshold in np.arange(0.2, 0.62, 0.04).round(2):
            print(f"  min_support {threshold}:", accuracy(subset, probabilities[mask], model["best_ok"][mask], threshold))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
