"""``workbench replay``: predict, from a recorded run, what other draft-length policies would have done.

Replay is a prediction (docs/REPLAY.md): the table prints the run's live measurements beside it wherever the same
policy ran live, and the oracle bound. A sweep's speculative run is divided by the sweep's baseline run beside it
(docs/SWEEP.md): cross-run ratios, and the table says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.commands import description
from workbench.commands.run import OneList, comma_list, positive_int

DEFAULT_POLICIES = ("constant:2", "constant:4", "constant:6", "heuristic", "threshold:0.4", "threshold:0.2",
                    "entropy:2", "adaptive")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("replay", help="replay draft-length policies offline on a recorded run (a prediction)",
                       description=description(__doc__))
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                   help="run directory from `workbench run`, or a speculative run of a sweep (DIR/runs/NAME)")
    p.add_argument("--policy", type=comma_list, action=OneList, default=None, dest="policies", metavar="POLICIES",
                   help="policies to replay (default: the run's own plus " + ",".join(DEFAULT_POLICIES) + ")")
    p.add_argument("--drafter", default=None, help="drafter label to replay (default: every drafter of the run)")
    p.add_argument("--limit", type=positive_int, default=200,
                   help="replay at most this many prompts (sampled, seeded; default %(default)s)")
    # a str, not a Path: Path("") would be ".", and check_output_file must see an empty path to say it is empty
    p.add_argument("--out", default=None, help="also write the table as CSV (outside the run directory)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    import pandas as pd

    from workbench import trace
    from workbench.analysis import frames
    from workbench.analysis.clock import clock_note
    from workbench.analysis.policies import with_replayed_names
    from workbench.analysis.replay import ORACLE, live_table, replay, summarize, with_baseline
    from workbench.export import check_output_file, write_output
    from workbench.policies import parse_policies, parse_policy

    # Before the work, so a bad --out or --policy fails at once. --out may not lie in the run (it would overwrite it).
    out_csv = check_output_file(args.out, "--out", args.run_dir) if args.out is not None else None
    given = [p.spec for p in parse_policies(args.policies)] if args.policies else None  # duplicates refused, as run
    tr = trace.load(args.run_dir)
    req = frames.measured_requests(tr.requests)
    base_dir = check_replayable(tr, args.run_dir)  # a sweep's baseline run, for a sweep's speculative run
    # replay charges the run's mean step costs: a load that came and went moves it, not the interleaved measurement.
    # Each run's clock on its own steps (as the reports read it): the run, and the baseline run it divides by.
    disturbed = [clock_note(tr.steps, tr.requests, interleaved=base_dir is None)]
    if base_dir is not None:  # it stands in for a baseline of the run's own (refused if it lacks a prompt)
        base = trace.load(base_dir)
        disturbed.append(clock_note(base.steps, base.requests, f"the sweep's baseline run {base_dir}", False))
        tr = with_baseline(tr, base, str(base_dir))
    drafters = replay_drafters(tr, args.run_dir, args.drafter)
    tables = []
    for drafter in drafters:
        own = sorted(set(req[req["drafter"] == drafter]["policy"]))
        # the default (the run's own + DEFAULT_POLICIES) overlaps by design: merged silently, canonical, each once
        specs = given or list(dict.fromkeys(parse_policy(s).spec for s in (*own, *DEFAULT_POLICIES)))
        table = summarize(replay(tr, drafter, [*specs, ORACLE], limit=args.limit))
        tables.append(live_table(tr, drafter, table).assign(drafter=drafter))
    out = with_replayed_names(pd.concat(tables, ignore_index=True))  # replayed_* beside measured_*, as the report
    out["baseline_run"] = "this run" if base_dir is None else str(base_dir)
    cols = ["drafter", "policy", "replayed_speedup", "measured_speedup", "measured_lo", "measured_hi",
            *(f"{kind}_{c}" for c in ("tokens_per_step", "target_calls_per_100", "wasted_per_token")
              for kind in ("replayed", "measured"))]
    print("replayed (a prediction from the run's traces and measured step costs) beside the live measurement "
          "(measured_lo / measured_hi: its 95 % bootstrap interval over prompts):")
    if base_dir is not None:
        print(f"speedups (predicted and measured) divide by the target-only baseline of the sweep's run {base_dir}, "
              "measured in another run: cross-run ratios, as in the sweep report, not interleaved prompt by prompt")
    print(out[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))
    for said in filter(None, disturbed):
        print(f"warning: {said}", file=sys.stderr)
    if out_csv is not None:
        write_output(out_csv, out.to_csv(index=False))
    return 0


def replay_drafters(tr, run_dir: Path, wanted: str | None) -> list[str]:
    """The drafters to replay: every drafter of the run's measured speculative requests, or ``wanted`` (a label,
    or a drafter as ``--draft`` takes it: ``ngram`` names ``ngram:3:1``, a model path its folder's name); refused
    in one line naming the run's drafters if it is none of them (after ``check_replayable``)."""
    from workbench.analysis.replay import sampled_ngram
    from workbench.drafters import parse_drafter
    from workbench.errors import WorkbenchError

    measured = tr.requests[~tr.requests["warmup"].astype(bool)]
    labels = sorted(set(measured.loc[measured["mode"] == "speculative", "drafter"]))
    if wanted is None:  # every drafter replay can take: an n-gram lookup replays only from a greedy run
        keep = [d for d in labels if not sampled_ngram(tr, d)]
        for d in sorted(set(labels) - set(keep)):
            print(f"note: {d} left out: n-gram drafters replay only from greedy runs (T = 0)", file=sys.stderr)
        return keep or labels  # none left: replay itself says why, in one line
    if wanted in labels:
        return [wanted]
    try:
        label = parse_drafter(wanted).label
    except WorkbenchError:
        label = None  # not a drafter at all: the list below says what is
    if label not in labels:
        raise WorkbenchError(f"replay: --drafter {wanted!r} is not a drafter of {run_dir} "
                             f"(its drafters: {', '.join(labels)})")
    return [label]


def check_replayable(tr, run_dir: Path) -> Path | None:
    """Refuse, in one line that says why and what to do, a run without measured speculative requests (a baseline
    run, e.g. a sweep's; a run stopped during its warm-ups) or without baseline requests, whose target-only cost
    replay's predicted speedup divides, unless it is a sweep's speculative run: then the sweep's baseline run beside
    it, which it returns (checked as the sweep report checks it: ``sweep_report.baseline_run``; else None)."""
    from workbench.errors import WorkbenchError
    from workbench.interrupts import resume_command
    from workbench.sweep import manifest_row
    from workbench.sweep_report import baseline_run

    req = tr.requests
    warm = req["warmup"].astype(bool)
    spec, base = req["mode"] == "speculative", req["mode"] == "baseline"
    sweep, config = manifest_row(run_dir), tr.meta.get("config") or {}
    stopped = "it stopped before its first {} request finished: " + (
        "rerun the sweep to finish it" if sweep else f"finish it with `{resume_command(tr.meta)}`")
    if not (spec & ~warm).any():  # config.drafts says whether speculative requests were planned (none: a baseline)
        why = (stopped.format("speculative") if config.get("drafts", (spec & warm).any()) else
               "a sweep's baseline run: replay the sweep's speculative runs beside it" if sweep else
               "a target-only baseline run, with no drafter")
        raise WorkbenchError(f"replay: {run_dir} has no speculative requests to replay ({why})")
    if (base & ~warm).any():
        return None
    paired = baseline_run(run_dir)  # a sweep's speculative run: the baseline run the sweep pairs it with
    if paired is not None:
        return paired
    again = "; to replay this setting, record it with `workbench run … --baseline`"
    why, then = ((stopped.format("baseline"), "") if config.get("baseline") else
                 ("its sweep ran no baseline: baseline = false in the sweep file",
                  again + ' or sweep it with baseline = true or "interleaved" into a new --out') if sweep else
                 ("it was made without --baseline", again))
    raise WorkbenchError(f"replay: {run_dir} has no baseline requests, and a predicted speedup needs the "
                         f"target-only cost measured in the same run ({why}){then}")
