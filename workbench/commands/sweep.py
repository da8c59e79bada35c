"""``workbench sweep SWEEP.toml --out DIR [--ray auto|ADDRESS]``: a grid of runs, resumable, optionally on Ray."""

from __future__ import annotations

import argparse
import sys

from workbench.commands import out_path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("sweep", help="run a grid of `workbench run`s from a TOML sweep file (docs/SWEEP.md)",
                              description="Expand SWEEP.toml into runs under DIR/runs/<name>/, track them in "
                                          "DIR/manifest.json, and run them here one after another, or one Ray "
                                          "task per run with --ray. Rerunning skips finished runs and resumes "
                                          "unfinished ones.")
    p.add_argument("sweep_file", metavar="SWEEP.toml", help="sweep file (format: docs/SWEEP.md)")
    p.add_argument("--out", required=True, type=out_path, metavar="DIR",
                   help="sweep directory (shared storage on a cluster)")
    p.add_argument("--ray", metavar="auto|ADDRESS", default=None,
                   help="one Ray task per run: auto (an existing cluster, else a local one) or HOST:PORT")
    p.add_argument("--cpus-per-task", type=int, default=1, metavar="N",
                   help="Ray: CPUs (and torch threads) per run that does not use CUDA (default 1)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    """Exit 0 when every run is done, 1 when some failed (listed in a table); bad input raises WorkbenchError."""
    from workbench.sweep import run_sweep
    from workbench.sweep_report import clock_warnings

    failed = run_sweep(args.sweep_file, args.out, ray=args.ray, cpus_per_task=args.cpus_per_task,
                       progress=args.progress)  # Ctrl-C / SIGTERM: cli.main prints the line and exits 130 / 143
    for said in clock_warnings(args.out):  # as `workbench run` warns: one line per finished run whose clock moved
        print(f"warning: {said}", file=sys.stderr)
    if not failed:
        print(f"sweep complete → {args.out} (manifest.json; report: workbench report {args.out} --out REPORT_DIR)")
        return 0
    width = max(len(r["name"]) for r in failed)
    print(f"{len(failed)} run(s) failed (details in {args.out}/manifest.json):", file=sys.stderr)
    print(f"{'run'.ljust(width)}  error", file=sys.stderr)
    for row in failed:
        print(f"{row['name'].ljust(width)}  {row['error']}", file=sys.stderr)
    return 1
