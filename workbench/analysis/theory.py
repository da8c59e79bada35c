"""The speculative decoding speedup model (Leviathan et al. 2023, generalised; docs/SPEEDUP_MODEL.md), shown beside
every measurement to explain it — a prediction, never a substitute for one.

alpha = per-token acceptance probability, gamma = draft length, c = T_d / T_t(1).
"""

from __future__ import annotations

import numpy as np


def expected_tokens(alpha, gamma):
    """E(α, γ) = (1 − α^(γ+1)) / (1 − α): expected tokens per target call if acceptances were i.i.d. (→ γ + 1 as
    α → 1)."""
    alpha = np.asarray(alpha, dtype=float)
    gamma = np.asarray(gamma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = (1.0 - alpha ** (gamma + 1.0)) / (1.0 - alpha)
    return np.where(np.isclose(alpha, 1.0), gamma + 1.0, e)


def expected_tokens_by_position(a, gamma):
    """E(γ) = 1 + Σ_{i ≤ γ} a_i from per-position acceptance a_i = P(drafts 1..i all accepted) (``a[0]`` is a_1);
    the i.i.d. model is the special case a_i = α^i. Bursty acceptance (a conditional that rises with i) is what
    this captures and E(α, γ) does not."""
    cum = np.concatenate([[1.0], 1.0 + np.cumsum(np.asarray(a, dtype=float))])
    return cum[np.minimum(np.asarray(gamma, dtype=int), len(cum) - 1)]


def predicted_speedup(alpha, gamma, c, verify_ratio=1.0, overhead_ratio=0.0):
    """Predicted speedup over target-only decoding, in units of T_t(1):
    E(α, γ) / (γ·c + T_t(γ+1)/T_t(1) + overhead/T_t(1)). With verify_ratio = 1 and no overhead this is Leviathan's
    E / (γc + 1)."""
    gamma = np.asarray(gamma, dtype=float)
    return expected_tokens(alpha, gamma) / (gamma * np.asarray(c) + np.asarray(verify_ratio) + overhead_ratio)


def truncated_geometric_pmf(alpha: float, gamma: int) -> np.ndarray:
    """P(n = k), k = 0..γ, for accepted drafts per step under i.i.d. acceptance α (k = γ takes the tail α^γ)."""
    k = np.arange(gamma + 1)
    pmf = (alpha ** k) * (1.0 - alpha)
    pmf[-1] = alpha ** gamma
    return pmf
