#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, then a γ sweep + baseline on the embedded pair and its HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/workbench demo "$@"
