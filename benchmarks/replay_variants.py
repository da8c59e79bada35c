"""Replay's predicted speedup against the live one, as shipped and under three corrections that were tried and not
kept (benchmarks/RESULTS.md, tenth session; docs/REPLAY.md, "Time").

    python benchmarks/replay_variants.py runs/demo/run [RUN ...] [--drafter default-draft]

Per run, for every policy the run measured live with the drafter: the measured speedup and four predictions, each
the per-prompt median of baseline ms ÷ replayed speculative ms, with their relative errors and the RMS error over
the policies:
* ``shipped``: what ``workbench replay`` prints (the prompt's measured baseline ÷ the replay at the run's mean costs);
* ``pace_base``: the replayed time of each prompt scaled by the mean of its baseline decode steps ÷ the mean of every
  baseline decode step of the run (how slow the machine ran while that prompt's baseline ran);
* ``pace_all``: scaled by Σ measured ÷ Σ cost-model time over all the prompt's decode steps, baseline and live
  speculative (partly circular: a live policy's own steps set its prompt's scale);
* ``model_base``: the cost-model baseline (prefill_b + (T − 1)·(T_t(1) + O_b)) in place of the measured one.
Step times are the calmed ones (``latency.calm_steps``: stalls left out), as replay's costs are. A prediction is never
a measurement: this script only says how far each variant lands from the run's own live figures.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from workbench import trace
from workbench.analysis import frames, latency, replay

VARIANTS = ("shipped", "pace_base", "pace_all", "model_base")


def _decode_steps(t: trace.Trace) -> pd.DataFrame:
    """Calmed decode steps of the measured requests, with their prompt and the step's total time."""
    req = frames.measured_requests(t.requests)
    s = latency.calm_steps(t.steps, t.requests)
    if "prompt_id" not in s:
        s = s.merge(req[["request_id", "prompt_id"]], on="request_id")
    return s.assign(actual=s[list(latency.PHASES)].sum(axis=1, min_count=len(latency.PHASES)))


def paces(t: trace.Trace, drafter: str) -> tuple[pd.Series, pd.Series]:
    """Per prompt: (pace_base, pace_all), as the module docstring defines them."""
    costs = replay.run_costs(t, drafter)[False]
    s = _decode_steps(t)
    base = s[s["mode"] == "baseline"]
    pace_base = base.groupby("prompt_id")["actual"].mean() / base["actual"].mean()
    spec = s["mode"] != "baseline"
    model = pd.Series(costs.costs.base_token_ms, index=s.index)
    model[spec] = [sum(costs.step_ms(int(k), int(k))) for k in s.loc[spec, "gamma"]]
    s = s.assign(model=model).dropna(subset=["actual"])
    g = s.groupby("prompt_id")
    return pace_base, g["actual"].sum() / g["model"].sum()


def variants(t: trace.Trace, drafter: str) -> pd.DataFrame:
    """Per live policy: the measured speedup and each variant's predicted one, with relative errors."""
    req = frames.measured_requests(t.requests)
    live = sorted(set(req[(req["mode"] == "speculative") & (req["drafter"] == drafter)]["policy"]))
    per = replay.replay(t, drafter, live)
    pace_base, pace_all = paces(t, drafter)
    c = replay.run_costs(t, drafter)[False].costs
    per = per.assign(shipped=per["speedup"],
                     pace_base=per["base_ms"] / (per["spec_ms"] * per["prompt_id"].map(pace_base)),
                     pace_all=per["base_ms"] / (per["spec_ms"] * per["prompt_id"].map(pace_all)),
                     model_base=(c.prefill_base + (per["tokens"] - 1) * c.base_token_ms) / per["spec_ms"])
    out = per.groupby("policy")[list(VARIANTS)].median()
    measured = replay.live_table(t, drafter, replay.summarize(per)).set_index("policy")["measured_speedup"]
    out.insert(0, "measured_speedup", measured)
    for v in VARIANTS:
        out[f"{v}_error"] = out[v] / out["measured_speedup"] - 1
    return out.reset_index()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories with a baseline and replay data")
    parser.add_argument("--drafter", default="default-draft", help="the drafter whose policies are replayed")
    args = parser.parse_args(argv)
    for run in args.runs:
        table = variants(trace.load(run), args.drafter)
        print(f"\n{run}: measured speedup beside each replay variant (predictions), relative errors")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        rms = {v: float(np.sqrt((table[f"{v}_error"] ** 2).mean())) for v in VARIANTS}
        print("RMS error over the policies: " + ", ".join(f"{v} {e:.3f}" for v, e in rms.items()))


if __name__ == "__main__":
    main()
