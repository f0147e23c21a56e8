#!/usr/bin/env bash
# Evidence quality of the two encodings: multi-label sentence head vs (criterion, sentence)
# pairs, 3 seeds each, one saved split of the bundled sample (300 posts, 2,860 sentences; every
# sentence a candidate: negatives=all), MiniLM, EPOCHS epochs each, judged by
# `cea eval --compare` on evidence recall@3 (two-level bootstrap over seeds and test posts).
# Usage: benchmarks/evidence_recall.sh [WORK_DIR] [EPOCHS]    (MiniLM, 1 epoch: ~20 min on 2 cores)
set -euo pipefail
work=${1:-evidence-recall}
epochs=${2:-1}
mkdir -p "$work"
cd "$work"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
[ -f split.json ] || cea data split sample -o split.json --seed 7 -q
for seed in 1 2 3; do
  for enc in pair multilabel; do
    [ -f "runs/$enc-$seed/manifest.json" ] && continue
    rm -rf "runs/$enc-$seed"
    start=$(date +%s)
    cea train --config default --run-name "$enc-$seed" --seed "$seed" --epochs "$epochs" \
      --no-track -q --json --set data.split_file=split.json --set task.level=sentence \
      --set task.negatives=all --set "task.encoding=$enc" > "train-$enc-$seed.json"
    echo "$enc-$seed $(( $(date +%s) - start ))s" >> seconds.txt
  done
done
cea eval --compare "runs/pair-*" "runs/multilabel-*" --out compare --json > compare.json
python3 -c "import json; print(json.load(open('compare.json'))['sentence'])"
cat seconds.txt
