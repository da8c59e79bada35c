"""Early-exit self-speculation: the target's first L layers, its final norm and its LM head act as the draft.

The view shares the target's weights (no copy): a shallow copy of the model (and of each module down to its
decoder) whose layer list holds only the first L blocks and whose config says L layers. It keeps its OWN KV cache of
those L layers (``ModelDrafter``) rather than sharing the target's: HF's forward cannot start the target at layer L
for tokens the draft already saw, so a shared cache would save nothing but the draft's one-token catch-up per step,
while a separate cache keeps the rollback invariant exactly that of a model drafter (crop after each verification).
Cost: the first L layers' KV are held twice.

The view is built with torch's ``nn.Module`` internals (a shallow ``copy.copy`` and its own ``_modules`` table), not
transformers': if a torch release changes how modules are stored, ``tests/test_decoding.py`` (shared weights, the
target left whole, lossless output) is what fails first.
"""

from __future__ import annotations

import copy

from torch import nn

from workbench.errors import WorkbenchError

# Where a causal LM keeps its blocks: (path of attributes to the decoder inside the LM, attribute of its block list).
# The layer count is set as num_hidden_layers: configs that call it n_layer (GPT-2, GPT-J, BLOOM) map that name to it.
LAYOUTS = (
    (("model",), "layers"),  # Llama, Qwen, Mistral, Mixtral, Gemma, Phi, OLMo, Cohere, StarCoder2, …
    (("transformer",), "h"),  # GPT-2, GPT-J, Falcon, BLOOM
    (("gpt_neox",), "layers"),  # GPT-NeoX, Pythia
    (("model", "decoder"), "layers"),  # OPT
)
SUPPORTED = "model.layers, transformer.h, gpt_neox.layers and model.decoder.layers"


def _find_blocks(model: nn.Module) -> tuple[list[nn.Module], tuple[str, ...], str]:
    """The modules from the LM down to its decoder, the path between them, and the block list's attribute."""
    for path, blocks_attr in LAYOUTS:
        chain = [model]
        for attr in path:
            chain.append(getattr(chain[-1], attr, None))
        if isinstance(getattr(chain[-1], blocks_attr, None), nn.ModuleList):
            return chain, path, blocks_attr
    raise WorkbenchError(f"early-exit: cannot take the first layers of a {type(model).__name__} "
                         f"(supported: blocks in {SUPPORTED})")


def _own_copy(module: nn.Module, config) -> nn.Module:
    """A shallow copy with its own module table (replacing a child leaves ``module`` intact) and ``config``."""
    view = copy.copy(module)
    view._modules = dict(module._modules)
    if hasattr(module, "config"):
        view.config = config
    return view


def first_layers_view(model: nn.Module, layers: int) -> nn.Module:
    """A model that runs only the first ``layers`` blocks of ``model`` (shared weights)."""
    chain, path, blocks_attr = _find_blocks(model)
    blocks = getattr(chain[-1], blocks_attr)
    if not 1 <= layers < len(blocks):
        raise WorkbenchError(f"early-exit:{layers}: the target has {len(blocks)} layers; "
                             f"choose L from 1 to {len(blocks) - 1}")
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = layers
    if getattr(config, "layer_types", None):
        config.layer_types = config.layer_types[:layers]
    # 1. the decoder: its own copy, holding the first L blocks
    view = _own_copy(chain[-1], config)
    setattr(view, blocks_attr, nn.ModuleList(list(blocks)[:layers]))
    # 2. every module above it, up to the LM: its own copy, pointing at the copy below
    for parent, attr in reversed(list(zip(chain[:-1], path))):
        child, view = view, _own_copy(parent, config)
        setattr(view, attr, child)
    return view
