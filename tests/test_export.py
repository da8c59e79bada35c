"""`workbench export RUN --perfetto OUT.json`: Chrome trace-event JSON, validated against the format's rules."""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from numbers import Number

import pytest
from test_cli import run_args

from workbench import trace
from workbench.cli import main

EPS_US = 0.01  # ts/dur are rounded to 1 ns: a child may overhang its parent by that much


def validate_trace_events(doc: dict) -> list[str]:
    """Problems of a Chrome trace-event document ("JSON object format"), restricted to the phases we emit."""
    problems = []
    if set(doc) != {"traceEvents", "displayTimeUnit"} or doc["displayTimeUnit"] not in ("ms", "ns"):
        problems.append(f"top level: {sorted(doc)} / displayTimeUnit {doc.get('displayTimeUnit')!r}")
    required = {"X": {"name": str, "ph": str, "pid": int, "tid": int, "ts": Number, "dur": Number},
                "M": {"name": str, "ph": str, "pid": int, "tid": int, "args": dict}}
    for i, e in enumerate(doc.get("traceEvents", [])):
        kinds = required.get(e.get("ph"))
        if kinds is None:
            problems.append(f"event {i}: unsupported ph {e.get('ph')!r}")
            continue
        for key, typ in kinds.items():
            if not isinstance(e.get(key), typ) or isinstance(e.get(key), bool):
                problems.append(f"event {i}: {key} should be {typ.__name__}, is {e.get(key)!r}")
        if e["ph"] == "X" and any(isinstance(e.get(k), Number) and e[k] < 0 for k in ("ts", "dur")):
            problems.append(f"event {i}: negative ts or dur")
        if e["ph"] == "X" and not isinstance(e.get("args", {}), dict):
            problems.append(f"event {i}: args must be an object")
        if e["ph"] == "M":
            want = {"process_name": str, "thread_name": str, "thread_sort_index": int}.get(e["name"])
            arg = e["args"].get("sort_index" if e["name"] == "thread_sort_index" else "name")
            if want is None or not isinstance(arg, want):
                problems.append(f"event {i}: bad metadata event {e}")
    return problems


def nesting_problems(events: list[dict]) -> list[str]:
    """X events of one track must nest (a span starting inside another ends inside it), as trace viewers need."""
    problems, by_tid = [], defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            by_tid[e["tid"]].append(e)
    for tid, spans in by_tid.items():
        stack = []
        for e in sorted(spans, key=lambda e: (e["ts"], -e["dur"])):
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"] + EPS_US:
                stack.pop()
            if stack and e["ts"] + e["dur"] > stack[-1]["ts"] + stack[-1]["dur"] + EPS_US:
                problems.append(f"tid {tid}: {e['name']} overlaps {stack[-1]['name']}")
            stack.append(e)
    return problems


def test_validator_rejects_malformed_events():
    good = {"name": "draft", "ph": "X", "pid": 1, "tid": 1, "ts": 0.0, "dur": 5.0, "args": {}}
    assert validate_trace_events({"traceEvents": [good], "displayTimeUnit": "ms"}) == []
    for bad in ({**good, "ts": "0"}, {**good, "dur": -1}, {**good, "tid": 1.5}, {**good, "ph": "B"},
                {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {}}):
        assert validate_trace_events({"traceEvents": [bad], "displayTimeUnit": "ms"}), bad
    assert validate_trace_events({"traceEvents": []})
    assert nesting_problems([good, {**good, "name": "verify", "ts": 4.0}])


def test_export_writes_valid_nested_phases_per_request(model_dirs, prompts_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "--target", str(model_dirs["target"]), "--draft", str(model_dirs["draft_prefix"]),
                 "--prompts", str(prompts_file), "--out", str(run), "--max-new-tokens", "8", "--gamma", "3",
                 "--baseline", "--no-progress"]) == 0
    out = tmp_path / "trace.json"
    assert main(["export", str(run), "--perfetto", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert validate_trace_events(doc) == [] and nesting_problems(doc["traceEvents"]) == []

    t = trace.load(run)
    threads = {e["tid"]: e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert list(threads.values()) == list(t.requests["request_id"])  # one track per request, in run order
    spans = {e["tid"]: e for e in doc["traceEvents"] if e.get("cat") == "request"}
    starts = [spans[tid]["ts"] for tid in threads]
    ends = [spans[tid]["ts"] + spans[tid]["dur"] for tid in threads]
    assert starts[0] == 0 and all(abs(s - e) < 1 for s, e in zip(starts[1:], ends[:-1]))  # one after another

    phases = [e for e in doc["traceEvents"] if e["name"] in ("prefill", "draft", "verify", "other")]
    measured = [tid for tid in threads if not spans[tid]["args"]["warmup"]]
    spec_tid = next(tid for tid in measured if spans[tid]["args"]["mode"] == "speculative")
    steps = t.steps[t.steps["request_id"] == threads[spec_tid]].sort_values("step")
    mine = [e for e in phases if e["tid"] == spec_tid]
    assert [e["name"] for e in mine] == ["prefill"] + ["draft", "verify", "other"] * (len(steps) - 1)
    verify = [e for e in mine if e["name"] == "verify"]
    assert [e["args"]["accepted"] for e in verify] == list(steps["n_accepted"].iloc[1:])
    assert [e["args"]["gamma"] for e in verify] == list(steps["gamma"].iloc[1:])
    assert max(e["args"]["gamma"] for e in verify) == 3  # γ = 3, except where the token budget cut a step
    assert [round(e["dur"] / 1000, 3) for e in verify] == [round(v, 3) for v in steps["verify_ms"].iloc[1:]]
    base_tid = next(tid for tid in measured if spans[tid]["args"]["mode"] == "baseline")
    assert {e["name"] for e in phases if e["tid"] == base_tid} == {"prefill", "verify", "other"}


def test_export_of_a_non_run_is_one_error_line(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--perfetto", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and not (tmp_path / "t.json").exists()


@pytest.fixture(scope="module")
def small_run(model_dirs, tmp_path_factory):
    """A finished run (baseline and one drafter), copied by each test that damages it."""
    prompts = tmp_path_factory.mktemp("prompts") / "p.jsonl"
    prompts.write_text('{"id": "a", "category": "prose", "prompt": "The quick brown fox"}\n')
    run = tmp_path_factory.mktemp("small") / "run"
    assert main(run_args(model_dirs, prompts, run, "--baseline", "--max-new-tokens", "6")) == 0
    return run, prompts


@pytest.mark.parametrize("command", ["replay", "export", "resume"])
@pytest.mark.parametrize("text, why", [
    ("{}", "no run_id"),
    ("[]", "it holds an array, not an object"),
    ('{"trace_version": 2}', "no run_id"),
    ('{"run_id": "x", "trace_version": "2"}', "trace_version is a string"),
    ('{"run_id": "x", "trace_version": 2, "config": [], "sessions": {}}', "config is an array"),
])
def test_a_meta_json_of_the_wrong_shape_is_one_error_line(small_run, model_dirs, tmp_path, capsys, command, text,
                                                          why):
    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    (run / "meta.json").write_text(text)
    capsys.readouterr()
    args = {"replay": ["replay", str(run)], "export": ["export", str(run), "--perfetto", str(tmp_path / "t.json")],
            "resume": run_args(model_dirs, small_run[1], run, "--baseline", "--max-new-tokens", "6", "--resume")}
    assert main(args[command]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run / 'meta.json'}: not a workbench meta.json (") and why in err, err
    assert err.count("\n") == 1 and not (tmp_path / "t.json").exists()


@pytest.mark.parametrize("command", ["replay", "export"])
def test_format_2_parts_under_a_meta_json_without_a_version_are_one_error_line(small_run, tmp_path, capsys, command):
    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    run_id = json.loads((run / "meta.json").read_text())["run_id"]
    (run / "meta.json").write_text(json.dumps({"run_id": run_id}))  # no trace_version: format 1, which had gamma
    assert main([command, str(run), *(["--perfetto", str(tmp_path / "t.json")] if command == "export" else [])]) == 2
    assert capsys.readouterr().err == (f"error: {run / 'meta.json'}: records trace format 1 (or no trace_version) "
                                       "but the run's parts are format 2 (a meta.json from elsewhere, or edited?)\n")


def test_export_checks_its_output_path_first_and_names_it(small_run, tmp_path, capsys):
    run = small_run[0]
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    for out, message in ((tmp_path / "adir", f"--perfetto {tmp_path / 'adir'}: is a directory, not a file"),
                         (tmp_path / "afile" / "t.json", f"{tmp_path / 'afile'}: exists and is not a directory")):
        assert main(["export", str(tmp_path / "nope"), "--perfetto", str(out)]) == 2  # the output, before the run
        assert capsys.readouterr().err == f"error: {message}\n"
    assert main(["export", str(run / "meta.json"), "--perfetto", str(tmp_path / "t.json")]) == 2
    assert capsys.readouterr().err == f"error: {run / 'meta.json'}: a file, not a run directory\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"] and not any((tmp_path / "adir").iterdir())


def test_a_failed_write_names_the_output_given_not_its_temporary_file(small_run, tmp_path, capsys, monkeypatch):
    import errno

    from workbench import atomic

    def refuse(path, text):  # what a read-only file system or a full disk does to atomic.write_text
        raise OSError(err, os.strerror(err), f"{path}.tmp")

    monkeypatch.setattr(atomic, "write_text", refuse)
    out = tmp_path / "t.json"
    for err, code in ((errno.EROFS, 2), (errno.ENOSPC, 1)):  # a bad place is bad input; a full disk is not
        assert main(["export", str(small_run[0]), "--perfetto", str(out)]) == code
        assert capsys.readouterr().err == f"error: {out}: {os.strerror(err)}\n"
