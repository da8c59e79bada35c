"""How the default pair's shapes were chosen: one-token cost and training-step cost of random-init Llama shapes.

    python benchmarks/model_shapes.py

Prints, per shape, parameters, float16 size, the batch-1 one-token forward with a KV cache of 64 (the decoding cost
that sets c; median of 50 calls, three repeats shown as a range) and, for target candidates, one optimizer step on
16 × 256 tokens (the recipe's batch). Random weights cost exactly what trained ones do, so this runs before training.
Nothing is asserted; record the figures with date and device (data/models/README.md quotes them).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from workbench.lm import one_token_latency_ms
from workbench.loading import n_params
from workbench.train.shapes import ModelShape, build_model

VOCAB = 8192  # the default tokenizer's size
TARGETS = {"8x256 (first default target)": ModelShape(8, 256, 4, 688), "12x256": ModelShape(12, 256, 4, 688),
           "16x192 (default target)": ModelShape(16, 192, 3, 512)}
DRAFTS = {"2x128": ModelShape(2, 128, 2, 384), "2x192 (default draft)": ModelShape(2, 192, 3, 576),
          "3x128": ModelShape(3, 128, 2, 384)}


def train_step_s(model: torch.nn.Module, batch: int = 16, context: int = 256, steps: int = 6) -> float:
    """Fastest of `steps` - 1 timed AdamW steps (the first is discarded as warm-up)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, VOCAB, (batch, context + 1), generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        logits = model(input_ids=x[:, :-1]).logits
        F.cross_entropy(logits.reshape(-1, VOCAB), x[:, 1:].reshape(-1)).backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, vocabulary {VOCAB}")
    for name, shape in {**TARGETS, **DRAFTS}.items():
        model = build_model(shape, VOCAB, 0, 0)
        lat = [one_token_latency_ms(model) for _ in range(3)]
        line = (f"{name:30s} {n_params(model) / 1e6:5.2f} M params, float16 {2 * n_params(model) / 2**20:4.1f} MiB, "
                f"one-token {min(lat):.2f}-{max(lat):.2f} ms")
        if name in TARGETS:
            line += f", training step {train_step_s(model):.2f} s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
