#!/usr/bin/env bash
# GPU readiness of cea on one CUDA GPU, in at most ~5 minutes; writes ONE JSON of figures.
#
#   scripts/gpu-check.sh [OUT_DIR]          (default OUT_DIR: ${OUT:-gpu-check-out})
#
# Steps (each timed; a failing step is recorded and the next one still runs):
#   install   a venv that sees the host's CUDA build of torch (--system-site-packages) + cea;
#             offline hosts: CEA_WHEELS=/path/to/wheels (pip --no-index --find-links)
#   doctor    `cea doctor --json` (devices, memory, capability)
#   train     MiniLM, 1 epoch, autocast (bf16 where supported), on the long-post sample profile
#   bench     `cea bench step --device cuda` around the real training step
#   torchrun  `torchrun --nproc_per_node 1 -m cea train` (NCCL on CUDA)
#   eval      `cea eval RUN --device cuda`
# Exit status: 0 when every step passed, 1 otherwise (the JSON says which).
# A dry run of the script itself on a CPU host:
#   CEA_VENV=.venv CEA_GPU_CHECK_DEVICE=cpu CEA_GPU_CHECK_CONFIG=tiny scripts/gpu-check.sh /tmp/x
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check-out}}
mkdir -p "$out"
work=$(mktemp -d)
log="$out/gpu-check.log"
: >"$log"
py=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
steps_json=""
dev=${CEA_GPU_CHECK_DEVICE:-cuda}
cfg=${CEA_GPU_CHECK_CONFIG:-default}

record() {  # name status seconds [extra-json]
  local extra=${4:-"{}"}
  steps_json+="${steps_json:+,}\"$1\": {\"status\": \"$2\", \"seconds\": $3, \"result\": $extra}"
}

run_step() {  # name timeout command...  (stdout of the command kept in $work/NAME.out)
  local name=$1 limit=$2
  shift 2
  local t0 t1 rc
  t0=$(date +%s.%N)
  echo "== $name: $*" >>"$log"
  timeout "$limit" "$@" >"$work/$name.out" 2>>"$log"
  rc=$?
  t1=$(date +%s.%N)
  local secs
  secs=$(awk "BEGIN{printf \"%.2f\", $t1 - $t0}")
  local extra="{}"
  if [ $rc -eq 0 ] && "$VPY" -c "import json,sys; json.load(open(sys.argv[1]))" "$work/$name.out" 2>/dev/null; then
    extra=$(cat "$work/$name.out")
  fi
  if [ $rc -eq 0 ]; then record "$name" ok "$secs" "$extra"; else record "$name" "failed (exit $rc)" "$secs"; fi
  return $rc
}

# ---- install ----------------------------------------------------------------------------------
t0=$(date +%s.%N)
venv="$work/venv"
pip_src=()
[ -n "${CEA_WHEELS:-}" ] && pip_src=(--no-index --find-links "$CEA_WHEELS")
if [ -n "${CEA_VENV:-}" ]; then  # an environment that already has cea (no install)
  venv=$CEA_VENV
  status=ok
elif "$py" -m venv --system-site-packages "$venv" >>"$log" 2>&1 &&
  "$venv/bin/python" -m pip install -q --no-build-isolation "${pip_src[@]}" -e . >>"$log" 2>&1; then
  status=ok
else
  status="failed"
fi
VPY="$venv/bin/python"
CEA="$venv/bin/cea"
record install "$status" "$(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $t0}")"
if [ "$status" != ok ]; then
  printf '{"ok": false, "steps": {%s}}\n' "$steps_json" >"$out/gpu-check.json"
  cat "$out/gpu-check.json"
  exit 1
fi

failed=0
run_step doctor 60 "$CEA" doctor --json || failed=1
"$CEA" data sample -o "$work/long" -n 300 --seed 7 --profile long -q >>"$log" 2>&1
run_step train 150 "$CEA" train --config "$cfg" --data "$work/long" --epochs 1 --no-track \
  --runs-dir "$work/runs" --run-name gpu --json "train.device=$dev" train.amp=true || failed=1
run_step bench 60 "$CEA" bench step --device "$dev" --steps 20 --repeats 2 --json || failed=1
run_step torchrun 90 "$venv/bin/torchrun" --nproc_per_node 1 --master_addr 127.0.0.1 \
  --master_port 29533 -m cea train --config tiny --data "$work/long" --no-track \
  --runs-dir "$work/runs" --run-name ddp --json "train.device=$dev" train.epochs=1 || failed=1
if [ -f "$work/runs/gpu/manifest.json" ]; then
  run_step eval 60 "$CEA" eval "$work/runs/gpu" --device "$dev" --no-track --json --n-boot 200 \
    --name gpu-check || failed=1
else
  record eval "skipped (no trained run)" 0
  failed=1
fi
gpu=$("$VPY" -c "import json,torch; c=torch.cuda.is_available(); print(json.dumps({'name': torch.cuda.get_device_name(0) if c else None, 'bf16': c and torch.cuda.is_bf16_supported(), 'torch': torch.__version__, 'cuda': torch.version.cuda}))" 2>>"$log" || echo '{}')
ok=$([ $failed -eq 0 ] && echo true || echo false)
printf '{"ok": %s, "gpu": %s, "steps": {%s}}\n' "$ok" "$gpu" "$steps_json" >"$out/gpu-check.json"
"$VPY" -m json.tool "$out/gpu-check.json" >/dev/null 2>&1 || echo "warning: gpu-check.json is not valid JSON" >&2
cat "$out/gpu-check.json"
rm -rf "$work"
exit $failed
