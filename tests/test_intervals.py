"""Bootstrap intervals over prompts (workbench.analysis.intervals): hand-made request tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import intervals, speedup


def requests(spec_ms: dict[str, list[float]], base_ms: list[float], temperature: float = 0.0,
             run_id: str = "r") -> pd.DataFrame:
    """One baseline request per prompt (``base_ms``) and one request per prompt of each policy (``spec_ms``)."""
    rows = [{"run_id": run_id, "request_id": f"p{i}/baseline", "prompt_id": f"p{i}", "mode": "baseline",
             "drafter": "", "policy": "", "temperature": temperature, "warmup": False, "ms_per_token": ms,
             "category": "c"}
            for i, ms in enumerate(base_ms)]
    for policy, values in spec_ms.items():
        rows += [{"run_id": run_id, "request_id": f"p{i}/d/{policy}", "prompt_id": f"p{i}", "mode": "speculative",
                  "drafter": "d", "policy": policy, "temperature": temperature, "warmup": False, "ms_per_token": ms,
                  "category": "c"} for i, ms in enumerate(values)]
    return pd.DataFrame(rows)


def test_the_interval_brackets_the_measured_speedup_and_collapses_when_every_prompt_agrees():
    rng = np.random.default_rng(1)
    base = list(rng.uniform(5, 9, size=40))
    req = requests({"constant:4": [b / 1.5 for b in base],  # exactly 1.5x on every prompt
                    "heuristic": [b / r for b, r in zip(base, rng.uniform(1.1, 1.9, size=40))]}, base)
    table = speedup.speedup_table(req).merge(intervals.speedup_intervals(req))
    row = table.set_index("policy")
    assert row.loc["constant:4", "speedup_lo"] == pytest.approx(1.5) == row.loc["constant:4", "speedup_hi"]
    lo, mid, hi = row.loc["heuristic", ["speedup_lo", "speedup", "speedup_hi"]]
    assert lo < mid < hi and hi - lo > 0.05  # prompts disagree: the median is uncertain
    assert intervals.speedup_intervals(requests({"constant:4": [1.0]}, [])).empty  # no baseline, no interval


def test_a_request_pairs_only_with_the_baseline_of_its_own_run():
    # Two runs of the same prompts on machines 2x apart, each 1.5x faster speculative than its own baseline. Paired
    # across runs the ratios would be 0.75x and 3x; within each run they are 1.5x.
    slow = requests({"constant:4": [12.0, 12.0, 12.0]}, [18.0, 18.0, 18.0], run_id="slow")
    fast = requests({"constant:4": [6.0, 6.0, 6.0]}, [9.0, 9.0, 9.0], run_id="fast")
    both = pd.concat([slow, fast], ignore_index=True)
    assert speedup.speedup_table(both)["speedup"].tolist() == pytest.approx([1.5])
    row = speedup.speedup_table(pd.concat([slow, fast[fast["mode"] == "speculative"]])).iloc[0]
    assert (row["requests"], row["paired"]) == (6, 3)  # the fast run's requests have no baseline of their own
    assert row["speedup"] == pytest.approx(1.5)


def test_a_policy_compared_with_the_best_constant_is_resampled_prompt_by_prompt():
    rng = np.random.default_rng(2)
    base = list(rng.uniform(5, 9, size=30))
    c4 = [b / r for b, r in zip(base, rng.uniform(1.0, 2.0, size=30))]  # prompts spread widely
    req = requests({"constant:4": c4, "constant:8": [ms * 1.5 for ms in c4],  # always slower than constant:4
                    "adaptive": [ms / 1.2 for ms in c4]}, base)  # 1.2x constant:4 on every prompt
    out = intervals.against_best_constant(req, "d").set_index("policy")
    # paired: the spread between prompts cancels, so the ratio is known exactly; unpaired it would not be
    assert out.loc["adaptive", ["vs_best_constant", "vs_best_lo", "vs_best_hi"]].tolist() == pytest.approx([1.2] * 3)
    assert out.loc["constant:8", "vs_best_hi"] == pytest.approx(1 / 1.5)
    assert out.loc["constant:4", "vs_best_constant"] == pytest.approx(1.0)
    only8 = intervals.against_best_constant(req, "d", gammas=(8,)).set_index("policy")
    assert only8.loc["adaptive", "vs_best_constant"] == pytest.approx(1.2 * 1.5)
    assert intervals.against_best_constant(req, "d", gammas=(2,)).empty  # no constant γ of the set was measured


def test_the_run_summary_carries_the_interval():
    from test_analysis import make_trace

    from workbench.analysis.summary import summary_table

    table = summary_table(make_trace())
    assert {"speedup_lo", "speedup_hi"} <= set(table.columns)
    assert (table["speedup_lo"] <= table["speedup"]).all() and (table["speedup"] <= table["speedup_hi"]).all()


def test_the_measured_speedup_is_the_median_over_prompts_not_the_mean():
    req = requests({"constant:4": [10.0, 10.0, 2.5]}, [10.0, 10.0, 10.0])  # 1x, 1x and 4x
    row = speedup.speedup_table(req).iloc[0]
    assert row["speedup"] == pytest.approx(1.0)  # a mean would say 2x
    assert row["speedup_of_medians"] == pytest.approx(1.0)


def test_the_interval_cuts_half_of_one_minus_the_level_from_each_tail():
    # five prompts at 1x..5x: the bootstrap median is one of them, at or below 2x with probability 0.317 and at or
    # below 3x with 0.683, so the 25th and 75th percentiles (level 0.5) are exactly 2x and 4x
    base = [60.0] * 5
    req = requests({"constant:4": [60.0 / r for r in (1, 2, 3, 4, 5)]}, base)
    row = intervals.speedup_intervals(req, level=0.5).iloc[0]
    assert (row["speedup_lo"], row["speedup_hi"]) == pytest.approx((2.0, 4.0))
