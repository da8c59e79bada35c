"""Turning logits into the distributions p (target) and q (draft), and drawing tokens from them.

The same settings are applied to both models, so the acceptance rule compares like with like.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.0  # 0 = greedy (argmax); > 0 = sample from softmax(logits / temperature)
    top_k: int = 0  # keep the k most likely tokens before sampling; 0 = off
    top_p: float = 1.0  # keep the smallest set of tokens whose mass reaches top_p (nucleus); 1.0 = off

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def probabilities(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """Distribution over the vocabulary for each row of ``logits`` ([..., V] → float32 [..., V]).

    Greedy decoding returns the plain softmax (temperature 1): the argmax is the same, and the probabilities say how
    confident each model was, which is what the trace reports.
    """
    logits = logits.float()
    if sampling.greedy:
        return torch.softmax(logits, dim=-1)
    logits = logits / sampling.temperature
    if sampling.top_k > 0:
        kth = torch.topk(logits, min(sampling.top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the mass of the tokens ranked above it already reaches top_p (the top one always stays)
        drop_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= sampling.top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.softmax(logits, dim=-1)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each distribution along the last dimension (0 · log 0 counted as 0)."""
    return -(probs * torch.log(probs.clamp_min(1e-30))).sum(dim=-1)


def choose(probs: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator) -> torch.Tensor:
    """One token id per row of ``probs`` ([..., V] → [...]): argmax when greedy, else a draw with ``generator``.

    The draw is argmax(probs / E) with E ~ Exp(1) per entry: the method ``torch.multinomial`` uses for one sample
    (the same draws and generator state), without its check of the input. On CUDA that check is a device-side assert,
    which a NaN/inf distribution from a broken model turns into a dead CUDA context instead of an error the loop can
    report; here such a row draws some index, and the step's ``check_finite`` then names the model. No host sync."""
    if sampling.greedy:
        return probs.argmax(dim=-1)
    race = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / race).argmax(dim=-1)
