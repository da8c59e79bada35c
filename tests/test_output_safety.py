"""Outputs never destroy inputs or a user's files, and a run is never counted twice.

``report --out`` replaces only a directory carrying the report's marker (not any folder that holds an index.html),
and never one that is, contains or lies inside a run being reported; ``export --perfetto`` and ``replay --out`` never
write into the run they read; a run given twice (the same directory, a copy, or once more through its sweep) is
refused; ``replay --policy`` refuses duplicates as ``run`` does. Every refusal is one ``error:`` line, exit 2.

The report tests stub the notebook execution (``_write_pages``) and plotly.js: what they check is decided before
and around it, and a real build takes ~20 s (tests/test_notebooks.py builds one).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from assertions import one_error_line

from workbench import report
from workbench.cli import main
from workbench.sweep import FORMAT, MANIFEST, run_config_for
from workbench.sweep_file import GRID_DEFAULTS

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample_run"
pytestmark = pytest.mark.skipif(not (SAMPLE / "meta.json").is_file(), reason="needs the committed sample run")


def files(d: Path) -> dict[str, bytes]:
    """Every file under ``d`` with its bytes: what must come out of a refused command unchanged."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture
def fast_report(monkeypatch):
    """``workbench report`` with the notebooks stubbed: an index.html stands for the pages."""

    def pages(run_dirs, names, traces, out_dir, progress):
        (out_dir / "index.html").write_text("<h1>stub report</h1>", encoding="utf-8")
        return out_dir / "index.html"

    monkeypatch.setattr(report, "_write_pages", pages)


@pytest.fixture
def run(tmp_path) -> Path:
    """A copy of the sample run that a test may (wrongly) damage."""
    shutil.copytree(SAMPLE, tmp_path / "run")
    return tmp_path / "run"


def report_cli(*argv) -> int:
    return main(["report", *map(str, argv), "--no-progress"])


# ---------------------------------------------------------------------------------------------- report --out


def test_report_replaces_only_a_directory_carrying_its_marker(fast_report, tmp_path, capsys):
    site = tmp_path / "site"  # a user's folder that happens to hold an index.html
    site.mkdir()
    (site / "index.html").write_text("my homepage")
    (site / "photo.jpg").write_bytes(b"\xff\xd8")
    before = files(site)
    assert report_cli(SAMPLE, "--out", site) == 2
    one_error_line(capsys, f"--out {site} is a non-empty directory", report.MARKER, "choose another --out",
                   "remove the directory")
    assert files(site) == before
    out = tmp_path / "rep"
    assert report_cli(SAMPLE, "--out", out) == 0 and (out / report.MARKER).is_file()
    (out / "stale.html").write_text("from the first report")
    assert report_cli(SAMPLE, "--out", out) == 0  # an earlier report is replaced whole
    assert not (out / "stale.html").exists() and (out / report.MARKER).is_file()
    (out / report.MARKER).unlink()  # a report from before the marker: refused, saying what to do
    assert report_cli(SAMPLE, "--out", out) == 2
    one_error_line(capsys, "older workbench", "choose another --out, or remove the directory first")
    assert (out / "index.html").is_file()


@pytest.mark.parametrize("where, how", [(".", "contains"), ("run", "is"), ("run/rep", "lies inside")])
def test_report_refuses_an_out_that_meets_the_run(fast_report, run, capsys, where, how):
    (run.parent / "index.html").write_text("an index.html beside the run")  # the audit's case: the run was deleted
    before = files(run.parent)
    out = (run.parent / where).resolve()
    assert report_cli(run, "--out", out) == 2
    one_error_line(capsys, f"--out {out} {how} the run directory {run}", "choose an --out outside the runs")
    assert files(run.parent) == before


def fake_sweep(root: Path) -> Path:
    """A sweep directory whose one finished run is a copy of the sample run (manifest as `workbench sweep` writes)."""
    sweep = root / "sw"
    shutil.copytree(SAMPLE, sweep / "runs" / "spec")
    point = {**GRID_DEFAULTS, "max_new_tokens": 48, "per_category": 6}  # requests the sample run holds (complete)
    row = {"name": "spec", "kind": "speculative", "point": point, "baseline": None, "state": "done", "error": None}
    meta = json.loads((sweep / "runs" / "spec" / "meta.json").read_text())  # the settings of its row, as a sweep's
    meta["config"] = run_config_for(row["point"]).as_dict()  # run has (report checks them: sweep_check.check_row)
    (sweep / "runs" / "spec" / "meta.json").write_text(json.dumps(meta))
    manifest = {"format": FORMAT, "grid_hash": "h", "sweep_file": "s.toml", "runs": [row]}
    (sweep / MANIFEST).write_text(json.dumps(manifest))
    return sweep


def test_report_on_a_sweep_may_live_in_it_but_not_replace_it(fast_report, tmp_path, capsys):
    sweep = fake_sweep(tmp_path)
    before = files(sweep)
    for out, how in ((sweep, "contains the run directory"), (sweep / "runs" / "rep", "lies inside the sweep's runs"),
                     (tmp_path, "contains the run directory")):
        assert report_cli(sweep, "--out", out) == 2
        one_error_line(capsys, f"--out {out} {how}")
    assert files(sweep) == before
    assert report_cli(sweep, "--out", sweep / "report") == 0  # docs/SWEEP.md's own example
    assert (sweep / "report" / report.MARKER).is_file() and (sweep / "runs" / "spec" / "meta.json").is_file()


# ---------------------------------------------------------------------------------------------- a run twice


def test_report_refuses_a_run_given_twice(fast_report, run, tmp_path, capsys):
    run_id = json.loads((SAMPLE / "meta.json").read_text())["run_id"]
    assert report_cli(SAMPLE, SAMPLE, "--out", tmp_path / "a") == 2
    one_error_line(capsys, f"{SAMPLE} is given twice", run_id, "give each run once")
    assert report_cli(SAMPLE, run, "--out", tmp_path / "b") == 2  # a copy: the same run_id
    one_error_line(capsys, f"{SAMPLE} and {run} hold the same run", run_id, "give each run once")
    sweep = fake_sweep(tmp_path)
    assert report_cli(sweep, sweep / "runs" / "spec", "--out", tmp_path / "c") == 2  # directly and through its sweep
    one_error_line(capsys, f"{sweep / 'runs' / 'spec'} is given twice", run_id, "a sweep directory stands for")
    assert not any((tmp_path / d).exists() for d in "abc")


# ---------------------------------------------------------------------------------- export / replay output files


@pytest.mark.parametrize("argv, flag", [(["export", "{run}", "--perfetto", "{run}/requests-00000.parquet"],
                                         "--perfetto"),
                                        (["export", "{run}", "--perfetto", "{run}/new.json"], "--perfetto"),
                                        (["replay", "{run}", "--policy", "constant:2", "--out", "{run}/meta.json"],
                                         "--out"),
                                        (["replay", "{run}", "--out", "{link}/t.csv"], "--out")])
def test_export_and_replay_never_write_into_the_run(run, capsys, argv, flag):
    (run.parent / "link").symlink_to(run)  # a symlink into the run is the run too
    before = files(run)
    assert main([a.format(run=run, link=run.parent / "link") for a in argv]) == 2
    one_error_line(capsys, flag, f"lies inside the run directory {run}", "write it outside the run directory")
    assert files(run) == before


@pytest.mark.parametrize("target", ["other/meta.json", "other/requests-00000.parquet", "other/new.csv",
                                    "sw/manifest.json"])
@pytest.mark.parametrize("command", ["export", "replay"])
def test_export_and_replay_never_write_into_another_run_or_a_sweep_manifest(run, tmp_path, capsys, command, target):
    shutil.copytree(SAMPLE, tmp_path / "other")
    fake_sweep(tmp_path)
    before = {d: files(tmp_path / d) for d in ("other", "sw")}
    out = tmp_path / target
    flag = "--perfetto" if command == "export" else "--out"
    assert main([command, str(run), flag, str(out), *(["--policy", "constant:2"] if command == "replay" else [])]) == 2
    one_error_line(capsys, f"{flag} {out}: ", "manifest" if target.startswith("sw") else
                   f"lies inside the run directory {tmp_path / 'other'}")
    assert {d: files(tmp_path / d) for d in ("other", "sw")} == before


def test_a_folder_with_a_meta_json_of_its_own_is_not_taken_for_a_run(run, tmp_path, capsys):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "meta.json").write_text('{"name": "my project"}')  # someone's own meta.json, no run_id
    out = tmp_path / "project" / "out" / "trace.json"
    assert main(["export", str(run), "--perfetto", str(out)]) == 0 and out.is_file()


@pytest.mark.parametrize("argv", [["export", str(SAMPLE), "--perfetto", ""], ["replay", str(SAMPLE), "--out", " "]])
def test_an_empty_output_path_says_it_is_empty(argv, capsys):
    assert main(argv) == 2
    one_error_line(capsys, f"{argv[2]}: an empty path")


def test_replay_refuses_a_policy_given_twice_as_run_does(capsys):
    for policies, dupe in (("constant:2,constant:2", "constant:2"), ("threshold:0.4,threshold:0.4:16",
                                                                    "threshold:0.4:16")):
        assert main(["replay", str(SAMPLE), "--policy", policies]) == 2
        one_error_line(capsys, f"--policy lists {dupe} more than once")


# ------------------------------------------------------------------------ what stands at an output path


@pytest.mark.parametrize("command", ["export", "replay"])
def test_an_output_that_is_a_pipe_is_refused_not_replaced(tmp_path, capsys, command):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    flag = "--perfetto" if command == "export" else "--out"
    # an atomic write renames a file over the path: /dev/null would become one (a pipe stands for it here, so that
    # a regression breaks no machine's /dev/null)
    assert main([command, str(SAMPLE), flag, str(fifo), *(["--policy", "constant:2"] if command == "replay"
                                                          else [])]) == 2
    one_error_line(capsys, f"{flag} {fifo}: is not a regular file")
    assert fifo.is_fifo()


def test_an_output_symlink_is_written_through_and_a_planted_temp_name_is_never_followed(tmp_path, capsys):
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "t.json").write_text("old")
    (tmp_path / "latest.json").symlink_to(tmp_path / "traces" / "t.json")
    assert main(["export", str(SAMPLE), "--perfetto", str(tmp_path / "latest.json")]) == 0
    assert (tmp_path / "latest.json").is_symlink()  # the link stays; the file it names holds the new trace
    assert json.loads((tmp_path / "traces" / "t.json").read_text())["traceEvents"]
    # a link waiting at the temp name an older workbench used (OUT.tmp) must not carry the write elsewhere
    (tmp_path / "precious.txt").write_text("mine")
    (tmp_path / "x.json.tmp").symlink_to(tmp_path / "precious.txt")
    assert main(["export", str(SAMPLE), "--perfetto", str(tmp_path / "x.json")]) == 0
    assert (tmp_path / "precious.txt").read_text() == "mine" and not (tmp_path / "x.json").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "precious.txt", "traces", "x.json",
                                                          "x.json.tmp"]  # no temp file of ours left behind
    capsys.readouterr()
