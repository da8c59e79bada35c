"""Leviathan et al. (2023) model of speculative decoding, shown beside every measurement to explain it.

alpha = per-token acceptance probability (assumed i.i.d.), gamma = draft length, c = T_d / T_t(1).
"""

from __future__ import annotations

import numpy as np


def expected_tokens(alpha, gamma):
    """E(α, γ) = (1 − α^(γ+1)) / (1 − α): expected tokens per target call (→ γ + 1 as α → 1)."""
    alpha = np.asarray(alpha, dtype=float)
    gamma = np.asarray(gamma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = (1.0 - alpha ** (gamma + 1.0)) / (1.0 - alpha)
    return np.where(np.isclose(alpha, 1.0), gamma + 1.0, e)


def predicted_speedup(alpha, gamma, c, verify_ratio=1.0, overhead_ratio=0.0):
    """Predicted speedup over target-only decoding.

    General form (team notes §2): E(α, γ) · T_t(1) / (γ·T_d + T_t(γ+1) + overhead), written in units of T_t(1):
    c = T_d / T_t(1), verify_ratio = T_t(γ+1) / T_t(1), overhead_ratio = per-step overhead / T_t(1).
    With verify_ratio = 1 and overhead 0 this is Leviathan's E / (γc + 1).
    """
    gamma = np.asarray(gamma, dtype=float)
    return expected_tokens(alpha, gamma) / (gamma * np.asarray(c) + np.asarray(verify_ratio) + overhead_ratio)


def truncated_geometric_pmf(alpha: float, gamma: int) -> np.ndarray:
    """P(n = k), k = 0..γ, for accepted drafts per step under i.i.d. acceptance α (k = γ takes the tail α^γ)."""
    k = np.arange(gamma + 1)
    pmf = (alpha ** k) * (1.0 - alpha)
    pmf[-1] = alpha ** gamma
    return pmf
