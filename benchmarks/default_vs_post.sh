#!/usr/bin/env bash
# The default model (#26) against the post-level default it replaced, 3 seeds each, on the hard
# profile (sparse evidence, rare criteria, distractors), one saved split; the TF-IDF baseline is
# in every run's `cea eval` report. Judged by `cea eval --compare` (two-level bootstrap over
# seeds and test posts) on post macro-F1; then max vs noisy-or pooling of the same models.
# Usage: benchmarks/default_vs_post.sh [WORK_DIR] [POSTS] [EPOCHS]  (MiniLM: ~80 min on 2 cores)
set -euo pipefail
work=${1:-default-vs-post}
posts=${2:-300}
epochs=${3:-4}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
cd "$work"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
[ -d hard ] || cea data sample --profile hard -o hard -n "$posts" --seed 11 -q
[ -f split.json ] || cea data split hard -o split.json --seed 13 -q
# the default before #26, spelled out: post level over 8 windows, pos_weight capped at 10,
# no calibration, the best single epoch
old=(--set task.level=post --set train.class_weighting=pos_weight
     --set train.negative_sampling.enabled=false --set train.calibration=none
     --set train.early_stopping.average=1)
for seed in 13 14 15; do
  for kind in old new; do
    [ -f "runs/$kind-s$seed/manifest.json" ] && continue
    rm -rf "runs/$kind-s$seed"
    extra=()
    [ "$kind" = old ] && extra=("${old[@]}")
    cea train --data hard --run-name "$kind-s$seed" --seed "$seed" --epochs "$epochs" \
      --no-track -q --json --set data.split_file=split.json "${extra[@]}" > "train-$kind-s$seed.json"
    cea eval "runs/$kind-s$seed" --split test --name test --no-track --json > "eval-$kind-s$seed.json"
  done
done
cea eval --compare "runs/old-s*" "runs/new-s*" --metric macro_f1 --out compare-posts --json > compare-posts.json
python3 -c "import json; print(json.load(open('compare-posts.json'))['sentence'])"
python3 "$here/post_pooling.py" runs/new-s13 runs/new-s14 runs/new-s15
