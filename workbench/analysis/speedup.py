"""Measured speedup, the predictions beside it, the gap attributed term by term, and the γ the model prefers.

Predictions use the measured costs (``latency.CostModel``) and one of two acceptance models, both fitted once per
run × drafter × temperature (``fit``): the i.i.d. α (Leviathan) and per-position acceptance a_i, which follows the
bursts real drafts show. docs/SPEEDUP_MODEL.md states the model; docs/REPORTS.md how to read it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from workbench.analysis import acceptance, frames, intervals, latency, theory
from workbench.trace import Trace

# Stage names of the gap attribution, in order; each adds one real-world term to the one before.
STAGES = ("ideal E/(γc+1)", "real verify cost T_t(γ+1)", "speculative overhead O_s", "baseline overhead O_b",
          "real acceptance τ (vs E)", "measured (per-prompt, with prefill)")


def speedup_table(requests: pd.DataFrame) -> pd.DataFrame:
    """Per drafter × policy × temperature: median ms/token of speculative and baseline and the measured speedup
    = median over prompts of (baseline ms/token ÷ speculative ms/token), both measured in the same run on the same
    prompt; ``speedup_of_medians`` is the ratio of the two medians, for reference. ``requests`` counts the
    setting's measured requests, ``paired`` those with a baseline of their own (the speedup's sample)."""
    rows = []
    for (drafter, policy, temp), group in frames.paired_speedups(requests).groupby(frames.SETTING):
        base, ratio = group["base_ms_per_token"].to_numpy(), group["speedup"].to_numpy()
        base_med = float(np.nanmedian(base)) if np.isfinite(base).any() else float("nan")
        spec_med = float(group["ms_per_token"].median())
        rows.append({"drafter": drafter, "policy": policy, "temperature": float(temp), "requests": len(group),
                     "paired": int(np.isfinite(ratio).sum()),
                     "spec_ms_per_token": spec_med, "base_ms_per_token": base_med,
                     "speedup": float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else float("nan"),
                     "speedup_of_medians": base_med / spec_med})
    return pd.DataFrame(rows, columns=["drafter", "policy", "temperature", "requests", "paired", "spec_ms_per_token",
                                       "base_ms_per_token", "speedup", "speedup_of_medians"])


def extend(a, alpha: float, max_gamma: int, tail: float = float("nan")) -> np.ndarray:
    """a_1..a_max_gamma from the observed a_i, extrapolated past the longest observed draft G with ``tail``, the
    conditional #(n ≥ G) / #(n ≥ G − 1) over the steps that drafted G (α where there is none). Not a_G / a_{G−1}:
    those two rest on different steps (a budget-clipped step counts at G − 1 only)."""
    a = list(a[:max_gamma]) or [alpha]
    ratio = min(1.0, tail) if np.isfinite(tail) else alpha
    while len(a) < max_gamma:
        a.append(a[-1] * ratio)
    return np.asarray(a, dtype=float)


@dataclass(frozen=True)
class PromptFit:
    """One prompt's acceptance over the constant-γ steps of a drafter, its length and its measured baseline."""

    prompt_id: str
    tokens: int  # new tokens of its speculative requests (median)
    base_ms_per_token: float  # its baseline request in the same run (NaN if none)
    alpha: float  # accepted ÷ judged drafts
    positions: np.ndarray  # a_i = P(drafts 1..i accepted) over its steps that drafted ≥ i
    tail: float = float("nan")  # conditional acceptance at its longest draft G, extrapolated past G (``extend``)


@dataclass(frozen=True)
class Fit:
    """What the predictions of one run × drafter × temperature are built from (fitted once)."""

    run_id: str
    drafter: str
    temperature: float
    alpha: float  # pooled alpha_mle over the constant-γ steps (all steps when there are none)
    positions: np.ndarray  # a_i = P(drafts 1..i accepted), i = 1..max γ observed, constant-γ steps
    step: latency.StepCosts  # measured cost per k drafted, of policies that do not read drafts (constant γ)
    prompts: tuple[PromptFit, ...] = ()  # per prompt (constant-γ runs only): what ``predicted_speedup`` walks
    tail: float = float("nan")  # conditional acceptance at the longest draft, extrapolated past it (``extend``)

    @property
    def costs(self) -> latency.CostModel:
        """The drafter's measured costs (``latency.CostModel``)."""
        return self.step.costs

    def a(self, max_gamma: int) -> np.ndarray:
        """a_1..a_max_gamma, extrapolated past the longest observed draft with the last conditional ratio."""
        return extend(self.positions, self.alpha, max_gamma, self.tail)

    def expected(self, gamma, model: str = "position"):
        """Expected tokens per step at γ under the ``position`` or ``iid`` acceptance model."""
        if model == "iid":
            return theory.expected_tokens(self.alpha, gamma)
        return theory.expected_tokens_by_position(self.a(int(np.max(gamma))), gamma)


def request_speedup(expected, gamma, costs: latency.CostModel):
    """Steady-state whole-request speedup (the what-if sliders): T new tokens, the first from the prefill, the
    other T − 1 from steps of E tokens each at the line cost γ·T_d + T_t(γ+1) + O_s, against baseline steps of one
    token each. ``predicted_speedup`` is the model drawn beside measurements."""
    more = costs.new_tokens - 1.0
    spec = costs.prefill_spec + more / np.asarray(expected) * costs.spec_step_ms(gamma)
    return (costs.prefill_base + more * costs.base_token_ms) / spec


def request_ms(a, gamma: int, tokens: int, step: latency.StepCosts) -> float:
    """Expected decode time (ms after the prefill's token) of a request of ``tokens`` new tokens at constant γ.

    V(g) = C(k_g) + Σ_n P(n | k_g) · V(g + n + 1), V(tokens) = 0, over g tokens generated so far, where
    k_g = min(γ, tokens − g − 1) is what the loop drafts under its token budget, P(n ≥ i) = a_i and C(k) the
    measured cost of a step drafting k (``latency.StepCosts``). The last steps of a request draft and emit fewer
    tokens, which the steady-state E / C misses (by up to 8 % in τ on 48-token requests at γ = 8)."""
    a = np.asarray(a, dtype=float)
    v = np.zeros(max(tokens, 1) + 1)
    for g in range(tokens - 1, 0, -1):
        k = max(0, min(gamma, tokens - g - 1))
        reach = np.concatenate([[1.0], a[:k], [0.0]])  # P(n ≥ i), i = 0..k + 1
        v[g] = sum(step.step_ms(gamma, k)) + (reach[:-1] - reach[1:]) @ v[g + 1: g + k + 2]
    return float(v[1]) if tokens > 1 else 0.0


def predicted_speedup(f: Fit, gamma, model: str = "position"):
    """Predicted speedup at constant γ (scalar or array), the statistic ``speedup_table`` measures: the median over
    prompts of (baseline ms/token measured on the prompt ÷ predicted speculative ms/token), each prompt predicted
    from its own acceptance — a_i (``position``) or α^i (``iid``) — its length and the run's step costs
    (``request_ms``). Prompts differ (a copy prompt accepts far more than a reference page), so a pooled prediction
    of a per-prompt median is biased; without per-prompt fits the pooled means are used."""
    gammas = np.atleast_1d(np.asarray(gamma, dtype=int))
    out = np.array([_median([_prompt_speedup(f, p, int(g), model) for p in f.prompts]) if f.prompts
                    else _prompt_speedup(f, None, int(g), model) for g in gammas])
    return out if np.ndim(gamma) else float(out[0])


def _median(values: list[float]) -> float:
    """Median over the prompts that have a prediction: a prompt whose requests judged no draft (an n-gram lookup
    that never matched) has no acceptance to predict from and is left out; NaN when none has one."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.median(finite)) if finite else float("nan")


def _prompt_speedup(f: Fit, p: PromptFit | None, gamma: int, model: str) -> float:
    c = f.costs
    tokens = max(p.tokens if p is not None else int(round(c.new_tokens)), 1)
    alpha, positions, tail = (p.alpha, p.positions, p.tail) if p is not None else (f.alpha, f.positions, f.tail)
    a = extend(positions, alpha, gamma, tail) if model == "position" else alpha ** np.arange(1, gamma + 1)
    measured_base = p is not None and np.isfinite(p.base_ms_per_token)
    base = p.base_ms_per_token * tokens if measured_base else c.prefill_base + (tokens - 1) * c.base_token_ms
    return base / (c.prefill_spec + request_ms(a, gamma, tokens, f.step))


def prompt_fits(steps: pd.DataFrame, requests: pd.DataFrame, limit: int = 200) -> tuple[PromptFit, ...]:
    """Per prompt (at most ``limit``, a seeded sample): acceptance over its constant-γ steps, its length, and its
    baseline ms/token. ``requests`` hold one drafter's requests and the baseline's."""
    s = frames.constant_steps(steps, requests)
    req = frames.measured_requests(requests)
    base = latency.calm_baseline_ms_per_token(steps, requests).droplevel(["run_id", "temperature"])  # one run, one T
    spec = req[(req["mode"] == "speculative") & frames.policy_gamma(req["policy"]).notna()]
    tokens = spec.groupby("prompt_id")["new_tokens"].median()
    keep = set(frames.sample_requests(spec, limit, key="prompt_id")["prompt_id"])
    out = []
    for pid, g in s[s["prompt_id"].isin(keep)].groupby("prompt_id"):
        proposed, accepted, reached = acceptance.reach_counts(g["gamma"].to_numpy(), g["n_accepted"].to_numpy())
        out.append(PromptFit(str(pid), int(tokens[pid]), float(base.get(pid, np.nan)),
                             acceptance.alpha_mle(g), accepted / proposed,
                             accepted[-1] / reached[-1] if len(reached) and reached[-1] else float("nan")))
    return tuple(out)


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
    alpha = float(pos["alpha"].iloc[0]) if len(pos) else float("nan")  # nothing drafted (n-gram never matched)
    return Fit(run_id=run_id, drafter=drafter, temperature=temperature, alpha=alpha,
               positions=pos["a"].fillna(0).to_numpy(), step=latency.step_costs(steps, requests, drafter, False),
               prompts=prompt_fits(steps, requests), tail=float(pos["conditional"].iloc[-1]) if len(pos) else np.nan)


def fits(trace: Trace) -> list[Fit]:
    return [fit(*g) for g in groups(trace)]


MEASURED = {"measured": "speedup", "measured_lo": "speedup_lo", "measured_hi": "speedup_hi"}  # sweep ← speedup_table


def sweep_table(trace: Trace, fitted: list[Fit] | None = None) -> pd.DataFrame:
    """Per run × drafter × temperature × constant γ: the measured speedup (with its bootstrap interval over prompts,
    ``intervals``) beside both predictions (i.i.d. α and per-position), plus that γ's acceptance rate and alpha_mle."""
    fitted = fitted if fitted is not None else fits(trace)
    rows = []
    for f in fitted:
        req = trace.requests[(trace.requests["run_id"] == f.run_id) & (trace.requests["temperature"] == f.temperature)]
        measured = speedup_table(req).merge(intervals.speedup_intervals(req), on=frames.SETTING, how="left")
        measured = measured[measured["drafter"] == f.drafter].set_index("policy")
        steps = trace.steps[trace.steps["run_id"] == f.run_id]
        per = acceptance.acceptance_by(steps, None, req[req["drafter"] == f.drafter], "policy")
        per = per.assign(gamma=frames.policy_gamma(per["policy"])).dropna(subset=["gamma"])
        for a in per.itertuples(index=False):
            g = int(a.gamma)
            rows.append({"run_id": f.run_id, "drafter": f.drafter, "temperature": f.temperature, "gamma": g,
                         "acceptance_rate": a.acceptance_rate, "alpha_mle": a.alpha_mle,
                         **{col: float(measured[src].get(a.policy, np.nan)) for col, src in MEASURED.items()},
                         "predicted_iid": predicted_speedup(f, g, "iid"),
                         "predicted_position": predicted_speedup(f, g)})
    cols = ["run_id", "drafter", "temperature", "gamma", "acceptance_rate", "alpha_mle", *MEASURED,
            "predicted_iid", "predicted_position"]
    return pd.DataFrame(rows, columns=cols).sort_values(["run_id", "drafter", "temperature", "gamma"])


def gamma_curve(f: Fit, max_gamma: int = 16) -> pd.DataFrame:
    """Predicted speedup for γ = 1..max_gamma under both models; ``optimal`` marks the per-position argmax (no γ
    when nothing could be predicted: a run without a target-only baseline has no cost to divide)."""
    g = np.arange(1, max_gamma + 1)
    pos = predicted_speedup(f, g)
    optimal = g == g[int(np.nanargmax(pos))] if np.isfinite(pos).any() else np.zeros(len(g), dtype=bool)
    return pd.DataFrame({"gamma": g, "predicted_iid": predicted_speedup(f, g, "iid"),
                         "predicted_position": pos, "optimal": optimal})


def with_baseline(fitted: list[Fit]) -> list[Fit]:
    """The fits whose run measured a target-only baseline: the only ones a speedup can be predicted for (the
    what-if explorers need T_t(1) and the baseline's prefill)."""
    return [f for f in fitted if f.costs.has_baseline]


TUNING_COLUMNS = ["run_id", "drafter", "temperature", "alpha", *(c.name for c in fields(latency.CostModel)), "c",
                  "optimal_gamma", "optimal_predicted", "best_measured_gamma", "best_measured"]


def tuning_table(trace: Trace, max_gamma: int = 16, fitted: list[Fit] | None = None,
                 sweep: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per run × drafter × temperature: α, the costs, the predicted-optimal constant γ (per-position model,
    1..max_gamma) with its predicted speedup, and the best measured constant γ with its measured speedup. Without
    a target-only baseline in the run, the predicted and measured columns are NaN (nothing is made up)."""
    fitted = fitted if fitted is not None else fits(trace)
    sweep = sweep if sweep is not None else sweep_table(trace, fitted)
    rows = []
    for f in fitted:
        curve = gamma_curve(f, max_gamma)
        best = curve[curve["optimal"]].iloc[0] if curve["optimal"].any() else None
        meas = sweep[(sweep["run_id"] == f.run_id) & (sweep["drafter"] == f.drafter)
                     & (sweep["temperature"] == f.temperature)].dropna(subset=["measured"])
        top = meas.loc[meas["measured"].idxmax()] if len(meas) else None
        rows.append({"run_id": f.run_id, "drafter": f.drafter, "temperature": f.temperature, "alpha": f.alpha,
                     **f.costs.as_dict(),
                     "optimal_gamma": int(best["gamma"]) if best is not None else np.nan,
                     "optimal_predicted": float(best["predicted_position"]) if best is not None else np.nan,
                     "best_measured_gamma": int(top["gamma"]) if top is not None else np.nan,
                     "best_measured": float(top["measured"]) if top is not None else np.nan})
    return pd.DataFrame(rows, columns=TUNING_COLUMNS)


def _chain(alpha: float, gamma: int, base: pd.DataFrame, spec: pd.DataFrame, measured: float) -> list[float]:
    """Speedup after each stage of STAGES for one γ, from that γ's speculative decode steps and the baseline's
    decode steps (``base``). Plain means of the measured times on both sides, stalls included, so that stage 5 is
    exactly the decode-only measured speedup (the predictions' costs leave stalls out: ``latency.calm``)."""
    t1, o_base = base["verify_ms"].mean(), base["other_ms"].mean()  # T_t(1) and O_b: one token per baseline step
    verify, other = spec["verify_ms"].mean() / t1, spec["other_ms"].mean() / t1
    c = spec["draft_ms"].mean() / gamma / t1  # these steps' own draft time, so stage 5 is their measured speedup
    e = float(theory.expected_tokens(alpha, gamma))
    s1 = float(theory.predicted_speedup(alpha, gamma, c))
    s2 = float(theory.predicted_speedup(alpha, gamma, c, verify))
    s3 = float(theory.predicted_speedup(alpha, gamma, c, verify, other))
    s4 = s3 * (t1 + o_base) / t1
    return [s1, s2, s3, s4, s4 * spec["n_emitted"].mean() / e, measured]


def gap_attribution(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Per drafter × constant γ × temperature: speedup after each stage of STAGES and the change each contributes.

    α is that γ's alpha_mle; T_t(1) and O_b are the plain means of the baseline's decode steps at the same
    temperature (measured times, stalls included, as on the speculative side: ``_chain``). Long format:
    drafter, gamma, temperature, stage_index, stage, speedup, delta (vs the previous stage). Empty without a
    baseline.
    """
    s = frames.constant_steps(steps, requests)
    measured = speedup_table(requests).set_index(frames.SETTING)["speedup"]
    rows = []
    for (drafter, policy, temp), spec in s.groupby(frames.SETTING):
        req = requests[(requests["temperature"] == temp) & (requests["mode"] == "baseline")]
        base = frames.decode_steps(steps, req)
        if not len(base):
            continue
        gamma = int(spec["policy_gamma"].iloc[0])
        alpha = acceptance.alpha_mle(spec)
        chain = _chain(alpha, gamma, base, spec, float(measured.get((drafter, policy, temp), np.nan)))
        for i, (stage, value) in enumerate(zip(STAGES, chain)):
            rows.append({"drafter": drafter, "gamma": gamma, "temperature": float(temp), "stage_index": i,
                         "stage": stage, "speedup": value, "delta": value - (chain[i - 1] if i else 0.0)})
    return pd.DataFrame(rows, columns=["drafter", "gamma", "temperature", "stage_index", "stage", "speedup",
                                       "delta"])
