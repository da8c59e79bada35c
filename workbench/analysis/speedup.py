"""Measured speedup, the predictions beside it, the gap attributed term by term, and the γ the model prefers.

Predictions use the measured costs (``latency.CostModel``) and one of two acceptance models, both fitted once per
run × drafter × temperature (``fit``): the i.i.d. α (Leviathan) and per-position acceptance a_i, which follows the
bursts real drafts show. docs/SPEEDUP_MODEL.md states the model; docs/REPORTS.md how to read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.analysis import acceptance, frames, latency, theory
from workbench.trace import Trace

# Stage names of the gap attribution, in order; each adds one real-world term to the one before.
STAGES = ("ideal E/(γc+1)", "real verify cost T_t(γ+1)", "speculative overhead O_s", "baseline overhead O_b",
          "real acceptance τ (vs E)", "measured (per-prompt, with prefill)")


def speedup_table(requests: pd.DataFrame) -> pd.DataFrame:
    """Per drafter × policy × temperature: median ms/token of speculative and baseline and the measured speedup
    = median over prompts of (baseline ms/token ÷ speculative ms/token), both measured in the same run on the same
    prompt; ``speedup_of_medians`` is the ratio of the two medians, for reference."""
    req = frames.measured_requests(requests)
    base = req[req["mode"] == "baseline"].set_index(["prompt_id", "temperature"])["ms_per_token"]
    rows = []
    for (drafter, policy, temp), group in req[req["mode"] == "speculative"].groupby(frames.SETTING):
        paired = base.reindex(list(zip(group["prompt_id"], group["temperature"]))).to_numpy()
        ratio = paired / group["ms_per_token"].to_numpy()
        base_med = float(np.nanmedian(paired)) if np.isfinite(paired).any() else float("nan")
        spec_med = float(group["ms_per_token"].median())
        rows.append({"drafter": drafter, "policy": policy, "temperature": float(temp), "requests": len(group),
                     "spec_ms_per_token": spec_med, "base_ms_per_token": base_med,
                     "speedup": float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else float("nan"),
                     "speedup_of_medians": base_med / spec_med})
    return pd.DataFrame(rows, columns=["drafter", "policy", "temperature", "requests", "spec_ms_per_token",
                                       "base_ms_per_token", "speedup", "speedup_of_medians"])


@dataclass(frozen=True)
class Fit:
    """What the predictions of one run × drafter × temperature are built from (fitted once)."""

    run_id: str
    drafter: str
    temperature: float
    alpha: float  # pooled alpha_mle over the constant-γ steps (all steps when there are none)
    positions: np.ndarray  # a_i = P(drafts 1..i accepted), i = 1..max γ observed, constant-γ steps
    costs: latency.CostModel

    def a(self, max_gamma: int) -> np.ndarray:
        """a_1..a_max_gamma, extrapolated past the longest observed draft with the last conditional ratio."""
        a = list(self.positions[:max_gamma])
        ratio = min(1.0, a[-1] / a[-2]) if len(a) > 1 and a[-2] > 0 else self.alpha
        while len(a) < max_gamma:
            a.append(a[-1] * ratio)
        return np.asarray(a)

    def expected(self, gamma, model: str = "position"):
        """Expected tokens per step at γ under the ``position`` or ``iid`` acceptance model."""
        if model == "iid":
            return theory.expected_tokens(self.alpha, gamma)
        return theory.expected_tokens_by_position(self.a(int(np.max(gamma))), gamma)


def request_speedup(expected, gamma, costs: latency.CostModel):
    """Predicted whole-request speedup (what ``speedup_table`` measures): T new tokens, the first from the
    prefill, the other T − 1 from steps of E tokens each, against baseline steps of one token each."""
    more = costs.new_tokens - 1.0
    spec = costs.prefill_spec + more / np.asarray(expected) * costs.spec_step_ms(gamma)
    return (costs.prefill_base + more * costs.base_token_ms) / spec


def groups(trace: Trace):
    """Yield (run_id, drafter, temperature, requests, steps) per run × drafter × temperature of a (combined)
    trace; requests include the run's baseline requests at that temperature."""
    req = frames.measured_requests(trace.requests)
    for (run_id, temp), r in req.groupby(["run_id", "temperature"]):
        steps = trace.steps[trace.steps["run_id"] == run_id]
        for drafter in sorted(set(r["drafter"]) - {""}):
            mine = r[(r["drafter"] == drafter) | (r["mode"] == "baseline")]
            yield run_id, drafter, float(temp), mine, steps[steps["request_id"].isin(mine["request_id"])]


def fit(run_id: str, drafter: str, temperature: float, requests: pd.DataFrame, steps: pd.DataFrame) -> Fit:
    pos = acceptance.position_acceptance(steps, requests, constant_only=True)
    if not len(pos) or not pos["proposed"].sum():
        pos = acceptance.position_acceptance(steps, requests)
    return Fit(run_id=run_id, drafter=drafter, temperature=temperature, alpha=float(pos["alpha"].iloc[0]),
               positions=pos["a"].fillna(0).to_numpy(), costs=latency.cost_model(steps, requests, drafter))


def fits(trace: Trace) -> list[Fit]:
    return [fit(*g) for g in groups(trace)]


def sweep_table(trace: Trace, fitted: list[Fit] | None = None) -> pd.DataFrame:
    """Per run × drafter × temperature × constant γ: the measured speedup beside both predictions (i.i.d. α and
    per-position), plus that γ's acceptance rate and alpha_mle."""
    fitted = fitted if fitted is not None else fits(trace)
    rows = []
    for f in fitted:
        req = trace.requests[(trace.requests["run_id"] == f.run_id) & (trace.requests["temperature"] == f.temperature)]
        measured = speedup_table(req)
        measured = measured[measured["drafter"] == f.drafter].set_index("policy")["speedup"]
        steps = trace.steps[trace.steps["run_id"] == f.run_id]
        per = acceptance.acceptance_by(steps, None, req[req["drafter"] == f.drafter], "policy")
        per = per.assign(gamma=frames.policy_gamma(per["policy"])).dropna(subset=["gamma"])
        for a in per.itertuples(index=False):
            g = int(a.gamma)
            rows.append({"run_id": f.run_id, "drafter": f.drafter, "temperature": f.temperature, "gamma": g,
                         "acceptance_rate": a.acceptance_rate, "alpha_mle": a.alpha_mle,
                         "measured": float(measured.get(a.policy, np.nan)),
                         "predicted_iid": float(request_speedup(f.expected(g, "iid"), g, f.costs)),
                         "predicted_position": float(request_speedup(f.expected(g), g, f.costs))})
    cols = ["run_id", "drafter", "temperature", "gamma", "acceptance_rate", "alpha_mle", "measured",
            "predicted_iid", "predicted_position"]
    return pd.DataFrame(rows, columns=cols).sort_values(["run_id", "drafter", "temperature", "gamma"])


def gamma_curve(f: Fit, max_gamma: int = 16) -> pd.DataFrame:
    """Predicted speedup for γ = 1..max_gamma under both models; ``optimal`` marks the per-position argmax."""
    g = np.arange(1, max_gamma + 1)
    pos = request_speedup(f.expected(g), g, f.costs)
    return pd.DataFrame({"gamma": g, "predicted_iid": request_speedup(f.expected(g, "iid"), g, f.costs),
                         "predicted_position": pos, "optimal": g == g[int(np.nanargmax(pos))]})


def tuning_table(trace: Trace, max_gamma: int = 16, fitted: list[Fit] | None = None,
                 sweep: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per run × drafter × temperature: α, the costs, the predicted-optimal constant γ (per-position model,
    1..max_gamma) with its predicted speedup, and the best measured constant γ with its measured speedup."""
    fitted = fitted if fitted is not None else fits(trace)
    sweep = sweep if sweep is not None else sweep_table(trace, fitted)
    rows = []
    for f in fitted:
        curve = gamma_curve(f, max_gamma)
        best = curve[curve["optimal"]].iloc[0]
        meas = sweep[(sweep["run_id"] == f.run_id) & (sweep["drafter"] == f.drafter)
                     & (sweep["temperature"] == f.temperature)].dropna(subset=["measured"])
        top = meas.loc[meas["measured"].idxmax()] if len(meas) else None
        rows.append({"run_id": f.run_id, "drafter": f.drafter, "temperature": f.temperature, "alpha": f.alpha,
                     **f.costs.as_dict(), "optimal_gamma": int(best["gamma"]),
                     "optimal_predicted": float(best["predicted_position"]),
                     "best_measured_gamma": int(top["gamma"]) if top is not None else np.nan,
                     "best_measured": float(top["measured"]) if top is not None else np.nan})
    return pd.DataFrame(rows)


def _chain(alpha: float, gamma: int, costs: latency.CostModel, spec: pd.DataFrame, measured: float) -> list[float]:
    """Speedup after each stage of STAGES for one γ, from that γ's speculative decode steps."""
    t1 = costs.t1
    verify, other = spec["verify_ms"].mean() / t1, spec["other_ms"].mean() / t1
    e = float(theory.expected_tokens(alpha, gamma))
    s1 = float(theory.predicted_speedup(alpha, gamma, costs.c))
    s2 = float(theory.predicted_speedup(alpha, gamma, costs.c, verify))
    s3 = float(theory.predicted_speedup(alpha, gamma, costs.c, verify, other))
    s4 = s3 * costs.base_token_ms / t1
    return [s1, s2, s3, s4, s4 * spec["n_emitted"].mean() / e, measured]


def gap_attribution(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Per drafter × constant γ × temperature: speedup after each stage of STAGES and the change each contributes.

    α is that γ's alpha_mle; T_t(1) and O_b come from the baseline steps at the same temperature. Long format:
    drafter, gamma, temperature, stage_index, stage, speedup, delta (vs the previous stage). Empty without a
    baseline.
    """
    s = frames.constant_steps(steps, requests)
    measured = speedup_table(requests).set_index(frames.SETTING)["speedup"]
    rows = []
    for (drafter, policy, temp), spec in s.groupby(frames.SETTING):
        req = requests[(requests["temperature"] == temp) & requests["drafter"].isin([drafter, ""])]
        costs = latency.cost_model(steps, req, drafter)
        if not costs.has_baseline:
            continue
        gamma = int(spec["policy_gamma"].iloc[0])
        alpha = spec["n_accepted"].sum() / spec["judged"].sum()
        chain = _chain(alpha, gamma, costs, spec, float(measured.get((drafter, policy, temp), np.nan)))
        for i, (stage, value) in enumerate(zip(STAGES, chain)):
            rows.append({"drafter": drafter, "gamma": gamma, "temperature": float(temp), "stage_index": i,
                         "stage": stage, "speedup": value, "delta": value - (chain[i - 1] if i else 0.0)})
    return pd.DataFrame(rows, columns=["drafter", "gamma", "temperature", "stage_index", "stage", "speedup",
                                       "delta"])


def combine(traces: list[Trace]) -> Trace:
    """Concatenate several runs (run_id tells them apart); meta becomes {"runs": [meta, ...]}."""
    def cat(name: str) -> pd.DataFrame | None:
        parts = [getattr(t, name) for t in traces if getattr(t, name) is not None]
        return pd.concat(parts, ignore_index=True) if parts else None

    return Trace(meta={"runs": [t.meta for t in traces]}, requests=cat("requests"), steps=cat("steps"),
                 tokens=cat("tokens"), forced=cat("forced"))
