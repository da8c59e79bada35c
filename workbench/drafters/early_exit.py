"""Early-exit self-speculation: the target's first L layers, its final norm and its LM head act as the draft.

The view shares the target's weights (no copy): a shallow copy of the model whose layer list holds only the first
L blocks and whose config says L layers. It keeps its OWN KV cache of those L layers (``ModelDrafter``) rather
than sharing the target's: HF's forward cannot start the target at layer L for tokens the draft already saw, so a
shared cache would save nothing but the draft's one-token catch-up per step, while a separate cache keeps the
rollback invariant exactly that of a model drafter (crop after each verification). Cost: the first L layers' KV
are held twice.

The view is built with torch's ``nn.Module`` internals (a shallow ``copy.copy`` and its own ``_modules`` table), not
transformers': if a torch release changes how modules are stored, ``tests/test_decoding.py`` (shared weights, the
target left whole, lossless output) is what fails first.
"""

from __future__ import annotations

import copy

from torch import nn

from workbench.errors import WorkbenchError

# (attribute of the decoder inside the LM, attribute of its block list, config field holding the layer count)
LAYOUTS = (("model", "layers", "num_hidden_layers"), ("transformer", "h", "n_layer"))


def first_layers_view(model: nn.Module, layers: int) -> nn.Module:
    """A model that runs only the first ``layers`` blocks of ``model`` (shared weights)."""
    for decoder_attr, blocks_attr, count_field in LAYOUTS:  # noqa: B007 (count_field is used after the loop)
        decoder = getattr(model, decoder_attr, None)
        blocks = getattr(decoder, blocks_attr, None)
        if isinstance(blocks, nn.ModuleList):
            break
    else:
        raise WorkbenchError(f"early-exit: cannot take the first layers of a {type(model).__name__} "
                             "(supported: Llama-style model.layers and GPT-2-style transformer.h)")
    if not 1 <= layers < len(blocks):
        raise WorkbenchError(f"early-exit:{layers}: the target has {len(blocks)} layers; "
                             f"choose L from 1 to {len(blocks) - 1}")
    config = copy.deepcopy(model.config)
    setattr(config, count_field, layers)
    if getattr(config, "layer_types", None):
        config.layer_types = config.layer_types[:layers]
    view_decoder = copy.copy(decoder)
    view_decoder._modules = dict(decoder._modules)  # own module table: replacing the blocks leaves the target intact
    setattr(view_decoder, blocks_attr, nn.ModuleList(list(blocks)[:layers]))
    view_decoder.config = config
    view = copy.copy(model)
    view._modules = dict(model._modules)
    setattr(view, decoder_attr, view_decoder)
    view.config = config
    return view
