"""Drafter objects from parsed specs and the loaded models of a run."""

from __future__ import annotations

from workbench.drafters import DrafterSpec
from workbench.drafters.base import Drafter
from workbench.drafters.early_exit import first_layers_view
from workbench.drafters.model import ModelDrafter
from workbench.drafters.ngram import NgramDrafter
from workbench.lm import CausalLM


def build_drafter(spec: DrafterSpec, pair) -> Drafter:
    """``pair`` is a ``workbench.pair.ModelPair`` holding the target and every draft model of the run."""
    if spec.kind == "model":
        return ModelDrafter(pair.drafts[spec.label], spec.label)
    if spec.kind == "ngram":
        return NgramDrafter(spec.label, spec.n_max, spec.n_min, pair.target.vocab_size, pair.device)
    view = first_layers_view(pair.target.model, spec.layers)
    return ModelDrafter(CausalLM(view, pair.target.vocab_size), spec.label)
