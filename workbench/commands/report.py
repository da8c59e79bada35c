"""``workbench report``: execute the analysis notebooks on runs and write offline HTML pages and an index."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.commands import out_path


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="execute the analysis notebooks on runs and write offline HTML",
                       description="Execute notebooks/{acceptance,latency,tuning}.ipynb on run directories "
                                   "and write executed notebooks, standalone HTML pages and index.html.")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="run directory from `workbench run`, or a sweep directory from `workbench sweep`")
    p.add_argument("--out", required=True, type=out_path, metavar="REPORT_DIR", help="where to write the report")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from workbench.report import build_report

    index = build_report(args.run_dirs, Path(args.out), progress=args.progress)
    print(f"report written: {index}")
    return 0
