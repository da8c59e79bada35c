"""The models of a run, loaded once: the target, every draft model and early-exit view, the shared tokenizer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from workbench import paths
from workbench.drafters import DrafterSpec
from workbench.errors import WorkbenchError
from workbench.lm import CausalLM
from workbench.loading import (
    check_same_vocabulary,
    context_window,
    describe,
    load_model,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
    resolve_model_dir,
    shared_vocab_size,
)


@dataclass
class ModelPair:
    target: CausalLM  # p
    tokenizer: object  # the target's tokenizer (every draft model's maps tokens to the same ids)
    device: torch.device
    dtype: torch.dtype
    info: dict  # what meta.json records about the models
    drafts: dict[str, CausalLM] = field(default_factory=dict)  # q of each model drafter, by drafter label

    @property
    def context_window(self) -> int | None:
        windows = [w for w in (context_window(lm.model) for lm in (self.target, *self.drafts.values())) if w]
        return min(windows) if windows else None

    def eos_ids(self) -> frozenset[int]:
        """Every id that ends a request: the tokenizer's EOS and the target's generation_config EOS ids."""
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.target.model.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
        return frozenset(i for i in ids if i is not None)

    def encode(self, text: str) -> list[int]:
        """A prompt's token ids, the text as is (the tokenizer adds its special tokens, BOS included)."""
        return self.tokenizer(text)["input_ids"]

    def encode_chat(self, messages: list[dict]) -> list[int]:
        """A conversation's token ids through the tokenizer's chat template, with the assistant's turn opened; the
        template writes its own special tokens (BOS included)."""
        rendered = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(rendered, add_special_tokens=False)["input_ids"]

    def decode_each(self, token_ids: list[int]) -> list[str]:
        """Each token decoded on its own (for the trace's token_text)."""
        return self.tokenizer.batch_decode([[i] for i in token_ids])


def load_pair(*, target: str, drafts: list[DrafterSpec], device: str, dtype: str,
              trust_remote_code: bool = False) -> ModelPair:
    """Resolve device and dtype once, load the target and every draft model, check the shared vocabulary."""
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    kw = dict(device=dev, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    target_dir = resolve_model_dir(paths.model_path(target, "target"))
    tokenizer = load_tokenizer(target_dir, trust_remote_code=trust_remote_code)
    draft_dirs = {d.label: resolve_model_dir(paths.model_path(d.model, "draft")) for d in drafts if d.kind == "model"}
    for draft_dir in draft_dirs.values():
        check_same_vocabulary(tokenizer, load_tokenizer(draft_dir, trust_remote_code=trust_remote_code))
    target_model = load_model(target_dir, **kw)
    draft_models = {label: load_model(d, **kw) for label, d in draft_dirs.items()}
    vocab = shared_vocab_size({target_dir: target_model, **{draft_dirs[k]: m for k, m in draft_models.items()}},
                              tokenizer)
    info = {"target": asdict(describe(target_model, target_dir)),
            "drafts": {label: asdict(describe(m, draft_dirs[label])) for label, m in draft_models.items()},
            "tokenizer": {"name": type(tokenizer).__name__, "path": str(target_dir), "size": len(tokenizer)},
            "vocab_size": vocab, "dtype": str(torch_dtype).removeprefix("torch.")}
    not_smaller = [label for label, d in info["drafts"].items() if d["parameters"] >= info["target"]["parameters"]]
    if not_smaller:
        info["note"] = f"draft not smaller than the target: {', '.join(not_smaller)}"
    return ModelPair(target=CausalLM(target_model, vocab), tokenizer=tokenizer, device=dev, dtype=torch_dtype,
                     info=info, drafts={label: CausalLM(m, vocab) for label, m in draft_models.items()})


def check_fits(pair: ModelPair, prompt_id: str, prompt_len: int, max_new_tokens: int) -> None:
    """A request must fit the context window (a verify never looks past the token budget: γ is clipped to it)."""
    window = pair.context_window
    if prompt_len == 0:
        raise WorkbenchError(f"prompt {prompt_id!r} encodes to no tokens")
    if window is not None and prompt_len + max_new_tokens > window:
        raise WorkbenchError(f"prompt {prompt_id!r} is {prompt_len} tokens; with --max-new-tokens {max_new_tokens} "
                             f"it exceeds the models' context window of {window} tokens")
