"""A disturbed clock: stalls from another process must not set the costs a prediction uses (``latency.calm``), the
reports must say the clock was disturbed (``clock.clock_note``), and the measured figures stay as measured."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from trace_fixtures import write_synthetic_run

from workbench import trace
from workbench.analysis import clock, latency, speedup
from workbench.trace import Trace


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Trace:
    return trace.load(write_synthetic_run(tmp_path_factory.mktemp("clock") / "run", prompts=6))


def stalled(t: Trace, every: int = 8, factor: float = 100.0) -> Trace:
    """Every ``every``-th decode step's verify and draft, and every 7th request's TTFT (one baseline request of six),
    ``factor`` × longer, and each request's total and ms/token longer by what its steps lost, as a real stall makes
    them (only the times: the tokens and decisions are the run's own)."""
    steps, requests = t.steps.copy(), t.requests.copy()
    hit = (steps["step"] >= 1) & (np.arange(len(steps)) % every == 0)
    before = steps[["draft_ms", "verify_ms"]].sum(axis=1)
    steps.loc[hit, ["verify_ms", "draft_ms"]] *= factor
    lost = (steps[["draft_ms", "verify_ms"]].sum(axis=1) - before).groupby(steps["request_id"]).sum()
    slow = np.arange(len(requests)) % 7 == 1
    lost = requests["request_id"].map(lost).fillna(0.0) + np.where(slow, requests["ttft_ms"] * (factor - 1), 0.0)
    requests.loc[slow, "ttft_ms"] *= factor
    requests["total_ms"] += lost
    requests["ms_per_token"] = requests["total_ms"] / requests["new_tokens"]
    return Trace(meta=t.meta, requests=requests, steps=steps, tokens=t.tokens, forced=t.forced)


def test_stalls_leave_the_costs_and_the_predictions_where_a_quiet_run_puts_them(clean):
    noisy = stalled(clean)
    quiet, loud = (latency.cost_model(t.steps, t.requests, "draft") for t in (clean, noisy))
    for name in ("t1", "t_d", "a", "o_spec", "prefill_spec", "prefill_base"):
        assert getattr(loud, name) == pytest.approx(getattr(quiet, name), rel=0.05), name
    before, after = (speedup.sweep_table(t)["predicted_position"].to_numpy() for t in (clean, noisy))
    assert after == pytest.approx(before, rel=0.05)
    # the verify table counts what it left out; the quiet run has no spike at all
    assert latency.verify_cost(noisy.steps, noisy.requests)["spikes"].sum() > 0
    assert latency.verify_cost(clean.steps, clean.requests)["spikes"].sum() == 0


def test_the_reports_say_when_the_clock_was_disturbed_and_measured_figures_are_not_filtered(clean):
    noisy = stalled(clean)
    assert clock.clock_note(clean.steps, clean.requests) == ""
    note = clock.clock_note(noisy.steps, noisy.requests, "run x")
    assert note.startswith("The clock of run x was disturbed") and "(the worst 1" in note
    table = clock.spikes(noisy.steps, noisy.requests).set_index("phase")
    assert table.loc["verify", "share"] == pytest.approx(1 / 8, abs=0.03) and table.loc["other", "spikes"] == 0
    # each phase's share is of the steps it ran in: baseline steps draft nothing and do not dilute the draft's
    decode = noisy.steps[noisy.steps["step"] >= 1].merge(noisy.requests[["request_id", "mode", "warmup"]])
    decode = decode[~decode["warmup"]]
    assert table.loc["draft", "steps"] == (decode["gamma"] > 0).sum() < table.loc["verify", "steps"] == len(decode)
    assert table.loc["draft", "share"] == pytest.approx(1 / 8, abs=0.03)
    assert "run next to it" in note
    cross = clock.clock_note(noisy.steps, noisy.requests, "run x", interleaved=False)
    assert "run next to it" not in cross and "measured in another run (a sweep's) move with a disturbance" in cross
    # what was measured stays measured: the phase means include the stalls
    raw = latency.phase_breakdown(noisy.steps, noisy.requests, by="mode").set_index("mode")
    steps = noisy.steps[noisy.steps["step"] >= 1].merge(noisy.requests[["request_id", "mode", "warmup"]])
    steps = steps[~steps["warmup"]]
    assert raw.loc["baseline", "verify_ms"] == pytest.approx(steps[steps["mode"] == "baseline"]["verify_ms"].mean())


def test_a_share_of_spikes_exactly_at_the_limit_counts_as_disturbed(clean, monkeypatch):
    noisy = stalled(clean)
    share = clock.spikes(noisy.steps, noisy.requests)["share"].max()
    monkeypatch.setattr(clock, "DISTURBED", share)
    assert clock.clock_note(noisy.steps, noisy.requests) != ""
    monkeypatch.setattr(clock, "DISTURBED", share + 1e-9)
    assert clock.clock_note(noisy.steps, noisy.requests) == ""

def test_step_costs_pool_the_baseline_into_the_verify_and_prefer_the_draft_times_of_the_same_kind(clean):
    # prompts p0..p2 of constant:4 relabelled threshold:0.5:4 (a policy that reads each drafted token), their draft
    # twice as slow: at k = 4 the draft cost then depends on which kind of policy asks
    req, steps = clean.requests.copy(), clean.steps.copy()
    relabel = req["request_id"].isin([f"p{i}/draft/constant:4" for i in range(3)])
    req.loc[relabel, "policy"] = "threshold:0.5:4"
    steps.loc[steps["request_id"].isin(req.loc[relabel, "request_id"]), "draft_ms"] *= 2
    calm = latency.calm_steps(steps, req)
    at4 = calm[(calm["gamma"] == 4) & (calm["drafter"] == "draft")]
    reads = at4["policy"].str.startswith("threshold")
    assert reads.any() and (~reads).any()
    for kind, rows in ((True, at4[reads]), (False, at4[~reads])):
        assert latency.step_costs(steps, req, "draft", reads_draft=kind).draft_by_k[4] == pytest.approx(
            rows["draft_ms"].mean())
    # the verify cost is the target's: a forward over one token is timed by the baseline's steps as well
    one = calm[(calm["k"] == 1) & ((calm["drafter"] == "draft") | (calm["mode"] == "baseline"))]
    assert (one["mode"] == "baseline").any()
    assert latency.step_costs(steps, req, "draft").verify_by_k[1] == pytest.approx(one["verify_ms"].mean())

def test_each_request_starts_its_own_clock():
    from workbench.timing import PhaseClock

    clock = PhaseClock(torch.device("cpu"))
    clock.start()
    clock.mark()
    first = clock.finish()
    clock.start()
    clock.mark()
    second = clock.finish()
    # the second request's marks only, counted from its own start (no wall-clock bound: a loaded machine stalls)
    assert len(first) == len(second) == 2 and first[0] == second[0] == 0.0


def test_a_phase_of_microseconds_jittering_past_3x_is_not_a_disturbed_clock(clean):
    """An n-gram lookup drafts in a few µs: a GC pause or a cache miss makes it 8× its median without costing the
    step anything. Only a stall that adds a material share of a step (``clock.MATERIAL``) counts."""
    steps = clean.steps.copy()
    drafted = steps["gamma"] > 0
    steps.loc[drafted, "draft_ms"] = 0.01  # µs-scale draft times ...
    jitter = drafted & (np.arange(len(steps)) % 5 == 0)
    steps.loc[jitter, "draft_ms"] = 0.08  # ... a fifth of them 8× their median: +0.07 ms on a ms-scale step
    t = Trace(meta=clean.meta, requests=clean.requests, steps=steps, tokens=clean.tokens, forced=clean.forced)
    table = clock.spikes(t.steps, t.requests).set_index("phase")
    assert table.loc["draft", "spikes"] == 0 and table.loc["draft", "worst"] == pytest.approx(8.0)
    assert clock.clock_note(t.steps, t.requests) == ""
    steps.loc[jitter, "draft_ms"] = 100.0  # the same steps stalled for real: counted
    t = Trace(meta=clean.meta, requests=clean.requests, steps=steps, tokens=clean.tokens, forced=clean.forced)
    assert clock.spikes(t.steps, t.requests).set_index("phase").loc["draft", "share"] == pytest.approx(0.2, abs=0.05)


def paced(t: Trace, factor: float, since: float = 0.5) -> Trace:
    """``t`` with every phase of the requests after the first ``since`` of the run (in run order) ``factor`` × longer:
    a machine that slowed down for good, with no single stall (below ``latency.SPIKE``). Each request gets its own
    ``started_at`` in trace order, as a run records them."""
    steps, requests = t.steps.copy(), t.requests.copy()
    requests["started_at"] = np.arange(len(requests), dtype=float)
    late = requests.loc[requests["started_at"] >= since * len(requests), "request_id"]
    hit = steps["request_id"].isin(late) & (steps["step"] >= 1)
    steps.loc[hit, list(latency.PHASES)] *= factor
    return Trace(meta=t.meta, requests=requests, steps=steps, tokens=t.tokens, forced=t.forced)


def test_a_machine_whose_speed_moved_over_the_run_is_said_so(clean):
    """Replay and the predictions charge a run's mean costs to every prompt, so a machine that ran 1.5× slower over
    half the run moves them with no stall to see; the pace says so, and the same note as for stalls is printed."""
    assert len(clock.pace(clean.steps, clean.requests)) == 24 >= clock.PACE_MIN  # 6 prompts × (baseline + 3 γ)
    assert clock.drift(clock.pace(clean.steps, clean.requests))["ratio"] == pytest.approx(1.0, abs=0.05)
    assert clock.clock_note(clean.steps, clean.requests) == ""
    slowed = paced(clean, 1.5)
    assert clock.spikes(slowed.steps, slowed.requests)["spikes"].sum() == 0  # no single stall: only the pace shows
    moved = clock.drift(clock.pace(slowed.steps, slowed.requests))
    assert moved["ratio"] == pytest.approx(1.5, rel=0.05) and moved["window"] == 8 and moved["requests"] == 24
    note = clock.clock_note(slowed.steps, slowed.requests, "run x")
    assert note.startswith("The clock of run x was disturbed: its speed moved: over stretches of 8 requests")
    assert f"({moved['ratio']:.2f}× apart)" in note and "replay" in note and "run next to it" in note
    assert clock.clock_note(*(lambda s: (s.steps, s.requests))(paced(clean, 1.15)), "run x") == ""  # under DRIFTED


def test_the_pace_follows_the_run_s_order_not_the_trace_s(clean):
    slowed = paced(clean, 1.5)
    requests = slowed.requests.copy()
    requests["started_at"] = -requests["started_at"]  # the same requests, run in the opposite order
    fast_first = clock.pace(slowed.steps, slowed.requests)
    slow_first = clock.pace(slowed.steps, requests)
    assert fast_first["request_id"].tolist() == slow_first["request_id"].tolist()[::-1]
    assert fast_first["pace"].iloc[0] < fast_first["pace"].iloc[-1] and slow_first["pace"].iloc[0] > 1.2
    assert fast_first["order"].tolist() == list(range(24))


def test_a_drift_exactly_at_the_limit_counts_and_a_short_run_tells_none(clean, monkeypatch):
    slowed = paced(clean, 1.5)
    ratio = clock.drift(clock.pace(slowed.steps, slowed.requests))["ratio"]
    monkeypatch.setattr(clock, "DRIFTED", ratio)
    assert clock.clock_note(slowed.steps, slowed.requests) != ""
    monkeypatch.setattr(clock, "DRIFTED", ratio + 1e-9)
    assert clock.clock_note(slowed.steps, slowed.requests) == ""
    monkeypatch.setattr(clock, "PACE_MIN", 25)  # one request short: too few stretches to tell drift from prompts
    assert clock.drift(clock.pace(slowed.steps, slowed.requests)) is None
    assert clock.pace(slowed.steps, slowed.requests)["rolling"].isna().all()


def test_requests_without_a_pace_do_not_blank_the_stretches_around_them(tmp_path):
    """A request whose cell's median forward is 0 ms (a clock that read nothing) has no pace; the rolling median
    runs over the requests that have one instead of losing every window that holds it."""
    run = trace.load(write_synthetic_run(tmp_path / "run", prompts=8))  # 8 × (baseline + 3 γ) = 32 requests
    slowed = paced(run, 1.5)
    steps = slowed.steps.copy()
    baseline = slowed.requests.loc[slowed.requests["mode"] == "baseline", "request_id"]
    steps.loc[steps["request_id"].isin(baseline), "verify_ms"] = 0.0  # the baseline's clock read nothing
    p = clock.pace(steps, slowed.requests)
    assert p["pace"].isna().sum() == 8 and p["rolling"].notna().sum() == 24 - 8 + 1  # 24 paces, window 8
    moved = clock.drift(p)
    assert moved["requests"] == 24 and moved["window"] == 8 and moved["ratio"] == pytest.approx(1.5, rel=0.05)
