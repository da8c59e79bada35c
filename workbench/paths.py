"""Where the workbench finds its bundled files: the default model pair, prompt sets and report notebooks.

One module owns these locations. Three layouts are supported, tried in this order:
1. ``$WORKBENCH_HOME`` — a directory holding ``data/`` and ``notebooks/`` (e.g. a checkout), if set;
2. the source checkout this package runs from (an editable install, or ``python -m workbench.cli`` in the repo);
3. a wheel install (``pip install .``): the wheel carries ``data/`` and ``notebooks/`` as data files, installed under
   ``<prefix>/share/workbench/``.

Run configurations store the bundled defaults by *name* (``"default"``, ``"heldout"``), never as absolute paths, so a
moved checkout resumes its runs (model identity is checked by content hash, see ``runner.check_same_models``).
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

from workbench.errors import WorkbenchError

DEFAULT = "default"  # the name that stands for the embedded default target / draft in configs and on the CLI
DEFAULT_MODELS = {"target": "default-target", "draft": "default-draft"}  # sub-directories of data/models
PROMPT_SETS = ("heldout", "general", "chat")  # bundled prompt sets, by name: data/prompts/<name>.jsonl


def _candidates() -> list[Path]:
    out = [Path(os.environ["WORKBENCH_HOME"]).expanduser()] if os.environ.get("WORKBENCH_HOME") else []
    out.append(Path(__file__).resolve().parent.parent)  # the source checkout
    out.append(Path(sysconfig.get_path("data")) / "share" / "workbench")  # a wheel install's data files
    return out


def home() -> Path:
    """The directory holding ``data/`` and ``notebooks/``; one clear error if none is found."""
    for root in _candidates():
        if (root / "data" / "prompts").is_dir() and (root / "notebooks").is_dir():
            return root
    raise WorkbenchError("cannot find the workbench's data/ and notebooks/ (set WORKBENCH_HOME to a checkout of the "
                         "repository, or pass --target, --draft and --prompts explicitly)")


def data_dir() -> Path:
    return home() / "data"


def notebooks_dir() -> Path:
    return home() / "notebooks"


def sample_run() -> Path:
    """The committed real run the notebooks open on by default."""
    return data_dir() / "sample_run"


def model_path(spec: str, role: str) -> str:
    """``"default"`` → the embedded model of ``role`` (target | draft); anything else is returned unchanged."""
    return str(data_dir() / "models" / DEFAULT_MODELS[role]) if spec == DEFAULT else spec


def prompts_path(spec: str) -> Path:
    """A bundled prompt set name (``heldout``, ``general``) or a JSONL path."""
    return data_dir() / "prompts" / f"{spec}.jsonl" if spec in PROMPT_SETS else Path(spec).expanduser()
