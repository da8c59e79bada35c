"""Drafters compared on the default pair: which drafter is fastest per category, how often prompt lookup finds a
match, and which early-exit depth L pays best.

    python benchmarks/drafters.py                          # runs the comparison into runs/drafters, then prints
    python benchmarks/drafters.py --run-dir runs/drafters  # reads a run made before (any run with drafters)
    python benchmarks/drafters.py --per-category 1 --max-new-tokens 16 --out /tmp/d   # a quick end-to-end check

The run is one greedy `workbench run` of the default target with every drafter of --drafters at constant γ and
the target-only baseline, interleaved prompt by prompt, on the first --per-category held-out prompts of each
category (``copy`` included). Everything printed comes from ``workbench.analysis.drafters``; nothing is assumed.
Record figures with date and device in benchmarks/RESULTS.md only from an idle machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from workbench import trace
from workbench.analysis import drafters, theory
from workbench.cli import main as workbench_main
from workbench.drafters import kind_of

DRAFTERS = "default,ngram,early-exit:2,early-exit:4,early-exit:8,early-exit:12"
FLOAT = lambda v: f"{v:.3f}"  # noqa: E731


def run(args) -> Path:
    """The greedy comparison run into --out (continued with --resume when it is there already)."""
    out = Path(args.out)
    cmd = ["run", "--draft", args.drafters, "--gamma", str(args.gamma), "--baseline", "--per-category",
           str(args.per_category), "--max-new-tokens", str(args.max_new_tokens), "--temperature", "0",
           "--device", args.device, "--out", str(out), "--no-replay-data"]
    if (out / "meta.json").exists():
        cmd.append("--resume")
    status = workbench_main(cmd)
    if status:
        raise SystemExit(status)
    return out


def print_ranking(t: trace.Trace) -> None:
    rank = drafters.ranking(t)
    rank = rank.assign(setting=rank["drafter"] + " · " + rank["policy"])
    table = rank.pivot_table(index="setting", columns="category", values="speedup", sort=False)
    table = table[["all", *[c for c in table.columns if c != "all"]]].sort_values("all", ascending=False)
    print("\nmeasured speedup (median per-prompt baseline ÷ speculative ms/token), by category:")
    print(table.to_string(float_format=lambda v: f"{v:.2f}x"))
    best = rank[rank["rank"] == 1].groupby("category")["setting"].agg(", ".join)
    print("fastest: " + "; ".join(f"{cat}: {s}" for cat, s in best.items()))


def print_costs_and_hits(t: trace.Trace) -> None:
    costs = drafters.draft_costs(t.steps, t.requests)
    print("\ndraft cost per drafter (T_d = Σ draft_ms / Σγ; empty = asked, proposed nothing):")
    cols = ["drafter", "steps", "drafted", "t_d", "c", "draft_ms_per_step", "empty_steps", "draft_ms_empty"]
    print(costs[cols].to_string(index=False, float_format=FLOAT))
    hits = drafters.hit_rate(t.steps, t.requests)
    hits = hits[hits["drafter"].map(kind_of) == "ngram"]
    if len(hits):
        print("\nn-gram hit rate (steps proposing ≥ 1 token / steps asked) and mean proposal length when hit:")
        print(hits.pivot_table(index="category", columns="drafter", values=["hit_rate", "mean_proposal"])
              .to_string(float_format=FLOAT))


def early_exit_verdict(curve: pd.DataFrame) -> str:
    """Which L is fastest, and why: its acceptance and c against its neighbours'."""
    best = curve.loc[curve["speedup"].idxmax()]
    lines = [f"best L = {int(best['layers'])}: {best['speedup']:.2f}x (acceptance {best['acceptance_rate']:.2f}, "
             f"c = {best['c']:.3f})"]
    for _, other in curve.iterrows():
        if other["layers"] == best["layers"]:
            continue
        deeper = other["layers"] > best["layers"]
        d_acc, d_c = other["acceptance_rate"] - best["acceptance_rate"], other["c"] - best["c"]
        why = ("its extra acceptance does not pay for the costlier draft" if deeper
               else "its cheaper draft does not make up for the acceptance it loses")
        lines.append(f"  L = {int(other['layers'])}: {other['speedup']:.2f}x, acceptance {d_acc:+.2f}, c {d_c:+.3f}"
                     f" vs L = {int(best['layers'])}: {why}")
    return "\n".join(lines)


def print_early_exit(t: trace.Trace, gamma: int) -> None:
    curve = drafters.early_exit_curve(t.steps, t.requests)
    curve = curve[curve["policy"] == f"constant:{gamma}"]
    if curve.empty:
        print("\n(no early-exit:L drafter at constant γ in this run)")
        return
    curve = curve.assign(ideal=theory.predicted_speedup(curve["alpha_mle"], gamma, curve["c"]))
    print(f"\nearly exit at γ = {gamma} (ideal = Leviathan's E(α, γ)/(γc + 1) from alpha_mle and c):")
    cols = ["layers", "acceptance_rate", "alpha_mle", "tokens_per_step", "t_d", "c", "ideal", "speedup"]
    print(curve[cols].to_string(index=False, float_format=FLOAT))
    print(early_exit_verdict(curve))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="", help="read this run instead of running one")
    ap.add_argument("--out", default="runs/drafters", help="where the run goes (continued if it is there)")
    ap.add_argument("--drafters", default=DRAFTERS, help="--draft list of the run")
    ap.add_argument("--per-category", type=int, default=4, help="held-out prompts per category")
    ap.add_argument("--gamma", type=int, default=4, help="constant γ of every drafter")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    t = trace.load(args.run_dir or run(args))
    env = t.meta.get("environment", {})
    print(f"run {t.meta.get('run_id')} ({t.meta.get('created')}), {env.get('device_name')}, "
          f"{t.meta.get('models', {}).get('dtype')}, {env.get('cpu_threads')} threads")
    print_ranking(t)
    print_costs_and_hits(t)
    print_early_exit(t, args.gamma)


if __name__ == "__main__":
    main()
