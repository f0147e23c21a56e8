#!/usr/bin/env bash
# Distributed HPO at scale: 1, 2, 4 and 8 local workers on one study, on PostgreSQL and on the
# journal file store (tiny config, 1 epoch a trial), then two faults on PostgreSQL: a worker
# killed with SIGKILL mid-trial, and one stopped with SIGSTOP for 3x the grace period and then
# continued. Reports per run: trials finished of those asked, trials per minute, cea's own
# bookkeeping per trial (storage calls, heartbeats, pruning checks, from each trial's
# `cea_timing`) as a share of trial time, the largest gap between two heartbeats, and every
# error / lock / serialization / warning line the workers printed.
#
# Usage: benchmarks/hpo_scale.sh [WORK_DIR] [TRIALS] [POSTS] [WORKER_COUNTS]
#   defaults: hpo-scale 16 300 "1 2 4 8"      (about 25 min on 2 idle cores)
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth) for the postgresql rows; without it they are
# skipped with a note.
set -euo pipefail
work=${1:-hpo-scale}
trials=${2:-16}
posts=${3:-300}
counts=${4:-"1 2 4 8"}
mkdir -p "$work"
work=$(cd "$work" && pwd)
cd "$work"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
[ -d data ] || cea data sample -o data -n "$posts" --seed 7 -q
PG=postgresql://postgres@127.0.0.1:5432
pg_ok=0
psql -h 127.0.0.1 -U postgres -d postgres -c "select 1" >/dev/null 2>&1 && pg_ok=1

common=(--config tiny --set "data.path=$work/data" --set train.epochs=1 --no-track --json)

run_one() {  # $1 label, $2 storage kind, $3 workers, rest: extra args
  local label=$1 kind=$2 w=$3; shift 3
  local store
  if [ "$kind" = postgresql ]; then
    local db="hposcale_${label//[^a-z0-9]/_}"
    psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $db" >/dev/null
    store="$PG/$db"
  else
    rm -rf "runs-$label"
    store="journal:$work/runs-$label/optuna-journal.log"
  fi
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  cea hpo "${common[@]}" --set "hpo.runs_dir=$work/runs-$label" --n-trials "$trials" \
    --workers "$w" --storage "$store" --study-name "$label" "$@" \
    > "$label.json" 2> "$label.err" || rc=$?
  t1=$(date +%s.%N)
  echo "$label $kind $w $rc $t0 $t1" >> runs.txt
}

: > runs.txt
for kind in postgresql journal; do
  if [ "$kind" = postgresql ] && [ "$pg_ok" = 0 ]; then
    echo "note: PostgreSQL is not reachable on 127.0.0.1:5432; its rows are skipped" >&2
    continue
  fi
  for w in $counts; do
    run_one "${kind:0:2}-w$w" "$kind" "$w"
  done
done

if [ "$pg_ok" = 1 ]; then
  # faults: short heartbeats so that a stopped worker is declared stale within seconds
  hb=(--set hpo.heartbeat_interval=2 --set hpo.grace_period=10)
  run_one fault-kill postgresql 4 "${hb[@]}" &
  launcher=$!
  sleep 45
  victim=$(pgrep -f -- "--study-name fault-kill.*--worker-index 1" | head -1 || true)
  [ -n "$victim" ] && kill -9 "$victim"
  wait "$launcher" || true
  run_one fault-stop postgresql 4 "${hb[@]}" &
  launcher=$!
  sleep 45
  victim=$(pgrep -f -- "--study-name fault-stop.*--worker-index 2" | head -1 || true)
  if [ -n "$victim" ]; then kill -STOP "$victim"; sleep 30; kill -CONT "$victim"; fi
  wait "$launcher" || true
fi

python3 - "$trials" <<'PY'
import json, sys
wanted = int(sys.argv[1])
rows = []
for line in open("runs.txt"):
    label, kind, w, rc, t0, t1 = line.split()
    wall = float(t1) - float(t0)
    try:
        out = json.load(open(f"{label}.json"))
    except (OSError, ValueError):
        out = {"counts": {}, "trials": []}
    timings = [t["timing"] for t in out.get("trials", []) if t.get("timing")]
    trial_s = sum(t["trial_s"] for t in timings)
    own = sum(t["bookkeeping_s"] for t in timings)
    err = open(f"{label}.err").read().splitlines()
    bad = [l for l in err if any(k in l.lower() for k in (
        "error", "lock", "serializ", "warning", "traceback", "internal"))]
    c = out.get("counts", {})
    rows.append({
        "run": label, "storage": kind, "workers": int(w), "exit": int(rc),
        "finished": f"{c.get('finished', 0)}/{wanted}",
        "failed": c.get("failed"), "stale_retried": c.get("stale_retried"),
        "waiting": c.get("waiting"),
        "trials_per_min": round(60 * c.get("finished", 0) / wall, 2) if wall else None,
        "wall_s": round(wall, 1),
        "mean_trial_s": round(trial_s / len(timings), 2) if timings else None,
        "storage_calls_per_trial": round(sum(t["storage_calls"] for t in timings) / len(timings), 1) if timings else None,
        "heartbeats_per_trial": round(sum(t["heartbeats"] for t in timings) / len(timings), 1) if timings else None,
        "bookkeeping_share_pct": round(100 * own / trial_s, 3) if trial_s else None,
        "blocking_share_pct": round(100 * sum(t["storage_s"] for t in timings) / trial_s, 3) if trial_s else None,
        "heartbeat_s_per_trial": round(sum(t["heartbeat_s"] for t in timings) / len(timings), 3) if timings else None,
        "max_heartbeat_gap_s": max((t["heartbeat_max_gap_s"] for t in timings), default=None),
        "problem_lines": bad[:5],
    })
print(json.dumps(rows, indent=1))
PY
