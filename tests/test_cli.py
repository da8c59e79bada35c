"""`workbench run` end to end: traces on disk, invariants, resume, and one clear line for each bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from trace_fixtures import as_killed

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
    assert t.meta["config"]["policies"] == ["constant:1", "constant:3"] and t.meta["models"]["target"]["parameters"] > 0
    measured = t.requests[~t.requests["warmup"]]
    assert sorted(measured["request_id"]) == sorted(
        f"{p}/{m}" for p in "abc" for m in ("baseline", "draft_prefix/constant:1", "draft_prefix/constant:3"))
    assert t.requests["warmup"].sum() == 3  # one flagged warm-up per mode and γ
    # Σ n_emitted = new_tokens, n ≤ γ, and greedy speculative output equals the baseline's, per prompt
    emitted = t.steps.groupby("request_id")["n_emitted"].sum()
    assert (emitted.loc[t.requests["request_id"]].to_numpy() == t.requests["new_tokens"].to_numpy()).all()
    assert (t.steps["n_accepted"] <= t.steps["gamma"]).all()
    text = measured.set_index("request_id")["output_text"]
    for p in "abc":
        assert text[f"{p}/draft_prefix/constant:1"] == text[f"{p}/draft_prefix/constant:3"] == text[f"{p}/baseline"]
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
    assert sorted(again.requests["request_id"]) == [f"{p}/draft_prefix/constant:4" for p in "abc"]
    assert first["total_ms"].iloc[0] == again.requests.set_index("request_id").loc["a/draft_prefix/constant:4",
                                                                                     "total_ms"]
    assert len(again.meta["sessions"]) == 2


def test_a_part_without_its_requests_file_is_ignored(model_dirs, prompts_file, tmp_path):
    out = tmp_path / "run"
    assert main(run_args(model_dirs, prompts_file, out, "--no-warmup")) == 0
    as_killed(out, parts=[2])  # killed between writing steps/tokens and requests
    assert len(trace.load(out).requests) == 2


def test_parts_that_are_not_this_runs_are_ignored_or_refused(model_dirs, prompts_file, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    from workbench.errors import TraceError

    one, other = tmp_path / "one", tmp_path / "other"
    for out in (one, other):
        assert main(run_args(model_dirs, prompts_file, out, "--no-warmup")) == 0
    n = len(trace.load(one).requests)
    # a file manager's duplicate is not a part (its name has no part index): ignored, not a crash
    for name in ("requests-00000 copy.parquet", "requests-0.parquet", "requests-000000.parquet",
                 "requests-\u0660\u0660\u0660\u0660\u0661.parquet"):  # Arabic-Indic digits: \d would take them
        shutil.copy(one / "requests-00000.parquet", one / name)
    assert len(trace.load(one).requests) == n
    # this run's own part copied under another index: the request would count twice
    for table in trace.TABLES:
        shutil.copy(one / f"{table}-00000.parquet", one / f"{table}-00099.parquet")
    with pytest.raises(TraceError, match="is in more than one part"):
        trace.load(one)
    # another run's part copied in: refused, naming both runs (it would be averaged in silently)
    for table in trace.TABLES:
        shutil.copy(other / f"{table}-00000.parquet", one / f"{table}-00099.parquet")
    with pytest.raises(TraceError, match="holds requests of another run .* beside run "):
        trace.load(one)
    # a part whose column has the right name but the wrong type: one line naming it
    for table in trace.TABLES:
        (one / f"{table}-00099.parquet").unlink()
    data = pq.read_table(one / "requests-00000.parquet").to_pandas()
    data["new_tokens"] = data["new_tokens"].astype(str)
    data.to_parquet(one / "requests-00000.parquet")
    with pytest.raises(TraceError, match=r"requests-00000.parquet: not a workbench requests table \(new_tokens is "):
        trace.load(one)


@pytest.mark.parametrize("change, message", [
    (lambda a, d, t: a.__setitem__(a.index("--target") + 1, str(t / "nope")), "no such directory"),
    (lambda a, d, t: a.__setitem__(a.index("--draft") + 1, str(d["gpt2_target"]).replace("gpt2_target", "missing")),
     "no such directory"),
    (lambda a, d, t: a.extend(["--gamma", "0"]), "must be a whole number of draft tokens from 1 to 64"),
    (lambda a, d, t: a.extend(["--policy", "fancy"]), "unknown policy 'fancy'"),
    (lambda a, d, t: a.extend(["--policy", "threshold:abc"]), "'abc' must be a probability"),
    (lambda a, d, t: a.extend(["--policy", "threshold:1.5"]), "'1.5' must be a probability"),
    (lambda a, d, t: a.extend(["--policy", "constant:0"]), "'0' must be a whole number"),
    # Python's int() reads all three as numbers; a spec says what it means, in ASCII digits
    (lambda a, d, t: a.extend(["--policy", "constant:4_0"]), "'4_0' must be a whole number"),
    (lambda a, d, t: a.extend(["--policy", "constant:٤"]), "'٤' must be a whole number"),
    (lambda a, d, t: a.extend(["--policy", "constant: 4"]), "' 4' must be a whole number"),
    (lambda a, d, t: a.__setitem__(a.index("--draft") + 1, "ngram:3_0"), "N and M must be whole numbers ('3_0')"),
    (lambda a, d, t: a.extend(["--policy", "threshold:0"]), "'0' must be a probability between 0 and 1"),
    (lambda a, d, t: a.extend(["--policy", "entropy:0"]), "'0' must be a positive number (nats)"),
    (lambda a, d, t: a.extend(["--policy", "entropy:inf"]), "'inf' must be a positive number (nats)"),
    (lambda a, d, t: a.extend(["--top-p", "0"]), "--top-p 0.0: expected a number in (0, 1]"),
    (lambda a, d, t: a.extend(["--max-new-tokens", "0"]), "--max-new-tokens 0: expected ≥ 1"),
    (lambda a, d, t: a.extend(["--policy", "heuristic,heuristic:5"]), "lists heuristic:5 more than once"),
    (lambda a, d, t: a.__setitem__(a.index("--draft") + 1, "ngram:0"), "expected ngram[:N[:M]]"),
    (lambda a, d, t: a.__setitem__(a.index("--draft") + 1, "early-exit:3"), "the target has 3 layers"),
    (lambda a, d, t: a.__setitem__(a.index("--draft") + 1, "early-exit:0"), "expected early-exit:L"),
    (lambda a, d, t: a.__setitem__(a.index("--draft") + 1, "early-exit:abc"), "L must be a whole number ('abc')"),
    (lambda a, d, t: a.__setitem__(a.index("--prompts") + 1, "heldoutt"), "prompts file heldoutt: no such file "
                                                                          "(give a JSONL file, or a bundled set: "
                                                                          "heldout, general, chat)"),
    (lambda a, d, t: a.__setitem__(a.index("--draft") + 1, "ngram,ngram:3:1"), "lists ngram:3:1 more than once"),
    (lambda a, d, t: a.extend(["--max-new-tokens", "400"]), "exceeds the models' context window"),
    (lambda a, d, t: a.extend(["--temperature", "nan"]), "--temperature nan: expected 0 (greedy) or a finite number"),
    (lambda a, d, t: a.extend(["--temperature", "inf"]), "--temperature inf: expected 0 (greedy) or a finite number"),
    # logits / 1e-40 overflows float32: blamed on the temperature, not on the model's logits
    (lambda a, d, t: a.extend(["--temperature", "1e-40"]), "--temperature 1e-40: expected 0 (greedy) or a finite "
                                                           "number ≥ 1e-05"),
    (lambda a, d, t: a.extend(["--seed", "-1"]), "--seed -1: expected an integer in 0 … 9223372036854775807"),
    (lambda a, d, t: a.extend(["--seed", str(2**64)]), "--seed 18446744073709551616: expected an integer in 0 …"),
    (lambda a, d, t: a.__setitem__(a.index("--target") + 1, str(t / "afile")), "afile': a file, not a model directory"),
    (lambda a, d, t: a.__setitem__(a.index("--prompts") + 1, str(t / "lone.jsonl")), "lone.jsonl:1: prompt is not "
                                                                                       "valid Unicode text"),
    (lambda a, d, t: a.__setitem__(a.index("--prompts") + 1, str(t / "null.jsonl")), "null.jsonl:1: id must be a "
                                                                                       "string or an integer"),
    (lambda a, d, t: a.__setitem__(a.index("--prompts") + 1, str(t / "empty.jsonl")), "no prompts"),
    (lambda a, d, t: a.__setitem__(a.index("--prompts") + 1, str(t / "bad.jsonl")), "invalid JSON"),
    (lambda a, d, t: a.__setitem__(a.index("--prompts") + 1, str(t / "number.jsonl")), "prompt must be a string"),
    (lambda a, d, t: a.__setitem__(a.index("--prompts") + 1, str(t / "busy")), "busy: a directory, not a file"),
    (lambda a, d, t: a.__setitem__(a.index("--prompts") + 1, str(t / "warm.jsonl")), "warm.jsonl:1: id 'warmup0'"),
    (lambda a, d, t: a.__setitem__(a.index("--prompts") + 1, str(t / "slash.jsonl")), "slash.jsonl:2: id 'a/b'"),
    (lambda a, d, t: a.__setitem__(a.index("--prompts") + 1, str(t / "cat.jsonl")), "cat.jsonl:1: category must be"),
    (lambda a, d, t: a.__setitem__(a.index("--out") + 1, str(t / "busy")), "not empty"),
    (lambda a, d, t: a.__setitem__(a.index("--out") + 1, str(t / "afile" / "run")), "afile/run: Not a directory"),
])
def test_bad_input_gets_one_clear_line(model_dirs, prompts_file, tmp_path, capsys, change, message):
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "prompt": "x"}\n{oops\n')
    (tmp_path / "number.jsonl").write_text('{"id": "a", "prompt": 42}\n')
    # request ids are built from prompt ids: warmup0/baseline would be a warm-up's id, a/b/… would not parse back
    (tmp_path / "warm.jsonl").write_text('{"id": "warmup0", "prompt": "x"}\n')
    (tmp_path / "slash.jsonl").write_text('{"id": "a", "prompt": "x"}\n{"id": "a/b", "prompt": "y"}\n')
    (tmp_path / "cat.jsonl").write_text('{"id": "a", "category": 3, "prompt": "x"}\n')
    (tmp_path / "lone.jsonl").write_text('{"id": "a", "prompt": "x \\ud800"}\n')  # a lone surrogate, as JSON spells it
    (tmp_path / "null.jsonl").write_text('{"id": null, "prompt": "x"}\n')  # must not become the id "None"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    (tmp_path / "afile").write_text("a file, not a directory")
    args = run_args(model_dirs, prompts_file, tmp_path / "run", "--no-warmup")
    change(args, model_dirs, tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()  # nothing half-written


@pytest.mark.parametrize("command, hint", [("replay", "--max-new-tokens"), ("train", "--draft-layers")])
def test_running_out_of_memory_is_one_line_with_what_to_shrink(monkeypatch, capsys, command, hint):
    import importlib

    def allocate(args):  # what torch's CPU allocator raises for a shape that does not fit
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: you tried "
                           "to allocate 400000000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(importlib.import_module(f"workbench.commands.{command}"), "main", allocate)
    argv = {"replay": ["replay", "data/sample_run"], "train": ["train", "--out", "x"]}[command]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: out of memory (try a smaller") and hint in err and "\n" not in err


def test_the_summary_prints_a_small_temperature_as_it_is(model_dirs, prompts_file, tmp_path, capsys):
    assert main(run_args(model_dirs, prompts_file, tmp_path / "run", "--limit", "1", "--no-warmup",
                         "--temperature", "1e-05")) == 0
    out = capsys.readouterr().out
    assert "constant:4       1e-05 " in out  # the temperature column, not rounded to 0.000 (which reads as greedy)


def test_a_closed_stdout_ends_quietly_not_with_a_traceback():
    # `workbench … | head -1`: the reader goes away; the command's work is done, its printing must not crash
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "replay", "data/sample_run", "--policy", "constant:2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # nobody reads: the first print gets EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipeError" not in err, err


def test_unicode_line_separators_inside_a_prompt_are_text_not_line_breaks(tmp_path):
    import json

    from workbench.prompts import load_prompts

    texts = ["one\u2028two", "three\u2029four\x85five"]  # json.dumps(ensure_ascii=False) writes these raw
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": i, "prompt": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts)),
                    encoding="utf-8")
    assert [p.prompt for p in load_prompts(path)] == texts and [p.id for p in load_prompts(path)] == ["0", "1"]


@pytest.mark.parametrize("argv, message", [
    (["run", "--out", ""], "argument --out: an empty path"),
    (["demo", "--out", ""], "argument --out: an empty path"),
    (["report", "data/sample_run", "--out", " "], "argument --out: an empty path"),
    (["run", "--out", "x", "--policy", "constant:4,,constant:2"], "a comma-separated list without empty items"),
    # argparse alone would keep the last value and drop the first without a word
    (["run", "--out", "x", "--gamma", "2", "--gamma", "4"], "workbench run: --gamma is given twice: give its list "
                                                            "once, comma-separated (--gamma A,B)"),
    (["run", "--out", "x", "--draft", "ngram", "--draft", "default"], "workbench run: --draft is given twice"),
    (["replay", "r", "--policy", "heuristic", "--policy=adaptive"], "workbench replay: --policy is given twice"),
    # an unknown option is named by its subcommand, with the nearest option it has
    (["run", "--out", "x", "--gama", "2"], "workbench run: unrecognized arguments: --gama 2 (did you mean --gamma?) "
                                           "(see workbench run --help)"),
    (["demo", "--fulll"], "workbench demo: unrecognized arguments: --fulll (did you mean --full?)"),
    (["export", "r", "--perfetto", "t.json", "--zzz"],
     "workbench export: unrecognized arguments: --zzz (see workbench export --help)"),
])
def test_usage_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and message in err and "\n" not in err


def test_a_missing_library_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    # an environment without the report's libraries (the GPU image has no plotly or papermill): one line, no report
    for name in ("plotly", "plotly.offline", "plotly.io", "papermill"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ModuleNotFoundError
    assert main(["report", "data/sample_run", "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: `workbench report` needs the Python package '") and "\n" not in err
    assert ("'plotly'" in err or "'papermill'" in err) and "requirements.txt" in err
    assert not (tmp_path / "report").exists()


def test_demo_without_the_report_libraries_stops_before_it_measures(tmp_path, capsys, monkeypatch):
    # the demo ends in a report: without plotly it must say so at once, not after minutes of measurement
    monkeypatch.setitem(sys.modules, "plotly", None)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: `workbench demo` needs the Python package 'plotly'") and "\n" not in err
    assert not (tmp_path / "demo").exists() and "demo:" not in captured.out  # nothing was started


def test_demo_refuses_a_report_folder_it_would_replace_before_it_measures(tmp_path, capsys):
    (tmp_path / "demo" / "report").mkdir(parents=True)
    (tmp_path / "demo" / "report" / "index.html").write_text("my own page")  # not a report of ours: no marker
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: --out {tmp_path / 'demo' / 'report'} is a non-empty directory that holds "
                                   "no .workbench-report") and captured.err.count("\n") == 1
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["report"] and "demo:" not in captured.out


@pytest.mark.parametrize("out, where", [("afile", ""), ("afile/demo", "{t}/afile ")])
def test_demo_with_an_out_under_a_file_is_one_line_before_its_banner(tmp_path, capsys, out, where):
    (tmp_path / "afile").write_text("")
    assert main(["demo", "--out", str(tmp_path / out), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: --out {tmp_path / out}: {where.format(t=tmp_path)}exists and is not a directory\n"
    assert captured.out == ""


@pytest.mark.parametrize("spec", ["early-exit:1", "ngram,early-exit:2"])
def test_early_exit_on_a_layout_it_cannot_take_apart_is_refused(tokenizer, prompts_file, tmp_path, capsys, spec):
    from tiny_models import make_model, save
    mpt = make_model("mpt", vocab_size=len(tokenizer), seed=4, layers=3)
    assert mpt.transformer.blocks and not hasattr(mpt.transformer, "h")  # MPT names its block list `blocks`
    target = save(mpt, tokenizer, tmp_path / "mpt")
    capsys.readouterr()  # saving may print a progress bar
    args = run_args({"target": target, "draft_prefix": spec}, prompts_file, tmp_path / "run", "--no-warmup")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: early-exit: cannot take the first layers of a MptForCausalLM") and "\n" not in err
    assert not (tmp_path / "run").exists()
    # the same model runs with a drafter that needs no layers of it (the refusal is about early-exit only)
    assert main(run_args({"target": target, "draft_prefix": "ngram"}, prompts_file, tmp_path / "ok",
                         "--no-warmup", "--limit", "1")) == 0


def test_a_sliding_window_draft_on_a_transformers_that_cannot_run_it_is_refused(tokenizer, prompts_file, tmp_path,
                                                                                 capsys, monkeypatch):
    # transformers < 5.18 fails inside the draft's second forward once the window is full (a shape mismatch deep in
    # attention); the run refuses such a draft up front instead. The installed version is faked: the pin is newer.
    import transformers
    from tiny_models import make_model, save

    from workbench.lm import sliding_drafts_supported
    target = save(make_model("mistral-sw", vocab_size=len(tokenizer), seed=4, layers=3), tokenizer, tmp_path / "sw")
    capsys.readouterr()
    monkeypatch.setattr(transformers, "__version__", "5.17.0")
    args = run_args({"target": target, "draft_prefix": "early-exit:1"}, prompts_file, tmp_path / "run", "--no-warmup")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: prompt ") and "\n" not in err
    assert "draft 'early-exit:1' has a 8-token sliding attention window" in err
    assert "transformers>=5.18" in err and not (tmp_path / "run").exists()
    # a drafter without a cache of its own runs on that target (its verify forwards are cropped each step)
    assert main(run_args({"target": target, "draft_prefix": "ngram"}, prompts_file, tmp_path / "ok",
                         "--no-warmup", "--limit", "1")) == 0
    monkeypatch.undo()
    if sliding_drafts_supported():  # the installed transformers (the pin) drafts with it
        assert main(run_args({"target": target, "draft_prefix": "early-exit:1"}, prompts_file, tmp_path / "new",
                             "--no-warmup", "--limit", "1")) == 0


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
    capsys.readouterr()  # what the runs before printed (a busy machine's clock warning, say) is not checked here
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
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: policy 'constant:-1': '-1' must be a whole number of draft tokens from 1 to 64"]
    typo = subprocess.run(cmd + ["--gama", "2"], capture_output=True, text=True, timeout=300)
    assert typo.returncode == 2 and len(typo.stderr.strip().splitlines()) == 1 and "--gama" in typo.stderr


def test_a_compacted_run_loads_the_same(model_dirs, prompts_file, tmp_path):
    out = tmp_path / "run"
    assert main(run_args(model_dirs, prompts_file, out, "--gamma", "2", "--baseline")) == 0
    before = trace.load(out)
    assert trace.compact(out) == 8  # 6 requests + 2 warm-ups
    after = trace.load(out)
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(f"{t}-00000.parquet" for t in trace.TABLES)
    for table in trace.TABLES:
        assert getattr(after, table).equals(getattr(before, table))


def test_drafters_and_policies_sweep_in_one_run(model_dirs, prompts_file, tmp_path):
    out = tmp_path / "run"
    args = run_args(model_dirs, prompts_file, out, "--baseline", "--limit", "2", "--policy",
                    "constant:2,heuristic:2,threshold:0.3:4,adaptive:4")
    args[args.index("--draft") + 1] = f"{model_dirs['draft_prefix']},ngram,early-exit:2"
    assert main(args) == 0
    t = trace.load(out)
    measured = t.requests[~t.requests["warmup"]]
    assert len(measured) == 2 * (1 + 3 * 4) and set(measured["drafter"]) == {"", "draft_prefix", "ngram:3:1",
                                                                              "early-exit:2"}
    texts = measured.groupby("prompt_id")["output_text"].nunique()
    assert (texts == 1).all()  # greedy: every drafter and policy reproduces the baseline's text
    assert set(t.steps["draft_stop"]) - {""} <= {"cap", "policy", "threshold", "budget", "eos", "no-match"}
    # the teacher-forced table: once per prompt and model-backed drafter (not for ngram), one row per output token
    assert set(t.forced["drafter"]) == {"draft_prefix", "early-exit:2"}
    per = t.forced.groupby(["drafter", "request_id"]).size()
    assert len(per) == 2 * 2 and (per == 12).all()


def test_a_moved_checkout_resumes_without_redoing_anything(model_dirs, prompts_file, tmp_path, monkeypatch):
    import shutil
    home = tmp_path / "checkout"
    (home / "models").mkdir(parents=True)
    for name in ("target", "draft_prefix"):
        shutil.copytree(model_dirs[name], home / "models" / name)
    shutil.copy(prompts_file, home / "prompts.jsonl")
    monkeypatch.chdir(home)
    args = ["run", "--target", "models/target", "--draft", "models/draft_prefix", "--prompts", "prompts.jsonl",
            "--out", "run", "--max-new-tokens", "8", "--no-progress", "--limit", "2"]
    assert main(args) == 0
    before = trace.load("run").requests
    moved = tmp_path / "moved"
    home.rename(moved)
    monkeypatch.chdir(moved)
    assert main([*args, "--resume"]) == 0
    after = trace.load("run")
    assert after.requests["request_id"].tolist() == before["request_id"].tolist()  # nothing redone
    assert len(after.meta["sessions"]) == 2


def test_per_category_keeps_the_first_prompts_of_each_category(prompts_file, tmp_path):
    from workbench.prompts import load_prompts
    assert [p.id for p in load_prompts(prompts_file, per_category=1)] == ["a", "b"]
    assert [p.id for p in load_prompts(prompts_file, per_category=1, limit=1)] == ["a"]
    same_first = tmp_path / "x.jsonl"  # per category first, then the limit
    same_first.write_text("".join(f'{{"id": "{i}", "category": "{c}", "prompt": "p"}}\n' for i, c in
                                  [("x1", "x"), ("x2", "x"), ("y1", "y")]))
    assert [p.id for p in load_prompts(same_first, per_category=1, limit=2)] == ["x1", "y1"]


def test_requests_are_interleaved_prompt_by_prompt_with_the_baseline_first(prompts_file):
    # every setting sees every prompt at about the same time, so a machine that slows down mid-run slows them alike
    from workbench.config import RunConfig
    from workbench.prompts import load_prompts
    from workbench.runner import plan

    cfg = RunConfig(drafts=("ngram", "ngram:2:1"), policies=("constant:2", "heuristic"), baseline=True)
    ids = [s.request_id for s in plan(cfg, load_prompts(prompts_file, limit=2))]
    settings = ["baseline", "ngram:3:1/constant:2", "ngram:3:1/heuristic:5", "ngram:2:1/constant:2",
                "ngram:2:1/heuristic:5"]
    assert ids == [f"{p}/{s}" for p in "ab" for s in settings]


def test_demo_prints_what_it_measured_and_where_the_report_is(model_dirs, prompts_file, tmp_path, capsys, monkeypatch):
    # the demo's own settings on the tiny models (the real demo runs the embedded pair: benchmarks, not tests)
    import dataclasses

    from workbench.commands import demo

    monkeypatch.setattr(demo, "DEMO", dataclasses.replace(
        demo.DEMO, target=str(model_dirs["target"]), drafts=(str(model_dirs["draft_prefix"]),),
        policies=("constant:2", "adaptive"), prompts=str(prompts_file), max_new_tokens=8, per_category=1))
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "speedup_lo" in out and "adaptive:16" in out  # the summary table `run` prints, per setting
    assert f"report: {tmp_path / 'demo' / 'report' / 'index.html'}" in out
    assert (tmp_path / "demo" / "report" / "tuning.html").is_file()
    # rerun: the run is finished and the report was built from it as it is, by this code: not built again
    from workbench import report

    built = []
    monkeypatch.setattr(report, "build_report", lambda runs, out, **kw: built.append(out) or out / "index.html")
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "speedup_lo" in out and "(up to date: built from this run as it is now" in out and built == []
    stamp = tmp_path / "demo" / "report" / demo.BUILT_FROM
    assert json.loads(stamp.read_text())["requests"] == len(trace.load(tmp_path / "demo" / "run").requests)
    stamp.write_text(stamp.read_text().replace('"requests": ', '"requests": 1'))  # a run that has grown since
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"]) == 0
    assert built == [tmp_path / "demo" / "report"] and "up to date" not in capsys.readouterr().out


def test_the_demo_s_report_goes_stale_with_the_notebooks_that_draw_it(tmp_path, monkeypatch):
    import shutil

    from workbench import paths
    from workbench.commands import demo

    sample = paths.sample_run()
    stamp = demo.built_from(sample)
    assert demo.built_from(sample) == stamp and stamp["requests"] == len(trace.load(sample).requests)
    edited = tmp_path / "notebooks"
    shutil.copytree(paths.notebooks_dir(), edited)
    (edited / "latency.ipynb").write_text((edited / "latency.ipynb").read_text() + " ")  # one byte more
    monkeypatch.setattr(paths, "notebooks_dir", lambda: edited)
    changed = demo.built_from(sample)
    assert changed["code"] != stamp["code"] and {k: v for k, v in changed.items() if k != "code"} == {
        k: v for k, v in stamp.items() if k != "code"}


def test_an_argument_that_is_not_utf8_is_one_line_before_anything_runs(tmp_path, capsys):
    garbled = str(tmp_path / "o") + b"\xff".decode("utf-8", "surrogateescape")  # what Python makes of such bytes
    assert main(["run", "--out", garbled, "--baseline"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: workbench: the argument ") and "o\\xff' is not UTF-8" in err
    assert not any(tmp_path.iterdir())


def test_a_library_message_over_several_lines_is_printed_on_one(monkeypatch, capsys):
    from workbench.commands import replay

    def fail(args):
        raise TraceError("x.parquet: not a readable Parquet file (Couldn't deserialize thrift: bad type: \n)")

    monkeypatch.setattr(replay, "main", fail)
    assert main(["replay", "somewhere"]) == 2
    assert capsys.readouterr().err == "error: x.parquet: not a readable Parquet file (Couldn't deserialize thrift: " \
                                      "bad type: )\n"


def test_a_path_too_long_is_bad_input(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path / ("a" * 300)), "--baseline", "--limit", "1"]) == 2
    assert capsys.readouterr().err.strip().endswith("File name too long")


@pytest.mark.parametrize("version, age", [(99, "a newer"), (1, "an older")])
def test_resume_of_a_run_in_another_trace_format_says_which(tmp_path, capsys, version, age):
    out = tmp_path / "run"
    out.mkdir()
    (out / "meta.json").write_text(json.dumps({"run_id": "r", "trace_version": version, "config": {}, "models": {},
                                               "sessions": []}))
    assert main(["run", "--out", str(out), "--resume", "--baseline"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --resume: {out} was written by {age} workbench (trace format {version}; this one writes " \
                  f"{trace.TRACE_VERSION}); start a new run\n"


def test_a_negative_zero_temperature_is_recorded_as_zero():
    import math

    from workbench.cli import build_parser
    from workbench.commands.run import config_from_args

    cfg = config_from_args(build_parser().parse_args(["run", "--out", "x", "--temperature=-0"]))
    assert cfg.temperature == 0.0 and math.copysign(1.0, cfg.temperature) == 1.0  # shown as 0, never "-0"


@pytest.mark.parametrize("command", [["report", "{d}", "--out", "{d}/report"],
                                     ["export", "{d}", "--perfetto", "{d}/t.json"],
                                     ["replay", "{d}", "--out", "{d}/t.csv"]])
def test_a_folder_that_is_no_run_is_said_so_not_that_the_output_lies_inside_a_run(tmp_path, capsys, command):
    plain = tmp_path / "plain"  # an ordinary folder: "--out lies inside the run directory" would mislead
    plain.mkdir()
    assert main([a.format(d=plain) for a in command]) == 2
    assert capsys.readouterr().err.strip() == f"error: {plain}: not a workbench run directory (no meta.json)"
    assert list(plain.iterdir()) == []
