"""Quality of a draft/target pair from a run: acceptance (overall and per category), c, and measured speedup.

    workbench demo                                     # or any `workbench run --gamma ... --baseline`
    python benchmarks/pair_quality.py runs/demo/run    # prints the figures the model card quotes

Everything is read from the trace (real forward passes, real clocks); nothing is recomputed or assumed.
"""

from __future__ import annotations

import argparse

from workbench import trace
from workbench.analysis import acceptance, latency, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--gamma", type=int, default=4, help="γ whose per-category acceptance is listed")
    args = ap.parse_args()
    t = trace.load(args.run_dir)
    env = t.meta["environment"]
    print(f"run {t.meta['run_id']} ({t.meta['created']}), {env['device_name']}, {t.meta['models']['dtype']}, "
          f"{env['cpu_threads']} threads, torch {env['torch']}")
    print(summary.summary_table(t).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    req = t.requests[t.requests["policy"].isin(["", f"constant:{args.gamma}"])]
    by_cat = acceptance.acceptance_by(t.steps, t.tokens, req, ["drafter", "category"])
    print(f"\ngreedy acceptance Σn/Σγ at constant γ = {args.gamma} by drafter and category:")
    cols = ["drafter", "category", "steps", "acceptance_rate", "rate_lo", "rate_hi", "tokens_per_step", "alpha_tv"]
    print(by_cat[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    costs = latency.cost_model(t.steps, t.requests)
    print(f"\nT_t(1) = {costs.t1:.2f} ms (baseline target forward), T_d = {costs.t_d:.2f} ms (draft forward), "
          f"c = T_d/T_t(1) = {costs.c:.3f}; verify T_t(k) ≈ {costs.a:.2f} + {costs.b:.2f}·k ms")


if __name__ == "__main__":
    main()
