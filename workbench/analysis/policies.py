"""Draft-length policies compared: each measured live, replayed, and the oracle bound; the setting to use, written
in the syntax of the engines users deploy. Replayed figures are predictions and are labelled so."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.analysis import frames, intervals, replay
from workbench.policies import DEFAULT_GMAX, parse_policy
from workbench.trace import Trace

# Settings the report's HTML slider precomputes by replay (the widgets in JupyterLab replay any value live).
THRESHOLDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
HEURISTIC_STARTS = (1, 2, 3, 4, 5, 6, 8)


def gap_closed(speedup, best: float, oracle: float):
    """(speedup − best constant γ) ÷ (oracle − best constant γ). The gap exists only where the oracle's bound lies
    above the best constant γ: a bound at or below it (a replay far off its run, e.g. on a disturbed clock,
    ``clock.clock_note``) leaves nothing to close, NaN."""
    return (speedup - best) / (oracle - best) if oracle > best else speedup * np.nan


def comparison(trace: Trace, drafter: str, limit: int = 200) -> pd.DataFrame:
    """One row per policy the run measured live with ``drafter`` plus the oracle: measured speedup and tokens per
    step beside the replayed ones, draft tokens wasted per emitted token, target calls per 100 tokens, and the
    fraction of the gap from the best constant γ to the oracle that each policy closes (``gap_closed``: the measured
    speedups over the gap to the replayed oracle, which never runs live); the replay's errors against live
    (``replay.live_vs_replay``); the 95 % bootstrap interval of each live speedup (measured_lo / measured_hi) and
    of its ratio to the best constant γ (vs_best_constant, vs_best_lo, vs_best_hi; ``intervals``)."""
    table = replay.live_vs_replay(trace, drafter, oracle=True, limit=limit)  # measured_lo / _hi included
    table = table.merge(intervals.against_best_constant(trace.requests, drafter).drop(columns="temperature"),
                        on="policy", how="left")
    constant = table[frames.policy_gamma(table["policy"]).notna()]
    best = constant["measured_speedup"].max() if len(constant) else float("nan")
    oracle = float(table.loc[table["policy"] == replay.ORACLE, "predicted_speedup"].iloc[0])
    table["gap_closed"] = gap_closed(table["measured_speedup"], best, oracle)
    table["best_constant"] = table["policy"] == (constant.loc[constant["measured_speedup"].idxmax(), "policy"]
                                                 if len(constant) else "")
    return table


def shown(table: pd.DataFrame, agreement: bool = False) -> pd.DataFrame:
    """A ``comparison`` as the report shows it: each figure replay predicts named ``replayed_*`` beside its live
    ``measured_*`` counterpart (replayed ones are predictions even for a policy that ran; the oracle row has only
    them), the speedups first, then the ratios to the best constant γ and the gap: 17 columns, so that no page elides
    one (the notebook keeps the whole table). ``agreement``: the "replay against live" table instead, the policies
    that ran with tokens per step and speedup, measured and replayed, and the replay's errors."""
    if agreement:
        table = table.loc[table["policy"] != replay.ORACLE, replay.AGREEMENT]
        order = ["policy", "prompts", "measured_tokens_per_step", "replayed_tokens_per_step", "tau_error",
                 "measured_speedup", "replayed_speedup", "speedup_error"]
    else:
        pairs = [c for m in replay.MEASURED_TOO for c in (f"measured_{m}", f"replayed_{m}")]
        order = ["policy", "measured_speedup", "measured_lo", "measured_hi", "replayed_speedup", *pairs,
                 "gap_closed", "vs_best_constant", "vs_best_lo", "vs_best_hi"]
    out = with_replayed_names(table)
    return out[[c for c in order if c in out.columns]]


def with_replayed_names(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (``replay.summarize`` or ``live_table``) with each replayed figure that has a measured counterpart
    named ``replayed_*`` (``predicted_speedup`` → ``replayed_speedup``), as the report and ``workbench replay`` show
    them, so that no column can be read as a measurement."""
    names = {c: f"replayed_{c}" for c in (*replay.MEASURED_TOO, "draft_tokens")}
    return table.rename(columns=names | {"predicted_speedup": "replayed_speedup"})


def best_constant_by_category(ranking: pd.DataFrame, drafter: str) -> pd.Series:
    """category (``all`` included) → the best constant-γ speedup measured with ``drafter`` (``drafters.ranking``)."""
    rows = ranking[(ranking["drafter"] == drafter) & frames.policy_gamma(ranking["policy"]).notna()]
    return rows.groupby("category", sort=False)["speedup"].max()


def threshold_sweep(trace: Trace, drafter: str, gmax: int = DEFAULT_GMAX, limit: int = 200) -> pd.DataFrame:
    """Replayed (predicted) speedup and tokens per step per category for threshold:P:GMAX over THRESHOLDS, plus
    heuristic over HEURISTIC_STARTS: what the HTML slider shows."""
    specs = [f"threshold:{p}:{gmax}" for p in THRESHOLDS] + [f"heuristic:{g}" for g in HEURISTIC_STARTS]
    per = replay.replay(trace, drafter, specs, limit=limit)
    overall = replay.summarize(per).assign(category="all")
    by_cat = replay.summarize(per, by=("policy", "category"))
    return pd.concat([overall, by_cat], ignore_index=True)


def recommend(spec: str, mean_gamma: float | None = None) -> dict[str, str]:
    """The policy ``spec`` in the syntax users paste: HF ``generate``, vLLM, llama.cpp. Where an engine has no
    equivalent, the nearest setting it has is given and marked so (``mean_gamma``: the γ the policy drafted on
    average, the nearest constant)."""
    p = parse_policy(spec)
    near = max(1, round(mean_gamma)) if mean_gamma and np.isfinite(mean_gamma) else getattr(p, "gamma", 4)
    name = spec.split(":")[0]
    if name == "constant":
        hf = (f"num_assistant_tokens={p.gamma}, num_assistant_tokens_schedule='constant', "
              "assistant_confidence_threshold=0")
        vllm = f"num_speculative_tokens={p.gamma}"
        cpp = f"--draft-max {p.gamma} --draft-min {p.gamma} --draft-p-min 0"
    elif name == "heuristic":
        hf = (f"num_assistant_tokens={p.start}, num_assistant_tokens_schedule='heuristic_transient', "
              "assistant_confidence_threshold=0")
        vllm = f"num_speculative_tokens={near}  (nearest constant: vLLM has no heuristic schedule)"
        cpp = f"--draft-max {near} --draft-min {near} --draft-p-min 0  (nearest constant)"
    elif name == "threshold":
        hf = (f"num_assistant_tokens={p.gmax}, num_assistant_tokens_schedule='constant', "
              f"assistant_confidence_threshold={p.p_min:g}")
        vllm = f"num_speculative_tokens={near}  (nearest constant: vLLM has no confidence stop)"
        cpp = f"--draft-max {p.gmax} --draft-min 0 --draft-p-min {p.p_min:g}  (llama.cpp drops the low token itself)"
    else:  # entropy, adaptive: no engine ships them; the nearest constant everywhere
        hf = f"num_assistant_tokens={near}, num_assistant_tokens_schedule='constant'  (nearest constant to {spec})"
        vllm = f"num_speculative_tokens={near}  (nearest constant to {spec})"
        cpp = f"--draft-max {near} --draft-min {near} --draft-p-min 0  (nearest constant to {spec})"
    return {"Hugging Face generate(assistant_model=draft, ...)": hf, "vLLM speculative_config": vllm,
            "llama.cpp llama-speculative": cpp}


@dataclass(frozen=True)
class Recommendation:
    """The setting the tuning report recommends, with its live measurement and the reason it was chosen."""

    spec: str  # the policy to use (canonical spec)
    speedup: float  # its measured speedup in this run (median over prompts of the paired ratios)
    lo: float  # 95 % bootstrap interval of that speedup (``intervals``)
    hi: float
    why: str  # one sentence: why this policy (and not the fastest measured one, where they differ)
    settings: dict[str, str]  # the policy in each engine's syntax (``recommend``)


def best_setting(table: pd.DataFrame, trace: Trace, drafter: str) -> Recommendation:
    """The policy to deploy, from the live measurements only (replay suggests, never decides; ``table``: a
    ``comparison``): the fastest policy measured — unless it is a non-constant policy whose ratio to the best
    constant γ is not resolved from 1 (the lower end of its 95 % interval, ``vs_best_lo``, is ≤ 1). Then it is the
    best constant γ: as fast within what this run can resolve, and every engine has it."""
    live = table.dropna(subset=["measured_speedup"])
    top = live.loc[live["measured_speedup"].idxmax()]
    constant = live[live["best_constant"]]
    ratio = (f"{top['vs_best_constant']:.3f}x the best constant γ (95 % interval {top['vs_best_lo']:.3f}–"
             f"{top['vs_best_hi']:.3f})")
    row, why = top, "the fastest policy measured in this run"
    if not top["best_constant"] and len(constant):
        if top["vs_best_lo"] > 1.0:
            why = f"the fastest policy measured in this run, at {ratio}: a gain this run resolves"
        else:
            row = constant.iloc[0]
            why = (f"{top['policy']} measured fastest, at {ratio}, but the interval reaches 1: not resolved from "
                   f"the best constant γ, which every engine has, so the constant is recommended")
    spec = str(row["policy"])
    s = frames.speculative_steps(trace.steps, trace.requests)
    mean_gamma = float(s[(s["drafter"] == drafter) & (s["policy"] == spec)]["gamma"].mean())
    return Recommendation(spec, float(row["measured_speedup"]), float(row["measured_lo"]), float(row["measured_hi"]),
                          why, recommend(spec, mean_gamma))
