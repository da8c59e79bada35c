"""Run directories: per-request Parquet parts written atomically, and `load()` to read them back.

Layout and every column are documented in docs/TRACE.md (the contract). A request's part is four files,
``steps-<k>``, ``tokens-<k>``, ``forced-<k>`` and — last, as the completion marker — ``requests-<k>.parquet``.
Format version 2 (meta.json ``trace_version``); ``load`` also reads version 1 runs (see ``_upgrade_v1``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workbench import atomic
from workbench.errors import PATH_ERRNOS, IOFailure, TraceError, WorkbenchError

META_FILE = "meta.json"
TRACE_VERSION = 2  # 2: drafter/policy per request (requests.gamma removed), gamma_planned/draft_stop, forced table
PHASES = ("draft", "verify", "other")  # a decode step's phases, in order: steps.draft_ms, verify_ms, other_ms
_S, _I, _F, _B, _L = pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.list_(pa.int64())

# One explicit schema per table, so empty parts and NaNs keep their types (docs/TRACE.md explains each column).
SCHEMAS: dict[str, pa.Schema] = {
    "requests": pa.schema([
        ("run_id", _S), ("request_id", _S), ("prompt_id", _S), ("category", _S), ("mode", _S), ("drafter", _S),
        ("policy", _S), ("temperature", _F), ("prompt_tokens", _I), ("new_tokens", _I), ("prefill_ms", _F),
        ("ttft_ms", _F), ("total_ms", _F), ("tokens_per_s", _F), ("ms_per_token", _F), ("output_text", _S),
        ("stop_reason", _S), ("warmup", _B), ("started_at", _F), ("prompt_token_ids", _L),
        ("output_token_ids", _L)]),
    "steps": pa.schema([
        ("run_id", _S), ("request_id", _S), ("step", _I), ("gamma", _I), ("gamma_planned", _I), ("draft_stop", _S),
        ("n_accepted", _I), ("n_emitted", _I), ("context_len", _I), ("draft_ms", _F), ("verify_ms", _F),
        ("other_ms", _F), ("t_start_ms", _F)]),
    "tokens": pa.schema([
        ("run_id", _S), ("request_id", _S), ("step", _I), ("position", _I), ("token_id", _I), ("token_text", _S),
        ("q", _F), ("p", _F), ("accept_prob", _F), ("accepted", _B), ("evaluated", _B), ("emitted", _B),
        ("alpha_tv", _F), ("role", _S)]),
    "forced": pa.schema([
        ("run_id", _S), ("request_id", _S), ("drafter", _S), ("index", _I), ("token_id", _I), ("draft_token", _I),
        ("draft_conf", _F), ("draft_entropy", _F), ("p_token", _F), ("alpha_tv", _F), ("match", _B),
        ("sample_conf", _F), ("sample_accept", _F)]),
}
TABLES = ("requests", "steps", "tokens", "forced")
WRITE_ORDER = ("steps", "tokens", "forced", "requests")  # requests last: it marks the part complete


@dataclass
class Trace:
    """A loaded run: its meta.json and the tables (all parts concatenated)."""

    meta: dict
    requests: pd.DataFrame
    steps: pd.DataFrame
    tokens: pd.DataFrame
    forced: pd.DataFrame | None = None  # teacher-forced positions for replay (docs/REPLAY.md); empty if not recorded


def part_path(run_dir: Path, table: str, index: int) -> Path:
    return Path(run_dir) / f"{table}-{index:05d}.parquet"


def write_part(run_dir: Path, index: int, rows: dict[str, list[dict]]) -> None:
    """Write one request's rows (``{"steps": [...], "tokens": [...], "forced": [...], "requests": [...]}``) as part
    ``index`` (a missing table is written empty).

    Each file goes to a temporary name and is renamed into place; ``requests`` goes last, so a part whose requests
    file exists is complete even if the process is killed at any instant.
    """
    written = []
    for table in WRITE_ORDER:
        final, tmp = part_path(run_dir, table, index), None
        try:
            tmp = atomic.new_temp(final)  # a fresh sibling temp file, as every atomic write uses
            pq.write_table(pa.Table.from_pylist(rows.get(table, []), schema=SCHEMAS[table]), tmp)
            os.replace(tmp, final)
        except OSError as exc:  # ENOSPC, EACCES, EIO…: drop this part entirely (no requests file = not complete)
            _remove(*([tmp] if tmp else []), *written)
            raise write_error(final, exc) from None
        written.append(final)


PART_NAME = re.compile(r"requests-([0-9]{5,})\.parquet")  # as part_path writes it; "requests-00000 copy.parquet",
#                                                           "requests-3.parquet" or "requests-000003.parquet" is not


def completed_parts(run_dir: Path) -> list[int]:
    """Indices of parts whose requests file exists (= completed requests)."""
    names = (PART_NAME.fullmatch(p.name) for p in Path(run_dir).glob("requests-*.parquet"))
    return sorted(int(m.group(1)) for m in names if m and m.group(1) == f"{int(m.group(1)):05d}")


def write_meta(run_dir: Path, meta: dict) -> None:
    try:
        atomic.write_text(Path(run_dir) / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
    except OSError as exc:  # the previous meta.json (if any) stays intact
        raise write_error(Path(run_dir) / META_FILE, exc) from None


def write_error(path: Path, exc: OSError) -> WorkbenchError:
    """One line for a failed write; the run stops, what is on disk stays loadable and resumable."""
    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))  # pyarrow's strerror is verbose
    error = WorkbenchError if exc.errno in PATH_ERRNOS else IOFailure  # exit 2 for the path's fault, else 1
    return error(f"cannot write {path}: {reason} — completed requests are safe; free space and rerun with --resume")


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


# What the readers of meta.json take from it: every run (format 1 too) names itself; trace_version is absent in
# format 1. --resume (runner.open_run_dir, which calls read_meta with its defaults) also reads a current-format
# run's config, models and sessions; trace.load reads only the id (the test suite's synthetic runs have no config).
META_TYPES = {"run_id": str, "trace_version": int, "config": dict, "models": dict, "sessions": list}
RESUME_KEYS = ("config", "models", "sessions")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true/false", type(None): "null"}


def read_meta(run_dir: Path, *, resume: bool = True) -> dict:
    """A run's meta.json, checked for the shape its readers rely on (TraceError, one line naming the file): a JSON
    object with a run_id, and every key of ``META_TYPES`` present of its type; with ``resume`` (the default), a
    current-format run must also hold ``RESUME_KEYS``."""
    path = Path(run_dir) / META_FILE
    if not path.is_file():
        raise TraceError(f"{run_dir}: not a workbench run directory (no {META_FILE})")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: corrupt meta.json ({exc})") from None
    if not isinstance(meta, dict):
        raise TraceError(f"{path}: not a workbench meta.json (it holds {_json_type(meta)}, not an object)")
    need = ["run_id", *(RESUME_KEYS if resume and meta.get("trace_version") == TRACE_VERSION else ())]
    problems = [f"no {key}" for key in need if key not in meta]
    problems += [f"{key} is {_json_type(meta[key])}" for key, kind in META_TYPES.items()
                 if key in meta and _json_type(meta[key]) != _JSON_TYPES[kind]]  # bool is no trace_version
    if problems:
        raise TraceError(f"{path}: not a workbench meta.json ({', '.join(problems)})")
    return meta


def _json_type(value) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


V1_COLUMNS = {"requests": {"drafter", "policy", "started_at", "prompt_token_ids", "output_token_ids"},
              "steps": {"gamma_planned", "draft_stop"}}  # columns version 1 did not have
LATER_COLUMNS = {"forced": {"sample_conf", "sample_accept"}}  # added within format 2: read as NaN where absent


def _read_table(path: Path, table: str, version: int = TRACE_VERSION) -> pd.DataFrame:
    if not path.is_file():
        raise TraceError(f"{path}: missing trace file (the run directory is incomplete)")
    try:
        data = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise TraceError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = set(SCHEMAS[table].names) - set(data.column_names)
    if version == 1:
        missing -= V1_COLUMNS.get(table, set())
    later = missing & LATER_COLUMNS.get(table, set())
    missing -= later
    if missing:
        raise TraceError(f"{path}: not a workbench {table} table (missing columns {sorted(missing)})")
    wrong = [f"{f.name} is {data.schema.field(f.name).type}" for f in SCHEMAS[table]
             if f.name in data.column_names and not _same_kind(data.schema.field(f.name).type, f.type)]
    if wrong:
        raise TraceError(f"{path}: not a workbench {table} table ({', '.join(wrong)}; expected the types of "
                         "docs/TRACE.md)")
    frame = data.to_pandas()
    for name in sorted(later):
        frame[name] = float("nan")
    return frame


def _same_kind(found: pa.DataType, expected: pa.DataType) -> bool:
    """Whether a column read back can stand for ``expected``: same kind (string, integer, float, bool, list); an
    all-null column and an integer column where floats are expected pass."""
    kinds = (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), pa.types.is_integer,
             pa.types.is_floating, pa.types.is_boolean, lambda t: pa.types.is_list(t) or pa.types.is_large_list(t))
    if pa.types.is_null(found) or (pa.types.is_floating(expected) and pa.types.is_integer(found)):
        return True
    return any(kind(found) and kind(expected) for kind in kinds)


def check_run_dir(run_dir: str | os.PathLike) -> dict:
    """``run_dir``'s meta.json if it is a run directory, else TraceError with one line that says what it is instead:
    what a command reading a run checks first, so that its other checks (an output path inside the run) speak of a
    run that is one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "a file, not a run directory" if run_dir.exists() else "no such run directory"
        raise TraceError(f"{run_dir}: {what}")
    return read_meta(run_dir, resume=False)


def load(run_dir: str | os.PathLike, *, whole: bool = True) -> Trace:
    """Load a run directory into DataFrames; raises TraceError with one clear line if anything is wrong, a part
    lost since it was written included (``whole``; ``--resume`` reads what is there and redoes the rest)."""
    run_dir = Path(run_dir)
    meta = check_run_dir(run_dir)
    parts = completed_parts(run_dir)
    if not parts:
        raise TraceError(f"{run_dir}: the run has no completed request yet")
    version = meta.get("trace_version", 1)
    if version not in (1, TRACE_VERSION):
        raise TraceError(f"{run_dir}: trace format version {version} is newer than this workbench reads "
                         f"({TRACE_VERSION}); upgrade the workbench")
    tables = TABLES if version == TRACE_VERSION else ("requests", "steps", "tokens")
    frames = {t: [_read_table(part_path(run_dir, t, i), t, version) for i in parts] for t in tables}
    loaded = Trace(meta=meta, **{t: pd.concat(frames[t], ignore_index=True) for t in tables})
    if version == 1 and "gamma" not in loaded.requests.columns:  # format-2 parts under a meta.json without version
        raise TraceError(f"{run_dir / META_FILE}: records trace format 1 (or no trace_version) but the run's parts "
                         f"are format {TRACE_VERSION} (a meta.json from elsewhere, or edited?)")
    strangers = sorted(set(loaded.requests["run_id"]) - {meta["run_id"]})
    if strangers:  # parts copied in from another run would be averaged with this one's, silently
        raise TraceError(f"{run_dir}: holds requests of another run ({', '.join(map(str, strangers))}) beside run "
                         f"{meta['run_id']} of its meta.json; keep each run in its own directory")
    if whole:
        check_whole(run_dir, meta, len(loaded.requests))
    repeated = loaded.requests["request_id"].duplicated()
    if repeated.any():  # a part copied under another index would count its request twice
        raise TraceError(f"{run_dir}: request {loaded.requests['request_id'][repeated].iloc[0]} is in more than one "
                         "part (a copied part file?); each request's part is written once")
    return loaded if version == TRACE_VERSION else _upgrade_v1(loaded)


def _upgrade_v1(old: Trace) -> Trace:
    """Version 1 → 2: each request had one model draft and a constant γ (``requests.gamma``)."""
    req, steps = old.requests.copy(), old.steps.copy()
    draft = Path(str(old.meta.get("config", {}).get("draft", "draft")).rstrip("/")).name
    spec = req["mode"] == "speculative"
    req.insert(5, "drafter", spec.map({True: draft, False: ""}))
    req.insert(6, "policy", [f"constant:{g}" if s else "" for s, g in zip(spec, req["gamma"])])
    req = req.drop(columns="gamma")
    for col, empty in (("started_at", float("nan")), ("prompt_token_ids", None), ("output_token_ids", None)):
        req[col] = [empty] * len(req)
    steps.insert(4, "gamma_planned", steps["gamma"])
    steps.insert(5, "draft_stop", (steps["gamma"] > 0).map({True: "cap", False: ""}))
    forced = pa.Table.from_pylist([], schema=SCHEMAS["forced"]).to_pandas()
    return Trace(meta=old.meta, requests=req, steps=steps, tokens=old.tokens, forced=forced)


def remove_stale_temps(run_dir: Path) -> None:
    """Remove the temp files killed writers left in ``run_dir`` (a part's or meta.json's, ``atomic.new_temp``); only
    the run's own writer, holding its lock, may call this."""
    finals = re.compile(rf"((?:{'|'.join(TABLES)})-[0-9]{{5,}}\.parquet|{re.escape(META_FILE)})")
    _remove(*(e for e in Path(run_dir).iterdir() if (m := finals.match(e.name)) and e.is_file() and
              atomic.is_temp(e.name, m.group(1))))


def request_count(run_dir: Path) -> int:
    """Requests (warm-ups included) in the completed parts, from the Parquet footers (the rows are not read)."""
    return sum(pq.read_metadata(part_path(run_dir, "requests", i)).num_rows for i in completed_parts(run_dir))


def check_whole(run_dir: Path, meta: dict, have: int) -> None:
    """A finished session records how many requests the run then held: fewer now is a part lost since (deleted,
    moved), whose requests every figure would silently leave out. ``--resume`` redoes them (and records anew)."""
    from workbench.interrupts import resume_command

    sessions = [s for s in meta.get("sessions") or [] if isinstance(s, dict)]
    recorded = next((s["requests"] for s in reversed(sessions) if isinstance(s.get("requests"), int)), None)
    if recorded is None or have >= recorded:
        return
    redo = f"`{resume_command(meta)}` redoes them"
    sweep_dir = run_dir.parent.parent
    if run_dir.parent.name == "runs" and (sweep_dir / "manifest.json").is_file():  # a sweep's run: its sweep redoes it
        from workbench.sweep_report import resume_command as sweep_command

        try:
            redo = f"rerunning its sweep ({sweep_command(sweep_dir)}) redoes them"
        except WorkbenchError:
            redo = f"rerunning its sweep (`workbench sweep SWEEP_FILE --out {sweep_dir}`) redoes them"
    raise TraceError(f"{run_dir}: {recorded - have} of its requests are gone (it held {recorded} when its last "
                     f"session finished; a deleted or moved part file?), and its figures would leave them out: {redo}")


def compact(run_dir: str | os.PathLike) -> int:
    """Merge every completed part of a finished run into part 0 (fewer files, e.g. for a committed sample run).

    Loading, analysis and ``--resume`` read a compacted run exactly like the original. Returns the parts merged.
    """
    run_dir = Path(run_dir)
    loaded = load(run_dir)
    parts = completed_parts(run_dir)
    rows = {t: getattr(loaded, t).to_dict("records") for t in TABLES}
    if loaded.meta.get("trace_version", 1) == 1:
        loaded.meta["trace_version"] = TRACE_VERSION  # the merged part is written in the current format
        write_meta(run_dir, loaded.meta)
    tmp = run_dir / ".compact"
    tmp.mkdir(exist_ok=True)
    write_part(tmp, 0, rows)
    for index in parts:  # the merged copy waits in .compact/ until every old part is gone
        for table in TABLES:
            part_path(run_dir, table, index).unlink(missing_ok=True)
    for table in WRITE_ORDER:
        os.replace(part_path(tmp, table, 0), part_path(run_dir, table, 0))
    tmp.rmdir()
    return len(parts)


def combine(traces: list[Trace]) -> Trace:
    """Concatenate several runs (run_id tells them apart); meta becomes {"runs": [meta, ...]}."""
    def cat(name: str) -> pd.DataFrame | None:
        parts = [getattr(t, name) for t in traces if getattr(t, name) is not None]
        return pd.concat(parts, ignore_index=True) if parts else None

    return Trace(meta={"runs": [t.meta for t in traces]}, requests=cat("requests"), steps=cat("steps"),
                 tokens=cat("tokens"), forced=cat("forced"))
