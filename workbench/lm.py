"""A causal LM plus its KV cache — the unit both the loop and the latency probe work with."""

from __future__ import annotations

import inspect
import re
import statistics
import time

import torch
import transformers
from transformers import DynamicCache

from workbench.errors import WorkbenchError

# Before 5.18, a sliding-window cache layer that records its past hands attention every recorded state, more than
# the mask it advertises, when two forwards run without a ``crop`` between them, as a draft's tokens do: the
# forward fails on a shape mismatch once the window is full. The loops crop the target after every forward (the
# prefill too), so only a drafter's run of forwards needs the newer release, and only once a sequence fills the window.
SLIDING_DRAFT_MIN_TRANSFORMERS = (5, 18)


class CausalLM:
    """A model plus its KV cache: ``forward`` appends tokens to the cache, ``crop`` rolls it back.

    ``vocab_size`` slices the logits so draft and target rows line up when one model pads its embedding matrix.
    """

    def __init__(self, model, vocab_size: int):
        self.model = model
        self.vocab_size = vocab_size
        self.device = next(model.parameters()).device
        # transformers ≥ 5.2x names the argument ``cache`` (``past_key_values`` is deprecated); older 5.x the latter.
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self.cache = self._new_cache()

    def reset(self) -> None:
        self.cache = self._new_cache()

    def _new_cache(self) -> DynamicCache:
        """An empty cache that can be cropped back. A sliding-window layer otherwise drops the states that leave
        its window as it goes, and can no longer roll back a rejected draft (transformers raises at ``crop``); with
        past recording it keeps them until the next ``crop``, which trims them back to the window, as transformers'
        own assisted generation does. ``crop`` is therefore called after every step of both loops, even with
        nothing to remove (``sliding``), so speculative and target-only decoding carry the same cache."""
        cache = DynamicCache(config=self.model.config)
        self.window = min((layer.sliding_window for layer in cache.layers if getattr(layer, "is_sliding", False)),
                          default=None)  # the smallest attention window, None without sliding layers
        if hasattr(cache, "activate_past_recording"):  # public Cache API of transformers 5.x
            cache.activate_past_recording()
        return cache

    @property
    def sliding(self) -> bool:
        """A sliding-window layer is in the cache: ``crop`` trims it after every step."""
        return self.window is not None

    @property
    def length(self) -> int:
        """Tokens held in the KV cache."""
        return self.cache.get_seq_length()

    @torch.inference_mode()
    def forward(self, token_ids: torch.Tensor, *, last_only: bool = False) -> torch.Tensor:
        """Run ``token_ids`` ([k]) after the cached context; returns float32 logits [k, V] (or [1, V])."""
        out = self.model(input_ids=token_ids.view(1, -1), use_cache=True, logits_to_keep=1 if last_only else 0,
                         **{self._cache_arg: self.cache})
        return out.logits[0, :, : self.vocab_size].float()

    def prefill(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Start a new sequence: an empty cache, one forward over ``token_ids``; returns the last logits [1, V].

        The cache is cropped right away, which removes nothing but trims a sliding-window layer's recorded past back
        to its window (before transformers 5.18 the next forward fails while the prompt's past is still there)."""
        self.reset()
        logits = self.forward(token_ids, last_only=True)
        self.crop(self.length)
        return logits

    def crop(self, length: int) -> None:
        """Cut the cache back to its first ``length`` tokens."""
        remove = self.length - length
        if remove < 0:
            raise RuntimeError(f"cannot crop a {self.length}-token cache to {length} tokens")
        if remove or self.sliding:  # crop(-0) trims a sliding layer's recorded past back to its window
            self.cache.crop(-remove)  # a negative argument removes that many tokens (all transformers 5.x)
        if self.length != length:
            raise RuntimeError(f"KV cache holds {self.length} tokens after cropping to {length}")


def sliding_drafts_supported() -> bool:
    """Whether the installed transformers can draft with a sliding-window cache (see the constant above)."""
    major_minor = tuple(int(part) for part in re.findall(r"\d+", transformers.__version__)[:2])
    return major_minor >= SLIDING_DRAFT_MIN_TRANSFORMERS


def check_can_draft(lm: CausalLM, label: str, length: int, prompt_id: str) -> None:
    """Refuse, in one line, a sliding-window draft that the installed transformers cannot run to ``length`` tokens
    (prompt plus new tokens): the failure needs a sequence that reaches the window."""
    if lm.sliding and length >= lm.window and not sliding_drafts_supported():
        raise WorkbenchError(f"prompt {prompt_id!r}: draft '{label}' has a {lm.window}-token sliding attention "
                             f"window, and transformers {transformers.__version__} fails when a draft runs past it "
                             f"({length} tokens with the new ones); install transformers>=5.18 "
                             "(requirements.txt pins the tested version) or keep prompt plus --max-new-tokens under "
                             f"{lm.window}")


@torch.inference_mode()
def one_token_latency_ms(model, context: int = 64, calls: int = 50, warmup: int = 10) -> float:
    """Median wall time of a batch-1 forward over ONE new token with a KV cache of ``context`` tokens.

    Measured through ``CausalLM`` (what decoding does); the token is cropped again after each call so every call
    does the same work. CPU timing (perf_counter); on CUDA it synchronizes around each call.
    """
    model.eval()
    lm = CausalLM(model, model.config.get_text_config().vocab_size)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, lm.vocab_size, (context,), generator=gen).to(lm.device)
    lm.prefill(ids)
    times = []
    for _ in range(warmup + calls):
        if lm.device.type == "cuda":
            torch.cuda.synchronize(lm.device)
        t0 = time.perf_counter()
        lm.forward(ids[-1:], last_only=True)
        if lm.device.type == "cuda":
            torch.cuda.synchronize(lm.device)
        times.append(time.perf_counter() - t0)
        lm.crop(context)
    return 1e3 * statistics.median(times[warmup:])


@torch.inference_mode()
def full_logits(lm: CausalLM, token_ids: list[int]) -> torch.Tensor:
    """Logits [len, V] of one cache-free forward over ``token_ids`` (teacher forcing); ``lm``'s cache is untouched."""
    ids = torch.tensor(token_ids, device=lm.device).view(1, -1)
    return lm.model(input_ids=ids, use_cache=False).logits[0, :, : lm.vocab_size].float()
