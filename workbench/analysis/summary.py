"""The headline of a run: per drafter × policy × temperature, acceptance, tokens per step and the measured speedup
with its 95 % bootstrap interval over prompts (``intervals``). Printed by ``workbench run`` and shown at the top of a
report's index."""

from __future__ import annotations

import pandas as pd

from workbench.analysis import acceptance, frames, intervals, speedup
from workbench.trace import Trace

COLUMNS = ["drafter", "policy", "temperature", "requests", "acceptance_rate", "tokens_per_step", "spec_ms_per_token"]


def summary_table(trace: Trace) -> pd.DataFrame:
    """One row per speculative setting; with a baseline in the run also base_ms_per_token and speedup."""
    speed = speedup.speedup_table(trace.requests)
    if not len(speed):  # a baseline-only run: nothing speculative to summarise
        return pd.DataFrame(columns=COLUMNS)
    acc = acceptance.acceptance_by(trace.steps, None, trace.requests, frames.SETTING)
    table = speed.merge(acc[frames.SETTING + ["acceptance_rate", "tokens_per_step"]], on=frames.SETTING, how="left")
    extra = []
    if speed["base_ms_per_token"].notna().any():  # the speedup, and how sure it is (bootstrap over prompts)
        table = table.merge(intervals.speedup_intervals(trace.requests), on=frames.SETTING, how="left")
        extra = ["base_ms_per_token", "speedup", "speedup_lo", "speedup_hi"]
    return table[COLUMNS + extra].reset_index(drop=True)
