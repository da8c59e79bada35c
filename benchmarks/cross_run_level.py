"""Did the machine run at the same speed during a speculative run and the baseline run its speedups divide by?

    python benchmarks/cross_run_level.py SWEEP/runs/spec__policy-constant-4   # against its sweep's baseline run
    python benchmarks/cross_run_level.py runs/demo/run                         # interleaved: the answer should be 1
    python benchmarks/cross_run_level.py SPEC_RUN BASELINE_RUN

A speculative run and a baseline run share one kind of forward: the target over one token (a baseline step, or a
speculative step that drafted nothing) at the same context length for the same prompt. The ratio of these paired
times (median over pairs, per setting and pooled) would show how much faster or slower the machine was in one run
than in the other, which is what a sweep's cross-run speedups cannot cancel. Also printed: each run's median
target-forward time per k. RESULTS.md (twelfth session) has what it measured. The speculative side's one-token
forwards come at the ends of requests, right after draft forwards, and are few (4–13 per setting on demo-sized
runs), so the ratio is too noisy and biased there (1.03–1.11 pooled on interleaved runs) to gauge a 10–20 % shift; the
workbench does not warn on it.
"""

from __future__ import annotations

import argparse

import pandas as pd

from workbench import trace
from workbench.analysis import frames, latency
from workbench.sweep_report import baseline_run

KEYS = ["prompt_id", "context_len"]  # the same prompt at the same length: the same forward, under greedy decoding


def one_token_forwards(t: trace.Trace, mode: str) -> pd.DataFrame:
    """Decode steps of measured ``mode`` requests whose target forward covered one token (with prompt, drafter
    and policy: ``frames.decode_steps``)."""
    s = frames.decode_steps(t.steps, t.requests)
    return s[(s["k"] == 1) & (s["mode"] == mode)]


def paired(spec: trace.Trace, base: trace.Trace) -> pd.DataFrame:
    """Per drafter × policy and pooled ("all"): pairs, and the median of speculative ÷ baseline forward time."""
    base_k1 = one_token_forwards(base, "baseline").groupby(KEYS, as_index=False)["verify_ms"].median()
    m = one_token_forwards(spec, "speculative").merge(base_k1, on=KEYS, suffixes=("", "_base"))
    m["ratio"] = m["verify_ms"] / m["verify_ms_base"]
    rows = [{"drafter": d, "policy": p, "pairs": len(g), "ratio": g["ratio"].median()}
            for (d, p), g in m.groupby(["drafter", "policy"])]
    rows.append({"drafter": "all", "policy": "all", "pairs": len(m), "ratio": m["ratio"].median()})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec_run", help="a run with speculative requests")
    ap.add_argument("baseline_run", nargs="?", default=None,
                    help="the run whose baseline requests to pair with (default: the sweep's baseline run of a "
                         "sweep's run, else the run itself)")
    args = ap.parse_args(argv)
    base_dir = args.baseline_run or baseline_run(args.spec_run) or args.spec_run
    spec, base = trace.load(args.spec_run), trace.load(base_dir)
    print(f"speculative run {args.spec_run}, baseline run {base_dir}")
    for name, t in (("speculative run", spec), ("baseline run", base)):
        by_k = latency.verify_cost(t.steps, t.requests).set_index("k")["median"]  # median target forward per k
        print(f"{name}: median target forward ms by k: " + ", ".join(f"{k}: {v:.2f}" for k, v in by_k.items()))
    print("one-token target forwards paired by prompt and context length (speculative ÷ baseline):")
    print(paired(spec, base).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
