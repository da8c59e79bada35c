"""Tiny random models and a tiny tokenizer for tests (fixed seeds; built in seconds, saved as HF dirs)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    MptConfig,
    MptForCausalLM,
    OPTConfig,
    OPTForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

TEXT = ("The quick brown fox jumps over the lazy dog. A speculative decoder drafts tokens and the target verifies "
        "them in one pass. def add(a, b):\n    return a + b\n" * 20)
VOCAB = 128
SLIDING = 8  # mistral-sw's attention window: prompts + outputs in the tests run well past it
INIT_STD = 0.5  # large init: peaked logits, so float32 argmax has no near-ties between batched and single forwards


def make_tokenizer(vocab_size: int = VOCAB) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([TEXT], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", bos_token="<eos>")


def make_model(kind: str, *, vocab_size: int, seed: int, layers: int = 2, hidden: int = 32, eos_id: int = 0,
               context: int = 256, window: int = SLIDING):
    """A random ``kind`` in {llama, qwen2, gpt2, opt, gpt_neox, mpt, mistral-sw} model with peaked logits (opt:
    blocks in model.decoder.layers; gpt_neox: in gpt_neox.layers; mpt: in transformer.blocks, a layout early-exit
    does not take apart; mistral-sw: a sliding attention window of ``window`` tokens, whose cache layers drop what
    falls out of the window)."""
    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, eos_token_id=eos_id, bos_token_id=eos_id)
    if kind == "gpt_neox":
        config = GPTNeoXConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                               num_attention_heads=4, max_position_embeddings=context, initializer_range=INIT_STD,
                               **common)
        return GPTNeoXForCausalLM(config).eval()
    if kind == "mpt":
        config = MptConfig(d_model=hidden, n_heads=4, n_layers=layers, expansion_ratio=2, max_seq_len=context,
                           init_config={"init_std": INIT_STD}, **common)
        return MptForCausalLM(config).eval()
    if kind == "opt":
        config = OPTConfig(hidden_size=hidden, ffn_dim=2 * hidden, num_hidden_layers=layers, num_attention_heads=4,
                           max_position_embeddings=context, word_embed_proj_dim=hidden, init_std=INIT_STD,
                           pad_token_id=eos_id, **common)
        return OPTForCausalLM(config).eval()
    if kind == "gpt2":
        config = GPT2Config(n_embd=hidden, n_layer=layers, n_head=4, n_positions=context,
                            initializer_range=INIT_STD, **common)
        model = GPT2LMHeadModel(config)
    else:
        cls_cfg, cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM),
                        "mistral-sw": (MistralConfig, MistralForCausalLM)}[kind]
        sliding = {"sliding_window": window} if kind == "mistral-sw" else {}
        config = cls_cfg(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context,
                         initializer_range=INIT_STD, tie_word_embeddings=False, **sliding, **common)
        model = cls(config)
    return model.eval()


def first_layers(model, layers: int):
    """A draft made of the target's first ``layers`` blocks (agrees with the target part of the time)."""
    draft = copy.deepcopy(model)
    if hasattr(draft, "transformer"):  # gpt2
        draft.transformer.h = draft.transformer.h[:layers]
        draft.config.n_layer = layers
    elif hasattr(draft, "gpt_neox") or hasattr(getattr(draft, "model", None), "decoder"):  # gpt_neox, opt
        decoder = getattr(draft, "gpt_neox", None) or draft.model.decoder
        decoder.layers = decoder.layers[:layers]
        draft.config.num_hidden_layers = layers
    else:
        draft.model.layers = draft.model.layers[:layers]
        draft.config.num_hidden_layers = layers
        types = getattr(draft.config, "layer_types", None)
        draft.config.layer_types = types[:layers] if types else None
    return draft


def save(model, tokenizer, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def decoding(target, vocab: int, *, max_new: int = 24, eos=frozenset(), sampling=None, seed: int = 0):
    """The tests' one way to build a ``Decoding`` around a bare target model (runs use ``Decoding.create``)."""
    from workbench.decoding import Decoding
    from workbench.lm import CausalLM
    from workbench.sampling import SamplingConfig
    from workbench.timing import PhaseClock

    device = next(target.parameters()).device
    return Decoding(target=CausalLM(target, vocab), sampling=sampling or SamplingConfig(),
                    generator=torch.Generator(device=device).manual_seed(seed), clock=PhaseClock(device),
                    eos_ids=frozenset(eos), max_new_tokens=max_new)


def drafter(spec: str, target, vocab: int, draft_model=None):
    """A drafter for tests: ``model`` (``draft_model``), ``ngram[:N[:M]]`` or ``early-exit:L`` over ``target``."""
    from workbench.drafters import parse_drafter
    from workbench.drafters.early_exit import first_layers_view
    from workbench.drafters.model import ModelDrafter
    from workbench.drafters.ngram import NgramDrafter
    from workbench.lm import CausalLM

    device = next(target.parameters()).device
    if spec == "model":
        return ModelDrafter(CausalLM(draft_model, vocab), "draft")
    d = parse_drafter(spec)
    if d.kind == "ngram":
        return NgramDrafter(d.label, d.n_max, d.n_min, vocab, device)
    return ModelDrafter(CausalLM(first_layers_view(target, d.layers), vocab), d.label)
