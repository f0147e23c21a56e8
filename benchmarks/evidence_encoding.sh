#!/usr/bin/env bash
# Evidence task, one epoch's cost: multi-label sentence head vs (criterion, sentence) pairs, on a
# real-size synthetic dataset (~30,000 sentences; long-post profile), measured side by side in
# one run with `cea bench train` (real MiniLM steps; the estimate counts every step of an epoch).
# Usage: benchmarks/evidence_encoding.sh [WORK_DIR] [POSTS] [STEPS]     (~5 min on 2 cores)
set -euo pipefail
work=${1:-evidence-encoding}
posts=${2:-1000}
steps=${3:-10}
mkdir -p "$work"
cd "$work"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
[ -d data ] || cea data sample -o data -n "$posts" --seed 11 --profile long -q
for enc in multilabel pair; do
  cea bench train --config default --data data --steps "$steps" --json \
    --set task.level=sentence --set task.negatives=all --set "task.encoding=$enc" > "$enc.json"
done
python3 - <<'PY'
import json
m, p = (json.load(open(f"{e}.json")) for e in ("multilabel", "pair"))
print(json.dumps({
    "sentences_train": m["examples"]["train"], "pairs_train": p["examples"]["train"],
    "epoch_s": {"multilabel": m["estimate_s"]["epoch"], "pair": p["estimate_s"]["epoch"]},
    "step_s": {"multilabel": m["time_s"]["step"], "pair": p["time_s"]["step"]},
    "ratio_epoch_multilabel_over_pair": round(m["estimate_s"]["epoch"] / p["estimate_s"]["epoch"], 4),
}, indent=2))
PY
