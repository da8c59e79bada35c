"""Headline metrics over trace tables (team notes §2 vocabulary). Warm-up requests are always excluded."""

from __future__ import annotations

import numpy as np
import pandas as pd


def measured_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """Requests that count in summaries: warm-ups dropped."""
    return requests[~requests["warmup"].astype(bool)]


def speculative_steps(steps: pd.DataFrame, requests: pd.DataFrame | None = None) -> pd.DataFrame:
    """Drafting steps (step ≥ 1, gamma > 0), from measured requests only when ``requests`` is given."""
    out = steps[(steps["step"] >= 1) & (steps["gamma"] > 0)]
    if requests is not None:
        out = out[out["request_id"].isin(measured_requests(requests)["request_id"])]
    return out


def acceptance_rate(steps: pd.DataFrame) -> float:
    """Pooled acceptance rate Σn / Σγ over drafting steps (token-weighted)."""
    s = speculative_steps(steps)
    return float(s["n_accepted"].sum() / s["gamma"].sum()) if len(s) else float("nan")


def tokens_per_step(steps: pd.DataFrame) -> float:
    """τ = mean(n + 1) over drafting steps: tokens per target call if no stop cut the step (1.0 = plain decoding)."""
    s = speculative_steps(steps)
    return float((s["n_accepted"] + 1).mean()) if len(s) else float("nan")


def speedup_table(requests: pd.DataFrame) -> pd.DataFrame:
    """Per (gamma, temperature): median ms/token of speculative and baseline and the measured speedup.

    speedup = median over prompts of (baseline ms/token ÷ speculative ms/token), both measured in the same run on
    the same prompt; ``speedup_of_medians`` is the ratio of the two medians, for reference.
    """
    req = measured_requests(requests)
    base = req[req["mode"] == "baseline"].set_index(["prompt_id", "temperature"])["ms_per_token"]
    spec = req[req["mode"] == "speculative"]
    rows = []
    for (gamma, temp), group in spec.groupby(["gamma", "temperature"]):
        key = list(zip(group["prompt_id"], group["temperature"]))
        paired = base.reindex(key).to_numpy()
        ratio = paired / group["ms_per_token"].to_numpy()
        base_med = float(np.nanmedian(paired)) if np.isfinite(paired).any() else float("nan")
        rows.append({
            "gamma": int(gamma), "temperature": float(temp), "requests": len(group),
            "spec_ms_per_token": float(group["ms_per_token"].median()), "base_ms_per_token": base_med,
            "speedup": float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else float("nan"),
            "speedup_of_medians": base_med / float(group["ms_per_token"].median()),
        })
    return pd.DataFrame(rows)


def summary_table(requests: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """One row per (gamma, temperature) of speculative requests: acceptance, τ and, with a baseline, speedup."""
    req = measured_requests(requests)
    spec = req[req["mode"] == "speculative"]
    rows = []
    for (gamma, temp), group in spec.groupby(["gamma", "temperature"]):
        s = steps[steps["request_id"].isin(group["request_id"])]
        rows.append({"gamma": int(gamma), "temperature": float(temp), "requests": len(group),
                     "acceptance_rate": acceptance_rate(s), "tokens_per_step": tokens_per_step(s),
                     "spec_ms_per_token": float(group["ms_per_token"].median())})
    table = pd.DataFrame(rows, columns=["gamma", "temperature", "requests", "acceptance_rate", "tokens_per_step",
                                        "spec_ms_per_token"])
    speed = speedup_table(requests)
    if len(speed) and speed["base_ms_per_token"].notna().any():
        table = table.merge(speed[["gamma", "temperature", "base_ms_per_token", "speedup"]],
                            on=["gamma", "temperature"], how="left")
    return table
