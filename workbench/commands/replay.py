"""``workbench replay``: predict, from a recorded run, what other draft-length policies would have done.

Replay is a prediction (docs/REPLAY.md): the table prints the run's live measurements beside it wherever the same
policy ran live, and the oracle bound.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.commands import description
from workbench.commands.run import comma_list, positive_int

DEFAULT_POLICIES = ("constant:2", "constant:4", "constant:6", "heuristic", "threshold:0.4", "threshold:0.2",
                    "entropy:2", "adaptive")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("replay", help="replay draft-length policies offline on a recorded run (a prediction)",
                       description=description(__doc__))
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory from `workbench run`")
    p.add_argument("--policy", type=comma_list, default=None, dest="policies", metavar="POLICIES",
                   help="policies to replay (default: the run's own plus " + ",".join(DEFAULT_POLICIES) + ")")
    p.add_argument("--drafter", default=None, help="drafter label to replay (default: every drafter of the run)")
    p.add_argument("--limit", type=positive_int, default=200, help="replay at most this many prompts (sampled, seeded)")
    p.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    import pandas as pd

    from workbench import trace
    from workbench.analysis import frames
    from workbench.analysis.replay import ORACLE, live_table, replay, summarize
    from workbench.atomic import write_text
    from workbench.policies import parse_policy

    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)  # before the work: a bad --out fails at once
    tr = trace.load(args.run_dir)
    req = frames.measured_requests(tr.requests)
    drafters = [args.drafter] if args.drafter else sorted(set(req["drafter"]) - {""})
    tables = []
    for drafter in drafters:
        own = sorted(set(req[req["drafter"] == drafter]["policy"]))
        wanted = args.policies or (*own, *DEFAULT_POLICIES)
        specs = list(dict.fromkeys(parse_policy(s).spec for s in wanted))  # canonical, each once
        table = summarize(replay(tr, drafter, [*specs, ORACLE], limit=args.limit))
        tables.append(live_table(tr, drafter, table).assign(drafter=drafter))
    out = pd.concat(tables, ignore_index=True)
    cols = ["drafter", "policy", "tokens_per_step", "target_calls_per_100", "wasted_per_token", "predicted_speedup",
            "measured_speedup", "measured_lo", "measured_hi", "measured_tokens_per_step"]
    print("replayed (a prediction from the run's traces and measured step costs) beside the live measurement "
          "(measured_lo / measured_hi: its 95 % bootstrap interval over prompts):")
    print(out[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))
    if args.out:
        write_text(args.out, out.to_csv(index=False))
    return 0
