"""Was the run's clock steady? Two ways another process (or the host of a VM) shows in the trace:

* **stalls** (``spikes``): single phase times above ``latency.SPIKE`` × their cell's median, a step that lost the CPU
  or GPU for a while;
* **drift** (``pace``, ``drift``): the machine's speed moving over the run with no single stall, a load that comes
  and goes for seconds at a time. Each request's *pace* is the median, over its decode steps, of the target forward's
  time ÷ the median time of forwards of its cell (the same mode, drafter and γ: forwards of the same size), so 1.0
  is the run's usual speed; a rolling median over stretches of requests in run order shows when the speed moved.

The measured speedups divide each request by its own prompt's baseline, run next to it, so they survive both best;
what charges the run's mean costs to every prompt (the predictions, replay) and the absolute times do not.
``clock_note`` is the one sentence ``run``, ``demo``, ``replay``, the report's index and its latency and tuning pages
print.

Pace compares forwards of the same size, not the same context: a run whose prompts differ greatly in length, grouped
in run order, moves its pace by that much too (the latency page's pace figure shows which stretch of the run it is).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.analysis import frames
from workbench.analysis.latency import CELL, PHASES, SPIKE, cell_median

DISTURBED = 0.02  # a run whose share of spikes in some phase reaches this had a disturbed clock (``clock_note``)
MATERIAL = 0.25  # ... counting only spikes that add ≥ this share of a median step (an n-gram lookup's µs jitter: no)
DRIFTED = 1.4  # ... and a run whose rolling pace moved by this factor between its fastest and slowest stretch
PACE_MIN = 24  # fewer requests with a pace than this: too few stretches to tell drift from a few prompts' own pace
PACE_WINDOW = 8  # the rolling median spans 1/PACE_WINDOW of the run's requests (at least 8: one stretch's noise)


def spikes(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Per phase: how many decode steps' times were spikes, their share, and the largest time ÷ its cell's median
    (what a report shows to say the clock was disturbed). Columns: phase, steps, spikes, share, worst. ``steps``
    counts the steps the phase ran in (a baseline step, or one that drafted nothing, has no draft time: counting
    it would dilute the draft's share); ``spikes`` the times above SPIKE × their cell's median that also add at
    least MATERIAL × the cell's median step time (a phase of a few µs jitters past 3× with no stall at all)."""
    s = frames.decode_steps(steps, requests)
    step = cell_median(s.assign(step_total=s[list(PHASES)].sum(axis=1)), "step_total", CELL)
    rows = []
    for col in PHASES:
        median = cell_median(s, col, CELL)
        ratio = (s[col] / median.where(median > 0)).to_numpy(float)
        stall = (s[col] > SPIKE * median) & (s[col] - median >= MATERIAL * step)
        n, ran = int(stall.sum()), int((s[col] > 0).sum())
        rows.append({"phase": col.removesuffix("_ms"), "steps": ran, "spikes": n,
                     "share": n / ran if ran else np.nan,
                     "worst": float(np.nanmax(ratio)) if np.isfinite(ratio).any() else np.nan})
    return pd.DataFrame(rows, columns=["phase", "steps", "spikes", "share", "worst"])


def pace(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """One row per measured request that decoded, in run order (``started_at``; ties keep the trace's order):
    order (0, 1, …), request_id, mode, drafter, policy, started_at, pace (the median over its decode steps of
    verify_ms ÷ that step's cell's median; 1.0 is the run's usual speed, 1.3 a stretch 30 % slower; NaN where the
    cell's median is 0) and rolling (the rolling median of the paces, over max(8, 1/PACE_WINDOW of them), that
    ``drift`` reads; NaN until the window fills, and in runs with fewer than PACE_MIN paces)."""
    s = frames.decode_steps(steps, requests)
    s = s.assign(ratio=s["verify_ms"] / cell_median(s, "verify_ms", CELL).where(lambda m: m > 0))
    per = s.groupby("request_id")["ratio"].median().rename("pace")
    req = frames.measured_requests(requests)
    out = req[req["request_id"].isin(per.index)].sort_values("started_at", kind="stable")
    out = out[["request_id", "mode", "drafter", "policy", "started_at"]].reset_index(drop=True)
    out.insert(0, "order", np.arange(len(out)))
    out["pace"] = out["request_id"].map(per).astype(float)
    valid = out["pace"].dropna()  # a request whose cell's median is 0 has no pace: the window skips it
    out["rolling"] = valid.rolling(_window(len(valid))).median() if len(valid) >= PACE_MIN else np.nan
    return out


def _window(requests: int) -> int:
    return max(8, requests // PACE_WINDOW)


def drift(p: pd.DataFrame) -> dict | None:
    """How far the machine's speed moved over the run of ``pace`` table ``p``: the fastest and slowest stretch's
    rolling pace, their ratio, the stretch's length and the requests with a pace; None for a run with fewer than
    PACE_MIN of them."""
    rolling = p["rolling"].dropna()
    if not len(rolling) or rolling.min() <= 0:
        return None
    paced = int(p["pace"].notna().sum())
    return {"fast": float(rolling.min()), "slow": float(rolling.max()), "ratio": float(rolling.max() / rolling.min()),
            "window": _window(paced), "requests": paced}


def clock_note(steps: pd.DataFrame, requests: pd.DataFrame, name: str = "this run", interleaved: bool = True) -> str:
    """One sentence when the clock of ``name`` was disturbed (a phase with ≥ DISTURBED of its times spikes, or a
    pace that moved by ≥ DRIFTED), with what still holds; "" on a steady run. ``interleaved``: whether the run's
    speedups divide by a baseline run next to them in the same run (False for a sweep's runs: a disturbance of
    either run moves a cross-run ratio)."""
    table = spikes(steps, requests)
    bad = table[table["share"] >= DISTURBED]
    moved = drift(pace(steps, requests))
    moved = moved if moved is not None and moved["ratio"] >= DRIFTED else None
    if not len(bad) and moved is None:
        return ""
    why = []
    if len(bad):
        worst = bad.loc[bad["share"].idxmax()]
        why.append(f"{worst['share']:.0%} of its {worst['phase']} times were over {SPIKE:g}× their median (the worst "
                   f"{worst['worst']:.0f}×)")
    if moved is not None:
        why.append(f"its speed moved: over stretches of {moved['window']} requests in run order, the target's forward "
                   f"took from {moved['fast']:.2f}× to {moved['slow']:.2f}× its usual time ({moved['ratio']:.2f}× "
                   "apart)")
    return (f"The clock of {name} was disturbed: {'; and '.join(why)}, so something else was using the machine. "
            + ("The measured speedups divide each request by its own prompt's baseline, run next to it, so they hold "
               "up best; absolute times, the predictions and replay (which charge the run's mean costs, stalls left "
               "out) do not. " if interleaved else
               "Speedups that divide by a baseline measured in another run (a sweep's) move with a disturbance of "
               "either run, as absolute times, the predictions and replay do. ")
            + "Rerun on a quiet machine before trusting them.")
