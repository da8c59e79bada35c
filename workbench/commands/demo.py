"""``workbench demo``: the main job — constant γ ∈ {2, 4, 6}, a threshold and an adaptive policy, and the
baseline on the embedded default pair, then the report.

Sized for a first look (``--per-category`` prompts of each held-out category); ``--full`` runs the whole held-out
set. Rerunning the same command continues an interrupted demo (nothing finished is redone) and rebuilds the report,
unless the report was built from the run as it is now by the same code and notebooks (``built_from``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from workbench.commands import check_dir_path, description, out_path
from workbench.config import RunConfig

# Everything else: RunConfig defaults (embedded pair, held-out prompts, greedy, float32 on CPU).
DEMO = RunConfig(policies=("constant:2", "constant:4", "constant:6", "threshold:0.4", "adaptive"),
                 baseline=True, max_new_tokens=48, per_category=6)
BUILT_FROM = ".demo-built-from.json"  # in report/: what the demo's report was built from (``built_from``)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="policies + baseline on the default pair, then the HTML report",
                       description=description(__doc__))
    p.add_argument("--out", type=lambda text: Path(out_path(text)), default=Path("runs/demo"),
                   help="demo directory (run/ and report/ inside)")
    p.add_argument("--full", action="store_true", help="every held-out prompt (default: the first "
                                                         f"{DEMO.per_category} of each category)")
    p.add_argument("--device", default=DEMO.device, help="auto | cpu | cuda | mps")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from workbench import report
    from workbench.atomic import check_replaceable
    from workbench.commands.run import print_summary
    from workbench.runner import execute

    report.require_libraries()  # a missing plotly or papermill ends here, not after the whole measurement
    check_dir_path("--out", args.out)  # before the banner: it would announce a run that cannot be written
    check_replaceable(args.out / "report", report.MARKER)  # so does a report/ that is not ours to replace
    cfg = dataclasses.replace(DEMO, per_category=None if args.full else DEMO.per_category, device=args.device)
    run_dir = args.out / ("run-full" if args.full else "run")
    print(f"demo: policies {', '.join(cfg.policies)} and the target-only baseline, {cfg.max_new_tokens} new tokens "
          f"per request → {run_dir}")
    execute(cfg, run_dir, resume=True, progress=args.progress)
    print_summary(run_dir)  # the measured answer first, and a warning if another process disturbed the clock
    stamp, report_dir = built_from(run_dir), args.out / "report"
    if (report_dir / "index.html").is_file() and _read(report_dir / BUILT_FROM) == stamp:
        print(f"report: {report_dir / 'index.html'}  (up to date: built from this run as it is now, by this code; "
              f"remove {report_dir} to rebuild it)")
        return 0
    index = report.build_report([run_dir], report_dir, progress=args.progress)
    (report_dir / BUILT_FROM).write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
    print(f"report: {index}  (open it in a browser; it needs no network)")
    return 0


def built_from(run_dir: Path) -> dict:
    """What the demo's report draws: the run (its directory, id and how many requests it holds, warm-ups included)
    and what draws it (a hash of the workbench package and the notebooks, the Python and the versions of the
    libraries that run and render the notebooks). A report written with the same is up to date; a resumed run, a
    pull, an edit or an upgrade makes it stale."""
    import hashlib
    import sys
    from importlib.metadata import version

    import pyarrow.parquet as pq

    import workbench
    from workbench import paths

    digest = hashlib.sha256()
    for f in sorted([*Path(workbench.__file__).parent.rglob("*.py"), *paths.notebooks_dir().glob("*.ipynb")]):
        digest.update(f.name.encode() + f.read_bytes())
    meta = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
    return {"run": str(run_dir.resolve()), "run_id": meta.get("run_id"),
            "requests": sum(pq.ParquetFile(f).metadata.num_rows for f in run_dir.glob("requests-*.parquet")),
            "code": digest.hexdigest(), "python": sys.version,
            **{lib: version(lib) for lib in ("plotly", "papermill", "nbconvert", "pandas", "numpy")}}


def _read(path: Path) -> dict | None:
    """The stamp a demo left in its report (None when there is none, or it cannot be read: rebuilt)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
