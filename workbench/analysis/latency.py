"""Latency analysis: where the time of a step goes, what verification costs as a function of k, and the measured
costs (``CostModel``) that every speedup prediction uses.

Pure functions over the trace tables of docs/TRACE.md. A step's target forward covers k = γ + 1 tokens (k = 1 for a
baseline step or a step that drafted nothing). Costs are *means* over decode steps (not medians) so that the
per-phase terms add up exactly to the measured decode time (``speedup.gap_attribution``), except that the costs a
prediction uses (``CostModel``, ``StepCosts``, the verify line) leave out *spikes*: a phase time above SPIKE × the
median of its cell (mode × drafter × γ) is another process taking the CPU or GPU, not the model's cost (``calm``).
On a quiet machine there are next to none; on a loaded one a few stalls of 100× the median would otherwise set the
mean, and every prediction with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from workbench.adaptive import fit_line
from workbench.analysis import frames
from workbench.trace import PHASES as STEP_PHASES

PHASES = tuple(f"{p}_ms" for p in STEP_PHASES)  # the steps table's phase columns
SPIKE = 3.0  # a phase time (or TTFT) above SPIKE × its cell's median is a stall, left out of the costs (``calm``)
CELL = ["mode", "drafter", "gamma"]  # steps whose phases should take the same time


def cell_median(frame: pd.DataFrame, col: str, by) -> pd.Series:
    """Each row's ``by`` group median of ``col``: what a time is compared with to call it a spike."""
    return frame.groupby(by)[col].transform("median")


def calm(frame: pd.DataFrame, columns, by) -> pd.DataFrame:
    """``frame`` with each of ``columns`` set to NaN where it is a spike: above SPIKE × the median of its ``by``
    group (means skip NaN; ``spikes`` counts them)."""
    out = frame.copy()
    for col in columns:
        out[col] = out[col].where(~(out[col] > SPIKE * cell_median(out, col, by)))
    return out


def calm_steps(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """``frames.decode_steps`` with spikes set to NaN in every phase; ``step_ms`` and ``ms_per_token`` are left as
    measured."""
    return calm(frames.decode_steps(steps, requests), PHASES, CELL)


def calm_baseline_ms_per_token(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.Series:
    """Each prompt's baseline ms/token with its decode steps' spikes (``calm``) replaced by their cell's median,
    indexed like ``frames.baseline_ms_per_token`` (the same figure in a run without spikes). Predictions divide
    this, so both sides of a predicted speedup leave the same stalls out (else a loaded machine's stalled baseline
    over a stall-free prediction overstates the speedup, 2× in one audit); measured speedups keep dividing the
    measured baseline. The TTFT stays as measured: it grows with the prompt's length, so a long prompt's real
    prefill would look like a spike against the median."""
    s = frames.decode_steps(steps, requests)
    s = s[s["mode"] == "baseline"].copy()
    for col in PHASES:
        median = cell_median(s, col, CELL)
        s[col] = s[col].where(~(s[col] > SPIKE * median), median)
    decode = s.groupby("request_id")[list(PHASES)].sum().sum(axis=1).astype(float)
    req = frames.measured_requests(requests)
    base = req[req["mode"] == "baseline"]
    if not len(base):  # no baseline in the run (a sweep keeps it in a run of its own): nothing to index
        return frames.baseline_ms_per_token(requests)
    total = base["ttft_ms"] + base["request_id"].map(decode).astype(float).fillna(0.0)
    return (total / base["new_tokens"]).groupby([base[k] for k in frames.BASELINE_KEY]).median()


@dataclass(frozen=True)
class CostModel:
    """Measured costs of one drafter against its target, in ms (docs/SPEEDUP_MODEL.md)."""

    t1: float  # T_t(1): a target forward over one token (mean verify time of baseline steps)
    t_d: float  # T_d: draft time per drafted token (Σ draft_ms / Σ γ over steps without stalls)
    a: float  # verify line T_t(k) = a + b·k, fitted through the per-k means
    b: float
    o_spec: float  # other time per speculative step (sampling, acceptance, rollback, recorder)
    o_base: float  # other time per baseline step (0 without a baseline)
    prefill_spec: float  # mean TTFT of speculative requests (both prefills)
    prefill_base: float  # mean TTFT of baseline requests (NaN without a baseline)
    new_tokens: float  # mean tokens generated per measured request
    has_baseline: bool

    @property
    def c(self) -> float:
        """c = T_d / T_t(1), Leviathan's cost coefficient."""
        return self.t_d / self.t1

    def verify_ms(self, k):
        return self.a + self.b * np.asarray(k, dtype=float)

    def spec_step_ms(self, gamma):
        """Predicted time of a speculative step drafting γ tokens: γ·T_d + T_t(γ+1) + O_s."""
        gamma = np.asarray(gamma, dtype=float)
        return gamma * self.t_d + self.verify_ms(gamma + 1) + self.o_spec

    @property
    def base_token_ms(self) -> float:
        return self.t1 + self.o_base

    def as_dict(self) -> dict:
        return {**asdict(self), "c": self.c}


@dataclass(frozen=True)
class StepCosts:
    """Measured time of one speculative step that drafts k tokens (what replay and the request model charge): the
    mean draft time of the drafter's steps that drafted k (of those that planned a draft) and the mean verify time
    of target forwards over k + 1 tokens, where the run has them; elsewhere the lines d0 + d1·k (per drafter: an
    n-gram search costs per step, not per token) and a + b·(k + 1); other time O_s. On CPU the verify cost is far
    from a line (k = 1 → 2 costs more than k = 5 → 9), which is why the measured means come first. The running
    ``adaptive`` policy keeps its own online estimate of the same shape (``workbench.adaptive.Costs``)."""

    d0: float
    d1: float
    costs: CostModel
    draft_by_k: dict = field(default_factory=dict)  # k drafted → mean draft_ms (steps that planned a draft)
    verify_by_k: dict = field(default_factory=dict)  # tokens in the target forward → mean verify_ms

    def draft_ms(self, k: int) -> float:
        return float(self.draft_by_k.get(k, self.d0 + self.d1 * k))

    def verify_ms(self, k: int) -> float:
        """The target forward over k tokens."""
        return float(self.verify_by_k.get(k, self.costs.verify_ms(k)))

    def step_ms(self, planned: int, k: int) -> tuple[float, float, float]:
        """(draft, verify, other) ms of a step that planned ``planned`` tokens and drafted k (no draft phase at
        all when nothing was planned)."""
        return (self.draft_ms(k) if planned > 0 else 0.0), self.verify_ms(k + 1), self.costs.o_spec


def step_costs(steps: pd.DataFrame, requests: pd.DataFrame, drafter: str, reads_draft: bool | None = None,
               costs: CostModel | None = None) -> StepCosts:
    """``StepCosts`` of ``drafter`` from a run's steps. The verify means pool every step of the drafter and the
    baseline (the target's cost does not depend on who drafted). ``reads_draft`` True / False prefers the draft
    times of policies that do / do not read each drafted token (a confidence read is a host sync per token: ~4 %
    more draft time on this project's CPU), the other steps filling the k they lack; None pools all. ``costs``:
    the drafter's ``cost_model`` when the caller has it already. Spikes are left out (``calm``)."""
    s = calm_steps(steps, requests)
    mine = s[(s["drafter"] == drafter) & (s["gamma_planned"] > 0)]
    if reads_draft is not None and len(mine):
        kinds = {spec: _reads_draft(spec) for spec in mine["policy"].unique()}
        same = mine[mine["policy"].map(kinds) == reads_draft]
    else:
        same = mine
    costs = costs if costs is not None else cost_model(steps, requests, drafter)
    fit_on = (same if same["gamma"].nunique() > 1 else mine).dropna(subset=["draft_ms"])
    if len(fit_on) and fit_on["gamma"].nunique() > 1:
        d0, d1 = fit_line(fit_on["gamma"], fit_on["draft_ms"])
    else:
        d0, d1 = 0.0, costs.t_d
    target = s[(s["drafter"] == drafter) | (s["mode"] == "baseline")]
    draft_by_k = {**mine.groupby("gamma")["draft_ms"].mean().to_dict(),
                  **same.groupby("gamma")["draft_ms"].mean().to_dict()}
    return StepCosts(d0=max(float(d0), 0.0), d1=float(d1), costs=costs, draft_by_k=draft_by_k,
                     verify_by_k=target.groupby("k")["verify_ms"].mean().to_dict())


def _reads_draft(spec: str) -> bool:
    from workbench.errors import WorkbenchError
    from workbench.policies import parse_policy

    try:
        return bool(parse_policy(spec).reads_draft)
    except WorkbenchError:  # a policy this version does not know (an older trace): counted with the plain ones
        return False


def phase_breakdown(steps: pd.DataFrame, requests: pd.DataFrame, by=("mode", "drafter", "policy")) -> pd.DataFrame:
    """Per group (default mode × drafter × policy; e.g. by="request_id"): mean ms per step of each phase, their
    share of the step, and decode ms per emitted token split by phase (phase ms summed ÷ tokens emitted)."""
    by = [by] if isinstance(by, str) else list(by)
    g = frames.decode_steps(steps, requests).groupby(by)
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
    """T_t(k): verify time per target forward vs k, over the decode steps of every mode and drafter. Columns: k,
    steps, spikes (left out of the mean, ``calm``), mean (of the other steps), median, p10, p90 (ms), ratio = mean /
    mean at k = 1 (NaN without k = 1 steps)."""
    s = frames.decode_steps(steps, requests)
    calm_ms = calm(s, ["verify_ms"], CELL)["verify_ms"]
    g = s.groupby("k")["verify_ms"]
    out = pd.DataFrame({"steps": g.size(), "spikes": calm_ms.isna().groupby(s["k"]).sum(),
                        "mean": calm_ms.groupby(s["k"]).mean(), "median": g.median(),
                        "p10": g.quantile(0.1), "p90": g.quantile(0.9)}).reset_index()
    t1 = out.loc[out["k"] == 1, "mean"]
    out["ratio"] = out["mean"] / (float(t1.iloc[0]) if len(t1) else np.nan)
    return out


def fit_verify_cost(verify: pd.DataFrame) -> tuple[float, float]:
    """Least-squares line T_t(k) = a + b·k through the per-k means of ``verify_cost`` (each k weighted equally,
    so the many baseline steps do not dominate; ``adaptive.fit_line``: b ≥ 0). With a single k the slope is 0 and a
    is that mean."""
    if len(verify) == 0:
        return float("nan"), float("nan")
    return fit_line(verify["k"], verify["mean"])


def cost_model(steps: pd.DataFrame, requests: pd.DataFrame, drafter: str | None = None) -> CostModel:
    """The measured costs the speedup model needs; T_d, O_s and the speculative prefill of ``drafter`` only (all
    drafters pooled when None). T_t(1) is the baseline's (the fitted a + b when the run has no baseline). Spikes
    are left out of every mean (``calm``)."""
    s = calm_steps(steps, requests)
    base = s[s["mode"] == "baseline"]
    spec = s[(s["mode"] == "speculative") & ((s["drafter"] == drafter) if drafter is not None else True)]
    a, b = fit_verify_cost(verify_cost(steps, requests))
    req = calm(frames.measured_requests(requests), ["ttft_ms"], ["mode", "drafter"])
    spec_req = req[(req["mode"] == "speculative") & ((req["drafter"] == drafter) if drafter is not None else True)]
    mean = lambda col: float(col.mean()) if len(col) else float("nan")  # noqa: E731
    return CostModel(t1=mean(base["verify_ms"]) if len(base) else a + b,
                     t_d=_per_token(spec.dropna(subset=["draft_ms"])),
                     a=a, b=b, o_spec=mean(spec["other_ms"]), o_base=mean(base["other_ms"]) if len(base) else 0.0,
                     prefill_spec=mean(spec_req["ttft_ms"]),
                     prefill_base=mean(req[req["mode"] == "baseline"]["ttft_ms"]),
                     new_tokens=mean(req["new_tokens"]), has_baseline=bool(len(base)))


def _per_token(spec: pd.DataFrame) -> float:
    """Σ draft_ms / Σ γ over speculative steps (NaN when nothing was drafted)."""
    return float(spec["draft_ms"].sum() / spec["gamma"].sum()) if spec["gamma"].sum() else np.nan


def token_latency(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Per-token latency of decode steps: one row per step with request_id, mode, drafter, policy, temperature,
    step_ms, n_emitted and ms_per_token (all tokens of a speculative step arrive together at its end)."""
    s = frames.decode_steps(steps, requests)
    return s[["request_id", "mode", "drafter", "policy", "temperature", "step", "step_ms", "n_emitted",
              "ms_per_token"]]


def ttft(requests: pd.DataFrame) -> pd.DataFrame:
    """Time to first token per measured request."""
    req = frames.measured_requests(requests)
    cols = ["request_id", "mode", "drafter", "policy", "temperature", "ttft_ms", "prefill_ms"]
    return req[cols].reset_index(drop=True)


def timeline(steps: pd.DataFrame, request_id: str) -> pd.DataFrame:
    """Gantt rows of one request: for each step its phases in order draft → verify → other, laid end to end from
    the step's t_start_ms. Columns: step, phase, start_ms, duration_ms, end_ms, n_accepted, gamma. Step 0 is the
    prefill (its draft phase is the drafter's prompt prefill)."""
    s = steps[steps["request_id"] == request_id].sort_values("step")
    rows = []
    for r in s.itertuples(index=False):
        t = r.t_start_ms
        for ph in PHASES:
            dur = float(getattr(r, ph))
            rows.append({"step": r.step, "phase": ph.removesuffix("_ms"), "start_ms": t, "duration_ms": dur,
                         "end_ms": t + dur, "n_accepted": r.n_accepted, "gamma": r.gamma})
            t += dur
    return pd.DataFrame(rows, columns=["step", "phase", "start_ms", "duration_ms", "end_ms", "n_accepted", "gamma"])
