"""Known-answer tests of workbench.analysis on tiny hand-made traces (tests/trace_fixtures.py).

The main trace: one speculative request with γ = 3 and n = [3, 1, 0, 2] (draft 3 ms, verify 10 ms, other 1 ms per
step), one baseline request with 4 steps (verify 8 ms, other 1 ms), both with a 10 ms prefill, and a warm-up
request that accepts everything and must never count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from trace_fixtures import request_rows

from workbench import trace
from workbench.analysis import acceptance, figures, frames, latency, speedup, summary, theory
from workbench.trace import Trace

COSTS_FOR_DP = latency.CostModel(t1=10.0, t_d=1.0, a=9.0, b=1.0, o_spec=0.5, o_base=0.5, prefill_spec=20.0,
                                 prefill_base=15.0, new_tokens=9.0, has_baseline=True)

N = [3, 1, 0, 2]


def make_trace(run_id="r1", temperature=0.0, texts=("a", "b", "c")) -> Trace:
    parts = [request_rows("p0", "speculative", 3, [(n, 3.0, 10.0, 1.0) for n in N], category="code",
                          run_id=run_id, temperature=temperature, alpha_tv=0.6, texts=list(texts)),
             request_rows("p0", "baseline", 0, [(0, 0.0, 8.0, 1.0)] * 4, category="code", run_id=run_id,
                          temperature=temperature),
             request_rows("w", "speculative", 3, [(3, 30.0, 100.0, 10.0)] * 3, warmup=True, run_id=run_id,
                          temperature=temperature, alpha_tv=0.99)]
    tables = {t: pd.DataFrame([row for p in parts for row in p[t]]) for t in ("requests", "steps", "tokens")}
    return Trace(meta={"run_id": run_id}, **tables)


@pytest.fixture
def tr() -> Trace:
    return make_trace()


def test_wilson_interval_known_values():
    lo, hi = acceptance.wilson_interval([5, 0], [10, 10])
    assert lo[0] == pytest.approx(0.2366, abs=1e-4) and hi[0] == pytest.approx(0.7634, abs=1e-4)
    assert lo[1] == pytest.approx(0.0, abs=1e-12) and hi[1] == pytest.approx(0.2775, abs=1e-4)
    assert np.isnan(acceptance.wilson_interval(0, 0)[0])


def test_acceptance_overall_excludes_warmup(tr):
    row = acceptance.acceptance_by(tr.steps, tr.tokens, tr.requests).iloc[0]
    assert row["steps"] == 4 and row["drafted"] == 12 and row["accepted"] == 6 and row["judged"] == 9
    assert row["acceptance_rate"] == pytest.approx(0.5)
    assert row["tokens_per_step"] == pytest.approx(2.5)
    assert row["alpha_mle"] == pytest.approx(6 / 9)
    assert row["alpha_tv"] == pytest.approx(0.6)
    # the headline table takes its acceptance from acceptance_by (one computation)
    head = summary.summary_table(tr).iloc[0]
    assert head["acceptance_rate"] == row["acceptance_rate"] and head["tokens_per_step"] == row["tokens_per_step"]
    assert head["speedup"] == pytest.approx((46 / 5) / (66 / 11)) and head["policy"] == "constant:3"


def test_acceptance_by_category_and_request(tr):
    by_cat = acceptance.acceptance_by(tr.steps, tr.tokens, tr.requests, "category")
    assert list(by_cat["category"]) == ["code"]
    by_req = acceptance.acceptance_by(tr.steps, tr.tokens, tr.requests, "request_id")
    assert list(by_req["request_id"]) == ["p0/draft/constant:3"]


def test_position_acceptance(tr):
    pos = acceptance.position_acceptance(tr.steps, tr.requests)
    assert list(pos["proposed"]) == [4, 4, 4]
    assert list(pos["a"]) == pytest.approx([0.75, 0.5, 0.25])
    assert list(pos["conditional"]) == pytest.approx([0.75, 2 / 3, 0.5])
    assert list(pos["geometric"]) == pytest.approx([(2 / 3) ** i for i in (1, 2, 3)])
    assert (pos["a_lo"] <= pos["a"]).all() and (pos["a"] <= pos["a_hi"]).all()


def test_n_distribution(tr):
    dist = acceptance.n_distribution(tr.steps, tr.requests)
    assert list(dist["n"]) == [0, 1, 2, 3] and list(dist["count"]) == [1, 1, 1, 1]
    assert list(dist["observed"]) == pytest.approx([0.25] * 4)
    assert list(dist["expected"]) == pytest.approx(theory.truncated_geometric_pmf(2 / 3, 3))
    assert dist["expected"].sum() == pytest.approx(1.0)


def test_most_rejected(tr):
    # Rejected drafts are token ids 6, 9 and 15, all with text "a"; "a" was judged 4 times (ids 3, 6, 9, 15).
    rej = acceptance.most_rejected(tr.tokens, tr.requests)
    top = rej.iloc[0]
    assert top["token_text"] == "a" and top["rejected"] == 3 and top["evaluated"] == 4
    assert top["reject_rate"] == pytest.approx(0.75)
    assert top["mean_p"] == pytest.approx(0.1)  # at its three rejections (0.9 where it was accepted is left out)
    assert len(rej) == 1


def test_a_sample_of_requests_does_not_depend_on_row_order():
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(20)], "v": range(20)})
    a = frames.sample_requests(frame, 5)
    b = frames.sample_requests(frame.iloc[::-1], 5)
    assert sorted(a["request_id"]) == sorted(b["request_id"]) and len(a) == 5



def test_output_html_escapes_and_colours():
    tr = make_trace(texts=("<b>", "&", "x"))
    page = acceptance.output_html(tr.tokens, "p0/draft/constant:3")
    assert "<b>" not in page.replace('<b style', '') and "&lt;b&gt;" in page and "&amp;" in page
    emitted = int(tr.requests.set_index("request_id").loc["p0/draft/constant:3", "new_tokens"])
    assert page.count(" title=\"step ") == emitted                  # one span per emitted token
    assert acceptance.ROLE_STYLE["draft"][0] in page and acceptance.ROLE_STYLE["bonus"][0] in page


def test_phase_breakdown_and_token_latency(tr):
    ph = latency.phase_breakdown(tr.steps, tr.requests, by="mode").set_index("mode")
    assert ph.loc["speculative", "ms_per_token"] == pytest.approx(56 / 10)
    assert ph.loc["speculative", "draft_ms_per_token"] == pytest.approx(12 / 10)
    assert ph.loc["baseline", "ms_per_token"] == pytest.approx(9.0)
    assert ph.loc["speculative", "verify_share"] == pytest.approx(10 / 14)
    lat = latency.token_latency(tr.steps, tr.requests)
    assert sorted(lat.loc[lat["mode"] == "speculative", "ms_per_token"]) == pytest.approx(
        sorted(14 / (n + 1) for n in N))
    assert list(latency.ttft(tr.requests)["ttft_ms"]) == [10.0, 10.0]


def test_verify_cost_and_cost_model(tr):
    v = latency.verify_cost(tr.steps, tr.requests)
    assert list(v["k"]) == [1, 4] and list(v["mean"]) == [8.0, 10.0]
    assert list(v["ratio"]) == pytest.approx([1.0, 1.25])
    a, b = latency.fit_verify_cost(v)
    assert b == pytest.approx(2 / 3) and a == pytest.approx(8 - 2 / 3)
    # noise that makes a longer verify look cheaper: flat at the mean, never a cost that falls (or goes below 0) with k
    falling = pd.DataFrame({"k": [1, 2, 5], "mean": [9.0, 8.0, 7.0]})
    assert latency.fit_verify_cost(falling) == pytest.approx((8.0, 0.0))
    c = latency.cost_model(tr.steps, tr.requests)
    assert c.t1 == 8.0 and c.t_d == pytest.approx(1.0) and c.c == pytest.approx(0.125)
    assert c.o_spec == 1.0 and c.o_base == 1.0 and c.has_baseline
    assert c.prefill_spec == 10.0 and c.prefill_base == 10.0 and c.new_tokens == pytest.approx((11 + 5) / 2)
    assert float(c.spec_step_ms(3)) == pytest.approx(3 * 1.0 + (8 - 2 / 3) + 4 * 2 / 3 + 1.0)


def test_timeline(tr):
    tl = latency.timeline(tr.steps, "p0/draft/constant:3")
    step1 = tl[tl["step"] == 1].set_index("phase")
    assert step1.loc["draft", "start_ms"] == 10.0 and step1.loc["verify", "start_ms"] == 13.0
    assert step1.loc["other", "end_ms"] == 24.0
    assert len(tl) == 3 * 5


def test_gap_attribution_chain(tr):
    gap = speedup.gap_attribution(tr.steps, tr.requests).set_index("stage_index")["speedup"]
    e = float(theory.expected_tokens(2 / 3, 3))
    assert gap[0] == pytest.approx(e / (3 * 0.125 + 1))          # Leviathan
    assert gap[1] == pytest.approx(e / (0.375 + 10 / 8))          # + verify over 4 tokens
    assert gap[2] == pytest.approx(e / (0.375 + 1.25 + 1 / 8))    # + speculative overhead
    assert gap[3] == pytest.approx(gap[2] * 9 / 8)                # + baseline overhead
    assert gap[4] == pytest.approx(9.0 / 5.6)                     # = decode-only measured speedup, exactly
    assert gap[5] == pytest.approx((46 / 5) / (66 / 11))          # per-prompt, whole request, prefill included
    deltas = speedup.gap_attribution(tr.steps, tr.requests)["delta"]
    assert deltas.sum() == pytest.approx(gap[5])


def test_real_acceptance_stage_is_the_measured_decode_speedup_when_the_baseline_stalled(tr):
    # a stall in one baseline step: the predictions' costs leave it out (latency.calm), the measured figure keeps it,
    # and stage 5 is the measured one (both sides' plain means), not a calmed baseline over a raw speculative side
    steps = tr.steps.copy()
    base_ids = tr.requests.loc[(tr.requests["mode"] == "baseline") & ~tr.requests["warmup"], "request_id"]
    first = steps.index[steps["request_id"].isin(base_ids) & (steps["step"] >= 1)][0]
    steps.loc[first, "verify_ms"] *= 50
    gap = speedup.gap_attribution(steps, tr.requests).set_index("stage_index")["speedup"]
    s = frames.decode_steps(steps, tr.requests)
    per_token = lambda d: (d["draft_ms"] + d["verify_ms"] + d["other_ms"]).sum() / d["n_emitted"].sum()  # noqa: E731
    measured = per_token(s[s["mode"] == "baseline"]) / per_token(s[s["policy"] == "constant:3"])
    assert gap[4] == pytest.approx(measured)
    calm = latency.cost_model(steps, tr.requests, "draft")  # the stall is left out there: the test can tell them apart
    assert calm.base_token_ms < per_token(s[s["mode"] == "baseline"]) * 0.9


def test_per_position_expectation_reduces_to_the_iid_model():
    a = 0.7 ** np.arange(1, 9)
    assert theory.expected_tokens_by_position(a, np.arange(0, 9)) == pytest.approx(
        theory.expected_tokens(0.7, np.arange(0, 9)))
    bursty = [0.8, 0.7, 0.65]  # a rising conditional: 0.875, 0.93
    assert theory.expected_tokens_by_position(bursty, 3) == pytest.approx(1 + 0.8 + 0.7 + 0.65)


def test_fit_positions_and_request_speedup(tr):
    (f,) = speedup.fits(tr)
    assert f.drafter == "draft" and f.alpha == pytest.approx(6 / 9)
    assert list(f.positions) == pytest.approx([0.75, 0.5, 0.25])
    assert list(f.a(5)) == pytest.approx([0.75, 0.5, 0.25, 0.125, 0.0625])  # extrapolated with the last ratio
    e = float(f.expected(3))
    assert e == pytest.approx(2.5)  # = measured τ: per-position acceptance reproduces the steps' mean exactly
    c = f.costs
    spec = c.prefill_spec + (c.new_tokens - 1) / e * float(c.spec_step_ms(3))
    base = c.prefill_base + (c.new_tokens - 1) * c.base_token_ms
    assert float(speedup.request_speedup(e, 3, c)) == pytest.approx(base / spec)


def test_request_model_walks_the_token_budget():
    from workbench.analysis.latency import StepCosts

    step = StepCosts(0.0, 1.0, COSTS_FOR_DP)  # C(k) = k + (9 + (k + 1)) + 0.5
    cost = lambda k: k + 10.0 + k + 0.5  # noqa: E731
    # every draft accepted, 9 tokens, γ = 2: g = 1 → 4 → 7, then the budget allows 1 draft (7 + 2 = 9)
    assert speedup.request_ms(np.ones(2), 2, 9, step) == pytest.approx(2 * cost(2) + cost(1))
    # every draft rejected: one token per step; drafts of 2 until g = 6, then 1 (g = 7) and 0 (g = 8)
    assert speedup.request_ms(np.zeros(2), 2, 9, step) == pytest.approx(6 * cost(2) + cost(1) + cost(0))
    # a long request approaches the steady state (T − 1) / E · C(γ)
    a = 0.8 ** np.arange(1, 5)
    e = float(theory.expected_tokens_by_position(a, 4))
    assert speedup.request_ms(a, 4, 5001, step) == pytest.approx(5000 / e * cost(4), rel=2e-3)


def test_prediction_is_the_median_over_prompts_of_their_own_predictions():
    from workbench.analysis.latency import StepCosts

    step = StepCosts(0.0, 1.0, COSTS_FOR_DP)
    cost = lambda k: 2 * k + 10.5  # noqa: E731  (as in test_request_model_walks_the_token_budget)
    easy = speedup.PromptFit("easy", 9, 12.0, 1.0, np.ones(2))              # baseline measured: 12 ms/token
    hard = speedup.PromptFit("hard", 9, float("nan"), 0.0, np.zeros(2))     # no baseline: the cost model's
    f = speedup.Fit("r", "d", 0.0, 0.5, np.array([0.5, 0.25]), step, prompts=(easy, hard))
    e = 12.0 * 9 / (20.0 + 2 * cost(2) + cost(1))
    h = (15.0 + 8 * 10.5) / (20.0 + 6 * cost(2) + cost(1) + cost(0))
    assert speedup.predicted_speedup(f, 2) == pytest.approx((e + h) / 2)  # the median of two
    assert speedup.predicted_speedup(f, 2, "iid") == pytest.approx((e + h) / 2)  # α = 1 and 0: the same walks
    pooled = speedup.Fit("r", "d", 0.0, 0.5, np.array([0.5, 0.25]), step)
    assert speedup.predicted_speedup(pooled, [1, 2]).shape == (2,)


def test_sweep_and_tuning_tables_over_two_runs():
    both = trace.combine([make_trace("r1", 0.0), make_trace("r2", 1.0)])
    sweep = speedup.sweep_table(both)
    assert list(sweep["run_id"]) == ["r1", "r2"] and list(sweep["temperature"]) == [0.0, 1.0]
    assert sweep["measured"].iloc[0] == pytest.approx((46 / 5) / (66 / 11))
    assert sweep["predicted_position"].iloc[0] != sweep["predicted_iid"].iloc[0]
    tun = speedup.tuning_table(both)
    assert len(tun) == 2 and (tun["best_measured_gamma"] == 3).all()
    curve = speedup.gamma_curve(speedup.fits(make_trace())[0], 8)
    assert tun["optimal_gamma"].iloc[0] == int(curve.loc[curve["predicted_position"].idxmax(), "gamma"])
    assert curve["optimal"].sum() == 1


def test_policy_gamma_and_setting_labels():
    pol = frames.policy_gamma(pd.Series(["constant:4", "threshold:0.4:16", "", "constant:12"]))
    assert pol.iloc[0] == 4 and np.isnan(pol.iloc[1]) and np.isnan(pol.iloc[2]) and pol.iloc[3] == 12
    frame = pd.DataFrame({"drafter": ["d", ""], "policy": ["constant:4", ""], "temperature": [0.0, 0.0]})
    assert list(frames.setting_label(frame)) == ["d · constant:4", "baseline"]


def test_unobserved_positions_are_not_rejections():
    # a variable-γ request: steps drafted 1, 3 and 2 tokens; position 3 was drafted once (and accepted)
    parts = [request_rows("p", "speculative", 3, [(1, 1.0, 9.0, 1.0, 1), (3, 3.0, 11.0, 1.0, 3),
                                                  (0, 2.0, 10.0, 1.0, 2)], policy="threshold:0.4:3")]
    t = Trace(meta={}, **{k: pd.DataFrame(parts[0][k]) for k in ("requests", "steps", "tokens")})
    pos = acceptance.position_acceptance(t.steps, t.requests)
    assert list(pos["proposed"]) == [3, 2, 1] and list(pos["accepted"]) == [2, 1, 1]
    row = acceptance.acceptance_by(t.steps, t.tokens, t.requests).iloc[0]
    assert row["drafted"] == 6 and row["accepted"] == 4 and row["judged"] == 5


def test_carry_over_compares_the_first_draft_after_full_and_after_rejecting_steps(tr):
    # n = [3, 1, 0, 2] at γ = 3: step 2 follows a full acceptance (its first draft accepted), steps 3 and 4 follow
    # rejections (first draft rejected, then accepted); the warm-up never counts
    row = acceptance.carry_over(tr.steps, tr.requests).iloc[0]
    assert (row["drafter"], row["policy"], row["steps"], row["first"]) == ("draft", "constant:3", 4, 0.75)
    assert (row["after_full_steps"], row["after_full"]) == (1, 1.0)
    assert (row["after_reject_steps"], row["after_reject"]) == (2, 0.5) and row["carry"] == 0.5
    assert row["after_reject_lo"] < 0.5 < row["after_reject_hi"]
    # a step that drafted nothing is neither compared nor a predecessor: steps (γ, n) = (1, 1), (0, 0), (2, 2), (2, 0)
    parts = request_rows("p", "speculative", 2, [(1, 1.0, 9.0, 1.0, 1), (0, 0.0, 8.0, 1.0, 0),
                                                 (2, 2.0, 10.0, 1.0, 2), (0, 2.0, 10.0, 1.0, 2)], policy="adaptive:2")
    t = Trace(meta={}, **{k: pd.DataFrame(parts[k]) for k in ("requests", "steps", "tokens")})
    row = acceptance.carry_over(t.steps, t.requests).iloc[0]
    assert (row["steps"], row["after_full_steps"], row["after_full"], row["after_reject_steps"]) == (3, 1, 0.0, 0)
    assert np.isnan(row["after_reject"]) and np.isnan(row["carry"])


def test_along_output_places_each_judged_draft_at_its_position_in_the_response(tr):
    # n = [3, 1, 0, 2] at γ = 3 emit 4, 2, 1, 3 tokens after the prefill's token (t = 0): the steps start at t = 1, 5,
    # 7 and 8 and judge t = 1-3 (all accepted), 5-6 (5 accepted), 7 (rejected) and 8-10 (8, 9 accepted)
    along = acceptance.along_output(tr.steps, tr.requests)
    assert list(along["positions"]) == ["1–3", "4–7", "8–15"] and list(along["first"]) == [1, 4, 8]
    assert list(along["judged"]) == [3, 3, 3] and list(along["accepted"]) == [3, 1, 2]
    assert along["rate"].tolist() == pytest.approx([1.0, 1 / 3, 2 / 3])
    assert (along["rate_lo"] <= along["rate"]).all() and (along["rate"] <= along["rate_hi"]).all()
    assert set(along["drafter"]) == {"draft"}  # the warm-up (every draft accepted) and the baseline never count
    # a step that drafted nothing still moves the position on: (γ, n) = (2, 2), (0, 0), (2, 0) judge t = 1-2, the
    # empty step emits t = 4, and the last judges t = 5 (rejected)
    parts = request_rows("p", "speculative", 2, [(2, 2.0, 9.0, 1.0, 2), (0, 0.0, 8.0, 1.0, 0),
                                                 (0, 2.0, 10.0, 1.0, 2)], policy="adaptive:2")
    t = Trace(meta={}, **{k: pd.DataFrame(parts[k]) for k in ("requests", "steps", "tokens")})
    along = acceptance.along_output(t.steps, t.requests)
    assert list(along["first"]) == [1, 4] and list(along["judged"]) == [2, 1] and list(along["accepted"]) == [2, 0]
    assert acceptance.along_output(tr.steps, tr.requests[tr.requests["mode"] == "baseline"]).empty


def test_a_version_1_run_still_loads(tmp_path):
    """Format 1 (one model draft, requests.gamma): load maps it to drafter / policy and the analyses run on it."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from workbench import trace as wtrace

    t = make_trace()
    req = t.requests.drop(columns=["drafter", "policy", "started_at", "prompt_token_ids", "output_token_ids"])
    req.insert(5, "gamma", [3 if m == "speculative" else 0 for m in req["mode"]])
    steps = t.steps.drop(columns=["gamma_planned", "draft_stop"])
    for name, frame in (("requests", req), ("steps", steps), ("tokens", t.tokens)):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / f"{name}-00000.parquet")
    run_id = t.requests["run_id"].iloc[0]  # the parts' own run (load refuses parts of another run)
    (tmp_path / "meta.json").write_text(json.dumps({"run_id": run_id, "config": {"draft": "/m/my-draft/"}}))
    old = wtrace.load(tmp_path)
    spec = old.requests[old.requests["mode"] == "speculative"]
    assert set(spec["drafter"]) == {"my-draft"} and set(spec["policy"]) == {"constant:3"}
    assert (old.steps.loc[old.steps["gamma"] > 0, "draft_stop"] == "cap").all() and len(old.forced) == 0
    assert summary.summary_table(old).iloc[0]["speedup"] == pytest.approx((46 / 5) / (66 / 11))


def test_real_acceptance_stage_is_the_measured_decode_speedup_whatever_other_policies_cost(tr):
    # another policy of the same drafter whose drafts cost 4x as much per token: the pooled T_d moves, this γ's
    # measured decode speedup does not, and stage 5 must stay equal to it
    extra = request_rows("p0", "speculative", 4, [(2, 16.0, 12.0, 1.0)] * 3, category="code", policy="threshold:0.4")
    tables = {t: pd.concat([getattr(tr, t), pd.DataFrame(extra[t])], ignore_index=True)
              for t in ("requests", "steps", "tokens")}
    both = Trace(meta=tr.meta, **tables)
    gap = speedup.gap_attribution(both.steps, both.requests)
    stage = gap[(gap["gamma"] == 3)].set_index("stage_index")["speedup"]
    assert stage[4] == pytest.approx(9.0 / 5.6)  # mean(n + 1) · baseline ms/token ÷ mean step ms, constant:3 only
    fig = figures.waterfall_figure(gap, "draft", 3, 0.0).data[0]
    # the last bar stands at the measured speedup (drawn from 0), the others chain up to stage 5
    assert fig.measure[-1] == "absolute" and fig.y[-1] == pytest.approx(stage[5])
    assert sum(fig.y[:-1]) == pytest.approx(stage[4])


def test_extrapolation_past_the_longest_draft_uses_the_conditional_of_its_own_steps():
    # γ = 2 steps n = 2, 2, 1, 0 and a budget-clipped γ = 1 step n = 1: a_1 = 4/5, a_2 = 2/4, but the conditional
    # at 2 is #(n ≥ 2) / #(n ≥ 1) over the γ = 2 steps = 2/3 (a_2 / a_1 = 0.625 mixes the clipped step in)
    steps = [(2, 2.0, 9.0, 1.0), (2, 2.0, 9.0, 1.0), (1, 2.0, 9.0, 1.0), (0, 2.0, 9.0, 1.0), (1, 1.0, 8.0, 1.0, 1)]
    parts = [request_rows("p0", "speculative", 2, steps), request_rows("p0", "baseline", 0, [(0, 0.0, 8.0, 1.0)] * 4)]
    tr = Trace(meta={}, **{t: pd.DataFrame([r for p in parts for r in p[t]]) for t in ("requests", "steps", "tokens")})
    (fit,) = speedup.fits(tr)
    assert list(fit.a(4)) == pytest.approx([0.8, 0.5, 0.5 * 2 / 3, 0.5 * (2 / 3) ** 2])
    assert fit.prompts[0].tail == pytest.approx(2 / 3)
