"""Prompt lookup (n-gram) drafting: copy what followed the latest earlier occurrence of the sequence's suffix.

For n = N down to M, the last n tokens of prompt + output are searched for earlier in the sequence (latest
occurrence first); the tokens that followed it, up to γ, are the proposal. No model runs, but the search is real
work and is timed as the draft phase. q is one-hot (the proposal is deterministic).
"""

from __future__ import annotations

import torch

from workbench.drafters.base import Proposal, empty_proposal
from workbench.policies import Policy
from workbench.sampling import SamplingConfig


def lookup(ids: list[int], gamma: int, n_max: int, n_min: int) -> list[int]:
    """The continuation (≤ γ tokens) of the latest earlier occurrence of the longest matching suffix."""
    length = len(ids)
    for n in range(min(n_max, length - 1), n_min - 1, -1):
        suffix = ids[length - n:]
        first = suffix[0]
        for start in range(length - n - 1, -1, -1):  # latest occurrence that ends before the suffix itself
            if ids[start] == first and ids[start:start + n] == suffix:
                return ids[start + n: start + n + gamma]
    return []


class NgramDrafter:
    def __init__(self, label: str, n_max: int, n_min: int, vocab: int, device: torch.device):
        self.label, self.n_max, self.n_min = label, n_max, n_min
        self.vocab, self.device = vocab, device

    def begin(self, prompt: torch.Tensor) -> None:
        pass  # stateless: the sequence itself is the table

    def propose(self, ids: list[int], gamma: int, policy: Policy, sampling: SamplingConfig,
                generator: torch.Generator) -> Proposal:
        tokens = lookup(ids, gamma, self.n_max, self.n_min) if gamma else []
        stop = "cap" if len(tokens) == gamma else "no-match"
        if policy.reads_draft:  # confidence 1, entropy 0: only a policy's own rule (e.g. adaptive) may stop it
            for i in range(1, len(tokens)):
                if policy.stop_after(i, 1.0, 0.0):
                    tokens, stop = tokens[:i], "threshold"  # the policy's stop, as the model drafter labels it
                    break
        if not tokens:
            return empty_proposal(self.vocab, self.device, stop)
        x = torch.tensor(tokens, device=self.device)
        q = torch.nn.functional.one_hot(x, self.vocab).float()
        proposal = Proposal(x=x, q=q, stop=stop, confidences=(1.0,) * len(tokens) if policy.reads_draft else ())
        proposal.tokens = tokens  # already on the host
        return proposal

    def rollback(self, ids: list[int]) -> None:
        pass
