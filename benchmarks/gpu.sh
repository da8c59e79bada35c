#!/usr/bin/env bash
# The GPU checks and figures this project still lacks, in one command, for a machine with a CUDA device and a
# Python that already has torch, transformers, pandas, pyarrow and pytest (nothing is installed; the package runs
# from this checkout through PYTHONPATH). Estimated (not yet run on a GPU) at about 5 minutes on one H200; each step
# has its own time limit, 490 s in all, so the whole fits one device call (timeout_s 560) with the machine's start.
#
#   bash benchmarks/gpu.sh [OUT_DIR]      # default: $OUT if set (the device tool's folder), else runs/gpu
#   DEVICE=cpu SMOKE=1 bash benchmarks/gpu.sh /tmp/gpu-smoke   # the same steps, tiny, on the CPU: checks the script
#
# Writes at most 8 files to OUT_DIR (the device tool brings back 8): device.txt, test_gpu.log, bench_engine.log,
# compare_hf.log, policies.log (run + replay + policy_headroom), policies.tgz (the run directory), summary.txt.
# Record the figures in benchmarks/RESULTS.md with the date and the device line; nothing here asserts a speed.
# float32 throughout: greedy equality with target-only decoding holds in float32, barring exact ties (bf16 rounds
# differently for a k-token verify than for k one-token steps), and the CPU figures in RESULTS.md are float32 too.
set -uo pipefail
out=${1:-${OUT:-runs/gpu}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
py=${PYTHON:-python3}
device=${DEVICE:-cuda}  # cuda; cpu only to check the script itself
# prompts per category of the policy run and of the two benchmarks, rounds after the warm-up one, new tokens
if [ -n "${SMOKE:-}" ]; then per=1 bench_per=1 repeats=1 tokens=8; else per=8 bench_per=3 repeats=3 tokens=48; fi
status=0

step() {  # step NAME LIMIT_S LOG COMMAND...: run one step under its own limit, its output to LOG and the console
    local name=$1 limit=$2 log=$3
    shift 3
    echo "== $name (limit ${limit}s)" | tee -a "$log"
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    echo "$name: exit $rc" | tee -a "$out/summary.txt"
    [ "$rc" -eq 0 ] || status=1
}

{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $py -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__,
'cuda', torch.version.cuda, torch.cuda.get_device_name())"; nproc; } > "$out/device.txt" 2>&1
cat "$out/device.txt"

# 1. correctness on the GPU: greedy speculative == target-only for every drafter kind, the CUDA-event clock
step test_gpu 80 "$out/test_gpu.log" $py -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py
# 2. what tracing costs, speculative vs target-only ms/token (default pair, γ = 4)
step bench_engine 80 "$out/bench_engine.log" \
    $py benchmarks/bench_engine.py --device "$device" --dtype float32 --per-category "$bench_per" \
    --repeats "$repeats" --max-new-tokens "$tokens"
# 3. ours against HF assisted generation at the same setting (tokens/s, identical greedy outputs, γ per step)
step compare_hf 90 "$out/compare_hf.log" \
    $py benchmarks/compare_hf.py --device "$device" --dtype float32 --per-category "$bench_per" \
    --repeats "$repeats" --max-new-tokens "$tokens"
# 4. issue 8 on the GPU: the policy run of RESULTS.md, its replay and the headroom analysis. At this size both
#    forwards are bound by kernel launches on a GPU, so c follows the layer counts (draft 2, target 16) more than
#    the weights, and the verify cost grows even less with k than on the CPU: whether a non-constant policy pays
#    there is what this step measures.
run="$out/policies"
step policies_run 180 "$out/policies.log" $py -m workbench run --out "$run" --device "$device" --dtype float32 \
    --policy constant:1,constant:2,constant:3,constant:4,constant:5,constant:6,constant:7,constant:8,heuristic,\
threshold:0.4,threshold:0.1,adaptive --baseline --per-category "$per" --max-new-tokens "$tokens" --no-progress
step policies_replay 30 "$out/policies.log" $py -m workbench replay "$run"
step policy_headroom 30 "$out/policies.log" $py benchmarks/policy_headroom.py "$run" --no-probe
tar czf "$out/policies.tgz" -C "$out" policies && rm -rf "$run"
exit $status
