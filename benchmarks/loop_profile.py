"""Where the decoding loop's time goes beyond the two models, and what a stopping policy's per-token read costs.

    python benchmarks/loop_profile.py [--per-category 2] [--gamma 4] [--max-new-tokens 48]

1. cProfile over greedy speculative decoding (constant γ, the default pair, no recorder) of the first
   --per-category held-out prompts of each category, after a warm-up of two requests: the share of the wall time
   spent inside ``CausalLM.forward`` (the target's and the draft's forwards); the rest is the loop itself.
2. ``drafters.base.read_signal`` on a softmax over the target's vocabulary: confidence alone, and confidence with
   the entropy (what ``entropy:H`` asks for), median of 5 × 1,000 calls.
cProfile slows Python code more than the models' kernels, so the loop's share it prints is an upper bound.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import torch

from workbench import paths
from workbench.decoding import Decoding, generate_speculative
from workbench.drafters import parse_drafter
from workbench.drafters.base import read_signal
from workbench.drafters.build import build_drafter
from workbench.pair import load_pair
from workbench.policies import parse_policy
from workbench.progress import quiet_libraries
from workbench.prompts import load_prompts
from workbench.recorder import NullRecorder
from workbench.sampling import SamplingConfig


def read_signal_us(vocab: int, entropy: bool, calls: int = 1000) -> float:
    q, x = torch.softmax(torch.randn(vocab), -1), torch.tensor(5)
    runs = []
    for _ in range(6):  # the first is a warm-up
        start = time.perf_counter()
        for _ in range(calls):
            read_signal(q, x, entropy)
        runs.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(runs[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-category", type=int, default=2, help="held-out prompts per category")
    ap.add_argument("--gamma", type=int, default=4, help="constant γ")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()
    quiet_libraries()
    spec = parse_drafter("default")
    pair = load_pair(target="default", drafts=[spec], device="cpu", dtype="float32")
    drafter = build_drafter(spec, pair)
    dec = Decoding.create(pair, SamplingConfig(), seed=0, max_new_tokens=args.max_new_tokens)
    prompts = [pair.encode(p.prompt) for p in load_prompts(paths.data_dir() / "prompts" / "heldout.jsonl",
                                                            per_category=args.per_category)]
    policy = parse_policy(f"constant:{args.gamma}")
    for ids in prompts[:2]:
        generate_speculative(dec, drafter, policy, ids, NullRecorder())
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    for ids in prompts:
        generate_speculative(dec, drafter, policy, ids, NullRecorder())
    profile.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profile).stats  # (file, line, name) → (calls, primitive calls, tottime, cumtime, callers)
    cumulative = lambda module, func: sum(v[3] for (file, _, name), v in stats.items()  # noqa: E731
                                          if file.endswith(module) and name == func)
    forward = cumulative("workbench/lm.py", "forward")
    loop = cumulative("workbench/decoding.py", "generate_speculative")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(prompts)} prompts, "
          f"constant:{args.gamma}, {args.max_new_tokens} new tokens; {wall:.2f} s under cProfile")
    print(f"inside CausalLM.forward (both models): {forward / loop:.1%} of the loop's time")
    vocab = pair.target.vocab_size
    print(f"read_signal, V = {vocab}: confidence alone {read_signal_us(vocab, False):.1f} µs, "
          f"with the entropy {read_signal_us(vocab, True):.1f} µs")


if __name__ == "__main__":
    main()
