#!/usr/bin/env bash
# Create .venv and install the pinned requirements plus this package (editable). Idempotent: reinstalls only when
# requirements.txt or pyproject.toml changed. torch is pinned (==2.13.0): an unpinned torch pulls a multi-GB CUDA build.
# Optional extras, only when asked: WORKBENCH_EXTRAS=ray (or --extras ray) adds requirements-ray.txt (Ray, for
# `workbench sweep --ray`).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${WORKBENCH_EXTRAS:-}
[ "${1:-}" = "--extras" ] && EXTRAS=${2:?--extras needs a value, e.g. ray}
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: Python ≥ 3.11 is needed for tomllib and numpy 2.4 ($PY)"; exit 2; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
reqs=requirements.txt
case ",$EXTRAS," in *,ray,*) reqs=requirements-ray.txt ;; ,,) ;; *) echo "error: unknown extra '$EXTRAS' (known: ray)"; exit 2 ;; esac
stamp=.venv/.workbench-installed
want=$(cat "$reqs" requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # The environment takes about 2.2 GB (torch 0.75, Ray 0.25): a disk without room for what is still missing gets
  # one line at once, not pip's failure halfway through.
  free_mb=$(df -Pm .venv 2>/dev/null | awk 'NR == 2 {print $4}')
  need_mb=$((2500 - $(du -sm .venv | cut -f1)))
  if [ -n "$free_mb" ] && [ "$free_mb" -lt "$need_mb" ]; then
    echo "error: $free_mb MB free on the disk of $(pwd)/.venv; installing needs about $need_mb MB more: free some space"
    exit 1
  fi
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$reqs"
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
  pwd > .venv/.workbench-checkout
fi
# A moved checkout: the editable install still points at the old path; reinstall the package (seconds, no deps).
if [ "$(cat .venv/.workbench-checkout 2>/dev/null)" != "$(pwd)" ]; then
  .venv/bin/python -m pip install -q --no-deps -e .
  pwd > .venv/.workbench-checkout
fi
