"""Offline replay: known answers on a hand-made recorded output, exact agreement with live runs of deterministic
policies under greedy decoding, and one clear line for each bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from test_cli import run_args
from test_sweep import make_finished_sweep
from trace_fixtures import as_killed

from workbench import trace
from workbench.analysis import clock, latency, policies, replay
from workbench.analysis.recorded import Recorded, recorded_outputs, token_budget
from workbench.cli import main
from workbench.interrupts import resume_command
from workbench.policies import parse_policy

MATCH = [False, True, True, True, False, True, True, False, True]  # index 0 is the prefill's token
CONF = [1.0, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
COSTS = latency.CostModel(t1=10.0, t_d=1.0, a=9.0, b=1.0, o_spec=0.5, o_base=0.5, prefill_spec=20.0,
                          prefill_base=15.0, new_tokens=9.0, has_baseline=True)


def recorded() -> Recorded:
    n = len(MATCH)
    return Recorded("p", "cat", [1, 2, 3], list(range(10, 10 + n)), np.array(MATCH), np.array(CONF),
                           np.zeros(n), np.full(n, 0.5))


def steps_of(spec):
    policy = None if spec == replay.ORACLE else parse_policy(spec)
    rows = replay.replay_request(recorded(), policy, latency.StepCosts(0.0, 1.0, COSTS), max_new=9)
    return [(r["gamma"], r["n_accepted"], r["n_emitted"]) for r in rows]


def test_constant_replay_walks_the_recorded_matches():
    # g=1: drafts at 1,2 both match → 3 tokens; g=4: 4 misses → 1; g=5: 5,6 match → 3; g=8: budget 9−8−1 = 0 → 1
    assert steps_of("constant:2") == [(2, 2, 3), (2, 0, 1), (2, 2, 3), (0, 0, 1)]


def test_the_oracle_drafts_exactly_what_will_be_accepted():
    assert steps_of(replay.ORACLE) == [(3, 3, 4), (2, 2, 3), (0, 0, 1)]


@pytest.mark.parametrize("alpha", [0.45, 0.8])
def test_at_t_above_0_the_oracle_bounds_every_policy_on_the_same_draws(alpha):
    # T > 0: acceptance is drawn with the recorded α per position. The oracle must see the draws the policies see,
    # or it is no bound (it once drafted only where α > 0.5: 1.06x against 1.45x for constant:2 at α = 0.45).
    n = 64
    outputs = [Recorded(f"p{i}", "cat", [1, 2, 3], list(range(10, 10 + n)), np.zeros(n, bool), np.full(n, 0.5),
                        np.zeros(n), np.full(n, alpha)) for i in range(20)]
    costs = latency.StepCosts(0.0, 1.0, COSTS)
    per = {spec: replay.replay_policy(outputs, spec, costs, max_new=n, greedy=False).set_index("prompt_id")
           for spec in (replay.ORACLE, "constant:1", "constant:2", "constant:4", "heuristic:2", "adaptive:8")}
    for spec, table in per.items():
        assert (per[replay.ORACLE]["speedup"] >= table["speedup"] - 1e-12).all(), spec
        assert (per[replay.ORACLE]["steps"] <= table["steps"]).all(), spec
    # expected acceptance, drawn: constant:1 accepts about α of its drafts
    c1 = per["constant:1"]
    assert c1["accepted"].sum() / c1["drafted"].sum() == pytest.approx(alpha, abs=0.05)
    # each prompt draws on its own: twenty identical prompts do not all replay alike (one shared draw would)
    assert c1["accepted"].nunique() > 1


def test_at_t_above_0_a_policy_reads_the_recorded_draw_s_confidence_and_accepts_with_its_p_over_q():
    # the argmax is confident everywhere (0.9) and α is 1; the recorded draws of the draft are not: position 2's drew
    # a token of q = 0.1, and positions 3+ drew tokens the target gives p/q = 0 (never accepted)
    n = len(MATCH)
    drawn = dict(sample_conf=np.array([1.0, 0.9, 0.1] + [0.9] * (n - 3)),
                 sample_accept=np.array([1.0, 1.0, 1.0] + [0.0] * (n - 3)))
    rec = Recorded("p", "cat", [1, 2, 3], list(range(10, 10 + n)), np.array(MATCH), np.full(n, 0.9), np.zeros(n),
                   np.ones(n), **drawn)
    costs = latency.StepCosts(0.0, 1.0, COSTS)
    first = lambda r, greedy: replay.replay_request(r, parse_policy("threshold:0.5:4"), costs, 9,  # noqa: E731
                                                    greedy=greedy)[0]
    assert (first(rec, False)["gamma"], first(rec, False)["n_accepted"]) == (2, 2)  # stops after the 0.1 draw
    older = dataclasses.replace(rec, sample_conf=None, sample_accept=None)  # a run that did not record draws
    assert (first(older, False)["gamma"], first(older, False)["n_accepted"]) == (4, 4)  # argmax q, α: all pass
    assert first(rec, True)["gamma"] == 4  # under greedy decoding the draft proposes its argmax: conf 0.9
    # acceptance follows the draws' p/q: nothing after position 2 is accepted at T > 0
    steps = replay.replay_request(rec, parse_policy("constant:3"), costs, 9, greedy=False)
    assert [s["n_accepted"] for s in steps] == [2] + [0] * (len(steps) - 1)


def test_a_sampled_run_records_one_draw_of_the_draft_per_position_with_its_own_generator(model_dirs, prompts_file,
                                                                                       tmp_path):
    runs = {}
    for name, extra in (("with", ()), ("without", ("--no-replay-data",))):
        args = run_args(model_dirs, prompts_file, tmp_path / name, "--limit", "2", "--temperature", "0.9",
                        "--policy", "threshold:0.3:6", *extra)
        assert main(args) == 0
        runs[name] = trace.load(tmp_path / name)
    # the forced pass draws from a generator of its own: the run's sampled outputs are the same without it
    outputs = {k: t.requests.sort_values("request_id")["output_token_ids"].map(list).tolist() for k, t in runs.items()}
    assert outputs["with"] == outputs["without"]
    f = runs["with"].forced
    assert len(f) and f["sample_conf"].notna().all() and f["sample_accept"].between(0, 1).all()
    assert (f["sample_conf"] <= f["draft_conf"] + 1e-6).all()  # a draw is never more likely than the argmax
    assert (f["sample_conf"] < f["draft_conf"] - 1e-6).any()  # and at T = 0.9 not always the argmax
    rec = recorded_outputs(runs["with"], "draft_prefix")
    assert all(r.sample_conf is not None and len(r.sample_conf) == len(r.output) for r in rec)
    # a run recorded before the columns existed (the committed sample run) still loads: the columns read as NaN
    old = trace.load(Path(__file__).parents[1] / "data" / "sample_run")
    assert old.forced["sample_conf"].isna().all() and old.forced["sample_accept"].isna().all()
    assert all(r.sample_conf is None for r in recorded_outputs(old, "default-draft", limit=3))


def test_threshold_stops_after_a_low_confidence_token_and_keeps_it():
    # g=1: token 1 (conf .9) then token 2 (conf .1 < .5): stop after it → 2 drafted, both accepted
    assert steps_of("threshold:0.5:4")[0] == (2, 2, 3)


def test_replay_summary_counts_the_prefill_as_a_target_call():
    per_prompt = pd.DataFrame([{"policy": "constant:2", "tokens": 10, "steps": 3, "drafted": 6, "accepted": 6,
                                "tau_sum": 9, "speedup": 1.5}])
    row = replay.summarize(per_prompt).iloc[0]
    assert row["target_calls_per_100"] == pytest.approx(40.0)  # 3 decode steps + the prefill, per 10 tokens
    assert row["tokens_per_step"] == pytest.approx(3.0) and row["wasted_per_token"] == 0


def test_the_teacher_forced_table_reads_p_at_the_output_token_not_the_draft_s():
    import torch
    from tiny_models import make_model

    from workbench.forced import forced_rows
    from workbench.lm import CausalLM
    from workbench.sampling import SamplingConfig

    vocab, output = 16, [3, 7, 7, 1]
    draft = CausalLM(make_model("llama", vocab_size=vocab, seed=5, layers=1, hidden=16), vocab)
    p = torch.softmax(torch.randn(len(output), vocab, generator=torch.Generator().manual_seed(0)), -1)
    rows = forced_rows(p, draft, [2, 4, 6], output, SamplingConfig(), {"drafter": "d"})
    assert [r["p_token"] for r in rows] == pytest.approx([float(p[t, tok]) for t, tok in enumerate(output)])
    assert any(r["draft_token"] != tok for r, tok in zip(rows, output))  # the two readings differ somewhere
    assert [r["match"] for r in rows] == [r["draft_token"] == tok for r, tok in zip(rows, output)]

def test_replayed_time_follows_the_cost_model():
    per = replay.replay_policy([recorded()], "constant:2", latency.StepCosts(0.0, 1.0, COSTS), max_new=9)
    row = per.iloc[0]
    verify = lambda k: 9.0 + 1.0 * k  # noqa: E731
    spec_ms = 20.0 + 3 * (2 * 1.0 + verify(3) + 0.5) + (0.0 + verify(1) + 0.5)  # the γ = 0 step plans nothing
    assert row["spec_ms"] == pytest.approx(spec_ms) and row["base_ms"] == pytest.approx(15.0 + 8 * 10.5)
    assert row["speedup"] == pytest.approx(row["base_ms"] / spec_ms)
    assert policies.recommend("constant:4")["vLLM speculative_config"] == "num_speculative_tokens=4"
    assert "assistant_confidence_threshold=0.3" in policies.recommend("threshold:0.3:8")[
        "Hugging Face generate(assistant_model=draft, ...)"]


def test_replayed_speedup_divides_the_baseline_measured_on_the_same_prompt():
    rec = recorded()
    rec.base_ms_per_token = 12.0
    row = replay.replay_policy([rec], "constant:2", latency.StepCosts(0.0, 1.0, COSTS), max_new=9).iloc[0]
    assert row["base_ms"] == pytest.approx(12.0 * len(rec.output)) and row["speedup"] == pytest.approx(
        row["base_ms"] / row["spec_ms"])


def test_the_recommended_setting_prefers_the_best_constant_unless_a_policy_gain_is_resolved():
    from test_analysis import make_trace  # one constant:3 request of drafter "draft" (its mean γ is 3)

    t = make_trace()
    table = pd.DataFrame({"policy": ["constant:3", "adaptive:16", "oracle"], "measured_speedup": [1.40, 1.45, np.nan],
                          "measured_lo": [1.30, 1.33, np.nan], "measured_hi": [1.50, 1.52, np.nan],
                          "best_constant": [True, False, False], "vs_best_constant": [1.0, 1.036, np.nan],
                          "vs_best_lo": [1.0, 0.97, np.nan], "vs_best_hi": [1.0, 1.09, np.nan]})
    rec = policies.best_setting(table, t, "draft")  # adaptive is fastest, but 0.97–1.09 reaches 1
    assert (rec.spec, rec.speedup, rec.lo, rec.hi) == ("constant:3", 1.40, 1.30, 1.50)
    assert "adaptive:16 measured fastest" in rec.why and "0.970–1.090" in rec.why
    assert rec.settings["vLLM speculative_config"] == "num_speculative_tokens=3"
    table.loc[1, "vs_best_lo"] = 1.02  # resolved: the policy itself
    rec = policies.best_setting(table, t, "draft")
    assert rec.spec == "adaptive:16" and rec.speedup == 1.45 and "resolves" in rec.why
    assert "nearest constant" in rec.settings["vLLM speculative_config"]  # no steps of it here: γ falls back to 4
    table.loc[1, "measured_speedup"] = 1.30  # the constant is fastest: it, without a comparison
    assert policies.best_setting(table, t, "draft").why == "the fastest policy measured in this run"


def test_the_gap_to_the_oracle_is_closed_only_where_the_oracle_lies_above_the_best_constant():
    measured = pd.Series([1.4, 1.5, 1.6])
    assert policies.gap_closed(measured, 1.4, 2.4).tolist() == pytest.approx([0.0, 0.1, 0.2])
    assert policies.gap_closed(measured, 1.4, 1.2).isna().all()  # a bound below the measured best: no gap


def test_the_gap_is_measured_from_the_best_constant_even_where_a_policy_beats_it(monkeypatch):
    from workbench.analysis import intervals

    live = pd.DataFrame({"policy": ["constant:2", "constant:4", "adaptive:8", replay.ORACLE],
                         "measured_speedup": [1.2, 1.4, 1.6, np.nan], "predicted_speedup": [1.2, 1.4, 1.6, 2.4]})
    monkeypatch.setattr(replay, "live_vs_replay", lambda *a, **k: live)
    monkeypatch.setattr(intervals, "against_best_constant", lambda *a, **k: pd.DataFrame(
        {"policy": live["policy"][:3], "temperature": 0.0}))
    out = policies.comparison(SimpleNamespace(requests=None), "d").set_index("policy")
    assert out.loc["constant:4", "gap_closed"] == pytest.approx(0.0)
    assert out.loc["adaptive:8", "gap_closed"] == pytest.approx(0.2)  # (1.6 − 1.4) / (2.4 − 1.4)
    assert out["best_constant"].tolist() == [False, True, False, False]

def test_measured_step_costs_come_before_the_lines():
    step = latency.StepCosts(0.5, 1.0, COSTS, draft_by_k={2: 4.0}, verify_by_k={3: 30.0})
    assert step.step_ms(2, 2) == (4.0, 30.0, 0.5)                    # both measured at this k
    assert step.step_ms(3, 3) == pytest.approx((3.5, 13.0, 0.5))      # lines d0 + d1·k and a + b·(k + 1)
    assert step.step_ms(0, 0) == pytest.approx((0.0, 10.0, 0.5))      # a target-only step has no draft phase


def test_replay_reproduces_live_tokens_per_step_of_deterministic_policies(model_dirs, prompts_file, tmp_path,
                                                                           capsys):
    out = tmp_path / "run"
    args = run_args(model_dirs, prompts_file, out, "--baseline", "--policy",
                    "constant:2,constant:5,heuristic:2,threshold:0.3:6,adaptive:6")
    args[args.index("--draft") + 1] = f"{model_dirs['draft_prefix']},ngram"
    args[args.index("--max-new-tokens") + 1] = "24"
    assert main(args) == 0
    t = trace.load(out)
    for drafter in ("draft_prefix", "ngram:3:1"):
        check = replay.live_vs_replay(t, drafter).set_index("policy")
        # adaptive too: replay feeds it the run's own clock readings, in run order, and replays the warm-up
        assert len(check) == 5 and (check["tau_error"].abs() < 1e-9).all(), check
        assert check["speedup_error"].notna().all()
        # policies that do not read the draft's confidence draft exactly what they drafted live: every count agrees
        exact = check.loc[["constant:2", "constant:5", "heuristic:2"]]
        for name in replay.MEASURED_TOO:
            assert exact[name].to_numpy() == pytest.approx(exact[f"measured_{name}"].to_numpy()), name
    # the measured counts, from the tables: target calls = decode steps + one prefill per request, per 100 tokens
    req = t.requests[~t.requests["warmup"] & (t.requests["policy"] == "threshold:0.3:6")
                     & (t.requests["drafter"] == "draft_prefix")]
    dec = t.steps[t.steps["request_id"].isin(req["request_id"]) & (t.steps["step"] >= 1)]
    check_model = replay.live_vs_replay(t, "draft_prefix").set_index("policy")
    row = check_model.loc["threshold:0.3:6"]
    assert row["measured_target_calls_per_100"] == pytest.approx(100 * (len(dec) + len(req)) / req["new_tokens"].sum())
    assert row["measured_wasted_per_token"] == pytest.approx(
        (dec["gamma"].sum() - dec["n_accepted"].sum()) / req["new_tokens"].sum())
    shown = policies.shown(check_model.reset_index())  # the report's table: replayed figures say so in their names
    assert {"replayed_tokens_per_step", "measured_tokens_per_step", "replayed_speedup"} <= set(shown.columns)
    assert "tokens_per_step" not in shown.columns and "predicted_speedup" not in shown.columns
    agree = policies.shown(check_model.reset_index(), agreement=True)
    assert list(agree.columns) == ["policy", "prompts", "measured_tokens_per_step", "replayed_tokens_per_step",
                                   "tau_error", "measured_speedup", "replayed_speedup", "speedup_error"]
    # what a clock-reading policy is fed: the warm-up first (a prefix of the same prompt's output), then every
    # prompt with the step times measured before its last request, each step once, in run order
    rec = recorded_outputs(t, "draft_prefix")
    assert [r.warmup for r in rec] == [True] + [False] * 3
    assert rec[0].output == next(r for r in rec[1:] if r.prompt_id == "a").output[: len(rec[0].output)]
    req = t.requests[t.requests["drafter"] == "draft_prefix"]
    steps = t.steps[(t.steps["step"] >= 1) & t.steps["request_id"].isin(req["request_id"])]
    steps = steps.merge(req[["request_id", "started_at"]]).sort_values(["started_at", "step"])
    fed = [row for r in rec for row in r.times_before]
    assert fed == list(zip(steps["gamma"], steps["draft_ms"], steps["verify_ms"], steps["other_ms"]))[: len(fed)]
    last = req[~req["warmup"]].groupby("prompt_id")["started_at"].max()
    assert len(fed) == (steps["started_at"] < last.max()).sum()
    capsys.readouterr()
    table = tmp_path / "new" / "dir" / "table.csv"  # --out's folders are created
    assert main(["replay", str(out), "--policy", "constant:3,threshold:0.2", "--out", str(table)]) == 0
    printed = capsys.readouterr().out
    assert "oracle" in printed and "threshold:0.2:16" in printed and "prediction" in printed
    written = pd.read_csv(table).set_index("policy")
    assert set(written.index) == {"constant:3", "threshold:0.2:16", "oracle"} and "measured_lo" in printed
    # every replayed figure is named as one, printed and written, beside its measured_* counterpart
    for name in ("speedup", "tokens_per_step", "target_calls_per_100", "wasted_per_token"):
        assert f"replayed_{name}" in printed and f"measured_{name}" in printed and f"replayed_{name}" in written
    assert not {"predicted_speedup", "tokens_per_step", "wasted_per_token"} & set(written.columns)
    # the live figures beside the prediction carry their bootstrap interval; policies that did not run have none
    live = replay.live_vs_replay(t, "draft_prefix").set_index("policy")
    assert (live["measured_lo"] <= live["measured_hi"]).all() and live["measured_lo"].notna().all()
    assert written[["measured_speedup", "measured_lo", "measured_hi"]].isna().all(axis=None)


def test_replay_bad_input_gets_one_line(model_dirs, prompts_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(run_args(model_dirs, prompts_file, out, "--baseline", "--no-replay-data", "--limit", "1")) == 0
    capsys.readouterr()
    assert main(["replay", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: replay: the run has no replay data") and "\n" not in err
    assert main(["replay", str(out), "--policy", "threshold:abc"]) == 2
    assert "must be a probability" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    for args, message in ((["--policy", " , "], "expected a comma-separated list"),  # not the defaults, silently
                          (["--limit", "0"], "expected an integer ≥ 1")):
        with pytest.raises(SystemExit) as usage:
            main(["replay", str(out), *args])
        err = capsys.readouterr().err.strip()
        assert usage.value.code == 2 and message in err and "\n" not in err
    (tmp_path / "afile").write_text("a file, not a directory")
    assert main(["replay", str(out), "--out", str(tmp_path / "afile" / "table.csv")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'afile'}: exists and is not a directory"


def test_replay_warns_when_the_run_s_clock_was_disturbed(model_dirs, prompts_file, tmp_path, capsys):
    """Replay charges the run's mean step costs, so a load that came and went moves it where the interleaved
    measurement holds: the table is followed by the same warning `run` prints (``clock.clock_note``)."""
    import pyarrow.parquet as pq

    out = tmp_path / "run"
    assert main(run_args(model_dirs, prompts_file, out, "--baseline", "--limit", "2")) == 0
    capsys.readouterr()
    quiet = clock.clock_note(trace.load(out).steps, trace.load(out).requests) == ""
    assert main(["replay", str(out), "--policy", "constant:2"]) == 0
    assert ("warning:" in capsys.readouterr().err) is not quiet  # a busy test machine may disturb it by itself
    for part in out.glob("steps-*.parquet"):  # every 4th decode step's verify 100× longer, as a stall makes it
        table = pq.read_table(part)
        steps = table.to_pandas()
        hit = (steps["step"] >= 1) & (steps.index % 4 == 0)
        steps.loc[hit, "verify_ms"] *= 100
        pq.write_table(pa.Table.from_pandas(steps, schema=table.schema, preserve_index=False), part)
    assert main(["replay", str(out), "--policy", "constant:2"]) == 0
    captured = capsys.readouterr()
    assert "replayed_speedup" in captured.out
    assert captured.err.startswith("warning: The clock of this run was disturbed") and "the predictions" in captured.err


def test_a_sampled_run_replays_its_model_drafter_and_says_it_left_the_ngram_out(model_dirs, prompts_file, tmp_path,
                                                                                 capsys):
    out = tmp_path / "run"
    args = run_args(model_dirs, prompts_file, out, "--baseline", "--limit", "2", "--temperature", "0.8")
    args[args.index("--draft") + 1] += ",ngram"
    assert main(args) == 0
    capsys.readouterr()
    assert main(["replay", str(out)]) == 0
    captured = capsys.readouterr()
    note, *rest = captured.err.strip().splitlines()
    assert note == "note: ngram:3:1 left out: n-gram drafters replay only from greedy runs (T = 0)"
    assert all(line.startswith("warning: The clock of this run was disturbed") for line in rest)  # a busy machine's
    assert "draft_prefix" in captured.out and "ngram:3:1" not in captured.out
    assert main(["replay", str(out), "--drafter", "ngram"]) == 2  # asked for by name: refused, in one line
    assert capsys.readouterr().err.strip().startswith("error: replay: n-gram drafters replay only from greedy")
    t = trace.load(out)  # what the tuning page and benchmarks/predictions.py ask before replaying a drafter
    assert replay.replayable(t, "draft_prefix") and not replay.replayable(t, "ngram:3:1")


def test_a_resumed_run_replays_each_session_warm_up_in_order(model_dirs, prompts_file, tmp_path, monkeypatch):
    import workbench.adaptive

    # adaptive probes after 2 target-only steps: its state at a session's end differs from a new session's (the
    # draft here is never accepted), so replay must start each session with new policies, as the live run did
    monkeypatch.setattr(workbench.adaptive, "PROBE", 2)
    out = tmp_path / "run"
    policies = ("--baseline", "--policy", "constant:3,adaptive:5")
    assert main(run_args(model_dirs, prompts_file, out, *policies, "--limit", "1")) == 0
    meta = json.loads((out / "meta.json").read_text())  # as if killed after prompt a (test_cli does the same)
    meta["config"]["limit"] = None
    (out / "meta.json").write_text(json.dumps(meta))
    assert main(run_args(model_dirs, prompts_file, out, *policies, "--resume")) == 0  # session 1: its own warm-up
    t = trace.load(out)
    rec = recorded_outputs(t, "draft_prefix")
    assert [r.prompt_id for r in rec] == ["warmup0", "a", "warmup1", "b", "c"]
    check = replay.live_vs_replay(t, "draft_prefix").set_index("policy")
    assert (check["tau_error"].abs() < 1e-9).all(), check


def _unfinished(run, modes=("speculative",)):
    """``run`` as if killed before any measured request of ``modes`` finished (a part without requests is ignored)."""
    req = trace.load(run).requests
    as_killed(run, parts=[i for i, r in req.iterrows() if r["mode"] in modes and not r["warmup"]])


@pytest.mark.parametrize("case, message", [
    ("killed", "no speculative requests to replay (it stopped before its first speculative request finished: "
               "finish it with `{resume}`)"),
    ("sweep-baseline", "no speculative requests to replay (a sweep's baseline run: replay the sweep's speculative "
                       "runs beside it)"),
    ("no-baseline", "no baseline requests, and a predicted speedup needs the target-only cost measured in the same "
                    "run (it was made without --baseline)"),
])
def test_replay_says_why_a_run_has_nothing_to_replay(model_dirs, prompts_file, tmp_path, capsys, case, message):
    from workbench.config import RunConfig
    from workbench.runner import execute

    runs = tmp_path / "sweep" / "runs"  # a sweep's layout (docs/SWEEP.md): runs/<name>, paired in manifest.json
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "manifest.json").write_text(json.dumps({"runs": [
        {"name": "baseline", "kind": "baseline", "baseline": None, "state": "done", "point": {}},
        {"name": "spec", "kind": "speculative", "baseline": "baseline", "state": "done", "point": {}}]}))
    run = runs / "baseline" if case == "sweep-baseline" else tmp_path / "run"
    if case == "sweep-baseline":  # a sweep's baseline run has no drafter at all
        execute(RunConfig(target=str(model_dirs["target"]), drafts=(), prompts=str(prompts_file), baseline=True,
                          max_new_tokens=6, limit=1, warmup=False), run, progress=False)
    else:
        extra = ("--baseline",) if case == "killed" else ("--no-warmup",)
        assert main(run_args(model_dirs, prompts_file, run, "--limit", "1", "--max-new-tokens", "6", *extra)) == 0
    if case == "killed":
        _unfinished(run)  # only the warm-ups and the baseline request finished
    capsys.readouterr()
    assert main(["replay", str(run)]) == 2
    out, err = capsys.readouterr()
    message = message.format(resume=resume_command(trace.read_meta(run, resume=False)))  # the run's own command
    assert err.startswith(f"error: replay: {run} has {message}") and err.count("\n") == 1, err
    assert not out


def test_replay_checks_its_output_and_names_the_run_s_drafters_first(model_dirs, prompts_file, tmp_path, capsys):
    run = tmp_path / "run"
    args = run_args(model_dirs, prompts_file, run, "--baseline", "--limit", "1", "--no-warmup")
    args[args.index("--draft") + 1] = f"{model_dirs['draft_prefix']},ngram"
    assert main(args) == 0
    capsys.readouterr()
    (tmp_path / "adir").mkdir()
    for bad, message in (([str(run), "--out", str(tmp_path / "adir")], f"--out {tmp_path / 'adir'}: is a directory, "
                                                                        "not a file"),
                         ([str(run / "meta.json")], f"{run / 'meta.json'}: a file, not a run directory"),
                         ([str(run), "--drafter", "nope"], f"replay: --drafter 'nope' is not a drafter of {run} (its "
                                                           "drafters: draft_prefix, ngram:3:1)")):
        assert main(["replay", *bad]) == 2
        out, err = capsys.readouterr()
        assert err == f"error: {message}\n" and not out  # before any work: no table printed
    assert not list(tmp_path.glob("adir*.tmp")) and not list((tmp_path / "adir").iterdir())
    # a drafter named as --draft takes it: `ngram` is the label ngram:3:1, a model directory its folder's name
    for given, label in (("ngram", "ngram:3:1"), (str(model_dirs["draft_prefix"]), "draft_prefix")):
        assert main(["replay", str(run), "--drafter", given, "--policy", "constant:2"]) == 0
        assert set(capsys.readouterr().out.split()) & {"ngram:3:1", "draft_prefix"} == {label}


@pytest.fixture(scope="module")
def finished_sweep(model_dirs, tmp_path_factory):
    return make_finished_sweep(model_dirs, tmp_path_factory.mktemp("finished-sweep"))


def test_replay_of_a_sweep_s_speculative_run_divides_by_the_sweep_s_baseline_run(finished_sweep, tmp_path, capsys,
                                                                                  monkeypatch):
    """A sweep keeps its baseline in a run of its own: replay pairs with it as the sweep report does (cross-run
    ratios, said so), prompt by prompt as a baseline of the run's own would be."""
    from workbench import sweep_report
    from workbench.analysis import frames

    runs = finished_sweep / "runs"
    spec, base = trace.load(runs / "spec__policy-constant-2"), trace.load(runs / "baseline")
    table = tmp_path / "table.csv"
    assert main(["replay", str(runs / "spec__policy-constant-2"), "--policy", "constant:2,constant:3",
                 "--out", str(table)]) == 0
    out, err = capsys.readouterr()
    assert f"divide by the target-only baseline of the sweep's run {runs / 'baseline'}, measured in another run: " \
           "cross-run ratios" in out and "prediction" in out
    assert all(line.startswith(("warning: The clock of this run was disturbed",  # a busy machine's, if any
                                 f"warning: The clock of the sweep's baseline run {runs / 'baseline'} was disturbed"))
               for line in err.splitlines())
    written = pd.read_csv(table).set_index("policy")
    assert written["replayed_speedup"].notna().all() and (written["baseline_run"] == str(runs / "baseline")).all()
    # measured: the sweep report's figure for this run (the same pairing, frames.paired_speedups)
    reported = sweep_report.comparison(finished_sweep)[0].set_index("run").loc["spec__policy-constant-2", "speedup"]
    assert written.loc["constant:2", "measured_speedup"] == pytest.approx(reported)
    assert written.loc["constant:2", "measured_speedup"] == pytest.approx(
        frames.paired_speedups(spec.requests, baseline=base.requests)["speedup"].median())
    # predicted: each prompt's baseline as measured (spikes calmed) in the baseline run, as in a run of its own
    per = replay.replay(replay.with_baseline(spec, base), "draft_prefix", ["constant:2"]).set_index("prompt_id")
    calm = latency.calm_baseline_ms_per_token(base.steps, base.requests).droplevel(["run_id", "temperature"])
    assert (per["base_ms"] / per["tokens"]).to_dict() == pytest.approx(calm.loc[per.index].to_dict())
    assert per["base_ms"].notna().all() and len(per) == 2
    # each run's clock is read on its own steps, as the reports read it: the run's, then its baseline run's
    monkeypatch.setattr(clock, "DISTURBED", 0.0)  # every clock "disturbed": the warnings say whose
    assert main(["replay", str(runs / "spec__policy-constant-2"), "--policy", "constant:2"]) == 0
    own, other = capsys.readouterr().err.splitlines()
    worst = clock.spikes(spec.steps, spec.requests).set_index("phase")["share"]  # not diluted by the baseline's
    assert own.startswith("warning: The clock of this run was disturbed: ") and "another run (a sweep's)" in own
    assert f"{worst.max():.0%} of its {worst.idxmax()} times" in own
    assert other.startswith(f"warning: The clock of the sweep's baseline run {runs / 'baseline'} was disturbed")


def _edited(finished_sweep, tmp_path, edit):
    """A copy of the finished sweep with its manifest's rows changed by ``edit``; returns its speculative run."""
    out = tmp_path / "out"
    shutil.copytree(finished_sweep, out)
    manifest = json.loads((out / "manifest.json").read_text())
    edit(out, {r["name"]: r for r in manifest["runs"]})
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out / "runs" / "spec__policy-constant-2"


def _drop_request(run_dir, mode):
    """Remove the part of the run's last measured request of ``mode``, in a run whose meta.json records no request
    count (an older workbench's: a lost part is then found by what replay needs, not by trace.load)."""
    req = trace.load(run_dir).requests
    k = max(i for i, r in req.iterrows() if r["mode"] == mode and not r["warmup"])
    (run_dir / f"requests-{k:05d}.parquet").unlink()
    meta = json.loads((run_dir / "meta.json").read_text())
    meta["sessions"][-1].pop("requests")
    (run_dir / "meta.json").write_text(json.dumps(meta))


# what makes the sweep's baseline run one replay cannot divide by → the start of its one error line
SWEEP_BASELINE_REFUSALS = {
    "baseline-running": "{base}: the sweep's baseline run of spec__policy-constant-2 is not finished (running); "
                        "`workbench sweep ",
    "baseline-removed": "{base}: the sweep's baseline run of spec__policy-constant-2 holds no run (removed?); ",
    "baseline-lacks-a-prompt": "replay: {base} has no measured baseline request for 1 of the run's 2 prompts (b) at "
                               "its temperature: rerun the sweep to finish it",
    "baseline-replaced": "{base}: holds another run than manifest.json names baseline (temperature 0.5 in the run, "
                         "0.0 in the manifest)",
    "run-replaced": "{spec}: holds another run than manifest.json names spec__policy-constant-2 (policies "
                    '["constant:4"] in the run, ["constant:2"] in the manifest)',
    "no-baseline-planned": "replay: {spec} has no baseline requests, and a predicted speedup needs the target-only "
                           "cost measured in the same run (its sweep ran no baseline: baseline = false in the sweep "
                           "file); to replay this setting, record it with `workbench run … --baseline` or sweep it "
                           'with baseline = true or "interleaved" into a new --out\n',
    "manifest-corrupt": "{sweep}/manifest.json: not a sweep manifest this workbench wrote (no format",
}


@pytest.mark.parametrize("case", SWEEP_BASELINE_REFUSALS)
def test_replay_refuses_a_sweep_baseline_it_cannot_divide_by(finished_sweep, tmp_path, capsys, case):
    def edit(out, rows):
        base, spec = out / "runs" / "baseline", out / "runs" / "spec__policy-constant-2"
        if case == "baseline-running":
            rows["baseline"]["state"] = "running"
        elif case == "baseline-removed":
            shutil.rmtree(base)
        elif case == "baseline-lacks-a-prompt":
            _drop_request(base, "baseline")
        elif case == "baseline-replaced":  # another target-only run: at another temperature
            meta = json.loads((base / "meta.json").read_text())
            meta["config"]["temperature"] = 0.5
            (base / "meta.json").write_text(json.dumps(meta))
        elif case == "run-replaced":
            shutil.rmtree(spec)
            shutil.copytree(out / "runs" / "spec__policy-constant-4", spec)
        elif case == "no-baseline-planned":
            for row in rows.values():
                row["baseline"] = None

    spec = _edited(finished_sweep, tmp_path, edit)
    if case == "manifest-corrupt":  # not read leniently: it decides what the run is divided by
        (tmp_path / "out" / "manifest.json").write_text('{"runs": []}')
    capsys.readouterr()
    assert main(["replay", str(spec)]) == 2
    out, err = capsys.readouterr()
    sweep_dir = tmp_path / "out"
    expected = SWEEP_BASELINE_REFUSALS[case].format(base=sweep_dir / "runs" / "baseline", spec=spec, sweep=sweep_dir)
    assert err.startswith(f"error: {expected}") and err.count("\n") == 1 and not out, err


def test_a_sweep_run_that_lost_a_part_says_its_sweep_redoes_it(finished_sweep, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    shutil.copytree(finished_sweep, sweep)  # the module's sweep stays whole for the other tests
    run = sweep / "runs" / "spec__policy-constant-2"
    (run / f"requests-{trace.completed_parts(run)[-1]:05d}.parquet").unlink()
    assert main(["replay", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {run}: 1 of its requests are gone") and "\n" not in err
    assert "rerunning its sweep (`workbench sweep " in err and err.endswith(f" --out {sweep}`) redoes them"), err


def test_replay_refuses_a_token_budget_its_requests_contradict(tmp_path, capsys):
    # replay clips every step to meta.json's max_new_tokens: a hand-edited budget would replay another workload
    run = tmp_path / "run"
    shutil.copytree(Path(__file__).parents[1] / "data" / "sample_run", run)
    meta = json.loads((run / "meta.json").read_text())
    assert token_budget(trace.load(run)) == meta["config"]["max_new_tokens"] == 48
    for edited in (1000, 47, "48", True, None):
        meta["config"]["max_new_tokens"] = edited
        (run / "meta.json").write_text(json.dumps(meta))
        if edited is None:  # not recorded: the budget the requests show (each stopped by it holds 48 tokens)
            assert token_budget(trace.load(run)) == 48
            continue
        assert main(["replay", str(run), "--policy", "constant:4"]) == 2
        err = capsys.readouterr().err
        assert err == (f"error: replay: the run's meta.json says max_new_tokens {edited!r} in its config, but its "
                       "requests stopped by the budget hold [48] new tokens (edited by hand? restore the config the "
                       "run wrote)\n"), err
