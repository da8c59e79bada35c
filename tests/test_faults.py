"""Faults (issue 12): a busy run directory, SIGTERM, failing writes, non-TTY progress, atomic reports (bad weights:
test_weights.py).

Every fault must end with exactly one ``error: …`` line and its exit status (or the stated recovery) — a test that
would pass on a traceback is a bug here.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from assertions import one_error_line
from trace_fixtures import as_killed

from workbench import trace
from workbench.atomic import publish_dir
from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.interrupts import Terminated, exit_code, interrupted_message, resume_command, resume_hint
from workbench.progress import Progress, quiet_libraries
from workbench.runlock import RunLock

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RUN = REPO / "data" / "sample_run"


def run_args(dirs, prompts, out, *extra):
    return ["run", "--target", str(dirs["target"]), "--draft", str(dirs["draft_prefix"]), "--prompts", str(prompts),
            "--out", str(out), "--max-new-tokens", "12", "--no-progress", *extra]


# ---------------------------------------------------------------- run lock

HOLDER = textwrap.dedent("""
    import sys, time
    from workbench.runlock import RunLock
    with RunLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


def _hold_lock(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_is_refused_and_a_killed_holder_leaves_no_lock(tmp_path):
    run_dir = tmp_path / "run"
    holder = _hold_lock(run_dir)
    try:
        with pytest.raises(WorkbenchError) as err:
            with RunLock(run_dir):
                pass
        msg = str(err.value)
        assert f"run directory {run_dir} is in use by pid {holder.pid} on " in msg
        assert "another `workbench run` is writing it" in msg and "since 20" in msg
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert json.loads((run_dir / ".lock").read_text())["pid"] == holder.pid  # its record survived…
    with RunLock(run_dir):  # …but the kernel released its flock: stale, taken over
        assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()
    with RunLock(run_dir):  # released on exit: the same process can take it again
        pass


def test_a_run_written_into_out_while_the_models_load_is_not_overwritten(model_dirs, prompts_file, tmp_path, capsys,
                                                                          monkeypatch):
    # --out is checked before the models load (seconds) and locked after: whatever landed there in between is
    # someone else's, so the run stops instead of writing its meta.json over it
    from workbench import runner

    out, opened = tmp_path / "run", runner._open_session

    def another_writer_meanwhile(*args):
        out.mkdir()
        (out / "meta.json").write_text('{"run_id": "theirs"}')
        return opened(*args)

    monkeypatch.setattr(runner, "_open_session", another_writer_meanwhile)
    assert main(run_args(model_dirs, prompts_file, out, "--no-warmup")) == 2
    one_error_line(capsys, f"--out {out}: another process wrote into it while this run was starting")
    assert (out / "meta.json").read_text() == '{"run_id": "theirs"}' and not trace.completed_parts(out)


# ---------------------------------------------------------------- interrupts

def test_resume_hint_and_exit_codes():
    assert resume_hint(["run", "--out", "my runs/x"]) == "workbench run --out 'my runs/x' --resume"
    assert resume_hint(["run", "--out", "x", "--resume"]) == "workbench run --out x --resume"
    assert resume_hint(["demo", "--limit", "2"]) == "workbench demo --limit 2"  # the demo always resumes
    assert resume_command({"command": ["/x/bin/workbench", "run", "--out", "r"]}) == "workbench run --out r --resume"
    # a run the demo made is finished by the demo command again, not by a `run` it never had
    assert resume_command({"command": ["/x/bin/workbench", "demo", "--out", "run"]}) == "workbench demo --out run"
    assert resume_command({"command": ["/x/bin/workbench", "demo"]}) == "workbench demo"
    assert resume_command({}) == "workbench run … --resume"
    assert exit_code(KeyboardInterrupt()) == 130 and exit_code(Terminated()) == 143
    assert isinstance(Terminated(), KeyboardInterrupt)
    assert interrupted_message(["run", "--out", "r"], "r") == (
        "interrupted: completed requests are saved in r; resume with: workbench run --out r --resume")


def test_sigterm_saves_completed_requests_and_prints_the_resume_command(model_dirs, tmp_path):
    prompts = tmp_path / "many.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "category": "prose", "prompt": f"The quick fox {i}"}) + "\n"
                               for i in range(24)))
    out = tmp_path / "run"
    args = run_args(model_dirs, prompts, out, "--max-new-tokens", "48", "--ignore-eos", "--baseline", "--no-warmup")
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 120
    while not list(out.glob("requests-*.parquet")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"interrupted: completed requests are saved in {out}; resume with: ")
    hint = shlex.split(lines[0].split("resume with: ", 1)[1])
    assert hint[0] == "workbench" and hint[-1] == "--resume" and hint[1:-1] == args
    done = trace.load(out).requests
    assert 0 < len(done) < 48 and done["request_id"].is_unique
    assert main(hint[1:]) == 0  # the printed command finishes the run
    final = trace.load(out).requests
    assert len(final) == 48 and final["request_id"].is_unique


def test_a_run_stopped_in_its_warm_ups_gets_the_command_that_finishes_it_from_report(model_dirs, prompts_file,
                                                                                     tmp_path, monkeypatch):
    from workbench.report import build_report

    out, done = tmp_path / "run", tmp_path / "done"
    args = run_args(model_dirs, prompts_file, out, "--baseline", "--limit", "1")
    monkeypatch.setattr(sys, "argv", ["workbench", *args])  # what meta.json records as the command
    assert main(args) == 0
    assert main(run_args(model_dirs, prompts_file, done, "--baseline", "--limit", "1")) == 0
    measured = trace.load(out).requests.reset_index(drop=True)
    for index in measured.index[~measured["warmup"]]:  # as if killed once its warm-ups were saved
        for part in out.glob(f"*-{index:05d}.parquet"):
            part.unlink()
    as_killed(out)
    with pytest.raises(WorkbenchError, match="has no finished request yet") as err:
        build_report([out], tmp_path / "report", progress=False)
    hint = shlex.split(str(err.value).split("finish it with ", 1)[1].strip("`"))
    assert hint[:2] == ["workbench", "run"] and hint[-1] == "--resume" and str(out) in hint
    # beside a finished run, it is listed as not built (and why) instead of failing the report
    index = build_report([out, done], tmp_path / "both", progress=False).read_text()
    assert "run has no finished request yet" in index and "latency_done.html" in index
    assert main(hint[1:]) == 0 and (~trace.load(out).requests["warmup"]).sum() == 2  # the hint finishes it


# ---------------------------------------------------------------- write errors (ENOSPC) during a run

def _fail_on(monkeypatch, func: str, table: str, after: int) -> None:
    """Make pq.write_table / os.replace raise ENOSPC for ``table`` files once ``after`` of them were written."""
    import pyarrow.parquet as pq

    module, name = (trace.pq, "write_table") if func == "write_table" else (os, "replace")
    real, seen = getattr(module, name), []

    def failing(*args, **kwargs):
        target = Path(args[1])
        if target.name.startswith(f"{table}-"):
            seen.append(target)
            if len(seen) > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        return real(*args, **kwargs)

    assert pq.write_table is trace.pq.write_table
    monkeypatch.setattr(module, name, failing)


@pytest.mark.parametrize("func, table", [("write_table", "steps"), ("write_table", "tokens"),
                                         ("replace", "requests")])
def test_a_full_disk_stops_the_run_cleanly_and_resume_completes_it(model_dirs, prompts_file, tmp_path, capsys,
                                                                   monkeypatch, func, table):
    out = tmp_path / "run"
    args = run_args(model_dirs, prompts_file, out, "--baseline", "--no-warmup")
    with monkeypatch.context() as patch:
        _fail_on(patch, func, table, after=2)
        assert main(args) == 1  # not bad input: the environment failed (README)
    one_error_line(capsys, "cannot write ", f"{table}-00002.parquet", "No space left on device",
                   "completed requests are safe; free space and rerun with --resume")
    assert trace.completed_parts(out) == [0, 1]
    assert not list(out.glob("*.tmp*")) and not list(out.glob("*-00002.parquet"))
    assert len(trace.load(out).requests) == 2
    assert main([*args, "--resume"]) == 0
    requests = trace.load(out).requests
    expected = [f"{p}/{m}" for p in "abc" for m in ("baseline", "draft_prefix/constant:4")]
    assert sorted(requests["request_id"]) == sorted(expected)


def test_a_part_killed_while_its_files_are_written_is_not_complete(tmp_path, monkeypatch):
    # A kill between any two of a part's files must leave a part that --resume redoes: the requests file, which
    # marks it complete, is written last. KeyboardInterrupt stands in for the kill (no cleanup runs).
    real = trace.pq.write_table
    for done in range(len(trace.WRITE_ORDER)):
        calls = []

        def write(table, where, *args, _done=done, _calls=calls, **kwargs):
            if len(_calls) == _done:
                raise KeyboardInterrupt
            _calls.append(where)
            real(table, where, *args, **kwargs)

        monkeypatch.setattr(trace.pq, "write_table", write)
        run = tmp_path / f"killed-after-{done}"
        run.mkdir()
        with pytest.raises(KeyboardInterrupt):
            trace.write_part(run, 0, {})
        assert trace.completed_parts(run) == []
    monkeypatch.setattr(trace.pq, "write_table", real)
    trace.write_part(tmp_path / "killed-after-0", 0, {})
    assert trace.completed_parts(tmp_path / "killed-after-0") == [0]


def test_an_unwritable_meta_is_one_line(model_dirs, prompts_file, tmp_path, capsys, monkeypatch):
    real = Path.write_text

    def failing(self, *a, **kw):
        if self.name.startswith("meta.json.tmp"):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "write_text", failing)
    assert main(run_args(model_dirs, prompts_file, tmp_path / "run", "--no-warmup")) == 2
    one_error_line(capsys, "cannot write ", "meta.json: Permission denied")
    assert not list((tmp_path / "run").glob("meta.json*"))


def test_a_part_lost_after_the_run_finished_is_told_and_resume_redoes_it(model_dirs, prompts_file, tmp_path, capsys):
    out = tmp_path / "run"
    args = run_args(model_dirs, prompts_file, out, "--baseline", "--no-warmup")
    assert main(args) == 0
    assert trace.read_meta(out)["sessions"][-1]["requests"] == 6  # 3 prompts × (baseline, constant:4)
    lost = trace.load(out).requests.set_index("request_id").index[3]
    for table in trace.TABLES:  # a part deleted (or moved away) after the run finished
        trace.part_path(out, table, 3).unlink()
    capsys.readouterr()
    for command in (["replay", str(out)], ["export", str(out), "--perfetto", str(tmp_path / "t.json")]):
        assert main(command) == 2  # a silent figure over 5 of 6 requests would be wrong
        one_error_line(capsys, f"{out}: 1 of its requests are gone (it held 6 when its last session finished",
                       "--resume` redoes them")
    assert main([*args, "--resume"]) == 0  # redoes the lost request and records the count anew
    requests = trace.load(out).requests
    assert len(requests) == 6 and lost in set(requests["request_id"])
    assert trace.read_meta(out)["sessions"][-1]["requests"] == 6


def test_resume_removes_the_temp_files_killed_writers_left_and_nothing_else(model_dirs, prompts_file, tmp_path):
    out = tmp_path / "run"
    args = run_args(model_dirs, prompts_file, out, "--no-warmup", "--limit", "1")
    assert main(args) == 0
    stale = ["meta.json.tmp", "meta.json.tmp-77-0a1b2c3d", "steps-00001.parquet.tmp-77-0a1b2c3d",
             "requests-00001.parquet.tmp"]  # new-style names, and the fixed name an older workbench used
    kept = ["notes.txt", "notes.txt.tmp", "requests-00001.parquet.tmpdir"]  # not ours: left alone
    for name in stale + kept:
        (out / name).write_text("x")
    assert main([*args, "--resume"]) == 0
    names = {p.name for p in out.iterdir()}
    assert not names & set(stale) and set(kept) <= names


# ---------------------------------------------------------------- progress off a terminal, quiet libraries

def test_progress_off_a_terminal_prints_a_few_plain_lines():
    stream, now = io.StringIO(), [0.0]
    bar = Progress(200, "requests", file=stream, unit="req", clock=lambda: now[0])
    for i in range(200):
        now[0] += 0.1  # 20 s in all → a line every 5 s
        bar.update(1)
        bar.set_postfix(acceptance=f"{i / 200:.2f}")
    bar.close()
    bar.close()  # idempotent, like tqdm
    text = stream.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and 3 <= len(lines) <= 6
    assert lines[-1].startswith("requests: 200/200 (100%) 10.00 req/s") and "acceptance=0.99" in lines[-1]
    every = io.StringIO()  # a line at every update: the last one and close() are the same line, printed once
    with Progress(3, "report", file=every, interval=0.0) as bar:
        bar.update(3)
    assert every.getvalue().count("report: 3/3 (100%)") == 1
    silent = io.StringIO()
    with Progress(5, "x", file=silent, disable=True) as quiet:
        quiet.update(5)
    assert silent.getvalue() == ""


def test_progress_of_a_resumed_job_counts_earlier_work_but_rates_only_its_own(tmp_path):
    stream, now = io.StringIO(), [0.0]
    bar = Progress(5, "sweep", file=stream, unit="run", clock=lambda: now[0], initial=4)
    now[0] += 10.0
    bar.update(1)
    bar.close()
    assert stream.getvalue().splitlines()[-1].startswith("sweep: 5/5 (100%) 0.10 run/s, 10s")
    # the sweep's bar: a rerun of a finished sweep rates nothing, and each line's counts are the current ones
    from workbench import sweep_run

    manifest = {"runs": [{"name": "a", "state": "done"}, {"name": "b", "state": "pending"}]}
    done = sweep_run.Progress(tmp_path, manifest, show=True)
    done.bar.file, done.bar.interval = (stream := io.StringIO()), 0.0
    done.bar._clock = lambda: done.bar._start + 10.0  # 10 s into this bar
    done.set("b", "running")
    done.set("b", "done")
    done.close()
    last = stream.getvalue().splitlines()[-1]
    # one run in this bar's 10 s (the earlier run is not rated), and the counts as they are at that line
    assert last.startswith("sweep: 2/2 (100%) 0.10 run/s") and "done=2, running=0, failed=0" in last


def test_quiet_libraries_turns_off_transformers_bars():
    from transformers.utils import logging as hf_logging

    quiet_libraries()
    assert not hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == hf_logging.ERROR


# ---------------------------------------------------------------- atomic report directory

def test_publish_dir_replaces_only_on_success(tmp_path):
    final = tmp_path / "report"
    with publish_dir(final, marker="index.html") as tmp:
        (tmp / "index.html").write_text("v1")
    assert (final / "index.html").read_text() == "v1"
    with pytest.raises(RuntimeError):
        with publish_dir(final, marker="index.html") as tmp:
            (tmp / "index.html").write_text("half")
            raise RuntimeError("notebook failed")
    assert (final / "index.html").read_text() == "v1"  # the old report is untouched
    with publish_dir(final, marker="index.html") as tmp:
        (tmp / "index.html").write_text("v2")
    assert (final / "index.html").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temp or old dirs left
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(WorkbenchError, match="non-empty directory"):
        with publish_dir(mine, marker="index.html"):
            pass
    assert (mine / "thesis.tex").exists()


def test_report_out_an_existing_file_is_one_line(tmp_path, capsys):
    file = tmp_path / "report.html"
    file.write_text("not a directory")
    assert main(["report", str(SAMPLE_RUN), "--out", str(file), "--no-progress"]) == 2
    one_error_line(capsys, f"--out {file} exists and is a file")
    assert file.read_text() == "not a directory"
    assert main(["report", str(SAMPLE_RUN), "--out", str(file / "report"), "--no-progress"]) == 2  # a file as parent
    one_error_line(capsys, f"cannot create the output directory next to {file / 'report'}: {file} is a file")


# ---------------------------------------------------------------- determinism

def test_sampled_runs_are_reproducible(model_dirs, prompts_file, tmp_path, capsys):
    tables = []
    for name, seed in (("one", "3"), ("two", "3"), ("other-seed", "4")):
        assert main(run_args(model_dirs, prompts_file, tmp_path / name, "--temperature", "1", "--seed", seed,
                             "--gamma", "3", "--baseline")) == 0
        t = trace.load(tmp_path / name)
        tables.append((t.requests.set_index("request_id")["output_text"].sort_index(),
                       t.tokens.sort_values(["request_id", "step", "position", "role"])[
                           ["request_id", "step", "position", "role", "token_id", "accepted"]].reset_index(drop=True)))
    assert tables[0][0].equals(tables[1][0])
    assert tables[0][1].equals(tables[1][1])
    assert not tables[0][1]["accepted"].all()  # sampled: some drafts rejected, so the flags mean something
    assert not tables[0][0].equals(tables[2][0])  # --seed is what they were drawn from


@pytest.mark.parametrize("temperature", ["0", "0.7"])  # sampled: q with NaN is drawn from first (sampling.choose)
def test_nan_logits_in_a_warm_up_name_the_request_and_what_is_saved(model_dirs, prompts_file, tmp_path, capsys,
                                                                    temperature):
    from tiny_models import make_model, make_tokenizer, save

    tok = make_tokenizer()
    model = make_model("llama", vocab_size=len(tok), seed=7, layers=1)
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))  # every logit NaN: the first drafted token fails the check
    args = run_args(model_dirs, prompts_file, tmp_path / "run", "--temperature", temperature)
    args[args.index("--draft") + 1] = str(save(model, tok, tmp_path / "nan-draft"))
    capsys.readouterr()  # the save's own progress bar
    assert main(args) == 2
    one_error_line(capsys, "the draft produced NaN/inf logits", "in request warmup0/", "stopped (every request "
                   f"completed before it is saved in {tmp_path / 'run'})")
