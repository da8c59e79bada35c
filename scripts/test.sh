#!/usr/bin/env bash
# The test suite (CPU, a few minutes): set up .venv (with the ray extra), keep Jupyter/IPython state inside the
# checkout, lint with ruff, run pytest with one worker per core (pytest-xdist; each test file stays on one worker, so
# a file's session fixtures are built once and its tests keep their order). Arguments go to pytest: `-n 0` runs in
# one process, e.g. to debug with -x or --pdb.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKBENCH_EXTRAS=ray bash scripts/setup.sh  # the tests start a local Ray cluster (tests/test_sweep.py)
export HF_HUB_OFFLINE=1
export JUPYTER_CONFIG_DIR="$PWD/.jupyter/config" JUPYTER_DATA_DIR="$PWD/.jupyter/data" IPYTHONDIR="$PWD/.jupyter/ipython"
mkdir -p "$JUPYTER_CONFIG_DIR" "$JUPYTER_DATA_DIR" "$IPYTHONDIR"
.venv/bin/ruff check --quiet . || { echo "error: ruff found lint errors (run .venv/bin/ruff check . to see them)"; exit 1; }
exec .venv/bin/python -m pytest -q -n auto --dist loadfile "$@"
