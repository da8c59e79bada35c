"""``workbench demo``: the main job — a γ sweep with a baseline on the embedded default pair, then the report.

Rerunning the same command continues an interrupted sweep (nothing finished is redone) and rebuilds the report.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from workbench import report
from workbench.runner import RunConfig, execute

DEMO = RunConfig(gammas=(1, 2, 3, 4, 6, 8), baseline=True, max_new_tokens=48)  # everything else: RunConfig defaults


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("demo", help="γ sweep + baseline on the default pair, then the HTML report")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="demo directory (run/ and report/ inside)")
    p.add_argument("--limit", type=int, default=None, help="only the first N held-out prompts")
    p.add_argument("--device", default=DEMO.device, help="auto | cpu | cuda | mps")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    cfg = dataclasses.replace(DEMO, limit=args.limit, device=args.device)
    run_dir = args.out / "run"
    print(f"demo: speculative decoding at γ ∈ {list(cfg.gammas)} and target-only baseline → {run_dir}")
    execute(cfg, run_dir, resume=True, progress=args.progress)
    index = report.build_report([run_dir], args.out / "report", progress=args.progress)
    print(f"report: {index}  (open it in a browser; it needs no network)")
    return 0
