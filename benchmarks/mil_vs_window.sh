#!/usr/bin/env bash
# Multi-instance (windows pooled into one post logit) against per-window training of chunked
# posts, 3 seeds each, on a long-post dataset (synthetic, real post lengths: mean ~280 words),
# judged by `cea eval --compare` (two-level bootstrap over seeds and test posts).
# Usage: benchmarks/mil_vs_window.sh [WORK_DIR] [POSTS] [EPOCHS]   (MiniLM: ~30 min on 2 cores)
set -euo pipefail
work=${1:-mil-vs-window}
posts=${2:-400}
epochs=${3:-3}
mkdir -p "$work"
cd "$work"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
[ -d long ] || cea data sample -o long -n "$posts" --seed 7 --profile long -q
[ -f split.json ] || cea data split long -o split.json --seed 7 -q
for seed in 1 2 3; do
  for unit in window post; do
    [ -f "runs/$unit-$seed/manifest.json" ] && continue
    rm -rf "runs/$unit-$seed"
    cea train --config default --data long --run-name "$unit-$seed" --seed "$seed" \
      --epochs "$epochs" --no-track -q --json \
      --set data.split_file=split.json --set "model.chunking.train_unit=$unit" \
      > "train-$unit-$seed.json"
  done
done
cea eval --compare "runs/window-*" "runs/post-*" --out compare --json > compare.json
python3 -c "import json; print(json.load(open('compare.json'))['sentence'])"
