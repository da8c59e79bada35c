"""How sure a measured speedup is: a percentile bootstrap over prompts.

A setting's measured speedup is the median over prompts of (baseline ms/token ÷ speculative ms/token), the two
measured on the same prompt in the same run (``speedup.speedup_table``). Drawing the prompts again with replacement
and taking the median again, many times, gives an interval (95 % by default) that holds the spread between prompts
and each pair's timing jitter. It cannot hold what moves between two runs on a shared machine: measure twice for that.

Two settings compared (a policy against the best constant γ) are redrawn together, prompt by prompt, so what all
settings share on a prompt cancels in their ratio and its interval is as narrow as the data allow.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pandas as pd

from workbench.analysis import frames

LEVEL = 0.95  # two-sided coverage of the intervals
RESAMPLES = 1000  # bootstrap draws: between seeds an end moves by ~2 % of the interval's width (9 % at most; 12
#                   settings × 40 prompts of a policy run, 6 seeds), and one call takes ~30 ms there (this project's
#                   2-core CPU)
CHUNK = 100  # draws medianed at once (bounds memory on traces with many prompts)


def prompt_ratios(requests: pd.DataFrame) -> pd.DataFrame:
    """Per-prompt speedup (baseline ms/token ÷ speculative ms/token, same run): one row per prompt, one column per
    setting (drafter, policy, temperature); the median of a prompt's requests where a setting ran it several times;
    NaN where a prompt lacks the setting or its baseline."""
    return frames.paired_speedups(requests).pivot_table(index="prompt_id", columns=frames.SETTING, values="speedup",
                                                       aggfunc="median")


def _medians(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples × settings) medians of ``values`` (prompts × settings) over prompts drawn with replacement, the
    same draw for every setting (paired)."""
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, resamples, CHUNK):
        rows = rng.integers(0, len(values), size=(min(CHUNK, resamples - start), len(values)))
        out.append(np.nanmedian(values[rows], axis=1))
    return np.concatenate(out)


def _bounds(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    tail = 100 * (1 - level) / 2
    return np.nanpercentile(draws, tail, axis=0), np.nanpercentile(draws, 100 - tail, axis=0)


def speedup_intervals(requests: pd.DataFrame, level: float = LEVEL, resamples: int = RESAMPLES,
                      seed: int = 0) -> pd.DataFrame:
    """Per setting: speedup_lo, speedup_hi, the bootstrap interval of the measured speedup (columns drafter, policy,
    temperature, speedup_lo, speedup_hi; empty without a baseline)."""
    ratios = prompt_ratios(requests)
    columns = [*frames.SETTING, "speedup_lo", "speedup_hi"]
    if ratios.empty or ratios.notna().sum().sum() == 0:
        return pd.DataFrame(columns=columns)
    with _quiet():
        lo, hi = _bounds(_medians(ratios.to_numpy(float), resamples, seed), level)
    out = pd.DataFrame(list(ratios.columns), columns=frames.SETTING).assign(speedup_lo=lo, speedup_hi=hi)
    return out[columns]


def against_best_constant(requests: pd.DataFrame, drafter: str, gammas: tuple[int, ...] | None = None,
                          level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Per policy of ``drafter`` (greedy and sampled settings apart): its measured speedup ÷ the best constant γ's
    (of ``gammas``; None = every constant γ measured), and the paired bootstrap interval of that ratio — the best
    constant chosen anew in every draw, as it would be on another draw of prompts. Columns: policy, temperature,
    vs_best_constant, vs_best_lo, vs_best_hi."""
    ratios = prompt_ratios(requests)
    rows = []
    for temp in sorted({t for d, _, t in ratios.columns if d == drafter}):
        mine = ratios[[c for c in ratios.columns if c[0] == drafter and c[2] == temp]]
        policies = [c[1] for c in mine.columns]
        gamma = frames.policy_gamma(pd.Series(policies))
        best = [i for i, g in enumerate(gamma) if g == g and (gammas is None or int(g) in gammas)]
        if not best:
            continue
        values = mine.to_numpy(float)
        with _quiet():
            point = np.nanmedian(values, axis=0)
            draws = _medians(values, resamples, seed)
            ratio = draws / np.nanmax(draws[:, best], axis=1, keepdims=True)
            lo, hi = _bounds(ratio, level)
        for i, policy in enumerate(policies):
            rows.append({"policy": policy, "temperature": temp, "vs_best_constant": point[i] / point[best].max(),
                         "vs_best_lo": lo[i], "vs_best_hi": hi[i]})
    return pd.DataFrame(rows, columns=["policy", "temperature", "vs_best_constant", "vs_best_lo", "vs_best_hi"])


@contextlib.contextmanager
def _quiet():
    """numpy's 'All-NaN slice' warnings (a draw that left a setting without prompts) are expected here."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
