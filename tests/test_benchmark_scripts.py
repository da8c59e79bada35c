"""The issue-8 benchmark scripts (benchmarks/policy_headroom.py, draft_objective.py, predictions.py) on the tiny
models: they print every figure RESULTS.md quotes, and the draft fine-tune does what it says; and
benchmarks/architectures.py, which catches a loop that is not lossless; replay_variants.py and cross_run_level.py."""

from __future__ import annotations

import numpy as np
import pytest
from test_cli import run_args

from workbench import trace
from workbench.analysis.recorded import recorded_outputs
from workbench.cli import main


def test_policy_headroom_script_prints_every_figure(model_dirs, prompts_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    args = run_args(model_dirs, prompts_file, out, "--baseline", "--policy",
                    "constant:2,constant:4,constant:6,threshold:0.3:6,adaptive:6")
    assert main(args) == 0
    script = _benchmark("policy_headroom", monkeypatch)
    capsys.readouterr()
    script.main([str(out), "--drafter", "draft_prefix"])
    printed = capsys.readouterr().out
    for what in ("oracle (replayed)", "adaptive:6", "95 % bootstrap", "measured means (ms)", "in hindsight",
                 "after a full acceptance", "after one that did not", "the target's probability of its own token",
                 "in-sample", "AUC confidence",
                 "a signal of AUC", "top-2 margin", "probe on the draft's last hidden state"):
        assert what in printed, what
    import re

    base, hindsight = map(float, re.search(r"replayed constant:5 ([\d.]+)x; best constant per prompt in hindsight "
                                           r"([\d.]+)x", printed).groups())
    assert hindsight >= base  # the per-prompt best includes γ = 5 itself
    # the schedules on the previous step's outcome include every constant γ of 1..12 (same γ after either one)
    assert float(re.search(r"a rejection\): [\d.]+x = ([\d.]+)x the best constant", printed).group(1)) >= 1.0
    # ... and so do the schedules on the output position (the same γ before and after the change)
    assert "output positions 1–3" in printed
    assert float(re.search(r"from there\): [\d.]+x = ([\d.]+)x the best constant", printed).group(1)) >= 1.0
    from workbench.analysis import replay  # a schedule on the position plans γ 1 before output position 6, 4 after
    run = trace.load(out)
    rec = next(r for r in recorded_outputs(run, "draft_prefix") if not r.warmup)
    costs = replay.run_costs(run, "draft_prefix")[False]
    steps, at, planned = replay.replay_request(rec, script.Phased(1, 4, 6), costs, max_new=12), 1, []
    for step in steps:
        planned.append(min(1 if at < 6 else 4, 12 - at - 1))  # the token budget clips the last steps
        at += step["n_emitted"]
    assert [s["gamma"] for s in steps] == planned and 4 in planned, planned
    aucs = [float(v) for v in re.findall(r"AUC (\d\.\d+)", printed)]
    assert aucs and all(0.0 <= v <= 1.0 for v in aucs)
    assert script.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)


def _benchmark(name: str, monkeypatch):
    """benchmarks/<name>.py as a module (the benchmarks import each other as scripts do)."""
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    return importlib.import_module(name)


def test_draft_objective_reads_the_draft_along_the_path_and_fine_tunes_towards_the_target_argmax(
        model_dirs, prompts_file, tmp_path, monkeypatch, capsys):
    import torch
    from transformers import AutoModelForCausalLM

    objective = _benchmark("draft_objective", monkeypatch)
    out = tmp_path / "run"
    assert main(run_args(model_dirs, prompts_file, out, "--policy", "constant:3")) == 0
    recorded = [r for r in recorded_outputs(trace.load(out), "draft_prefix") if not r.warmup]
    load = lambda name: AutoModelForCausalLM.from_pretrained(model_dirs[name], dtype=torch.float32)  # noqa: E731
    # 1. one teacher-forced forward of the run's own draft gives what the run recorded along the path
    again = objective.signals(load("draft_prefix"), recorded)
    for r, a in zip(recorded, again):
        assert (a.match == r.match).all()
        np.testing.assert_allclose(a.conf, r.conf, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(a.entropy, r.entropy, rtol=1e-4, atol=1e-5)
    assert "AUC confidence" in capsys.readouterr().out
    # 2. a few seconds on the target's argmax make an unrelated draft agree with it more often
    draft, target = load("draft_random"), load("target").eval()
    gen = torch.Generator().manual_seed(0)
    stream = torch.randint(1, draft.config.vocab_size, (4000,), generator=gen)
    batch = stream[:2048].view(8, 256)

    def agreement() -> float:
        with torch.no_grad():
            return float((draft(batch).logits.argmax(-1) == target(batch).logits.argmax(-1)).float().mean())

    before = agreement()
    objective.fine_tune(draft, target, stream, budget_s=600.0, lr=1e-2, steps=60)
    assert agreement() > max(0.02, 4 * before)  # 0.004 → 0.047 here


def test_predictions_script_prints_the_sweep_and_the_replay_beside_the_measurement(model_dirs, prompts_file, tmp_path,
                                                                                   capsys, monkeypatch):
    from workbench.analysis import speedup

    out = tmp_path / "run"
    policies = "constant:2,constant:4,heuristic"
    assert main(run_args(model_dirs, prompts_file, out, "--baseline", "--policy", policies)) == 0
    capsys.readouterr()
    _benchmark("predictions", monkeypatch).main([str(out)])
    printed = capsys.readouterr().out
    assert "the constant-γ sweep, measured and predicted" in printed
    assert "every live policy beside its replay" in printed
    assert "heuristic:5" in printed and "tau_error" in printed
    measured = speedup.sweep_table(trace.load(out))["measured"]
    assert all(f"{v:.6f}" in printed for v in measured)  # the measured column is the package's, as printed


def test_predictions_script_compares_the_recorded_draws_with_the_argmax_at_t_above_0(model_dirs, prompts_file,
                                                                                   tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    args = run_args(model_dirs, prompts_file, out, "--baseline", "--policy", "constant:2,threshold:0.3:6",
                    "--temperature", "0.9", "--limit", "2")
    assert main(args) == 0
    capsys.readouterr()
    _benchmark("predictions", monkeypatch).main([str(out)])
    printed = capsys.readouterr().out
    assert "replayed from the recorded draws and from the argmax" in printed
    assert "tau_error_draws" in printed and "tau_error_argmax" in printed and "threshold:0.3:6" in printed


def test_architectures_script_passes_a_lossless_loop_and_catches_a_lossy_one(tmp_path, monkeypatch, capsys):
    import json

    import workbench.decoding as decoding_module
    from workbench.rejection import Verdict

    script = _benchmark("architectures", monkeypatch)
    for _ in range(2):  # the same --out twice: each architecture's folder is replaced
        assert script.main(["gpt_neox", "opt", "--out", str(tmp_path / "ok")]) == 0
        printed = capsys.readouterr().out
        assert "differs from the baseline on: none; a run failed on: none (2 architectures)" in printed
    rows = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    assert [(r["arch"], r["draft"], r["early-exit:1"], r["ngram:3:1"]) for r in rows] == [
        ("gpt_neox", True, True, True), ("opt", True, True, True)]
    assert all(r["α draft"] == r["α early-exit:1"] for r in rows)  # the draft is the target's first block
    # a rule that accepts every draft under greedy changes the output: the script must say so and fail
    monkeypatch.setattr(decoding_module, "accept", lambda x, p, q, sampling, generator: Verdict(
        n=len(x), token=int(p[len(x)].argmax())))
    assert script.main(["llama", "--out", str(tmp_path / "lossy")]) == 1
    assert "differs from the baseline on: llama;" in capsys.readouterr().out


def test_replay_variants_script_prints_the_shipped_replay_and_each_correction(monkeypatch, capsys):
    from pathlib import Path

    from workbench.analysis import replay

    run = Path(__file__).resolve().parent.parent / "data" / "sample_run"
    script = _benchmark("replay_variants", monkeypatch)
    table = script.variants(trace.load(run), "default-draft").set_index("policy")
    # "shipped" is what `workbench replay` prints for each policy; the corrections move it
    shipped = replay.live_vs_replay(trace.load(run), "default-draft").set_index("policy")["predicted_speedup"]
    assert table["shipped"].to_numpy() == pytest.approx(shipped.loc[table.index].to_numpy())
    assert not np.allclose(table["pace_base"], table["shipped"]) and table["measured_speedup"].notna().all()
    script.main([str(run)])
    printed = capsys.readouterr().out
    assert "RMS error over the policies: shipped" in printed and "model_base_error" in printed


def test_cross_run_level_script_pairs_the_same_forward_of_two_runs(monkeypatch, capsys):
    """The paired ratio reads the two runs' one-token target forwards of the same prompt and length: a baseline
    run whose clock ran 2× slower halves it, exactly, and the script prints it."""
    import dataclasses
    from pathlib import Path

    run = Path(__file__).resolve().parent.parent / "data" / "sample_run"
    script = _benchmark("cross_run_level", monkeypatch)
    t = trace.load(run)
    same = script.paired(t, t).set_index("policy")
    assert (same["pairs"] > 0).all() and same.loc["all", "pairs"] == same["pairs"].iloc[:-1].sum()
    slow = dataclasses.replace(t, steps=t.steps.assign(verify_ms=t.steps["verify_ms"] * 2))
    assert script.paired(t, slow)["ratio"].to_numpy() == pytest.approx(same["ratio"].to_numpy() / 2)
    script.main([str(run)])
    printed = capsys.readouterr().out
    assert "median target forward ms by k: 1: " in printed and f"{same.loc['all', 'ratio']:.3f}" in printed
