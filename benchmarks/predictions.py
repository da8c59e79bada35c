"""Predicted against measured on recorded runs: the figures issue 8 judges the predictions by.

    python benchmarks/predictions.py runs/policies-80 runs/draft-objective

Per run and drafter, two tables, both from the package (what the tuning page draws):
* the constant-γ sweep (``speedup.sweep_table``): the measured speedup beside the per-position prediction, and the
  prediction's relative error;
* every policy the run measured live beside its replay (``replay.live_vs_replay``): speedup and tokens per step,
  with the replay's relative errors, for each drafter replay can take;
* for a sampled run (T > 0) whose teacher-forced pass recorded the draft's draws (``forced.sample_conf``): tokens
  per step and acceptance measured, replayed from those draws, and replayed as before the draws were recorded (the
  argmax's confidence and expected acceptance α): what the draws change.
A prediction is never a measurement: this script only says how far the two are apart on runs already made.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings

import pandas as pd

from workbench import trace
from workbench.analysis import replay, speedup
from workbench.analysis.recorded import recorded_outputs


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
                if (t.requests["temperature"] > 0).any() and t.forced["sample_conf"].notna().any():
                    print(f"{run_dir}, {drafter}: at T > 0, replayed from the recorded draws and from the argmax "
                          "(as before the draws were recorded)")
                    print(with_and_without_draws(t, drafter, live).to_string(index=False))


def with_and_without_draws(t, drafter: str, live: pd.DataFrame) -> pd.DataFrame:
    """The live policies' tokens per step and acceptance: measured, replayed from the recorded draws (``live``),
    and replayed from the argmax's confidence and α (the recorded outputs with their draws dropped)."""
    recorded = [dataclasses.replace(r, sample_conf=None, sample_accept=None)
                for r in recorded_outputs(t, drafter)]
    argmax = replay.summarize(replay.replay(t, drafter, list(live["policy"]), recorded=recorded))
    out = live[["policy", "measured_tokens_per_step", "tokens_per_step", "measured_acceptance_rate",
                "acceptance_rate"]].merge(argmax[["policy", "tokens_per_step", "acceptance_rate"]], on="policy",
                                          suffixes=("_draws", "_argmax"))
    for col in ("tokens_per_step_draws", "tokens_per_step_argmax"):
        out[col.replace("tokens_per_step", "tau_error")] = out[col] / out["measured_tokens_per_step"] - 1
    return out


if __name__ == "__main__":
    main()
