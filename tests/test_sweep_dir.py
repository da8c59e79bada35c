"""The sweep directory without running models: a sweep killed during its first manifest write starts again, a
corrupt manifest is one error line, one driver at a time (the lock), a model created after a failed run keeps the
sweep's identity, and the report links each run to its own pages."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_sweep import write_sweep

from workbench import sweep, sweep_file, sweep_report, sweep_run
from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.runlock import RunLock

GRID = {"target": "default", "draft": ["models/later", "default"], "gamma": [2], "prompts": "heldout"}


def plans_of(path: Path) -> list[sweep.RunPlan]:
    return sweep.expand(sweep_file.load_spec(path))


def test_a_sweep_killed_during_its_first_manifest_write_starts_again(tmp_path):
    path = write_sweep(tmp_path / "s.toml", GRID)
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)  # what a kill during the first write leaves: lock, empty runs/, a temp file
    (out / ".lock").write_text("")
    (out / "manifest.json.tmp").write_text('{"format": "workbench-sw')
    manifest = sweep.open_manifest(out, plans_of(path), path)
    assert [r["state"] for r in manifest["runs"]] == ["pending"] * 3 and sweep.read_manifest(out) == manifest
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")  # anything else is someone's directory: refused
    with pytest.raises(WorkbenchError, match="exists, is not empty and holds no sweep manifest"):
        sweep.open_manifest(tmp_path / "other", plans_of(path), path)


def test_the_rerun_command_for_unfinished_runs_works_from_any_directory(tmp_path, monkeypatch):
    write_sweep(tmp_path / "s.toml", GRID)
    monkeypatch.chdir(tmp_path)  # the user types a relative sweep file ...
    sweep.open_manifest(tmp_path / "out", plans_of(Path("s.toml")), Path("s.toml"))
    monkeypatch.chdir(tmp_path / "out")  # ... and reads the report from elsewhere
    note = sweep_report.unfinished_note(tmp_path / "out")
    assert "3 of 3 runs of this sweep are not finished (3 pending)" in note
    assert f"`workbench sweep {tmp_path / 's.toml'} --out {tmp_path / 'out'}`" in note


@pytest.mark.parametrize("text", ['{"grid_hash": ', "[1, 2]", '{"runs": [{"name": "a"}]}'])
def test_a_corrupt_or_hand_edited_manifest_is_one_error_line(tmp_path, capsys, text):
    path = write_sweep(tmp_path / "s.toml", GRID)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.json").write_text(text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "manifest.json" in err[0], err
    assert main(["report", str(tmp_path / "out"), "--out", str(tmp_path / "rep")]) == 2
    assert "manifest.json" in capsys.readouterr().err and not (tmp_path / "rep").exists()


def test_one_driver_per_sweep_directory(tmp_path, capsys):
    path = write_sweep(tmp_path / "s.toml", GRID)
    out = tmp_path / "out"
    with RunLock(out, "sweep directory", "another `workbench sweep` is driving it"):  # a driver at work
        assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"sweep directory {out.resolve()} is in use by pid" in err and "driving it" in err
    assert not (out / "manifest.json").exists()  # the second driver wrote nothing


def test_a_model_created_after_a_failed_run_keeps_the_sweep_the_same(tmp_path):
    path = write_sweep(tmp_path / "s.toml", GRID)
    before = plans_of(path)
    (tmp_path / "models" / "later").mkdir(parents=True)  # relative paths resolve once they exist
    after = plans_of(path)
    assert before[1].point["draft"] == "models/later" and Path(after[1].point["draft"]).is_absolute()
    assert [p.name for p in before] == [p.name for p in after]
    base = path.resolve().parent
    assert sweep.grid_hash(before, base) == sweep.grid_hash(after, base)
    other = write_sweep(tmp_path / "t.toml", {**GRID, "draft": ["models/other", "default"]})
    assert sweep.grid_hash(plans_of(other), base) != sweep.grid_hash(after, base)


def test_sweep_tables_link_each_run_to_its_own_pages():
    frame = pd.DataFrame({"run": ["spec__a", "spec__b"], "speedup": [1.2, float("nan")],
                          "prompts": ["/data/sets/heldout.jsonl"] * 2})
    table = sweep_report._table(frame, ["run", "speedup", "prompts"], {"spec__a": "spec__a_4"})
    assert "href='acceptance_spec__a_4.html'" in table and "href='latency_spec__b.html'" in table
    assert "<td>–</td>" in table and "nan" not in table and "/data/sets" not in table  # a dash; the file's name


def test_long_names_are_cut_with_a_hash_and_an_empty_gamma_list_is_refused(tmp_path):
    long = "p" * 240  # two prompt files with 240-character names: each run name would be too long for a directory
    for name in ("a", "b"):
        (tmp_path / f"{long}{name}.jsonl").write_text('{"id": "x", "prompt": "hi", "category": "c"}\n')
    plans = plans_of(write_sweep(tmp_path / "s.toml", {"prompts": [f"{long}a.jsonl", f"{long}b.jsonl"]}))
    names = [p.name for p in plans]
    assert len(set(names)) == len(names) and all(len(n) <= sweep.MAX_NAME for n in names)
    with pytest.raises(WorkbenchError, match=r"\[grid\] gamma is an empty list"):
        plans_of(write_sweep(tmp_path / "g.toml", {"policy": ["heuristic"], "gamma": []}))


def test_a_ray_task_no_node_can_place_is_named_not_left_to_hang():
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0}}, {"Alive": False, "Resources": {"CPU": 16.0, "GPU": 1.0}}]
    assert sweep_run.unplaceable(nodes, {"num_cpus": 2, "num_gpus": 0}) == ""
    assert "the largest node has 2 CPUs" in sweep_run.unplaceable(nodes, {"num_cpus": 8, "num_gpus": 0})
    assert "the most GPUs on a node are 0" in sweep_run.unplaceable(nodes, {"num_cpus": 1, "num_gpus": 1})
