"""Perfetto / Chrome trace-event export of a run: every request's steps as prefill / draft / verify / other spans.

Format (Chrome trace-event JSON, read by ui.perfetto.dev and chrome://tracing): ``{"traceEvents": [...],
"displayTimeUnit": "ms"}``; ``"X"`` complete events carry ``ts``/``dur`` in µs; ``"M"`` metadata events name the
process (the run) and the threads. One track (tid) per request, named by its request_id, and the requests laid one
after another in run order on the time axis (each request's own clock starts where the previous one ended; the gaps
between requests are not recorded in a trace, so they are not shown). Each request gets an enclosing span, each step
a span ``step k`` and its phases nested inside; γ, n_accepted and n_emitted are arguments of every step and phase.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from workbench import atomic
from workbench.errors import WorkbenchError
from workbench.trace import META_FILE, PHASES, read_meta

PID = 1


def _x(name: str, cat: str, tid: int, ts_ms: float, dur_ms: float, args: dict) -> dict:
    return {"name": name, "cat": cat, "ph": "X", "pid": PID, "tid": tid, "ts": round(ts_ms * 1000.0, 3),
            "dur": round(max(dur_ms, 0.0) * 1000.0, 3), "args": args}


def _meta(name: str, tid: int, args: dict) -> dict:
    return {"name": name, "ph": "M", "pid": PID, "tid": tid, "args": args}


def _step_events(step: dict, tid: int, start_ms: float, cat: str) -> list[dict]:
    """The step span and its phases (step 0: one prefill span; baseline steps: verify and other only)."""
    args = {"step": int(step["step"]), "gamma": int(step["gamma"]), "accepted": int(step["n_accepted"]),
            "emitted": int(step["n_emitted"]), "context_len": int(step["context_len"])}
    t0 = start_ms + float(step["t_start_ms"])
    phases = {p: float(step[f"{p}_ms"]) for p in PHASES}
    events = [_x(f"step {args['step']}", cat, tid, t0, sum(phases.values()), args)]
    if args["step"] == 0:
        return events + [_x("prefill", cat, tid, t0, sum(phases.values()), args)]
    for phase in PHASES:
        if phase != "draft" or cat == "speculative":
            events.append(_x(phase, cat, tid, t0, phases[phase], args))
        t0 += phases[phase]
    return events


def trace_events(run_dir: str | os.PathLike) -> dict:
    """The trace-event document of a run (raises TraceError with one line for an unusable run directory)."""
    from workbench import trace

    loaded = trace.load(run_dir)
    steps = loaded.steps.groupby("request_id", sort=False)
    events = [_meta("process_name", 0, {"name": f"workbench run {loaded.meta.get('run_id')}"})]
    start_ms = 0.0
    for tid, request in enumerate(loaded.requests.to_dict("records"), start=1):
        rid, cat = request["request_id"], request["mode"]
        events += [_meta("thread_name", tid, {"name": rid}), _meta("thread_sort_index", tid, {"sort_index": tid})]
        rows = steps.get_group(rid).sort_values("step").to_dict("records") if rid in steps.groups else []
        end = max([float(request["total_ms"])] + [float(s["t_start_ms"]) + sum(float(s[f"{p}_ms"]) for p in PHASES)
                                                  for s in rows])
        events.append(_x(rid, "request", tid, start_ms, end, {
            "mode": cat, "drafter": request["drafter"], "policy": request["policy"],
            "new_tokens": int(request["new_tokens"]),
            "warmup": bool(request["warmup"]), "stop_reason": request["stop_reason"]}))
        for step in rows:
            events += _step_events(step, tid, start_ms, cat)
        start_ms += end
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def write_perfetto(run_dir: str | os.PathLike, out: str | os.PathLike, flag: str = "--perfetto") -> int:
    """Write the run's trace events to ``out`` (atomically); returns the number of events. ``out`` is checked
    before the run is read (``check_output_file``; ``flag`` names it in errors)."""
    out = check_output_file(out, flag, run_dir)
    doc = trace_events(run_dir)
    write_output(out, json.dumps(doc))
    return len(doc["traceEvents"])


def check_output_file(path: str | os.PathLike, flag: str, run_dir: str | os.PathLike | None = None) -> Path:
    """Refuse, before any work, a file to write that cannot be one (also ``replay --out``): an empty path (``Path``
    would make it "."), an existing directory, a path inside ``run_dir`` (the run being read: the output could
    overwrite its own trace) or inside any other run directory, a sweep's manifest, a path under a file, or under a
    directory that cannot be written. Returns it as a Path; nothing is created here."""
    if not str(path).strip():
        raise WorkbenchError(f"{flag}: an empty path (give the file to write)")
    path = Path(path)
    if path.is_dir():
        raise WorkbenchError(f"{flag} {path}: is a directory, not a file")
    if path.exists() and not path.is_file():  # /dev/null, a pipe: an atomic write would replace it with a file
        raise WorkbenchError(f"{flag} {path}: is not a regular file (a device, pipe or socket); give a file path")
    # the run read (when it is one: a plain folder is said to be no run by the reader), or any other run
    inside = run_dir is not None and _is_run_dir(Path(run_dir)) and atomic.overlap(path, run_dir) == "lies inside"
    owner = run_dir if inside else next((d for d in path.resolve().parents if _is_run_dir(d)), None)
    if owner is not None:  # symlinks resolved: caught too
        raise WorkbenchError(f"{flag} {path}: lies inside the run directory {owner}, whose files it could "
                             "overwrite; write it outside the run directory")
    if path.name == "manifest.json" and (path.parent / "runs").is_dir():
        raise WorkbenchError(f"{flag} {path}: is a sweep's manifest, which it would overwrite; write it elsewhere")
    parent = next((p for p in path.parents if p.exists()), Path("."))  # the nearest folder that exists
    if not parent.is_dir():
        raise WorkbenchError(f"{parent}: exists and is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        why = "a read-only file system" if os.statvfs(parent).f_flag & os.ST_RDONLY else "permission denied"
        raise WorkbenchError(f"{flag} {path}: cannot write in {parent} ({why})")
    return path


def _is_run_dir(d: Path) -> bool:
    """Whether ``d`` holds a workbench run (a meta.json that names one): any folder's meta.json is not enough."""
    from workbench.errors import TraceError

    if not (d / META_FILE).is_file():
        return False
    try:
        read_meta(d, resume=False)
    except TraceError:
        return False
    return True


def write_output(path: Path, text: str) -> None:
    """``atomic.write_text`` into ``path`` (its folders created), with the path given named in an error, not the
    temporary file written on the way (the CLI still tells a full disk, exit 1, from a bad path, exit 2)."""
    path.parent.mkdir(parents=True, exist_ok=True)  # an error here names the folder it could not make
    try:
        atomic.write_text(path, text)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None
