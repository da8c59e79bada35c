"""The target/draft pair of a run, loaded once: models with their caches, the shared tokenizer, device, dtype."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from workbench.errors import WorkbenchError
from workbench.models import (CausalLM, check_same_vocabulary, context_window, describe, load_model, load_tokenizer,
                              resolve_device, resolve_dtype, resolve_model_dir, shared_vocab_size)


@dataclass
class ModelPair:
    target: CausalLM  # p
    draft: CausalLM | None  # q (None when only the baseline is run)
    tokenizer: object  # the target's tokenizer (the draft's maps tokens to the same ids)
    device: torch.device
    dtype: torch.dtype
    info: dict  # what meta.json records about the models

    @property
    def context_window(self) -> int | None:
        windows = [w for w in (context_window(lm.model) for lm in (self.target, self.draft) if lm) if w]
        return min(windows) if windows else None

    def eos_ids(self) -> frozenset[int]:
        """Every id that ends a request: the tokenizer's EOS and the target's generation_config EOS ids."""
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.target.model.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
        return frozenset(i for i in ids if i is not None)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text)["input_ids"]

    def decode_each(self, token_ids: list[int]) -> list[str]:
        """Each token decoded on its own (for the trace's token_text)."""
        return self.tokenizer.batch_decode([[i] for i in token_ids])


def load_pair(*, target: str, draft: str | None, device: str, dtype: str,
              trust_remote_code: bool = False) -> ModelPair:
    """Resolve device and dtype once, load both models and check that they share a vocabulary."""
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    target_dir = resolve_model_dir(target)
    draft_dir = resolve_model_dir(draft) if draft else None
    tokenizer = load_tokenizer(target_dir, trust_remote_code=trust_remote_code)
    if draft_dir is not None:
        check_same_vocabulary(tokenizer, load_tokenizer(draft_dir, trust_remote_code=trust_remote_code))
    kw = dict(device=dev, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    target_model = load_model(target_dir, **kw)
    draft_model = load_model(draft_dir, **kw) if draft_dir else None
    vocab = shared_vocab_size(target_model, draft_model or target_model, tokenizer)
    info = {"target": asdict(describe(target_model, target_dir)),
            "draft": asdict(describe(draft_model, draft_dir)) if draft_model else None,
            "tokenizer": {"name": type(tokenizer).__name__, "path": str(target_dir), "size": len(tokenizer)},
            "vocab_size": vocab, "dtype": str(torch_dtype).removeprefix("torch.")}
    if draft_model is not None and info["draft"]["parameters"] >= info["target"]["parameters"]:
        info["note"] = "the draft is not smaller than the target"
    return ModelPair(target=CausalLM(target_model, vocab), draft=CausalLM(draft_model, vocab) if draft_model else None,
                     tokenizer=tokenizer, device=dev, dtype=torch_dtype, info=info)


def check_fits(pair: ModelPair, prompt_id: str, prompt_len: int, max_new_tokens: int, gamma: int) -> None:
    """A request must fit the context window, including the γ+1 tokens a verify may look ahead."""
    window = pair.context_window
    if prompt_len == 0:
        raise WorkbenchError(f"prompt {prompt_id!r} encodes to no tokens")
    if window is not None and prompt_len + max_new_tokens + gamma + 1 > window:
        raise WorkbenchError(f"prompt {prompt_id!r} is {prompt_len} tokens; with --max-new-tokens {max_new_tokens} "
                             f"and gamma {gamma} it exceeds the models' context window of {window} tokens")
