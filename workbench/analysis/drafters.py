"""Drafters side by side: acceptance, what a drafted token costs, how often prompt lookup finds a match, the
early-exit depth curve, and which drafter × policy is fastest overall and per category.

Pure functions over the trace tables (docs/TRACE.md), each returning a DataFrame; acceptance and costs come from
``acceptance`` and ``latency`` (one definition of each number). Speculative rows are keyed by ``frames.SETTING``
(drafter, policy, temperature). Costs follow Leviathan: T_d = Σ draft_ms / Σ γ over the steps without stalls
(``latency.calm``; every other step's draft time counts,
including the n-gram searches that found nothing: that time was spent), c = T_d / T_t(1), T_t(1) = mean verify time
of the baseline's decode steps at the same temperature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.analysis import acceptance, frames, latency, speedup
from workbench.drafters import kind_of, parse_drafter
from workbench.trace import Trace


def is_ngram(drafter: str) -> bool:
    """Whether ``drafter`` (a trace's drafter label) is an n-gram prompt lookup."""
    return kind_of(drafter) == "ngram"


def acceptance_by_drafter(steps: pd.DataFrame, tokens: pd.DataFrame | None, requests: pd.DataFrame,
                          by: list[str] | None = None) -> pd.DataFrame:
    """``acceptance.acceptance_by`` per drafter (× ``by``, e.g. ["category"] or ["policy"])."""
    return acceptance.acceptance_by(steps, tokens, requests, ["drafter", *(by or [])])


def position_by_drafter(steps: pd.DataFrame, requests: pd.DataFrame, constant_only: bool = True) -> pd.DataFrame:
    """``acceptance.position_acceptance`` of each drafter's own requests (α its own pooled alpha_mle), stacked with
    a ``drafter`` column."""
    req = frames.measured_requests(requests)
    parts = []
    for drafter in sorted(set(req.loc[req["mode"] == "speculative", "drafter"])):
        pos = acceptance.position_acceptance(steps, req[req["drafter"] == drafter], constant_only=constant_only)
        parts.append(pos.assign(drafter=drafter))
    cols = ["drafter", "position", "proposed", "accepted", "reached", "a", "a_lo", "a_hi", "conditional",
            "cond_lo", "cond_hi", "geometric", "alpha"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def _temperature_costs(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Per drafter × temperature: t1, t_d and c of ``latency.cost_model`` (fed that temperature's requests only,
    so T_t(1) is the baseline at the same temperature)."""
    req = frames.measured_requests(requests)
    rows = []
    for temp, r in req.groupby("temperature"):
        for drafter in sorted(set(r.loc[r["mode"] == "speculative", "drafter"])):
            costs = latency.cost_model(steps, r, drafter)
            rows.append({"drafter": drafter, "temperature": float(temp), "t1": costs.t1, "t_d": costs.t_d,
                         "c": costs.c if costs.has_baseline else np.nan})
    return pd.DataFrame(rows, columns=["drafter", "temperature", "t1", "t_d", "c"])


def draft_costs(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Per drafter × temperature: what drafting costs.

    Columns: steps (speculative decode steps), drafted (Σγ), t_d (ms per drafted token, Σ draft_ms / Σγ),
    draft_ms_per_step (mean over all steps), empty_steps / draft_ms_empty (steps where the drafter was asked for
    ≥ 1 token and proposed none, and their mean draft ms: a failed n-gram search is not free), t1 (baseline T_t(1))
    and c = T_d / T_t(1) (NaN without a baseline). Costs, so stalls are left out of every column (``latency.calm``),
    as they are from T_d.
    """
    s = latency.calm(frames.speculative_steps(steps, requests), ["draft_ms"], latency.CELL)
    s = s.assign(_empty=(s["gamma"] == 0) & (s["gamma_planned"] >= 1) & (s["draft_stop"] == "no-match"))
    g = s.groupby(["drafter", "temperature"])
    out = g.agg(steps=("step", "size"), drafted=("gamma", "sum"), draft_ms=("draft_ms", "sum"),
                draft_ms_per_step=("draft_ms", "mean"), empty_steps=("_empty", "sum"))
    out["draft_ms_empty"] = s[s["_empty"]].groupby(["drafter", "temperature"])["draft_ms"].mean()
    out = out.reset_index().drop(columns="draft_ms")
    costs = _temperature_costs(steps, requests)
    return out.merge(costs, on=["drafter", "temperature"], how="left")


def hit_rate(steps: pd.DataFrame, requests: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """How often the drafter proposed anything when asked: per drafter (× ``by``, default ["category"]).

    A step asks the drafter when the policy planned γ ≥ 1 and the budget left room; it is a *hit* when ≥ 1 token
    was proposed (γ ≥ 1) and a *miss* when none was (γ = 0, draft_stop ``no-match``). Steps planned at 0 or clipped
    to 0 by the token budget are neither. Columns: asked, hits, hit_rate with Wilson bounds hit_lo / hit_hi, and
    mean_proposal = mean γ of the hits. A model drafter always hits; the number is about ``ngram``.
    """
    keys = ["drafter", *(["category"] if by is None else by)]
    s = frames.speculative_steps(steps, requests)
    s = s.assign(_hit=s["gamma"] >= 1, _miss=(s["gamma"] == 0) & (s["draft_stop"] == "no-match"))
    s = s[s["_hit"] | s["_miss"]]
    g = s.groupby(keys)
    out = g.agg(asked=("_hit", "size"), hits=("_hit", "sum"))
    out["mean_proposal"] = s[s["_hit"]].groupby(keys)["gamma"].mean()
    out = out.reset_index()
    out["hit_rate"] = out["hits"] / out["asked"]
    out["hit_lo"], out["hit_hi"] = acceptance.wilson_interval(out["hits"], out["asked"])
    return out[[*keys, "asked", "hits", "hit_rate", "hit_lo", "hit_hi", "mean_proposal"]]


def early_exit_curve(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """One row per early-exit depth L (drafters labelled ``early-exit:L``) × policy × temperature, sorted by L:
    acceptance_rate, alpha_mle, tokens_per_step, t_d, c and the measured speedup (``speedup.speedup_table``).
    Deeper L drafts closer to the target (acceptance rises) but each drafted token costs ≈ L / layers of a target
    forward (c rises): the best L balances the two."""
    cols = ["layers", "drafter", "policy", "temperature", "steps", "acceptance_rate", "alpha_mle",
            "tokens_per_step", "t_d", "c", "speedup"]
    early = requests["drafter"].astype(str).map(kind_of) == "early-exit"
    req = requests[early | (requests["mode"] == "baseline")]
    if not (req["mode"] == "speculative").any():
        return pd.DataFrame(columns=cols)
    acc = acceptance.acceptance_by(steps, None, req, frames.SETTING)
    out = acc.merge(_temperature_costs(steps, req), on=["drafter", "temperature"], how="left")
    out = out.merge(speedup.speedup_table(req)[[*frames.SETTING, "speedup"]], on=frames.SETTING, how="left")
    out["layers"] = out["drafter"].map(lambda d: parse_drafter(d).layers).astype(int)
    return out[cols].sort_values(["layers", "policy", "temperature"]).reset_index(drop=True)


def request_ratios(requests: pd.DataFrame) -> pd.DataFrame:
    """Per speculative request: its prompt's baseline ms/token ÷ its own (same run, prompt and temperature;
    ``frames.paired_speedups``, as ``speedup.speedup_table`` pairs them). Columns: drafter, policy, temperature,
    prompt_id, category, ratio (NaN when the prompt has no baseline). The long form of ``intervals.prompt_ratios``
    (one row per prompt, one column per setting)."""
    paired = frames.paired_speedups(requests).rename(columns={"speedup": "ratio"})
    return paired[[*frames.SETTING, "prompt_id", "category", "ratio"]].reset_index(drop=True)


def _rank(ratios: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Median ratio per ``keys`` (speedup), how many prompts it rests on, and its rank (1 = fastest) within each
    category × temperature."""
    out = ratios.groupby(keys).agg(prompts=("ratio", "count"), speedup=("ratio", "median")).reset_index()
    out["rank"] = out.groupby(["category", "temperature"])["speedup"].rank(ascending=False, method="min")
    return out


def ranking(trace: Trace) -> pd.DataFrame:
    """Drafters × policies ranked by measured speedup, overall (category ``all``) and per category.

    speedup = median over prompts of (baseline ms/token ÷ speculative ms/token), the same per-prompt ratios for the
    overall row (which equals ``speedup.speedup_table``) and for each category's prompts. Columns: category,
    drafter, policy, temperature, prompts, speedup, rank (1 = fastest within the category and temperature).
    """
    ratios = request_ratios(trace.requests)
    keys = ["category", *frames.SETTING]
    overall = _rank(ratios.assign(category="all"), keys)
    per_cat = _rank(ratios, keys)
    out = pd.concat([overall, per_cat], ignore_index=True)
    out["rank"] = out["rank"].astype("Int64")
    out["_all"] = out["category"] != "all"  # overall rows first, then categories alphabetically
    out = out.sort_values(["_all", "category", "temperature", "rank", "drafter", "policy"])
    return out[["category", *frames.SETTING, "prompts", "speedup", "rank"]].reset_index(drop=True)
