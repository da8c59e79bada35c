"""`workbench run` end to end: traces on disk, invariants, resume, and one clear line for each bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench import trace
from workbench.cli import main
from workbench.errors import TraceError


def run_args(dirs, prompts, out, *extra):
    return ["run", "--target", str(dirs["target"]), "--draft", str(dirs["draft_prefix"]), "--prompts", str(prompts),
            "--out", str(out), "--max-new-tokens", "12", "--no-progress", *extra]


def test_run_writes_a_complete_trace(model_dirs, prompts_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(run_args(model_dirs, prompts_file, out, "--gamma", "1,3", "--baseline")) == 0
    assert "acceptance_rate" in capsys.readouterr().out
    t = trace.load(out)
    assert t.meta["config"]["gammas"] == [1, 3] and t.meta["models"]["target"]["parameters"] > 0
    measured = t.requests[~t.requests["warmup"]]
    assert sorted(measured["request_id"]) == sorted(
        f"{p}/{m}" for p in "abc" for m in ("baseline", "speculative/g1", "speculative/g3"))
    assert t.requests["warmup"].sum() == 3  # one flagged warm-up per mode and γ
    # Σ n_emitted = new_tokens, n ≤ γ, and greedy speculative output equals the baseline's, per prompt
    emitted = t.steps.groupby("request_id")["n_emitted"].sum()
    assert (emitted.loc[t.requests["request_id"]].to_numpy() == t.requests["new_tokens"].to_numpy()).all()
    assert (t.steps["n_accepted"] <= t.steps["gamma"]).all()
    text = measured.set_index("request_id")["output_text"]
    for p in "abc":
        assert text[f"{p}/speculative/g1"] == text[f"{p}/speculative/g3"] == text[f"{p}/baseline"]
    drafts = t.tokens[t.tokens["role"] == "draft"]
    assert set(drafts["position"]) == {1, 2, 3} and drafts["token_text"].map(type).eq(str).all()


def test_killed_run_resumes_without_redoing_completed_requests(model_dirs, prompts_file, tmp_path):
    out = tmp_path / "run"
    assert main(run_args(model_dirs, prompts_file, out, "--limit", "1", "--no-warmup")) == 0
    first = trace.load(out).requests
    # same settings, more prompts: as if the first run had been killed after one request
    meta = json.loads((out / "meta.json").read_text())
    meta["config"]["limit"] = None
    (out / "meta.json").write_text(json.dumps(meta))
    assert main(run_args(model_dirs, prompts_file, out, "--resume", "--no-warmup")) == 0
    again = trace.load(out)
    assert sorted(again.requests["request_id"]) == ["a/speculative/g4", "b/speculative/g4", "c/speculative/g4"]
    assert first["total_ms"].iloc[0] == again.requests.set_index("request_id").loc["a/speculative/g4", "total_ms"]
    assert len(again.meta["sessions"]) == 2


def test_a_part_without_its_requests_file_is_ignored(model_dirs, prompts_file, tmp_path):
    out = tmp_path / "run"
    assert main(run_args(model_dirs, prompts_file, out, "--no-warmup")) == 0
    (out / "requests-00002.parquet").unlink()  # killed between writing steps/tokens and requests
    assert len(trace.load(out).requests) == 2


@pytest.mark.parametrize("change, message", [
    (lambda a, d, t: a.__setitem__(a.index("--target") + 1, str(t / "nope")), "no such directory"),
    (lambda a, d, t: a.__setitem__(a.index("--draft") + 1, str(d["gpt2_target"]).replace("gpt2_target", "missing")),
     "no such directory"),
    (lambda a, d, t: a.extend(["--gamma", "0"]), "--gamma must be ≥ 1"),
    (lambda a, d, t: a.extend(["--max-new-tokens", "400"]), "exceeds the models' context window"),
    (lambda a, d, t: a.__setitem__(a.index("--prompts") + 1, str(t / "empty.jsonl")), "no prompts"),
    (lambda a, d, t: a.__setitem__(a.index("--prompts") + 1, str(t / "bad.jsonl")), "invalid JSON"),
    (lambda a, d, t: a.__setitem__(a.index("--out") + 1, str(t / "busy")), "not empty"),
])
def test_bad_input_gets_one_clear_line(model_dirs, prompts_file, tmp_path, capsys, change, message):
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "prompt": "x"}\n{oops\n')
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    args = run_args(model_dirs, prompts_file, tmp_path / "run", "--no-warmup")
    change(args, model_dirs, tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_mismatched_vocabularies_are_refused(model_dirs, prompts_file, tmp_path, capsys):
    from tiny_models import make_model, make_tokenizer, save
    other_tok = make_tokenizer()
    other_tok.add_tokens(["<extra>"])
    save(make_model("llama", vocab_size=len(other_tok), seed=5, layers=1), other_tok, tmp_path / "other")
    args = run_args(model_dirs, prompts_file, tmp_path / "run")
    args[args.index("--draft") + 1] = str(tmp_path / "other")
    assert main(args) == 2
    assert "vocabularies differ" in capsys.readouterr().err


def test_an_out_dir_holding_another_run_is_refused(model_dirs, prompts_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(run_args(model_dirs, prompts_file, out, "--limit", "1", "--no-warmup")) == 0
    assert main(run_args(model_dirs, prompts_file, out, "--limit", "1", "--no-warmup")) == 2
    assert "already holds run" in capsys.readouterr().err
    assert main(run_args(model_dirs, prompts_file, out, "--limit", "1", "--no-warmup", "--resume", "--gamma", "2")) == 2
    assert "settings differ" in capsys.readouterr().err


def test_resume_refuses_a_run_made_with_other_weights(model_dirs, prompts_file, tmp_path, capsys):
    import shutil
    target = tmp_path / "target"
    shutil.copytree(model_dirs["target"], target)
    args = run_args(model_dirs, prompts_file, tmp_path / "run", "--limit", "1", "--no-warmup")
    args[args.index("--target") + 1] = str(target)
    assert main(args) == 0
    assert main([*args, "--resume"]) == 0  # same weights: nothing to redo, accepted
    from safetensors.torch import load_file, save_file
    weights = next(target.glob("*.safetensors"))
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 0.01  # same path, other weights (e.g. a retrained pair)
    save_file(tensors, weights, metadata={"format": "pt"})
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "made with other models (target changed" in err and "\n" not in err.strip()


def test_pickled_weights_are_refused(model_dirs, prompts_file, tmp_path, capsys):
    import shutil
    unsafe = tmp_path / "unsafe"
    shutil.copytree(model_dirs["target"], unsafe)
    for f in unsafe.glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    args = run_args(model_dirs, prompts_file, tmp_path / "run")
    args[args.index("--target") + 1] = str(unsafe)
    assert main(args) == 2
    assert "pickled .bin weights are refused" in capsys.readouterr().err


def test_trace_load_reports_a_corrupt_file(model_dirs, prompts_file, tmp_path):
    out = tmp_path / "run"
    assert main(run_args(model_dirs, prompts_file, out, "--limit", "1", "--no-warmup")) == 0
    (out / "tokens-00000.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(TraceError, match="not a readable Parquet file"):
        trace.load(out)
    with pytest.raises(TraceError, match="no such run directory"):
        trace.load(tmp_path / "missing")


def test_the_console_script_runs_as_a_user_would(model_dirs, prompts_file, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "workbench.cli", *run_args(model_dirs, prompts_file, out, "--limit", "1")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "tokens_per_step" in done.stdout
    bad = subprocess.run(cmd + ["--gamma", "-1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == ["error: --gamma must be ≥ 1 (draft tokens per step)"]
    typo = subprocess.run(cmd + ["--gama", "2"], capture_output=True, text=True, timeout=300)
    assert typo.returncode == 2 and len(typo.stderr.strip().splitlines()) == 1 and "--gama" in typo.stderr


def test_a_compacted_run_loads_the_same(model_dirs, prompts_file, tmp_path):
    out = tmp_path / "run"
    assert main(run_args(model_dirs, prompts_file, out, "--gamma", "2", "--baseline")) == 0
    before = trace.load(out)
    assert trace.compact(out) == 8  # 6 requests + 2 warm-ups
    after = trace.load(out)
    assert sorted(p.name for p in out.glob("*.parquet")) == [f"{t}-00000.parquet" for t in ("requests", "steps", "tokens")]
    for table in ("requests", "steps", "tokens"):
        assert getattr(after, table).equals(getattr(before, table))


def test_per_category_keeps_the_first_prompts_of_each_category(prompts_file):
    from workbench.prompts import load_prompts
    assert [p.id for p in load_prompts(prompts_file, per_category=1)] == ["a", "b"]
    assert [p.id for p in load_prompts(prompts_file, per_category=1, limit=1)] == ["a"]
