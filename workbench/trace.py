"""Run directories: per-request Parquet parts written atomically, and `load()` to read them back.

Layout and every column are documented in docs/TRACE.md (the contract). A request's part is three files,
``steps-<k>.parquet``, ``tokens-<k>.parquet`` and — last, as the completion marker — ``requests-<k>.parquet``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.errors import TraceError, WorkbenchError

META_FILE = "meta.json"
_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.bool_()

# One explicit schema per table, so empty parts and NaNs keep their types (docs/TRACE.md explains each column).
SCHEMAS: dict[str, pa.Schema] = {
    "requests": pa.schema([
        ("run_id", _S), ("request_id", _S), ("prompt_id", _S), ("category", _S), ("mode", _S), ("gamma", _I),
        ("temperature", _F), ("prompt_tokens", _I), ("new_tokens", _I), ("prefill_ms", _F), ("ttft_ms", _F),
        ("total_ms", _F), ("tokens_per_s", _F), ("ms_per_token", _F), ("output_text", _S), ("stop_reason", _S),
        ("warmup", _B)]),
    "steps": pa.schema([
        ("run_id", _S), ("request_id", _S), ("step", _I), ("gamma", _I), ("n_accepted", _I), ("n_emitted", _I),
        ("context_len", _I), ("draft_ms", _F), ("verify_ms", _F), ("other_ms", _F), ("t_start_ms", _F)]),
    "tokens": pa.schema([
        ("run_id", _S), ("request_id", _S), ("step", _I), ("position", _I), ("token_id", _I), ("token_text", _S),
        ("q", _F), ("p", _F), ("accept_prob", _F), ("accepted", _B), ("evaluated", _B), ("emitted", _B),
        ("alpha_tv", _F), ("role", _S)]),
}
TABLES = ("requests", "steps", "tokens")


@dataclass
class Trace:
    """A loaded run: its meta.json and the three tables (all parts concatenated)."""

    meta: dict
    requests: pd.DataFrame
    steps: pd.DataFrame
    tokens: pd.DataFrame


def part_path(run_dir: Path, table: str, index: int) -> Path:
    return Path(run_dir) / f"{table}-{index:05d}.parquet"


def write_part(run_dir: Path, index: int, rows: dict[str, list[dict]]) -> None:
    """Write one request's rows (``{"steps": [...], "tokens": [...], "requests": [...]}``) as part ``index``.

    Each file goes to a temporary name and is renamed into place; ``requests`` goes last, so a part whose requests
    file exists is complete even if the process is killed at any instant.
    """
    written = []
    for table in ("steps", "tokens", "requests"):
        final = part_path(run_dir, table, index)
        tmp = final.with_suffix(".parquet.tmp")
        try:
            pq.write_table(pa.Table.from_pylist(rows[table], schema=SCHEMAS[table]), tmp)
            os.replace(tmp, final)
        except OSError as exc:  # ENOSPC, EACCES, EIO…: drop this part entirely (no requests file = not complete)
            _remove(tmp, *written)
            raise write_error(final, exc) from None
        written.append(final)


def completed_parts(run_dir: Path) -> list[int]:
    """Indices of parts whose requests file exists (= completed requests)."""
    return sorted(int(p.stem.split("-")[1]) for p in Path(run_dir).glob("requests-*.parquet"))


def write_meta(run_dir: Path, meta: dict) -> None:
    tmp = Path(run_dir) / (META_FILE + ".tmp")
    try:
        tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
        os.replace(tmp, Path(run_dir) / META_FILE)
    except OSError as exc:  # the previous meta.json (if any) stays intact
        _remove(tmp)
        raise write_error(Path(run_dir) / META_FILE, exc) from None


def write_error(path: Path, exc: OSError) -> WorkbenchError:
    """One line for a failed write; the run stops, what is on disk stays loadable and resumable."""
    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))  # pyarrow's strerror is verbose
    return WorkbenchError(f"cannot write {path}: {reason} — completed requests are safe; "
                          "free space and rerun with --resume")


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def read_meta(run_dir: Path) -> dict:
    path = Path(run_dir) / META_FILE
    if not path.is_file():
        raise TraceError(f"{run_dir}: not a workbench run directory (no {META_FILE})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: corrupt meta.json ({exc})") from None


def _read_table(path: Path, table: str) -> pd.DataFrame:
    if not path.is_file():
        raise TraceError(f"{path}: missing trace file (the run directory is incomplete)")
    try:
        data = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise TraceError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = set(SCHEMAS[table].names) - set(data.column_names)
    if missing:
        raise TraceError(f"{path}: not a workbench {table} table (missing columns {sorted(missing)})")
    return data.to_pandas()


def load(run_dir: str | os.PathLike) -> Trace:
    """Load a run directory into DataFrames; raises TraceError with one clear line if anything is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TraceError(f"{run_dir}: no such run directory")
    meta = read_meta(run_dir)
    parts = completed_parts(run_dir)
    if not parts:
        raise TraceError(f"{run_dir}: the run has no completed request yet")
    frames = {t: [] for t in TABLES}
    for index in parts:
        for table in TABLES:
            frames[table].append(_read_table(part_path(run_dir, table, index), table))
    tables = {t: pd.concat(frames[t], ignore_index=True) for t in TABLES}
    return Trace(meta=meta, **tables)


def compact(run_dir: str | os.PathLike) -> int:
    """Merge every completed part of a finished run into part 0 (fewer files, e.g. for a committed sample run).

    Loading, analysis and ``--resume`` read a compacted run exactly like the original. Returns the parts merged.
    """
    run_dir = Path(run_dir)
    loaded = load(run_dir)
    parts = completed_parts(run_dir)
    rows = {t: getattr(loaded, t).to_dict("records") for t in TABLES}
    tmp = run_dir / ".compact"
    tmp.mkdir(exist_ok=True)
    write_part(tmp, 0, rows)
    for index in parts:  # the merged copy waits in .compact/ until every old part is gone
        for table in ("requests", "steps", "tokens"):
            part_path(run_dir, table, index).unlink()
    for table in ("steps", "tokens", "requests"):
        os.replace(part_path(tmp, table, 0), part_path(run_dir, table, 0))
    tmp.rmdir()
    return len(parts)
