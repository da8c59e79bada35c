"""Latency analysis: where the time of a step goes, what verification costs as a function of k, and the costs
(T_d, T_t(k), c, overhead) that the speedup model needs.

Pure functions over the trace tables of docs/TRACE.md returning DataFrames (``cost_model`` a dict). Decode steps
are steps ≥ 1 of measured (non-warm-up) requests; step 0 (prefill) is reported separately as TTFT. A speculative
step's target forward covers k = γ + 1 tokens; a baseline step's covers k = 1. Costs use *means* over steps (not
medians) so that the per-phase terms add up exactly to the measured decode time (see ``speedup.gap_attribution``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.analysis import metrics

PHASES = ("draft_ms", "verify_ms", "other_ms")


def decode_steps(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Steps ≥ 1 of measured requests, with mode, temperature, category and config_gamma (the request's γ) attached,
    and derived columns
    ``k`` (tokens in the target forward: γ + 1, or 1 for baseline), ``step_ms`` (sum of the phases) and
    ``ms_per_token`` (step_ms / n_emitted: the latency each token of the step waited for)."""
    req = metrics.measured_requests(requests)[["request_id", "mode", "temperature", "category", "gamma"]]
    s = steps[steps["step"] >= 1].merge(req.rename(columns={"gamma": "config_gamma"}), on="request_id", how="inner")
    s["k"] = np.where(s["mode"] == "speculative", s["gamma"] + 1, 1)
    s["step_ms"] = s[list(PHASES)].sum(axis=1)
    s["ms_per_token"] = s["step_ms"] / s["n_emitted"].where(s["n_emitted"] > 0)
    return s


def phase_breakdown(steps: pd.DataFrame, requests: pd.DataFrame, by=("mode", "gamma")) -> pd.DataFrame:
    """Per group (default mode × γ; e.g. by="request_id" per request): mean ms per step of each phase, their
    share of the step, and decode ms per emitted token split by phase (phase ms summed ÷ tokens emitted)."""
    by = [by] if isinstance(by, str) else list(by)
    s = decode_steps(steps, requests)
    s["gamma"] = s["config_gamma"]          # group by the request's γ, not a shortened last step's
    g = s.groupby(by)
    out = g[list(PHASES)].mean()
    out.insert(0, "steps", g.size())
    out["tokens"] = g["n_emitted"].sum()
    out["step_ms"] = out[list(PHASES)].sum(axis=1)
    for ph in PHASES:
        name = ph.removesuffix("_ms")
        out[f"{name}_share"] = out[ph] / out["step_ms"]
        out[f"{name}_ms_per_token"] = g[ph].sum() / out["tokens"]
    out["ms_per_token"] = g["step_ms"].sum() / out["tokens"]
    return out.reset_index()


def verify_cost(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """T_t(k): verify time per target forward vs k (tokens in the forward), over decode steps of all modes.

    A γ sweep gives one k per γ (k = γ + 1) and baseline steps give k = 1. Columns: k, steps, mean, median,
    p10, p90 (ms), ratio = mean / mean at k = 1 (NaN without baseline steps).
    """
    s = decode_steps(steps, requests)
    g = s.groupby("k")["verify_ms"]
    out = pd.DataFrame({"steps": g.size(), "mean": g.mean(), "median": g.median(),
                        "p10": g.quantile(0.1), "p90": g.quantile(0.9)}).reset_index()
    t1 = out.loc[out["k"] == 1, "mean"]
    out["ratio"] = out["mean"] / (float(t1.iloc[0]) if len(t1) else np.nan)
    return out


def fit_verify_cost(verify: pd.DataFrame) -> tuple[float, float]:
    """Least-squares line T_t(k) = a + b·k through the per-k means of ``verify_cost`` (each k weighted equally,
    so the many baseline steps do not dominate). With a single k the slope is 0 and a is that mean."""
    if len(verify) == 0:
        return float("nan"), float("nan")
    if len(verify) == 1:
        return float(verify["mean"].iloc[0]), 0.0
    b, a = np.polyfit(verify["k"].to_numpy(float), verify["mean"].to_numpy(float), 1)
    return float(a), float(b)


def cost_model(steps: pd.DataFrame, requests: pd.DataFrame) -> dict:
    """The measured costs the speedup model needs, in ms (means over decode steps):

    t1 = T_t(1) (baseline verify; the fitted a + b when the run has no baseline), t_d = T_d = Σ draft_ms / Σ γ,
    c = t_d / t1, a / b = fitted verify line, o_spec / o_base = other_ms per speculative / baseline step (o_base 0
    without baseline), and has_baseline.
    """
    s = decode_steps(steps, requests)
    spec, base = s[s["mode"] == "speculative"], s[s["mode"] == "baseline"]
    a, b = fit_verify_cost(verify_cost(steps, requests))
    t1 = float(base["verify_ms"].mean()) if len(base) else a + b
    t_d = float(spec["draft_ms"].sum() / spec["gamma"].sum()) if len(spec) else float("nan")
    return {"t1": t1, "t_d": t_d, "c": t_d / t1, "a": a, "b": b,
            "o_spec": float(spec["other_ms"].mean()) if len(spec) else float("nan"),
            "o_base": float(base["other_ms"].mean()) if len(base) else 0.0, "has_baseline": bool(len(base))}


def token_latency(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Per-token latency of decode steps: one row per step with request_id, mode, gamma, temperature, step_ms,
    n_emitted and ms_per_token (all tokens of a speculative step arrive together at its end). Weight by
    n_emitted for a per-token (rather than per-step) distribution."""
    s = decode_steps(steps, requests)
    return s[["request_id", "mode", "gamma", "temperature", "step", "step_ms", "n_emitted", "ms_per_token"]]


def ttft(requests: pd.DataFrame) -> pd.DataFrame:
    """Time to first token per measured request (request_id, mode, gamma, temperature, ttft_ms, prefill_ms)."""
    req = metrics.measured_requests(requests)
    return req[["request_id", "mode", "gamma", "temperature", "ttft_ms", "prefill_ms"]].reset_index(drop=True)


def timeline(steps: pd.DataFrame, request_id: str) -> pd.DataFrame:
    """Gantt rows of one request: for each step its phases in order draft → verify → other, laid end to end from
    the step's t_start_ms. Columns: step, phase (draft / verify / other), start_ms, duration_ms, end_ms,
    n_accepted, gamma. Step 0 is the prefill (its draft phase is the draft's prompt prefill)."""
    s = steps[steps["request_id"] == request_id].sort_values("step")
    rows = []
    for r in s.itertuples(index=False):
        t = r.t_start_ms
        for ph in PHASES:
            dur = float(getattr(r, ph))
            rows.append({"step": r.step, "phase": ph.removesuffix("_ms"), "start_ms": t, "duration_ms": dur,
                         "end_ms": t + dur, "n_accepted": r.n_accepted, "gamma": r.gamma})
            t += dur
    return pd.DataFrame(rows, columns=["step", "phase", "start_ms", "duration_ms", "end_ms", "n_accepted",
                                       "gamma"])
