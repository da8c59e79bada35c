"""workbench.analysis.drafters on hand-made traces whose answers are known (trace_fixtures.request_rows)."""

from __future__ import annotations

import pandas as pd
import pytest
from trace_fixtures import request_rows

from workbench.analysis import drafters, speedup
from workbench.trace import Trace

MISS = "no-match"


def make_trace(requests: list[dict]) -> Trace:
    cat = {k: pd.DataFrame([r for req in requests for r in req[k]]) for k in ("requests", "steps", "tokens")}
    return Trace(meta={}, requests=cat["requests"], steps=cat["steps"], tokens=cat["tokens"], forced=None)


def base(prompt: str, category: str, verify: float = 20.0, steps: int = 4) -> dict:
    """A baseline request of ``steps`` decode steps at ``verify`` ms each (prefill 10 ms)."""
    return request_rows(prompt, "baseline", 0, [(0, 0.0, verify, 0.0)] * steps, category=category)


@pytest.fixture
def trace() -> Trace:
    """Two categories × one prompt each; drafters: a model draft, ngram (hits on code, misses on prose), two
    early-exit depths. Baseline T_t(1) = 20 ms."""
    reqs = [base("c1", "code"), base("p1", "prose")]
    for prompt, cat in (("c1", "code"), ("p1", "prose")):
        common = dict(category=cat)
        reqs.append(request_rows(prompt, "speculative", 4, [(2, 8.0, 24.0, 0.0)] * 2, drafter="default", **common))
        ee2 = [(1, 2.0, 24.0, 0.0)] * 2
        ee4 = [(3, 6.0, 24.0, 0.0)] * 2 if cat == "code" else [(4, 6.0, 24.0, 0.0)] * 2
        reqs.append(request_rows(prompt, "speculative", 4, ee2, drafter="early-exit:2", **common))
        reqs.append(request_rows(prompt, "speculative", 4, ee4, drafter="early-exit:4", **common))
    # ngram: code = 3 hits (γ 4, 2, 4), 1 miss; prose = 1 hit (γ 1), 3 misses; misses cost 0.5 ms each
    code = [(4, 1.0, 24.0, 0.0, 4, "cap"), (1, 1.0, 22.0, 0.0, 2, MISS), (0, 0.5, 20.0, 0.0, 0, MISS),
            (3, 1.0, 24.0, 0.0, 4, "cap")]
    prose = [(0, 0.5, 20.0, 0.0, 0, MISS), (0, 0.5, 20.0, 0.0, 0, MISS), (1, 1.0, 21.0, 0.0, 1, MISS),
             (0, 0.5, 20.0, 0.0, 0, MISS)]
    reqs.append(request_rows("c1", "speculative", 4, code, drafter="ngram:3:1", category="code"))
    reqs.append(request_rows("p1", "speculative", 4, prose, drafter="ngram:3:1", category="prose"))
    return make_trace(reqs)


def row(frame: pd.DataFrame, **where) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for k, v in where.items():
        mask &= frame[k] == v
    assert mask.sum() == 1, f"{where}: {mask.sum()} rows"
    return frame[mask].iloc[0]


def test_acceptance_per_drafter_and_category_reuses_acceptance_by(trace):
    by = drafters.acceptance_by_drafter(trace.steps, trace.tokens, trace.requests, ["category"])
    assert row(by, drafter="early-exit:4", category="code")["acceptance_rate"] == pytest.approx(6 / 8)
    assert row(by, drafter="early-exit:4", category="prose")["acceptance_rate"] == pytest.approx(1.0)
    assert row(by, drafter="ngram:3:1", category="code")["acceptance_rate"] == pytest.approx(8 / 10)
    pos = drafters.position_by_drafter(trace.steps, trace.requests, constant_only=False)
    ee2 = pos[pos["drafter"] == "early-exit:2"].set_index("position")
    assert list(ee2["a"]) == [1.0, 0.0, 0.0, 0.0] and ee2["alpha"].iloc[0] == pytest.approx(4 / 8)
    assert set(pos["drafter"]) == {"default", "early-exit:2", "early-exit:4", "ngram:3:1"}


def test_draft_costs_count_the_searches_that_found_nothing(trace):
    costs = drafters.draft_costs(trace.steps, trace.requests)
    ng = row(costs, drafter="ngram:3:1")
    assert ng["drafted"] == 11 and ng["empty_steps"] == 4
    assert ng["t_d"] == pytest.approx(6.0 / 11)  # 4 × 1 ms + 4 × 0.5 ms over 11 drafted tokens
    assert ng["draft_ms_empty"] == pytest.approx(0.5) and ng["draft_ms_per_step"] == pytest.approx(6.0 / 8)
    assert ng["t1"] == pytest.approx(20.0) and ng["c"] == pytest.approx(6.0 / 11 / 20.0)
    ee4 = row(costs, drafter="early-exit:4")
    assert ee4["t_d"] == pytest.approx(1.5) and ee4["c"] == pytest.approx(0.075) and ee4["empty_steps"] == 0
    assert pd.isna(ee4["draft_ms_empty"])


def test_hit_rate_counts_steps_that_proposed_at_least_one_token(trace):
    hits = drafters.hit_rate(trace.steps, trace.requests)
    code, prose = row(hits, drafter="ngram:3:1", category="code"), row(hits, drafter="ngram:3:1", category="prose")
    assert (code["asked"], code["hits"], code["hit_rate"]) == (4, 3, 0.75)
    assert code["mean_proposal"] == pytest.approx(10 / 3)
    assert (prose["hit_rate"], prose["mean_proposal"]) == (0.25, 1.0)
    assert code["hit_lo"] < 0.75 < code["hit_hi"]
    assert row(hits, drafter="default", category="code")["hit_rate"] == 1.0
    overall = row(drafters.hit_rate(trace.steps, trace.requests, by=[]), drafter="ngram:3:1")
    assert overall["hit_rate"] == pytest.approx(4 / 8)


def test_steps_clipped_by_the_budget_are_not_misses():
    reqs = [request_rows("a", "speculative", 4, [(1, 1.0, 22.0, 0.0, 2, "no-match"), (0, 0.1, 20.0, 0.0, 0, "budget")],
                         drafter="ngram:3:1")]
    t = make_trace(reqs)
    hits = drafters.hit_rate(t.steps, t.requests, by=[])
    assert (hits["asked"].iloc[0], hits["hit_rate"].iloc[0]) == (1, 1.0)
    assert drafters.draft_costs(t.steps, t.requests)["empty_steps"].iloc[0] == 0


def test_early_exit_curve_has_one_row_per_depth(trace):
    curve = drafters.early_exit_curve(trace.steps, trace.requests)
    assert list(curve["layers"]) == [2, 4] and set(curve["policy"]) == {"constant:4"}
    ee2, ee4 = curve.iloc[0], curve.iloc[1]
    assert ee2["acceptance_rate"] == pytest.approx(0.25) and ee4["acceptance_rate"] == pytest.approx(14 / 16)
    assert ee2["c"] == pytest.approx(0.5 / 20) and ee4["c"] == pytest.approx(1.5 / 20)
    assert ee4["tokens_per_step"] == pytest.approx(4.5)
    # baseline: (10 + 4·20) ms for 5 tokens = 18 ms/token; early-exit:4: 70 ms for 9 (code) and 11 (prose) tokens
    assert ee4["speedup"] == pytest.approx((18 * 9 / 70 + 18 * 11 / 70) / 2) and ee4["speedup"] > ee2["speedup"]
    assert drafters.early_exit_curve(trace.steps, trace.requests[trace.requests["drafter"] != "early-exit:2"]
                                     .query("drafter != 'early-exit:4'")).empty


def test_ranking_overall_equals_speedup_table_and_categories_use_their_own_prompts(trace):
    rank = drafters.ranking(trace)
    overall = rank[rank["category"] == "all"]
    measured = speedup.speedup_table(trace.requests).set_index("drafter")["speedup"]
    for r in overall.itertuples():
        assert r.speedup == pytest.approx(measured[r.drafter])
    assert list(overall["rank"]) == sorted(overall["rank"]) and overall.iloc[0]["drafter"] == "early-exit:4"
    # per category = that category's prompt ratio (one prompt each here): baseline 50 ms / 5 tokens
    ratios = drafters.request_ratios(trace.requests)
    code = rank[rank["category"] == "code"].set_index("drafter")
    for r in ratios[ratios["category"] == "code"].itertuples():
        assert code.loc[r.drafter, "speedup"] == pytest.approx(r.ratio)
    assert code.loc["early-exit:4", "rank"] == 1 and rank["category"].tolist()[:4] == ["all"] * 4
    # ngram misses on prose: slower there than on code, ranked last on prose
    prose = rank[rank["category"] == "prose"].set_index("drafter")
    assert prose.loc["ngram:3:1", "speedup"] < code.loc["ngram:3:1", "speedup"] and prose.loc["ngram:3:1", "rank"] == 4


def test_prompt_ratio_is_baseline_over_speculative_ms_per_token():
    reqs = [request_rows("a", "baseline", 0, [(0, 0.0, 20.0, 0.0)] * 3),  # 70 ms / 4 tokens
            request_rows("a", "speculative", 2, [(2, 2.0, 18.0, 0.0)], drafter="x")]  # 30 ms / 4 tokens
    ratios = drafters.request_ratios(make_trace(reqs).requests)
    assert ratios["ratio"].tolist() == pytest.approx([70 / 30])


def test_figures_draw_the_tables_and_say_when_there_is_nothing(trace):
    from workbench.analysis import figures

    rank = drafters.ranking(trace)
    fig = figures.ranking_figure(rank)
    assert len(fig.data) == 4 and list(fig.data[0].x) == ["all", "code", "prose"]
    curve = drafters.early_exit_curve(trace.steps, trace.requests)
    fig = figures.early_exit_figure(curve)
    assert [list(d.x) for d in fig.data] == [[2, 4]] * 3 and fig.data[2].yaxis == "y2"
    hits = figures.hit_rate_figure(drafters.hit_rate(trace.steps, trace.requests))
    assert [d.name for d in hits.data] == ["ngram:3:1"]  # model drafters never miss: not drawn
    assert not figures.early_exit_figure(curve.iloc[:0]).data
    assert "no early-exit" in figures.early_exit_figure(curve.iloc[:0]).layout.annotations[0].text
    pos = figures.position_by_drafter_figure(drafters.position_by_drafter(trace.steps, trace.requests))
    assert len(pos.data) == 4


def test_a_prompt_measured_twice_by_the_baseline_is_paired_with_its_median(trace):
    again = base("c1", "code", verify=40.0)  # a second baseline of c1 (e.g. two runs combined): ms/token 34
    again["requests"][0]["request_id"] = again["requests"][0]["request_id"] + "#2"
    for table in ("steps", "tokens"):
        for r in again[table]:
            r["request_id"] += "#2"
    both = make_trace([{t: [*getattr(trace, t).to_dict("records"), *again[t]]
                        for t in ("requests", "steps", "tokens")}])
    rank = drafters.ranking(both)
    overall = rank[rank["category"] == "all"].set_index("drafter")
    measured = speedup.speedup_table(both.requests).set_index("drafter")["speedup"]
    assert (overall["prompts"] == 2).all()  # one ratio per prompt, not one per baseline row
    for drafter, value in measured.items():
        assert overall.loc[drafter, "speedup"] == pytest.approx(value)


def test_ranks_start_at_one_within_each_temperature(trace):
    # the same run again at T = 0.7, every speculative request 3x slower: each temperature still has its fastest
    hot = trace.requests.assign(temperature=0.7, request_id=trace.requests["request_id"] + "@0.7")
    hot.loc[hot["mode"] == "speculative", "ms_per_token"] *= 3
    both = Trace(meta=trace.meta, requests=pd.concat([trace.requests, hot], ignore_index=True), steps=trace.steps,
                 tokens=trace.tokens)
    rank = drafters.ranking(both)
    firsts = rank[rank["rank"] == 1].groupby(["category", "temperature"]).size()
    assert len(firsts) == 2 * rank["category"].nunique()

def test_a_drafter_s_kind_is_read_from_its_label_alone():
    from workbench.analysis import notebook
    from workbench.analysis.recorded import ngram_of
    from workbench.drafters import kind_of, parse_drafter

    # labels as the run writes them: n-gram and early-exit labels are canonical; a model is its folder name
    for spec in ("ngram", "ngram:4:2", "early-exit:3", "default", "models/ngram", "models/ngram-small", "x/early-exit"):
        d = parse_drafter(spec)
        assert kind_of(d.label) == d.kind, spec
    assert ngram_of("ngram") is None and ngram_of("ngram:4:2") == (4, 2)  # a model folder named "ngram"
    assert not drafters.is_ngram("ngram-small") and drafters.is_ngram("ngram:3:1")
    # the policy sections look at the first *model* drafter, whatever its folder is called
    reqs = [base("c1", "code")] + [request_rows("c1", "speculative", 4, [(2, 8.0, 24.0, 0.0)], drafter=d)
                                   for d in ("ngram:3:1", "ngram-small")]
    assert notebook.main_drafter(make_trace(reqs)) == "ngram-small"


def test_a_drafter_that_never_drafted_has_no_alpha_and_the_tuning_tables_still_build():
    # an n-gram drafter on output that never repeats: every step searched, found nothing, drafted 0 tokens
    miss = [(0, 0.5, 20.0, 0.0, 0, MISS)] * 4
    reqs = [base(p, "prose") for p in ("a", "b")]
    reqs += [request_rows(p, "speculative", 4, miss, drafter="ngram:3:1", category="prose") for p in ("a", "b")]
    t = make_trace(reqs)
    (fit,) = speedup.fits(t)
    assert fit.drafter == "ngram:3:1" and fit.alpha != fit.alpha  # NaN: nothing was judged, not α = 0
    sweep = speedup.sweep_table(t, [fit])
    assert list(sweep["gamma"]) == [4] and sweep["measured"].notna().all()  # the measurement stays
    assert len(speedup.tuning_table(t, 8, [fit], sweep)) == 1


def test_a_prompt_that_never_drafted_leaves_the_other_prompts_predictions_standing():
    # prompt "a": the lookup matched (2 of 4 drafts accepted per step); prompt "b": it never did
    hit, miss = [(2, 1.0, 24.0, 0.0, 4, "cap")] * 4, [(0, 0.5, 20.0, 0.0, 0, MISS)] * 4
    reqs = [base(p, "prose") for p in ("a", "b")]
    reqs += [request_rows(p, "speculative", 4, steps, drafter="ngram:3:1", category="prose")
             for p, steps in (("a", hit), ("b", miss))]
    t = make_trace(reqs)
    (fit,) = speedup.fits(t)
    assert [p.prompt_id for p in fit.prompts if p.alpha != p.alpha] == ["b"]  # NaN: nothing judged on "b"
    sweep = speedup.sweep_table(t, [fit])
    assert sweep[["predicted_iid", "predicted_position"]].notna().all().all()  # "a" predicts; "b" is left out
