"""A big trace for the report: replicate a run directory N times, then time ``workbench report`` on it. (issue 12)

Copy i of every request gets ``prompt_id`` ``<id>~c<i>`` (``request_id`` likewise; warm-ups become ``warmup<i>/…``)
so ids stay unique and per-prompt pairing (baseline vs speculative) still works. Copies are grouped into parts of
``--copies-per-part`` (a big run written by ``workbench run`` has one part per request; ``trace.compact`` merges them).
Prints wall time, peak RSS of the report process (getrusage of children) and the report directory's size.
Figures only; the lead records them (idle machine) in benchmarks/RESULTS.md.

    python benchmarks/make_big_trace.py                           # data/sample_run → ~1M steps, then the report
    python benchmarks/make_big_trace.py --copies 3 --out /tmp/big  # seconds for the copy (a smoke check)
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

from workbench import trace

REPO = Path(__file__).resolve().parent.parent


def rename_copy(rows: dict[str, list[dict]], i: int) -> dict[str, list[dict]]:
    """Rows of copy ``i`` with unique request and prompt ids."""
    def new_id(request_id: str) -> str:
        head, rest = request_id.split("/", 1)
        return f"warmup{i}/{rest}" if head.startswith("warmup") else f"{head}~c{i}/{rest}"

    out = {t: [dict(r, request_id=new_id(r["request_id"])) for r in rows[t]] for t in trace.TABLES}
    for r in out["requests"]:
        r["prompt_id"] = r["request_id"].split("/", 1)[0] if not r["warmup"] else r["prompt_id"]
    return out


def replicate(src: Path, dst: Path, *, copies: int, per_part: int) -> int:
    """Write ``copies`` renamed copies of ``src`` into the new run dir ``dst``; returns the total steps."""
    loaded = trace.load(src)
    rows = {t: getattr(loaded, t).to_dict("records") for t in trace.TABLES}
    dst.mkdir(parents=True)
    meta = dict(loaded.meta, note=f"{copies} copies of {src} (benchmarks/make_big_trace.py)")
    trace.write_meta(dst, meta)
    for part, first in enumerate(range(0, copies, per_part)):
        batch = [rename_copy(rows, i) for i in range(first, min(first + per_part, copies))]
        trace.write_part(dst, part, {t: [r for b in batch for r in b[t]] for t in trace.TABLES})
    return len(loaded.steps) * copies


def dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=REPO / "data" / "sample_run")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "big_trace",
                    help="new run dir (report in <out>_report)")
    ap.add_argument("--steps", type=int, default=1_000_000, help="target total steps (sets --copies)")
    ap.add_argument("--copies", type=int, default=None, help="copies of --src (overrides --steps)")
    ap.add_argument("--copies-per-part", type=int, default=50)
    ap.add_argument("--no-report", dest="report", action="store_false", help="only build the trace")
    args = ap.parse_args()
    if args.out.exists():
        sys.exit(f"error: --out {args.out} exists; remove it or choose another")
    copies = args.copies or -(-args.steps // len(trace.load(args.src).steps))
    t0 = time.perf_counter()
    steps = replicate(args.src, args.out, copies=copies, per_part=args.copies_per_part)
    print(f"trace: {copies} copies, {steps:,} steps, {dir_mib(args.out):.1f} MiB, built in "
          f"{time.perf_counter() - t0:.1f} s → {args.out}")
    if not args.report:
        return
    report_dir = args.out.with_name(args.out.name + "_report")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "report", str(args.out), "--out", str(report_dir),
                           "--no-progress"], cwd=REPO)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
    size = dir_mib(report_dir) if report_dir.is_dir() else 0.0
    print(f"report {status}: {wall:.1f} s wall, peak RSS {peak:.0f} MiB (largest child), "
          f"{size:.1f} MiB in {report_dir}")


if __name__ == "__main__":
    main()
