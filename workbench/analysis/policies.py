"""Draft-length policies compared: each measured live, replayed, and the oracle bound; the setting to use, written
in the syntax of the engines users deploy. Replayed figures are predictions and are labelled so."""

from __future__ import annotations

import pandas as pd

from workbench.analysis import frames, intervals, replay
from workbench.policies import parse_policy
from workbench.trace import Trace

# Settings the report's HTML slider precomputes by replay (the widgets in JupyterLab replay any value live).
THRESHOLDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
HEURISTIC_STARTS = (1, 2, 3, 4, 5, 6, 8)


def comparison(trace: Trace, drafter: str, limit: int = 200) -> pd.DataFrame:
    """One row per policy the run measured live with ``drafter`` plus the oracle: measured speedup and tokens per
    step beside the replayed ones, draft tokens wasted per emitted token, target calls per 100 tokens, and the
    fraction of the gap from the best constant γ to the oracle that each policy closes (measured; replayed for
    the oracle row, which never runs live); the replay's errors against live (``replay.live_vs_replay``); the 95 %
    bootstrap interval of each live speedup (measured_lo / measured_hi) and of its ratio to the best constant γ
    (vs_best_constant, vs_best_lo, vs_best_hi; ``intervals``)."""
    table = replay.live_vs_replay(trace, drafter, oracle=True, limit=limit)  # measured_lo / _hi included
    table = table.merge(intervals.against_best_constant(trace.requests, drafter).drop(columns="temperature"),
                        on="policy", how="left")
    constant = table[table["policy"].str.startswith("constant:")]
    best = constant["measured_speedup"].max() if len(constant) else float("nan")
    oracle = float(table.loc[table["policy"] == replay.ORACLE, "predicted_speedup"].iloc[0])
    table["gap_closed"] = (table["measured_speedup"] - best) / (oracle - best)
    table["best_constant"] = table["policy"] == (constant.loc[constant["measured_speedup"].idxmax(), "policy"]
                                                 if len(constant) else "")
    return table


def best_constant_by_category(ranking: pd.DataFrame, drafter: str) -> pd.Series:
    """category (``all`` included) → the best constant-γ speedup measured with ``drafter`` (``drafters.ranking``)."""
    rows = ranking[(ranking["drafter"] == drafter) & ranking["policy"].str.startswith("constant:")]
    return rows.groupby("category", sort=False)["speedup"].max()


def threshold_sweep(trace: Trace, drafter: str, gmax: int = 16, limit: int = 200) -> pd.DataFrame:
    """Replayed (predicted) speedup and tokens per step per category for threshold:P:GMAX over THRESHOLDS, plus
    heuristic over HEURISTIC_STARTS: what the HTML slider shows."""
    specs = [f"threshold:{p}:{gmax}" for p in THRESHOLDS] + [f"heuristic:{g}" for g in HEURISTIC_STARTS]
    per = replay.replay(trace, drafter, specs, limit=limit)
    overall = replay.summarize(per).assign(category="all")
    by_cat = replay.summarize(per, by=("policy", "category"))
    return pd.concat([overall, by_cat], ignore_index=True)


def recommend(spec: str, mean_gamma: float | None = None) -> dict[str, str]:
    """The policy ``spec`` in the syntax users paste: HF ``generate``, vLLM, llama.cpp. Where an engine has no
    equivalent, the nearest setting it has is given and marked so (``mean_gamma``: the γ the policy drafted on
    average, the nearest constant)."""
    p = parse_policy(spec)
    near = max(1, round(mean_gamma)) if mean_gamma else getattr(p, "gamma", 4)
    name = spec.split(":")[0]
    if name == "constant":
        hf = (f"num_assistant_tokens={p.gamma}, num_assistant_tokens_schedule='constant', "
              "assistant_confidence_threshold=0")
        vllm = f"num_speculative_tokens={p.gamma}"
        cpp = f"--draft-max {p.gamma} --draft-min {p.gamma} --draft-p-min 0"
    elif name == "heuristic":
        hf = (f"num_assistant_tokens={p.start}, num_assistant_tokens_schedule='heuristic_transient', "
              "assistant_confidence_threshold=0")
        vllm = f"num_speculative_tokens={near}  (nearest constant: vLLM has no heuristic schedule)"
        cpp = f"--draft-max {near} --draft-min {near} --draft-p-min 0  (nearest constant)"
    elif name == "threshold":
        hf = (f"num_assistant_tokens={p.gmax}, num_assistant_tokens_schedule='constant', "
              f"assistant_confidence_threshold={p.p_min:g}")
        vllm = f"num_speculative_tokens={near}  (nearest constant: vLLM has no confidence stop)"
        cpp = f"--draft-max {p.gmax} --draft-min 0 --draft-p-min {p.p_min:g}  (llama.cpp drops the low token itself)"
    else:  # entropy, adaptive: no engine ships them; the nearest constant everywhere
        hf = f"num_assistant_tokens={near}, num_assistant_tokens_schedule='constant'  (nearest constant to {spec})"
        vllm = f"num_speculative_tokens={near}  (nearest constant to {spec})"
        cpp = f"--draft-max {near} --draft-min {near} --draft-p-min 0  (nearest constant to {spec})"
    return {"Hugging Face generate(assistant_model=draft, ...)": hf, "vLLM speculative_config": vllm,
            "llama.cpp llama-speculative": cpp}


def best_setting(table: pd.DataFrame, trace: Trace, drafter: str) -> tuple[str, dict[str, str]]:
    """The best policy *measured live* (replay only suggests) and its engine settings."""
    live = table.dropna(subset=["measured_speedup"])
    spec = str(live.loc[live["measured_speedup"].idxmax(), "policy"])
    s = frames.speculative_steps(trace.steps, trace.requests)
    mean_gamma = float(s[(s["drafter"] == drafter) & (s["policy"] == spec)]["gamma"].mean())
    return spec, recommend(spec, mean_gamma)
