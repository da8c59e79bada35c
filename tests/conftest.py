"""Shared fixtures: tiny random model dirs (Llama, Qwen2, GPT-2) with one tiny tokenizer, built once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)  # tiny models: one thread is fastest and leaves a core free

from tiny_models import first_layers, make_model, make_tokenizer, save  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory, tokenizer):
    """{name: dir}: llama target, its 1-layer prefix draft, an unrelated random draft, a qwen2 and a gpt2 pair."""
    root = tmp_path_factory.mktemp("models")
    vocab = len(tokenizer)
    target = make_model("llama", vocab_size=vocab, seed=1, layers=3)
    dirs = {
        "target": save(target, tokenizer, root / "target"),
        "draft_prefix": save(first_layers(target, 1), tokenizer, root / "draft_prefix"),
        "draft_random": save(make_model("llama", vocab_size=vocab, seed=2, layers=1), tokenizer, root / "draft_random"),
    }
    for kind in ("qwen2", "gpt2"):
        t = make_model(kind, vocab_size=vocab, seed=3, layers=2)
        dirs[f"{kind}_target"] = save(t, tokenizer, root / f"{kind}_target")
        dirs[f"{kind}_draft"] = save(first_layers(t, 1), tokenizer, root / f"{kind}_draft")
    return dirs


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"id": "a", "category": "prose", "prompt": "The quick brown fox"}\n'
                    '{"id": "b", "category": "code", "prompt": "def add(a, b):"}\n'
                    '{"id": "c", "category": "prose", "prompt": "A speculative decoder drafts"}\n')
    return path
