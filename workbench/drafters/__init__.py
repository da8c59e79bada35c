"""Drafters: what proposes the tokens the target verifies. Specs are parsed here without importing torch.

* a model dir, a cached hub id, or ``default`` — a separate (smaller) causal LM with its own KV cache
  (``model.py``); q = its softmax;
* ``ngram[:N[:M]]`` — prompt lookup: the continuation of the latest earlier occurrence of the last N…M tokens
  (``ngram.py``); q one-hot;
* ``early-exit:L`` — the target's first L layers + its final norm and LM head, with their own cache
  (``early_exit.py``); q = its softmax.

A deterministic proposal has a one-hot q, so the rejection rule stays exact: x is accepted with probability p(x),
and the correction is drawn from p with x removed, renormalised (``rejection.residual`` of p and the one-hot q).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import PurePath

from workbench.errors import WorkbenchError
from workbench.paths import DEFAULT, DEFAULT_MODELS, model_path

SYNTAX = "a model directory or hub id, default, ngram[:N[:M]], early-exit:L"


@dataclass(frozen=True)
class DrafterSpec:
    kind: str  # model | ngram | early-exit
    label: str  # names the drafter in request ids, traces and reports
    model: str = ""  # model: directory, hub id or "default"
    n_max: int = 3  # ngram: longest suffix matched
    n_min: int = 1  # ngram: shortest suffix matched
    layers: int = 0  # early-exit: target layers used as the draft


def parse_drafter(spec: str) -> DrafterSpec:
    text = spec.strip()
    name, *args = text.split(":")
    if name == "ngram":
        nums = [_int(text, a, "N and M") for a in args]
        if len(nums) > 2 or any(v < 1 for v in nums) or (len(nums) == 2 and nums[1] > nums[0]):
            raise WorkbenchError(f"drafter {text!r}: expected ngram[:N[:M]] with N ≥ M ≥ 1")
        n_max = nums[0] if nums else 3
        n_min = nums[1] if len(nums) > 1 else 1
        return DrafterSpec("ngram", f"ngram:{n_max}:{n_min}", n_max=n_max, n_min=min(n_min, n_max))
    if name == "early-exit":
        if len(args) != 1 or _int(text, args[0], "L") < 1:
            raise WorkbenchError(f"drafter {text!r}: expected early-exit:L with L ≥ 1 target layers")
        layers = int(args[0])
        return DrafterSpec("early-exit", f"early-exit:{layers}", layers=layers)
    if not text:
        raise WorkbenchError(f"--draft: empty drafter (expected {SYNTAX})")
    label = DEFAULT_MODELS["draft"] if text == DEFAULT else PurePath(text.rstrip("/")).name
    return DrafterSpec("model", label, model=text)


def kind_of(label: str) -> str:
    """The kind of drafter a label (in request ids, traces and reports) names: n-gram and early-exit labels are
    canonical (``ngram:N:M``, ``early-exit:L``, as ``parse_drafter`` writes them); any other label is a model's
    folder name, which may itself start with "ngram" (``ngram-small``) or be ``ngram``."""
    if re.fullmatch(r"ngram:\d+:\d+", label):
        return "ngram"
    return "early-exit" if re.fullmatch(r"early-exit:\d+", label) else "model"


def parse_drafters(specs) -> list[DrafterSpec]:
    """Parse a drafter list; refuses duplicates (two entries with the same label)."""
    out = _distinct([parse_drafter(s) for s in specs])
    labels = [d.label for d in out]
    dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dupes:
        raise WorkbenchError(f"--draft lists {', '.join(dupes)} more than once")
    return out


def _distinct(drafters: list[DrafterSpec]) -> list[DrafterSpec]:
    """Model drafters from different places that share a folder name are labelled with as many parent folders as
    tell them apart (``a/m``, ``b/m`` → ``a-m``, ``b-m``); the same place given twice stays a duplicate."""
    out = list(drafters)
    for label in {d.label for d in out}:
        group = [i for i, d in enumerate(out) if d.kind == "model" and d.label == label]
        if len(group) < 2:
            continue
        places = {os.path.realpath(os.path.expanduser(model_path(out[i].model, "draft"))) for i in group}
        if len(places) < len(group):  # one folder given twice (relative and absolute, `default` and its path…)
            continue
        parts = {i: PurePath(out[i].model.rstrip("/")).parts for i in group}
        if len(set(parts.values())) < 2:  # one model with this name (or none): its label stays
            continue
        for depth in range(2, max(len(p) for p in parts.values()) + 1):
            names = {i: "-".join(part for part in parts[i][-depth:] if part != "/") for i in group}
            if len(set(names.values())) == len(group):
                out = [replace(d, label=names[i]) if i in names else d for i, d in enumerate(out)]
                break
    return out


def _int(spec: str, text: str, what: str) -> int:
    from workbench.policies import plain_number

    try:
        if not plain_number(text):
            raise ValueError(text)
        return int(text)
    except ValueError:
        number = "whole numbers" if " and " in what else "a whole number"
        raise WorkbenchError(f"drafter {spec!r}: {what} must be {number} ({text!r})") from None
