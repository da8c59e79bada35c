"""``workbench export RUN --perfetto OUT.json``: a run's per-step phases as a Chrome / Perfetto trace."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("export", help="export a run's step phases as a Perfetto / Chrome trace (JSON)",
                              description="Write the prefill/draft/verify/other phases of every request of RUN "
                                          "as Chrome trace events (open in ui.perfetto.dev or chrome://tracing).")
    p.add_argument("run_dir", type=Path, metavar="RUN", help="run directory from `workbench run`")
    # a str, not a Path: Path("") would be ".", and check_output_file must see an empty path to say it is empty
    p.add_argument("--perfetto", required=True, metavar="OUT.json",
                   help="trace-event JSON to write (outside the run directory)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from workbench.export import write_perfetto

    n = write_perfetto(args.run_dir, args.perfetto)
    print(f"{n} trace events → {args.perfetto} (open in https://ui.perfetto.dev)")
    return 0
