#!/usr/bin/env bash
# A demo-sized `workbench run` whose CPU quota ramps down while it runs: a machine that slows with no single stall,
# what the drift check (`workbench/analysis/clock.py`) is for. benchmarks/RESULTS.md, eleventh session.
#
#   sudo bash benchmarks/throttled_run.sh OUT [START_CORES] [END_CORES]     # defaults 2.0 → 1.1
#
# Needs root and the cgroup v1 `cpu` controller at /sys/fs/cgroup/cpu (this project's VM has both). The first 25 s
# run at START_CORES, then the quota steps linearly to END_CORES over ~75 s (period 1 ms) and stays there until the
# run ends; the cgroup is unlimited again afterwards. Then: `workbench replay OUT` (warns), and
# `python benchmarks/replay_variants.py OUT` (replay errors against live).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: throttled_run.sh OUT [START_CORES] [END_CORES]}
START=${2:-2.0}
END=${3:-1.1}
CG=/sys/fs/cgroup/cpu/workbench-throttled
[ -w /sys/fs/cgroup/cpu ] || { echo "error: needs root and the cgroup v1 cpu controller at /sys/fs/cgroup/cpu" >&2; exit 2; }
mkdir -p "$CG"
set_quota() {  # cores → µs of CPU per 1 ms period (the shell writes it: a cgroup file takes one plain write)
  local us
  us=$(python3 -c "print(int(float('$1') * 1000))")
  echo "$us" > "$CG/cpu.cfs_quota_us"
}
echo 1000 > "$CG/cpu.cfs_period_us"
set_quota "$START"
HF_HUB_OFFLINE=1 .venv/bin/workbench run --policy constant:2,constant:4,constant:6,threshold:0.4,adaptive --baseline \
  --per-category 6 --max-new-tokens 48 --out "$OUT" --no-progress &
pid=$!
echo "$pid" > "$CG/cgroup.procs"
trap 'echo -1 > "$CG/cpu.cfs_quota_us"' EXIT
sleep 25
for i in $(seq 0 60); do
  kill -0 "$pid" 2>/dev/null || break
  set_quota "$(python3 -c "print($START + ($END - $START) * $i / 60)")"
  sleep 1.2
done
wait "$pid"
