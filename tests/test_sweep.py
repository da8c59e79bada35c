"""`workbench sweep`: grid expansion and names, the manifest, resume, failures, bad sweep files, and (with ray
installed) a local Ray cluster, including a worker killed mid-run."""

from __future__ import annotations

import json
import re
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest
from trace_fixtures import as_killed

from workbench import sweep, sweep_file, trace
from workbench.cli import main
from workbench.errors import WorkbenchError


def toml_value(v) -> str:
    return json.dumps(v)  # JSON strings, numbers, booleans and lists are valid TOML values


def write_sweep(path: Path, grid: dict, settings: dict | None = None, exclude: list[dict] | None = None) -> Path:
    lines = ["[grid]"] + [f"{k} = {toml_value(v)}" for k, v in grid.items()]
    lines += ["[settings]"] + [f"{k} = {toml_value(v)}" for k, v in (settings or {}).items()]
    for rule in exclude or []:
        lines += ["[[exclude]]"] + [f"{k} = {toml_value(v)}" for k, v in rule.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_grid(dirs, prompts, **extra) -> dict:
    return {"target": str(dirs["target"]), "draft": [str(dirs["draft_prefix"]), str(dirs["draft_random"])],
            "gamma": [1, 3], "prompts": str(prompts), "max_new_tokens": 6, "device": "cpu", **extra}


def measured(run_dir: Path, mode: str) -> list[tuple[str, str]]:
    """(prompt_id, policy) of the run's non-warm-up requests of ``mode``; request ids must be unique."""
    req = trace.load(run_dir).requests
    assert req["request_id"].is_unique  # no request written twice (warm-ups included)
    req = req[~req["warmup"] & (req["mode"] == mode)]
    return sorted(zip(req["prompt_id"], req["policy"]))


def expected(prompts: str, plan: sweep.RunPlan) -> list[tuple[str, str]]:
    """A complete run: every prompt once, with the plan's policy ("" for a baseline)."""
    policy = plan.point["policy"] if plan.kind == "speculative" else ""
    return [(p, policy) for p in prompts]


def check_complete(run_dir: Path, plan: sweep.RunPlan, prompts: str = "abc") -> None:
    assert measured(run_dir, plan.kind) == expected(prompts, plan), plan.name


def snapshot(out: Path) -> dict:
    """mtime of every file of a sweep directory but the driver's lock (each driver start records itself in it)."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.rglob("*"))
            if p.is_file() and p != out / ".lock"}


# ------------------------------------------------------------------------------------------------ expansion, no runs
def test_grid_expands_with_one_baseline_per_setting_exclusions_and_stable_names(tmp_path):
    path = write_sweep(tmp_path / "s.toml", {"target": ["t1", "t2"], "draft": ["d/a", "d/b"], "gamma": [2, 4],
                                              "temperature": [0, 0.7], "seed": 1},
                       exclude=[{"target": "t2", "draft": "d/b"}, {"gamma": 4, "temperature": 0.7}])
    plans = sweep.expand(sweep_file.load_spec(path))
    spec = [p for p in plans if p.kind == "speculative"]
    base = [p for p in plans if p.kind == "baseline"]
    assert len(spec) == 2 * 2 * 2 * 2 - 4 - 3  # t2×d/b removes 4; γ=4×T=0.7 removes 3 more (one overlaps)
    assert len(base) == 4  # target × temperature, not repeated per draft or γ
    assert {(b.point["target"], b.point["temperature"]) for b in base} == {("t1", 0.0), ("t1", 0.7), ("t2", 0.0),
                                                                           ("t2", 0.7)}
    names = [p.name for p in plans]
    assert len(set(names)) == len(names) and all((tmp_path / n).name == n for n in names)
    assert "spec__target-t1__draft-a__policy-constant-2__temperature-0.7" in names and "seed" not in "".join(names)
    by_name = {p.name: p for p in plans}
    for p in spec:  # each speculative run is paired with the baseline of its target and temperature
        b = by_name[p.baseline].point
        assert (b["target"], b["temperature"]) == (p.point["target"], p.point["temperature"])
    again = sweep.expand(sweep_file.load_spec(path))
    assert [p.name for p in again] == names and sweep.grid_hash(again) == sweep.grid_hash(plans)


def test_gamma_values_join_the_policy_list(tmp_path):
    path = write_sweep(tmp_path / "s.toml", {"policy": ["heuristic"], "gamma": [2]})
    runs = [p for p in sweep.expand(sweep_file.load_spec(path)) if p.kind == "speculative"]
    assert sorted(p.point["policy"] for p in runs) == ["constant:2", "heuristic"]


def test_names_that_would_collide_get_a_hash_of_their_settings(tmp_path):
    plans = sweep.expand(sweep_file.load_spec(write_sweep(tmp_path / "s.toml", {
        "target": ["/m/a/model", "/m/b/model"], "gamma": [2, 4]})))
    names = [p.name for p in plans]
    assert len(set(names)) == len(names) == 6
    assert all(re.fullmatch(r"(spec__target-model__policy-constant-[24]|baseline__target-model)__[0-9a-f]{8}", n)
               for n in names), names


def test_the_commented_example_sweep_file_is_valid():
    plans = sweep.expand(sweep_file.load_spec(Path(__file__).parent.parent / "data" / "sweep.example.toml"))
    assert [p.name for p in plans] == [
        "baseline__temperature-0.0", "baseline__temperature-0.7", "spec__policy-constant-2__temperature-0.0",
        "spec__policy-constant-2__temperature-0.7", "spec__policy-constant-4__temperature-0.0",
        "spec__policy-constant-4__temperature-0.7", "spec__policy-constant-6__temperature-0.0"]
    assert all(p.point["limit"] == 8 for p in plans)


def test_run_config_adapter_maps_the_settings(tmp_path):
    plans = sweep.expand(sweep_file.load_spec(write_sweep(tmp_path / "s.toml", {
        "draft": ["d1"], "gamma": [3], "temperature": 0.5, "max_new_tokens": 9, "seed": 7, "device": "cpu"},
        {"limit": 2})))
    base, spec = plans
    cfg = sweep.run_config_for(spec.point)
    assert (cfg.drafts, cfg.policies, cfg.temperature, cfg.max_new_tokens, cfg.seed, cfg.device, cfg.limit,
            cfg.baseline) == (("d1",), ("constant:3",), 0.5, 9, 7, "cpu", 2, False)
    assert cfg.prompts == "heldout" and cfg.target == "default"  # bundled defaults stay names, not paths
    base_cfg = sweep.run_config_for(base.point)
    assert base_cfg.baseline and base_cfg.drafts == ()


# ------------------------------------------------------------------------------------------------ bad sweep files
@pytest.mark.parametrize("text, message", [
    ("[grid]\ndraft = ['a']\n\ngama = [1, 2]\n", ":4: [grid] gama: unknown key"),
    ("[grid]\ntemperature = [0.0, 'hot']\n", ":2: [grid] temperature: expected float"),
    ("[grid]\ngamma = [1]\n[settings]\nlimit = true\n", ":4: [settings] limit: expected int"),
    ("targets = ['x']\n", ":1: unknown key 'targets'"),
    ("[grid]\ngamma = [1]\n[[exclude]]\ndraft = 'a'\n[[exclude]]\ngamme = 1\n", ":6: [[exclude]] gamme: unknown key"),
    ("[grid]\ndraft = []\n", "empty grid"),
    ("[grid]\ngamma = [1]\n[[exclude]]\ngamma = 1\n", "empty grid"),
    ("[grid]\npolicy = ['sometimes']\n", ":2: [grid] policy: 'sometimes': unknown policy"),
    ("[grid\n", "invalid TOML"),
    # values no run could take: refused before the manifest exists (else every run fails and the rerun is refused)
    # (the key and line named, as the user wrote them)
    ("[grid]\ntemperature = [0.0, -1.0]\n", ":2: [grid] temperature: -1.0: expected "),  # wording: config.RULES
    ("[grid]\ndraft = 'a'\ndevice = 'tpu'\n", ":3: [grid] device: 'tpu': expected auto, cpu, cuda, mps"),
    ("[grid]\ntop_p = [1.5]\n", ":2: [grid] top_p: 1.5: expected a number in (0, 1]"),
    ("[grid]\ngamma = [2, 0]\n", ":2: [grid] gamma: 0: policy 'constant:0'"),
    ("[grid]\ndraft = ['ngram:0']\n", ":2: [grid] draft: 'ngram:0': drafter 'ngram:0'"),
    ("[grid]\nprompts = ['/nonexistent/p.jsonl']\n",
     ":2: [grid] prompts: prompts file /nonexistent/p.jsonl: no such file"),
    ("[grid]\ngamma = [1, 2]\nprompts = ['heldout', '/nonexistent/p.jsonl']\n",
     ":3: [grid] prompts: prompts file /nonexistent/p.jsonl: no such file (give a JSONL file, or a bundled set"),
    ("[grid]\ngamma = [1]\n[settings]\nlimit = 0\n", ":4: [settings] limit: expected ≥ 1, got 0"),
    # a wrong type is named as such, before any rule on the value is tried (those compare numbers)
    ("[grid]\ngamma = [1]\n[settings]\nlimit = '1'\n", ":4: [settings] limit: expected int, got '1'"),
    ("[grid]\ngamma = [1]\n[settings]\nper_category = [1, 2]\n", ":4: [settings] per_category: expected int, got [1,"),
    ("[grid]\ngamma = [1]\n[settings]\nlimit = 0.5\n", ":4: [settings] limit: expected int, got 0.5"),
    ("[grid]\ngamma = [1]\n[settings]\nper_category = false\n", ":4: [settings] per_category: expected int, got False"),
    ("[grid]\ngamma = [1]\n[settings]\nwarmup = 1\n", ":4: [settings] warmup: expected bool, got 1"),
    ("[grid]\ngamma = [1]\n[settings]\nbaseline = 'each'\n",
     ':4: [settings] baseline: expected bool or "interleaved", got \'each\''),
    ("[grid]\ngamma = [1]\n\xff\n", "not UTF-8 text"),
    # "" would resolve to the sweep file's folder, and a comma list is `workbench run`'s syntax, not one grid value
    ("[grid]\ntarget = ''\n", ":2: [grid] target: '': an empty value (give a path, or `default`)"),
    ("[grid]\ndraft = 'default,ngram'\n", ":2: [grid] draft: 'default,ngram': one draft per run: list them as"),
    ("[grid]\npolicy = 'constant:2,constant:4'\n", ":2: [grid] policy: 'constant:2,constant:4': one policy per run"),
    ("[grid]\ngamma = [1]\n[[exclude]]\ngamma = 2\n[[exclude]]\n", ":5: an empty [[exclude]] table: give the grid"),
])
def test_bad_sweep_file_is_one_error_line_and_exit_2(tmp_path, capsys, text, message):
    (tmp_path / "s.toml").write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    assert main(["sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert not (tmp_path / "out").exists()


def test_unreachable_ray_address_fails_fast(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_sweep(tmp_path / "s.toml", {"gamma": [1]})
    start = time.monotonic()
    assert main(["sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "--ray", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip()
    assert time.monotonic() - start < 30 and err.startswith("error: --ray 127.0.0.1:") and "\n" not in err
    assert "cannot reach" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("address", ["auto", "127.0.0.1:6379"])
def test_ray_without_the_ray_extra_is_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch, address):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the ray extra were not installed
    monkeypatch.setattr("workbench.sweep_run.precheck_address", lambda a: None)  # no cluster needed to get here
    write_sweep(tmp_path / "s.toml", {"gamma": [1]})
    assert main(["sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "--ray", address]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --ray needs the ray extra: WORKBENCH_EXTRAS=ray bash scripts/setup.sh"
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ local sweeps
def test_local_sweep_completes_reruns_as_a_no_op_resumes_and_refuses_another_sweep(model_dirs, prompts_file,
                                                                                   tmp_path, capsys):
    path = write_sweep(tmp_path / "s.toml", tiny_grid(model_dirs, prompts_file), {"warmup": False})
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    manifest = sweep.read_manifest(out)
    plans = sweep.expand(sweep_file.load_spec(path))
    assert [r["name"] for r in manifest["runs"]] == [p.name for p in plans] and len(plans) == 5  # 1 baseline + 2×2
    assert all(r["state"] == "done" and r["error"] is None for r in manifest["runs"])
    for plan in plans:
        check_complete(out / "runs" / plan.name, plan)

    before = snapshot(out)  # rerunning does nothing: no file written, not even the manifest
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    assert snapshot(out) == before

    victim = out / "runs" / plans[2].name  # as if killed after 2 of 3 requests: resume from completed requests
    as_killed(victim, parts=[2])
    manifest["runs"][2]["state"] = "running"
    (out / "manifest.json").write_text(json.dumps(manifest))
    kept = trace.load(victim).requests.set_index("request_id")["total_ms"]
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    again = trace.load(victim)
    check_complete(victim, plans[2])
    assert len(again.meta["sessions"]) == 2
    assert (again.requests.set_index("request_id")["total_ms"].loc[kept.index] == kept).all()
    assert all(r["state"] == "done" for r in sweep.read_manifest(out)["runs"])

    write_sweep(path, tiny_grid(model_dirs, prompts_file, temperature=[0.0, 0.5]), {"warmup": False})
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 2
    assert "holds a different sweep" in capsys.readouterr().err


def test_a_failing_run_is_recorded_and_the_others_finish(model_dirs, prompts_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # local mode must not import ray (this makes `import ray` fail)
    grid = tiny_grid(model_dirs, prompts_file, gamma=[2])
    grid["draft"] = [str(model_dirs["draft_prefix"]), str(tmp_path / "no-such-draft")]
    path = write_sweep(tmp_path / "s.toml", grid, {"warmup": False, "baseline": False, "limit": 1})
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    rows = {r["name"]: r for r in sweep.read_manifest(out)["runs"]}
    assert rows["spec__draft-draft_prefix"]["state"] == "done"
    bad = rows["spec__draft-no-such-draft"]
    assert bad["state"] == "failed" and "no such directory" in bad["error"] and "\n" not in bad["error"]
    assert "1 run(s) failed" in err and "spec__draft-no-such-draft" in err and bad["error"] in err
    assert measured(out / "runs" / "spec__draft-draft_prefix", "speculative") == [("a", "constant:2")]


def test_sweep_comparison_pairs_each_run_with_its_baseline(model_dirs, prompts_file, tmp_path):
    from workbench import sweep_report

    path = write_sweep(tmp_path / "s.toml", tiny_grid(model_dirs, prompts_file, gamma=[2],
                                                      temperature=[0.0, 0.8]), {"warmup": False})
    out = tmp_path / "out"
    assert sweep.run_sweep(path, out, progress=False) == []
    runs, per_cat = sweep_report.comparison(out)
    assert len(runs) == 4 and set(per_cat["category"]) == {"prose", "code"}
    row = runs.set_index("run").loc["spec__draft-draft_random__temperature-0.8"]
    spec = trace.load(out / "runs" / "spec__draft-draft_random__temperature-0.8").requests
    base = trace.load(out / "runs" / "baseline__temperature-0.8").requests
    ratio = (base[base["mode"] == "baseline"].set_index("prompt_id")["ms_per_token"]
             / spec.set_index("prompt_id")["ms_per_token"])
    assert row["speedup"] == pytest.approx(ratio.median())
    # pooled over the run's decode steps, every step counted (a step that drafted nothing is one token, one call)
    run = trace.load(out / "runs" / "spec__draft-draft_random__temperature-0.8")
    steps = run.steps[(run.steps["step"] >= 1) & run.steps["request_id"].isin(spec["request_id"])]
    assert row["acceptance"] == pytest.approx(steps["n_accepted"].sum() / steps["gamma"].sum())
    assert row["tokens_per_step"] == pytest.approx(steps["n_accepted"].mean() + 1)
    # per category: that category's own acceptance and τ beside its speedup, not the run's
    cats = per_cat.set_index(["run", "category"])
    for cat in ("prose", "code"):
        mine = steps.merge(spec[["request_id", "category"]])
        mine = mine[mine["category"] == cat]
        got = cats.loc[("spec__draft-draft_random__temperature-0.8", cat)]
        assert got["acceptance"] == pytest.approx(mine["n_accepted"].sum() / mine["gamma"].sum())
        assert got["tokens_per_step"] == pytest.approx(mine["n_accepted"].mean() + 1)
    page = sweep_report.sweep_index_html(out)
    assert "cross-run ratios" in page and "acceptance_spec__draft-draft_random__temperature-0.8.html" in page
    # header + 4 runs, header + the best per (target, temperature, category): runs at another temperature decode
    # something else, so each temperature has its own best
    assert page.count("<tr>") == 1 + 4 + 1 + 2 * 2


# ------------------------------------------------------------------------------------------------ the manifest
# Hand edits of a finished sweep's manifest.json: (edit, whether the report refuses it too — a report has no sweep
# file, so it cannot see that well-formed rows are not the file's runs).
MANIFEST_EDITS = {
    "a run renamed": (lambda m: m["runs"][0].update(name="renamed"), True),
    "no format": (lambda m: m.pop("format"), True),
    "grid_hash not a string": (lambda m: m.update(grid_hash=7), True),
    "a kind that is a number": (lambda m: m["runs"][1].update(kind=5), True),
    "an unknown state": (lambda m: m["runs"][1].update(state="finished"), True),
    "a name outside runs/": (lambda m: m["runs"][1].update(name="../elsewhere"), True),
    "a point without a grid key": (lambda m: m["runs"][1]["point"].pop("temperature"), True),
    "an error that is a list": (lambda m: m["runs"][1].update(error=["x"]), True),
    "a run twice": (lambda m: m["runs"].append(m["runs"][1]), True),
    "a run dropped": (lambda m: m["runs"].pop(1), False),
    "the runs reordered": (lambda m: m["runs"].reverse(), False),
    "another setting": (lambda m: m["runs"][1]["point"].update(temperature=0.5), False),
}


@pytest.mark.parametrize("edit", MANIFEST_EDITS)
def test_a_hand_edited_manifest_is_one_error_line_and_nothing_runs(tmp_path, capsys, edit):
    path = write_sweep(tmp_path / "s.toml", {"gamma": [2], "max_new_tokens": 2, "device": "cpu"},
                       {"limit": 1, "warmup": False})
    out = tmp_path / "out"
    manifest = sweep.open_manifest(out, sweep.expand(sweep_file.load_spec(path)), path)
    for row in manifest["runs"]:
        row["state"] = "done"
    change, report_refuses = MANIFEST_EDITS[edit]
    change(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = (out / "manifest.json").read_bytes()
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {out / 'manifest.json'}: not a sweep manifest") and "\n" not in err, err
    assert (out / "manifest.json").read_bytes() == before and not any((out / "runs").iterdir())
    if report_refuses:
        assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {out / 'manifest.json'}: not a sweep manifest") and "\n" not in err, err


def test_a_done_run_whose_directory_was_removed_or_damaged_is_run_again(model_dirs, prompts_file, tmp_path, capsys):
    grid = {**tiny_grid(model_dirs, prompts_file, gamma=[2]), "draft": str(model_dirs["draft_prefix"])}
    path = write_sweep(tmp_path / "s.toml", grid, {"warmup": False, "limit": 2})
    out, command = tmp_path / "out", ["sweep", str(path), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(command) == 0
    base, spec = sweep.expand(sweep_file.load_spec(path))
    shutil.rmtree(out / "runs" / base.name)  # removed
    (out / "runs" / spec.name / "requests-00001.parquet").unlink()  # one request of the other lost
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--no-progress"]) == 2  # says what to do
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {out / 'runs' / base.name}: the manifest calls this run done but it holds no "
                          "run") and err.endswith(f"--out {out}` runs it again") and "\n" not in err, err

    assert main(command) == 0
    err = capsys.readouterr().err
    assert f"warning: run {base.name} is marked done but its directory is missing: running it again" in err
    assert f"warning: run {spec.name} is marked done but 1 of its requests are missing: running it again" in err
    for plan in (base, spec):
        check_complete(out / "runs" / plan.name, plan, "ab")
    assert len(trace.load(out / "runs" / spec.name).meta["sessions"]) == 2  # resumed: its other request kept
    before = snapshot(out)
    assert main(command) == 0 and snapshot(out) == before  # complete again: nothing rerun, nothing written

    shutil.rmtree(out / "runs" / spec.name)  # a directory that holds something else is never overwritten
    (out / "runs" / spec.name).mkdir()
    (out / "runs" / spec.name / "notes.txt").write_text("mine")
    assert main(command) == 1
    row = {r["name"]: r for r in sweep.read_manifest(out)["runs"]}[spec.name]
    assert row["state"] == "failed" and "holds no workbench run" in row["error"]
    assert (out / "runs" / spec.name / "notes.txt").read_text() == "mine"


def make_finished_sweep(model_dirs, root: Path) -> Path:
    """A finished sweep (one draft, γ 2 and 4, 2 prompts, one baseline) under ``root``; returns its directory."""
    prompts = root / "prompts.jsonl"
    prompts.write_text('{"id": "a", "category": "prose", "prompt": "The quick brown fox"}\n'
                       '{"id": "b", "category": "code", "prompt": "def add(a, b):"}\n')
    grid = {**tiny_grid(model_dirs, prompts, gamma=[2, 4]), "draft": str(model_dirs["draft_prefix"])}
    assert sweep.run_sweep(write_sweep(root / "s.toml", grid), root / "out", progress=False) == []
    return root / "out"


@pytest.fixture(scope="module")
def finished_sweep(model_dirs, tmp_path_factory) -> Path:
    """``make_finished_sweep`` once per module; tests copy it before changing it."""
    return make_finished_sweep(model_dirs, tmp_path_factory.mktemp("finished-sweep"))


def test_report_refuses_a_run_that_is_not_the_one_its_manifest_row_names(finished_sweep, tmp_path, capsys):
    """The comparison labels each run by its manifest row: a row edited by hand, or a run directory replaced by
    another run, would label a run by settings it was not made with."""
    from workbench import sweep_report

    out = tmp_path / "out"
    shutil.copytree(finished_sweep, out)
    assert len(sweep_report.comparison(out)[0]) == 2  # as the sweep left it: accepted
    manifest = json.loads((out / "manifest.json").read_text())
    edited = json.loads(json.dumps(manifest))
    edited["runs"][1]["point"].update(draft="other", policy="constant:6")  # the audit's edit of spec γ = 2
    (out / "manifest.json").write_text(json.dumps(edited))
    spec2, spec4 = out / "runs" / "spec__policy-constant-2", out / "runs" / "spec__policy-constant-4"
    cases = {"manifest row edited": ('drafts ["draft_prefix"] in the run, ["other"] in the manifest; policies '
                                     '["constant:2"] in the run, ["constant:6"] in the manifest'),
             "run replaced": 'policies ["constant:4"] in the run, ["constant:2"] in the manifest'}
    for case, differs in cases.items():
        if case == "run replaced":  # the manifest restored; γ = 2's directory now holds the γ = 4 run
            (out / "manifest.json").write_text(json.dumps(manifest))
            shutil.rmtree(spec2)
            shutil.copytree(spec4, spec2)
        capsys.readouterr()
        assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--no-progress"]) == 2, case
        err = capsys.readouterr().err
        assert err == (f"error: {spec2}: holds another run than manifest.json names spec__policy-constant-2 "
                       f"({differs}): the manifest or the run directory was changed by hand; restore the manifest, "
                       f"or move the directory away and run it again with `workbench sweep {finished_sweep.parent}"
                       f"/s.toml --out {out}`\n"), case
        assert not (tmp_path / "rep").exists()
        with pytest.raises(WorkbenchError, match="holds another run than manifest.json names"):
            sweep_report.comparison(out)


def test_report_refuses_a_sweep_whose_done_baseline_run_lost_a_request(finished_sweep, tmp_path, capsys):
    """A lost request part would quietly drop its prompt from every median of the comparison; the pages (which
    check the baseline run's prompts) would disagree with it. One line; the rerun restores it."""
    from test_replay import _drop_request

    out = tmp_path / "out"
    shutil.copytree(finished_sweep, out)
    _drop_request(out / "runs" / "baseline", "baseline")
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out / 'runs' / 'baseline'}: the manifest calls this run done but 1 of its "
                          "requests are missing; `workbench sweep ") and err.count("\n") == 1, err
    assert not (tmp_path / "rep").exists()


def test_report_refuses_a_run_paired_with_a_baseline_of_other_settings(finished_sweep, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(finished_sweep, out)
    manifest = json.loads((out / "manifest.json").read_text())
    base = manifest["runs"][0]
    manifest["runs"].insert(1, {**base, "name": "baseline2", "state": "pending",
                                "point": {**base["point"], "temperature": 0.5}})
    manifest["runs"][2]["baseline"] = "baseline2"  # spec γ = 2 (T = 0) paired with a T = 0.5 baseline
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {out / 'manifest.json'}: run spec__policy-constant-2 is paired with baseline run "
                   "baseline2 of other settings (temperature); restore the manifest\n")


# ------------------------------------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_sweep_2x2_completes(ray_cluster, model_dirs, prompts_file, tmp_path):
    path = write_sweep(tmp_path / "s.toml", tiny_grid(model_dirs, prompts_file), {"warmup": False})
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--ray", "auto", "--no-progress"]) == 0
    plans = sweep.expand(sweep_file.load_spec(path))
    assert all(r["state"] == "done" for r in sweep.read_manifest(out)["runs"])
    for plan in plans:
        check_complete(out / "runs" / plan.name, plan)
    before = snapshot(out)
    assert main(["sweep", str(path), "--out", str(out), "--ray", "auto", "--no-progress"]) == 0
    assert snapshot(out) == before


def test_ray_worker_killed_mid_run_is_retried_and_resumes(ray_cluster, model_dirs, prompts_file, tmp_path,
                                                          monkeypatch):
    from workbench.sweep_run import FAULT_ENV

    monkeypatch.setenv(FAULT_ENV, "1")  # each task's worker dies after its first completed request
    grid = tiny_grid(model_dirs, prompts_file, draft=[str(model_dirs["draft_prefix"]), str(tmp_path / "nope")])
    path = write_sweep(tmp_path / "s.toml", grid, {"warmup": False, "baseline": False})
    out = tmp_path / "out"
    failed = sweep.run_sweep(path, out, ray="auto", progress=False)  # the runs with a missing draft fail alone
    assert sorted(r["name"] for r in failed) == ["spec__draft-nope__policy-constant-1",
                                                 "spec__draft-nope__policy-constant-3"]
    assert all("no such directory" in r["error"] for r in failed)
    for plan in [p for p in sweep.expand(sweep_file.load_spec(path)) if "nope" not in p.name]:
        assert (out / ".faults" / plan.name).is_file()  # the worker was killed once
        run = trace.load(out / "runs" / plan.name)
        assert len(run.meta["sessions"]) == 2  # and the retry resumed the run
        check_complete(out / "runs" / plan.name, plan)  # no request lost, none written twice


def test_report_accepts_a_sweep_directory(model_dirs, prompts_file, tmp_path, monkeypatch):
    """build_report expands a sweep into its finished runs and adds the comparison (notebooks stubbed: fast; the
    real notebooks run on a sweep in test_notebooks.py). The baseline run gets its latency page only."""
    from workbench import report

    grid = tiny_grid(model_dirs, prompts_file, gamma=[2])
    grid["draft"] = [str(model_dirs["draft_prefix"]), str(tmp_path / "missing")]
    path = write_sweep(tmp_path / "s.toml", grid, {"warmup": False, "limit": 2})
    out = tmp_path / "out"
    assert len(sweep.run_sweep(path, out, progress=False)) == 1  # the missing draft fails; it is left out

    executed = []

    def fake_execute(notebook, out_ipynb, parameters, kernel_name):
        executed.append((notebook, parameters.get("run_dir") or parameters["run_dirs"]))
        Path(parameters["figures_out"]).write_text(json.dumps({"rows": []} if notebook == "tuning" else {}))

    monkeypatch.setattr(report, "execute", fake_execute)
    monkeypatch.setattr(report, "to_offline_html", lambda src, dst, **kw: dst.write_text("<html></html>"))
    index = report.build_report([out], tmp_path / "report", progress=False)
    base, spec = [str((out / "runs" / n).resolve()) for n in ("baseline", "spec__draft-draft_prefix")]
    assert executed == [("latency", base), ("acceptance", spec), ("latency", spec), ("tuning", [spec])]
    page = index.read_text()
    assert "1 speculative runs compared" in page and "href='latency_spec__draft-draft_prefix.html'" in page
    assert "acceptance_baseline: not built — baseline is a target-only baseline run" in page
    assert "No target-only baseline in this run: its speedup divides by its sweep's baseline run baseline" in page
    assert (tmp_path / "report" / "latency_spec__draft-draft_prefix.html").is_file()


def test_a_run_with_no_decode_step_has_no_acceptance_rather_than_an_error(model_dirs, prompts_file, tmp_path):
    import math

    from test_cli import run_args

    from workbench import sweep_report, trace

    out = tmp_path / "run"
    assert main(run_args(model_dirs, prompts_file, out, "--max-new-tokens", "1", "--limit", "1")) == 0
    pooled = sweep_report._pooled(trace.load(out))
    assert math.isnan(pooled["acceptance"]) and math.isnan(pooled["tokens_per_step"])


def test_sweep_warns_for_each_finished_run_whose_clock_was_disturbed(finished_sweep, tmp_path, capsys, monkeypatch):
    """A sweep's speedups divide by another run, so a load that came and went during one run moves them: `workbench
    sweep` ends with the warning `workbench run` prints, one per disturbed run, naming it, each read on its own
    steps (a rerun that has nothing left to run says it too). Whether a clock was disturbed is ``clock``'s test."""
    from workbench.analysis import clock

    out = tmp_path / "out"
    shutil.copytree(finished_sweep, out)
    command = ["sweep", str(finished_sweep.parent / "s.toml"), "--out", str(out), "--no-progress"]
    names = [r["name"] for r in sweep.read_manifest(out)["runs"]]
    monkeypatch.setattr(clock, "DISTURBED", 0.0)  # every clock "disturbed": the warnings say whose
    capsys.readouterr()
    assert main(command) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("sweep complete")
    lines = captured.err.splitlines()
    assert [x.removeprefix("warning: The clock of run ").split(" was disturbed")[0] for x in lines] == names
    for name, line in zip(names, lines):
        t = trace.load(out / "runs" / name)
        worst = clock.spikes(t.steps, t.requests).set_index("phase")["share"]  # this run's own steps only
        assert f"{worst.max():.0%} of its {worst.idxmax()} times" in line
        assert "measured in another run (a sweep's) move with a disturbance of either run" in line
        # the index words each run's clock the same, the baseline run that others divide by included
        from workbench.report_index import headline
        said = headline([t], [name], [out / "runs" / name])
        assert "measured in another run (a sweep&#x27;s)" in said and "run next to it" not in said, name
    monkeypatch.setattr(clock, "DISTURBED", 2.0)  # no share reaches 200 %; the runs are too short for drift
    assert main(command) == 0 and capsys.readouterr().err == ""


def test_an_interleaved_baseline_sweep_measures_each_run_s_speedup_in_the_run(model_dirs, prompts_file, tmp_path,
                                                                              capsys, monkeypatch):
    """baseline = "interleaved": no baseline runs; each speculative run measures its own baseline prompt by prompt,
    so the comparison, the pages and the clock warning read in-run ratios, as `workbench run --baseline` does."""
    from workbench import sweep_report
    from workbench.analysis import clock, frames, notebook

    grid = {**tiny_grid(model_dirs, prompts_file, gamma=[1, 3]), "draft": str(model_dirs["draft_prefix"])}
    path = write_sweep(tmp_path / "s.toml", grid, {"warmup": False, "baseline": "interleaved"})
    plans = sweep.expand(sweep_file.load_spec(path))
    assert [p.kind for p in plans] == ["speculative"] * 2 and all(p.baseline is None for p in plans)
    out = tmp_path / "out"
    monkeypatch.setattr(clock, "DISTURBED", 0.0)  # every clock "disturbed": the warning's wording is the in-run one
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    assert "run next to it, so they hold up best" in capsys.readouterr().err
    runs, cats = sweep_report.comparison(out)
    for plan in plans:
        run_dir = out / "runs" / plan.name
        check_complete(run_dir, plan)
        assert measured(run_dir, "baseline") == [(p, "") for p in "abc"]  # its own baseline, every prompt
        t = trace.load(run_dir)
        own = frames.paired_speedups(t.requests)["speedup"].median()
        assert runs.set_index("run").loc[plan.name, "speedup"] == pytest.approx(own) and own > 0
        assert notebook.load_run(run_dir)[1] == ""  # no other run to divide by: no pairing note
        from workbench.report_index import headline
        assert "run next to it" in headline([t], [plan.name], [run_dir])  # the index's clock warning: in-run
    assert len(cats) and "in-run ratios" in sweep_report.sweep_index_html(out)
    before = snapshot(out)  # done, and recognised as done: a rerun runs nothing
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0 and snapshot(out) == before
