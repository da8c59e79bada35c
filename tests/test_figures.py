"""The figures and explorers draw what the analysis returned: known traces in, the right traces, points and sliders
out (plotly objects inspected, no browser)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_analysis import make_trace

from workbench.analysis import acceptance, explore, figures, latency, speedup


@pytest.fixture
def tr():
    return make_trace()


def test_acceptance_and_latency_figures_carry_the_table_values(tr):
    pos = acceptance.position_acceptance(tr.steps, tr.requests)
    fig = figures.position_acceptance_figure(pos)
    assert list(fig.data[0].y) == pytest.approx([0.75, 0.5, 0.25]) and len(fig.data) == 4
    dist = acceptance.n_distribution(tr.steps, tr.requests)
    assert list(figures.n_distribution_figure(dist).data[0].y) == pytest.approx([0.25] * 4)
    carry = figures.carry_over_figure(acceptance.carry_over(tr.steps, tr.requests))
    assert [list(bar.y) for bar in carry.data] == [[1.0], [0.5]] and list(carry.data[0].x) == ["draft · constant:3"]
    along = acceptance.along_output(tr.steps, tr.requests)
    line = figures.along_output_figure(along)
    assert len(line.data) == 1 and list(line.data[0].y) == pytest.approx([1.0, 1 / 3, 2 / 3])
    assert list(line.layout.xaxis.categoryarray) == ["1–3", "4–7", "8–15"]
    phases = latency.phase_breakdown(tr.steps, tr.requests, by="mode")
    fig = figures.phase_figure(phases, "mode")
    assert [t.name for t in fig.data] == ["draft", "verify", "other"] and list(fig.data[0].x) == ["baseline",
                                                                                                  "speculative"]
    box = figures.token_latency_figure(latency.token_latency(tr.steps, tr.requests), latency.ttft(tr.requests))
    assert box.data[0].median is not None and len(box.data[0].median) == 2  # quartiles, not raw points
    gap = speedup.gap_attribution(tr.steps, tr.requests)
    water = figures.waterfall_figure(gap, "draft", 3, 0.0).data[0]
    assert len(water.x) == len(speedup.STAGES) and water.measure[-1] == "absolute"  # measured, drawn from 0


def test_speedup_figure_draws_measured_beside_both_predictions(tr):
    sweep = speedup.sweep_table(tr)
    fig = figures.speedup_figure(sweep)
    assert [t.name.split(" ", 2)[-1] for t in fig.data] == ["measured", "predicted (per-position a_i)",
                                                           "predicted (i.i.d. α)"]
    for trace, column in zip(fig.data, ["measured", "predicted_position", "predicted_iid"]):
        assert list(trace.y) == pytest.approx(list(sweep[column]))
    bars = fig.data[0].error_y  # the measured points carry their bootstrap interval
    assert list(bars.array) == pytest.approx(list(sweep["measured_hi"] - sweep["measured"]))
    assert list(bars.arrayminus) == pytest.approx(list(sweep["measured"] - sweep["measured_lo"]))


def test_static_explorer_and_optimal_gamma_map(tr):
    (fit,) = speedup.fits(tr)
    fig = explore.static_explorer(fit.costs, fit.alpha, max_gamma=8)
    slider = fig.layout.sliders[0]
    assert len(slider.steps) == len(explore.ALPHAS) + 1 and len(fig.data) == len(explore.C_SCALES)
    # the curves first drawn are the measured α's (a slider position of its own), not the nearest grid step's
    assert slider.steps[slider.active].label == f"{fit.alpha:.3f} (measured)" and fit.alpha not in explore.ALPHAS
    at_measured = explore.iid_curve(round(fit.alpha, 3), np.arange(1, 9), fit.costs)
    assert list(fig.data[1].y) == pytest.approx(list(at_measured))  # the c × 1.0 curve
    grid = explore.optimal_gamma_grid(fit.costs, max_gamma=8)
    assert len(grid) == len(explore.ALPHAS) * 7
    for a, rows in grid.groupby("alpha"):  # a costlier draft never makes a longer draft optimal
        assert rows.sort_values("c")["optimal_gamma"].is_monotonic_decreasing, a
    assert explore.with_draft_cost(fit.costs, c=0.5).t_d == pytest.approx(0.5 * fit.costs.t1)
    heat = explore.optimal_gamma_map(grid, 0.8, 0.213)  # rows are categories 0.01 … 0.5: the marker on row "0.2"
    assert heat.layout.yaxis.type == "category" and heat.data[0].y[heat.layout.annotations[0].y] == "0.2"


def test_policy_and_replay_slider_figures():
    table = pd.DataFrame({"policy": ["constant:4", "oracle"], "measured_speedup": [1.5, np.nan],
                          "measured_lo": [1.4, np.nan], "measured_hi": [1.7, np.nan], "predicted_speedup": [1.55, 2.2]})
    fig = figures.policy_figure(table)
    assert fig.data[0].name == "measured (live)" and fig.data[1].name == "replayed (prediction)"
    bars = fig.data[0].error_y  # the live bar carries its bootstrap interval
    assert bars.array[0] == pytest.approx(0.2) and bars.arrayminus[0] == pytest.approx(0.1)
    sweep = pd.DataFrame({"policy": ["threshold:0.1:16"] * 2 + ["threshold:0.4:16"] * 2,
                          "category": ["all", "code"] * 2, "predicted_speedup": [1.4, 1.5, 1.2, 1.3],
                          "tokens_per_step": [3.0, 3.2, 2.0, 2.1]})
    fig = figures.replay_slider_figure(sweep, best_measured=1.5, oracle=2.2)
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["threshold:0.1:16", "threshold:0.4:16"]
    assert steps[1].args[0]["visible"] == [False, True] and [t.visible for t in fig.data] == [True, False]
    measured = pd.Series({"all": 1.5, "code": 1.6})  # the live figure per category, beside every replayed step
    fig = figures.replay_slider_figure(sweep, best_measured=1.5, oracle=2.2, measured_by_category=measured)
    assert list(fig.data[2].x) == ["all", "code"] and list(fig.data[2].y) == [1.5, 1.6]
    assert all(step.args[0]["visible"][2] for step in fig.layout.sliders[0].steps)
    lines = lambda f: [a.text for a in f.layout.annotations]  # noqa: E731
    assert any("best constant γ, measured 1.50x" in t for t in lines(fig))
    # a run that measured no constant γ draws no "measured" line (it drew a made-up 1.00x once)
    fig = figures.replay_slider_figure(sweep, best_measured=None, oracle=2.2)
    assert not any("measured" in t for t in lines(fig)) and any("oracle" in t for t in lines(fig))
