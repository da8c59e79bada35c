"""Llama-architecture model shapes and half-precision HF saving (the latency probe is workbench.lm's).

Small HF models on CPU are dominated by per-layer Python overhead, not FLOPs, so the draft/target cost ratio
c = T_draft / T_target(1) is set mostly by the layer counts: the default 2-layer draft against the 16-layer target
gives c ≈ 0.23 in float32 on a 2-core CPU, which is what speculative decoding needs to win.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM


@dataclass
class ModelShape:
    n_layers: int  # transformer blocks; the main lever on CPU latency
    hidden: int  # residual width (= embedding size)
    n_heads: int  # attention heads; head_dim = hidden / n_heads
    intermediate: int  # SwiGLU MLP width (~2.7 x hidden, as in Llama)
    max_positions: int = 1024  # RoPE positions the config advertises (trained on shorter windows)
    tie_embeddings: bool = True  # share input embedding and LM head: halves the vocab matrices' size


def build_model(shape: ModelShape, vocab_size: int, special_id: int, seed: int) -> LlamaForCausalLM:
    """Random-init Llama with bos/eos/pad = special_id (set in config and generation_config)."""
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.n_layers,
        num_attention_heads=shape.n_heads,
        num_key_value_heads=shape.n_heads,  # plain multi-head attention; GQA saves nothing at this size
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=shape.tie_embeddings,
        bos_token_id=special_id,
        eos_token_id=special_id,
        pad_token_id=special_id,
    )
    torch.manual_seed(seed)  # HF init draws from the global RNG; fix it so a seed gives the same weights
    model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        bos_token_id=special_id, eos_token_id=special_id, pad_token_id=special_id, do_sample=False
    )
    return model


def save_half(model: LlamaForCausalLM, out_dir: Path, dtype: torch.dtype = torch.float16) -> None:
    """save_pretrained as safetensors in half precision (loaders upcast to float32 on CPU if asked)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    half = model.to(dtype)
    half.config.dtype = dtype
    half.save_pretrained(str(out_dir), safe_serialization=True)
    model.to(torch.float32)  # leave the caller's model in training precision
