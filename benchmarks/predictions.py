"""Predicted against measured on recorded runs: the figures issue 8 judges the predictions by.

    python benchmarks/predictions.py runs/policies-80 runs/draft-objective

Per run and drafter, two tables, both from the package (what the tuning page draws):
* the constant-γ sweep (``speedup.sweep_table``): the measured speedup beside the per-position prediction, and the
  prediction's relative error;
* every policy the run measured live beside its replay (``replay.live_vs_replay``): speedup and tokens per step,
  with the replay's relative errors, for each drafter replay can take.
A prediction is never a measurement: this script only says how far the two are apart on runs already made.
"""

from __future__ import annotations

import argparse
import warnings

import pandas as pd

from workbench import trace
from workbench.analysis import replay, speedup


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories from `workbench run` (with a baseline)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # NaN means of empty cells: shown as NaN
    pd.set_option("display.width", 200)
    for run_dir in args.runs:
        t = trace.load(run_dir)
        sweep = speedup.sweep_table(t)
        sweep["error"] = sweep["predicted_position"] / sweep["measured"] - 1
        print(f"{run_dir}: the constant-γ sweep, measured and predicted (per-position)")
        print(sweep[["drafter", "gamma", "measured", "predicted_position", "error"]].to_string(index=False))
        for drafter in sorted(set(t.requests["drafter"]) - {""}):
            if replay.replayable(t, drafter):
                live = replay.live_vs_replay(t, drafter)
                print(f"{run_dir}, {drafter}: every live policy beside its replay")
                print(live[["policy", "measured_speedup", "predicted_speedup", "speedup_error",
                            "tau_error"]].to_string(index=False))


if __name__ == "__main__":
    main()
