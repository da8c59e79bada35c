#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, then draft-length policies + baseline on the embedded pair and the
# HTML report. (python -m, not .venv/bin/workbench: a console script's shebang breaks when the checkout moves.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m workbench.cli demo "$@"
