"""The drafter seam: a drafter proposes up to γ tokens with their q and is told what was accepted.

Each drafter owns its state and its cache invariant: after ``rollback(ids)`` whatever it caches must be a prefix
of ``ids`` (the accepted sequence), and ``propose`` first reads whatever it has not seen yet.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import torch

from workbench.policies import Policy
from workbench.sampling import SamplingConfig, entropy


@dataclass
class Proposal:
    x: torch.Tensor  # drafted tokens [k] (k may be 0: nothing to propose)
    q: torch.Tensor  # their draft distributions [k, V] (one-hot rows for deterministic drafters)
    stop: str  # why drafting stopped: cap | threshold | eos | no-match
    confidences: tuple[float, ...] = ()  # q_i(x_i), read only when the policy reads drafts

    @functools.cached_property
    def tokens(self) -> list[int]:
        """``x`` on the host, read once per step (the EOS cut and the emitted prefix share it)."""
        return self.x.tolist()


class Drafter(Protocol):
    label: str  # e.g. "default-draft", "ngram:3:1", "early-exit:4"

    def begin(self, prompt: torch.Tensor) -> None: ...  # a new request (a model drafter prefills its cache)

    def propose(self, ids: list[int], gamma: int, policy: Policy, sampling: SamplingConfig,
                generator: torch.Generator) -> Proposal: ...

    def rollback(self, ids: list[int]) -> None: ...


def empty_proposal(vocab: int, device: torch.device, stop: str) -> Proposal:
    return Proposal(x=torch.zeros(0, dtype=torch.long, device=device),
                    q=torch.zeros(0, vocab, device=device), stop=stop)


def read_signal(q_i: torch.Tensor, x_i: torch.Tensor, with_entropy: bool) -> tuple[float, float]:
    """(confidence q_i(x_i), entropy of q_i in nats) in one host transfer. The entropy is a pass over the whole
    vocabulary (~28 µs at V = 8192 on this project's CPU, against ~1.5 µs for the confidence alone;
    benchmarks/loop_profile.py): NaN unless asked."""
    if not with_entropy:
        return float(q_i[x_i]), float("nan")
    conf, ent = torch.stack([q_i[x_i], entropy(q_i)]).tolist()
    return conf, ent


def cut_at_eos(proposal: Proposal, eos_ids: frozenset[int]) -> Proposal:
    """Drafting ends at a drafted EOS (as HF's assistant does): later drafts are dropped (their time was spent)."""
    if not eos_ids or not len(proposal.x):
        return proposal
    tokens = proposal.tokens
    for i, token in enumerate(tokens[:-1]):
        if token in eos_ids:
            keep = i + 1
            cut = Proposal(x=proposal.x[:keep], q=proposal.q[:keep], stop="eos",
                           confidences=proposal.confidences[:keep])
            cut.tokens = tokens[:keep]  # already on the host
            return cut
    return proposal
