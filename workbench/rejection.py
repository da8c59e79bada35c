"""The acceptance rule of speculative decoding (Leviathan et al. 2023, Algorithm 1).

Given drafted tokens x_1..x_γ with draft distributions q_1..q_γ and target distributions p_1..p_{γ+1}:
accept x_i with probability min(1, p_i(x_i) / q_i(x_i)); at the first rejection draw a correction from
norm(max(0, p_i − q_i)); if all γ are accepted draw a bonus token from p_{γ+1}. The output is then distributed exactly
as the target's. Greedy decoding uses the deterministic limit: accept iff x_i = argmax p_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.sampling import SamplingConfig, choose


@dataclass(frozen=True)
class Verdict:
    n: int  # drafts accepted, 0..γ
    token: int  # the token the target adds: a correction (n < γ) or a bonus (n = γ)

    def role(self, gamma: int) -> str:
        """target (nothing was drafted), bonus (all γ accepted) or correction (a draft was rejected)."""
        if gamma == 0:
            return "target"
        return "bonus" if self.n == gamma else "correction"


def leading_true(flags: list[bool]) -> int:
    """Length of the run of True at the start of ``flags``."""
    for i, flag in enumerate(flags):
        if not flag:
            return i
    return len(flags)


def acceptance_probability(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """α = E_{x~q}[min(1, p(x)/q(x))] = Σ_x min(p(x), q(x)) = 1 − TV(p, q), per position (last dimension): the
    chance that the rule below accepts a draft from q (the trace's ``alpha_tv``)."""
    return torch.minimum(p, q).sum(dim=-1)


def residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """norm(max(0, p − q)): where to draw the correction after a rejection (falls back to p if p ≤ q everywhere)."""
    diff = torch.clamp(p - q, min=0.0)
    total = diff.sum()
    return diff / total if total > 0 else p


def accept_greedy(x: torch.Tensor, p: torch.Tensor) -> Verdict:
    """Greedy rule: accept while x_i equals the target's argmax; the target's argmax at n+1 is the next token."""
    gamma = x.shape[0]
    choice = p.argmax(dim=-1)
    read = torch.cat([choice, (x == choice[:gamma]).long()]).tolist()  # γ+1 ids and γ matches: one host transfer
    n = leading_true(read[gamma + 1:])
    return Verdict(n=n, token=read[n])


def accept_sampling(x: torch.Tensor, p: torch.Tensor, q: torch.Tensor, generator: torch.Generator) -> Verdict:
    """Rejection sampling: x [γ], p [γ+1, V] (target), q [γ, V] (draft), all on one device."""
    gamma = x.shape[0]
    rows = torch.arange(gamma, device=x.device)
    p_x, q_x = p[rows, x], q[rows, x]
    u = torch.rand(gamma, generator=generator, device=x.device)
    n = leading_true((u * q_x < p_x).tolist())  # u < p/q  ⇔  accept with probability min(1, p/q)
    final = p[gamma] if n == gamma else residual(p[n], q[n])
    return Verdict(n=n, token=int(choose(final, SamplingConfig(temperature=1.0), generator)))


def accept(x: torch.Tensor, p: torch.Tensor, q: torch.Tensor, sampling: SamplingConfig,
           generator: torch.Generator) -> Verdict:
    """Apply the rule that matches the sampling settings (p and q already carry temperature/top-k/top-p)."""
    return accept_greedy(x, p) if sampling.greedy else accept_sampling(x, p, q, generator)
