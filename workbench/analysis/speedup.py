"""Predicted vs measured speedup: the gap attributed term by term, and the γ that the model says is best.

The model (team notes §2, ``theory.predicted_speedup``) in ms, with the costs of ``latency.cost_model``:

    speedup(α, γ) = E(α, γ) · (T_t(1) + O_b) / (γ·T_d + T_t(γ+1) + O_s)

O_s / O_b = "other" time per speculative / baseline step (sampling, acceptance, rollback). Baseline decoding pays
O_b per token too, which is why it appears in the numerator. With means over steps the chain in
``gap_attribution`` ends *exactly* at the decode-only measured speedup; the last stage (per-prompt median of
whole-request ms/token, prefill included: ``metrics.speedup_table``) is what users experience.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.analysis import acceptance, latency, metrics, theory
from workbench.trace import Trace

# Stage names of the gap attribution, in order; each adds one real-world term to the one before.
STAGES = ("ideal E/(γc+1)", "real verify cost T_t(γ+1)", "speculative overhead O_s", "baseline overhead O_b",
          "real acceptance τ (vs E)", "measured (per-prompt, with prefill)")


def model_speedup(alpha, gamma, costs: dict):
    """Full-model speedup for α and γ (scalars or arrays) with verify cost from the fitted line a + b·k."""
    gamma = np.asarray(gamma, dtype=float)
    t1 = costs["t1"]
    verify_ratio = (costs["a"] + costs["b"] * (gamma + 1)) / t1
    base = theory.predicted_speedup(alpha, gamma, costs["c"], verify_ratio, costs["o_spec"] / t1)
    return base * (t1 + costs["o_base"]) / t1


def gamma_curve(alpha: float, costs: dict, max_gamma: int = 16) -> pd.DataFrame:
    """Predicted speedup for γ = 1..max_gamma (columns gamma, predicted, optimal: the argmax row)."""
    g = np.arange(1, max_gamma + 1)
    pred = model_speedup(alpha, g, costs)
    return pd.DataFrame({"gamma": g, "predicted": pred, "optimal": g == g[int(np.nanargmax(pred))]})


def optimal_gamma(alpha: float, costs: dict, max_gamma: int = 16) -> int:
    """argmax over γ = 1..max_gamma of the predicted speedup with measured α and costs."""
    curve = gamma_curve(alpha, costs, max_gamma)
    return int(curve.loc[curve["optimal"], "gamma"].iloc[0])


def _chain(alpha, gamma, t1, o_base, spec: pd.DataFrame, measured: float) -> list[float]:
    """Speedup after each stage of STAGES for one γ, from that γ's speculative decode steps."""
    t_d = spec["draft_ms"].sum() / spec["gamma"].sum()
    c, r, o = t_d / t1, spec["verify_ms"].mean() / t1, spec["other_ms"].mean() / t1
    e = float(theory.expected_tokens(alpha, gamma))
    tau = spec["n_emitted"].mean()                       # tokens actually emitted per step (stops included)
    s1 = float(theory.predicted_speedup(alpha, gamma, c))
    s2 = float(theory.predicted_speedup(alpha, gamma, c, r))
    s3 = float(theory.predicted_speedup(alpha, gamma, c, r, o))
    s4 = s3 * (t1 + o_base) / t1
    return [s1, s2, s3, s4, s4 * tau / e, measured]


def gap_attribution(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Per (γ, temperature): speedup after each stage of STAGES and the change each stage contributes.

    α is that γ's alpha_mle; T_t(1) and O_b come from the baseline steps at the same temperature (all baseline
    steps when that temperature has none). Long format: gamma, temperature, stage_index, stage, speedup, delta
    (vs the previous stage; the first stage's delta is its value). Empty without baseline steps.
    """
    s = latency.decode_steps(steps, requests)
    base_all = s[s["mode"] == "baseline"]
    measured = metrics.speedup_table(requests).set_index(["gamma", "temperature"])["speedup"]
    alphas = acceptance.acceptance_by(steps, None, requests, ["gamma", "temperature"])
    rows = []
    for a in alphas.itertuples(index=False):
        base = base_all[base_all["temperature"] == a.temperature]
        base = base if len(base) else base_all
        if not len(base):
            continue
        spec = s[(s["mode"] == "speculative") & (s["config_gamma"] == a.gamma) & (s["temperature"] == a.temperature)]
        meas = float(measured.get((a.gamma, a.temperature), np.nan))
        chain = _chain(a.alpha_mle, a.gamma, base["verify_ms"].mean(), base["other_ms"].mean(), spec, meas)
        for i, (stage, value) in enumerate(zip(STAGES, chain)):
            rows.append({"gamma": int(a.gamma), "temperature": float(a.temperature), "stage_index": i,
                         "stage": stage, "speedup": value, "delta": value - (chain[i - 1] if i else 0.0)})
    return pd.DataFrame(rows, columns=["gamma", "temperature", "stage_index", "stage", "speedup", "delta"])


def combine(traces: list[Trace]) -> Trace:
    """Concatenate several runs (run_id tells them apart); meta becomes {"runs": [meta, ...]}."""
    cat = lambda name: pd.concat([getattr(t, name) for t in traces], ignore_index=True)  # noqa: E731
    return Trace(meta={"runs": [t.meta for t in traces]}, requests=cat("requests"), steps=cat("steps"),
                 tokens=cat("tokens"))


def _groups(trace: Trace):
    """Yield (run_id, temperature, requests, steps) per run × temperature of a (combined) trace."""
    req = metrics.measured_requests(trace.requests)
    for (run_id, temp), r in req.groupby(["run_id", "temperature"]):
        yield run_id, float(temp), r, trace.steps[trace.steps["request_id"].isin(r["request_id"])
                                                  & (trace.steps["run_id"] == run_id)]


def _fit(steps: pd.DataFrame, requests: pd.DataFrame) -> tuple[float, dict]:
    """α pooled over a group's γs (alpha_mle) and its measured costs (``latency.cost_model``)."""
    alpha = float(acceptance.acceptance_by(steps, None, requests)["alpha_mle"].iloc[0])
    return alpha, latency.cost_model(steps, requests)


def sweep_table(trace: Trace) -> pd.DataFrame:
    """Per run × temperature × γ: measured speedup and the full-model prediction (α pooled over the run's γs,
    costs from ``latency.cost_model`` of the run), plus that γ's acceptance rate and alpha_mle."""
    rows = []
    for run_id, temp, req, st in _groups(trace):
        alpha, costs = _fit(st, req)
        measured = metrics.speedup_table(req).set_index("gamma")["speedup"]
        per_g = acceptance.acceptance_by(st, None, req, "gamma")
        for a in per_g.itertuples(index=False):
            rows.append({"run_id": run_id, "temperature": temp, "gamma": int(a.gamma),
                         "acceptance_rate": a.acceptance_rate, "alpha_mle": a.alpha_mle,
                         "measured": float(measured.get(a.gamma, np.nan)),
                         "predicted": float(model_speedup(alpha, a.gamma, costs))})
    return pd.DataFrame(rows, columns=["run_id", "temperature", "gamma", "acceptance_rate", "alpha_mle",
                                       "measured", "predicted"])


def tuning_table(trace: Trace, max_gamma: int = 16) -> pd.DataFrame:
    """Per run × temperature: pooled α (alpha_mle), the costs, the predicted-optimal γ (1..max_gamma) with its
    predicted speedup, and the best measured γ with its measured speedup."""
    sweep = sweep_table(trace)
    rows = []
    for run_id, temp, req, st in _groups(trace):
        alpha, costs = _fit(st, req)
        curve = gamma_curve(alpha, costs, max_gamma)
        best = curve[curve["optimal"]].iloc[0]
        meas = sweep[(sweep["run_id"] == run_id) & (sweep["temperature"] == temp)].dropna(subset=["measured"])
        top = meas.loc[meas["measured"].idxmax()] if len(meas) else None
        rows.append({"run_id": run_id, "temperature": temp, "alpha": alpha, **costs,
                     "optimal_gamma": int(best["gamma"]), "optimal_predicted": float(best["predicted"]),
                     "best_measured_gamma": int(top["gamma"]) if top is not None else np.nan,
                     "best_measured": float(top["measured"]) if top is not None else np.nan})
    return pd.DataFrame(rows)
