"""Would a draft trained for acceptance make a draft-length policy pay? Fine-tune the draft on the target's argmax.

    python benchmarks/draft_objective.py RUN --out runs/draft-argmax [--budget-s 480] [--lr 1e-3]
    workbench run --draft default,runs/draft-argmax --policy constant:2,constant:4,constant:6,heuristic,\
threshold:0.4,threshold:0.5:16,adaptive --baseline --per-category 8 --max-new-tokens 48 --out runs/draft-objective

RUN is a recorded greedy run of the default pair with replay data (the policy run of benchmarks/policy_headroom.py).
The default draft is distilled on 0.9 · KL(p‖q) + 0.1 · CE (data/models/README.md): q spreads over p's mass, so its
confidence says more about how flat p is than about whether argmax q = argmax p, which is greedy acceptance. This
script asks what a draft trained for exactly that event changes:
1. fine-tunes the default draft for --budget-s seconds on cross-entropy against the frozen target's argmax (same
   training stream as the recipe; AdamW with the recipe's cosine decay, stretched over the time budget; the
   target's forward is part of each step);
2. saves it with the tokenizer to --out (float32 safetensors), so the `workbench run` line above measures it live
   beside the default draft;
3. prints, before and after, along RUN's greedy outputs: how often the draft's argmax is the target's token, and the
   AUC for acceptance of its confidence and of its top-2 margin;
4. replays (a prediction under RUN's measured step costs: the shape, hence the cost, is unchanged) constant γ,
   heuristic, adaptive and threshold policies with the fine-tuned draft's tokens and confidences.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from policy_headroom import along_path, auc
from transformers import AutoModelForCausalLM

from workbench import trace as trace_io
from workbench.analysis import replay
from workbench.analysis.recorded import Recorded, recorded_outputs
from workbench.train.loop import TrainConfig, run_loop
from workbench.train.recipe import RecipeConfig, training_streams

MODELS = Path(__file__).resolve().parents[1] / "data" / "models"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
LIVE_POLICIES = ("heuristic", "threshold:0.4", "threshold:0.5:16", "adaptive")  # beside constant γ 2, 4, 6
POLICIES = ("heuristic", "adaptive:16", "threshold:0.3:8", "threshold:0.4", "threshold:0.5:8", "threshold:0.5:16",
            "threshold:0.6:16")  # replayed beside constant γ 1..10


def signals(model, recorded: list[Recorded]) -> list[Recorded]:
    """``recorded`` with the match, confidence and entropy of ``model`` in place of the recorded draft's, and the
    printed line of its match rate and AUCs (positions ≥ 1: position 0 is never drafted)."""
    path = along_path(model.eval(), recorded)
    out = [dataclasses.replace(r, match=a["token"] == np.array(r.output), conf=a["conf"], entropy=a["entropy"])
           for r, a in zip(recorded, path)]
    y = np.concatenate([r.match[1:] for r in out])
    conf, margin = (np.concatenate([a[key][1:] for a in path]) for key in ("conf", "margin"))
    print(f"  argmax = the target's token {y.mean():.3f}; AUC confidence {auc(conf, y):.3f}, "
          f"top-2 margin {auc(margin, y):.3f}", flush=True)
    return out


def fine_tune(draft, target, stream: torch.Tensor, budget_s: float, lr: float, steps: int = 10**6) -> None:
    """Cross-entropy of the draft against the target's argmax on random training windows, for ``budget_s`` (or
    ``steps``, whichever ends first; the schedule follows the budget)."""
    cfg = TrainConfig(steps=steps, lr=lr, warmup=20, time_budget_s=budget_s, seed=7)

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            label = target(input_ids=x, use_cache=False).logits.argmax(-1)
        return F.cross_entropy(draft(input_ids=x, use_cache=False).logits.flatten(0, 1), label.flatten())

    run_loop(draft, stream, cfg, loss_fn, "draft-argmax")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a greedy run of the default pair with replay data")
    ap.add_argument("--out", required=True, help="directory for the fine-tuned draft (created or replaced)")
    ap.add_argument("--budget-s", type=float, default=480.0, help="fine-tuning wall time (s)")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate")
    ap.add_argument("--drafter", default="default-draft", help="the default draft's label in RUN")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)  # the recipe's setting on this project's 2-core CPU
    t = trace_io.load(args.run)
    max_new = int(t.meta["config"]["max_new_tokens"])
    recorded = [r for r in recorded_outputs(t, args.drafter) if not r.warmup]
    costs = replay.run_costs(t, args.drafter)

    # 1.-2. fine-tune the default draft on the target's argmax, and save it where `workbench run --draft` loads it
    _, stream, _ = training_streams(RecipeConfig(out=str(MODELS), target_name="default-target"))
    target = AutoModelForCausalLM.from_pretrained(MODELS / "default-target", dtype=torch.float32).eval()
    draft = AutoModelForCausalLM.from_pretrained(MODELS / "default-draft", dtype=torch.float32)
    print("default draft:")
    signals(draft, recorded)
    fine_tune(draft, target, stream, args.budget_s, args.lr)
    draft.save_pretrained(args.out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(MODELS / "default-draft" / name, Path(args.out) / name)
    print(f"fine-tuned on the target's argmax ({args.budget_s:g} s), saved to {args.out}:")
    tuned = signals(draft, recorded)

    # 3.-4. replay the fine-tuned draft's proposals under the run's costs: a prediction, checked live by `workbench run`
    def replayed(spec: str) -> float:
        return float(replay.replay_policy(tuned, spec, costs, max_new=max_new)["speedup"].median())

    constant = {g: replayed(f"constant:{g}") for g in range(1, 11)}
    best = max(constant[g] for g in (2, 4, 6))
    print("replayed (prediction), median per-prompt speedup: " + ", ".join(
        f"constant:{g} {v:.3f}x" for g, v in constant.items()) + f"; oracle {replayed(replay.ORACLE):.3f}x")
    for spec in POLICIES:
        value = replayed(spec)
        print(f"  {spec}: {value:.3f}x = {value / best:.3f}x the best constant γ of {{2, 4, 6}}")
    print(f"measure it live, beside the default draft: workbench run --draft default,{args.out} --policy "
          f"constant:2,constant:4,constant:6,{','.join(LIVE_POLICIES)} --baseline --per-category 8 "
          f"--max-new-tokens {max_new} --out runs/draft-objective")


if __name__ == "__main__":
    main()
