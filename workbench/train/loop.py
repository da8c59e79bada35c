"""Training loops: next-token loss for the target, logit distillation for the draft, held-out evaluation.

Data: every document is tokenized once and the documents are concatenated into one long int64 stream, each
preceded by <|endoftext|> (exactly what the tokenizer prepends to a prompt). A batch is `batch_size` random
windows of `context + 1` tokens cut from the stream (x = window[:-1], y = window[1:]), positions drawn from one
seeded torch.Generator, so a run is reproducible for a given seed and thread count.

Distillation (Hinton et al. 2015; the DistillSpec recipe for speculative decoding): the draft q is trained on
    kd_weight * KL(p || q) + (1 - kd_weight) * CE(y, q)
with p the frozen target's next-token distribution on the same windows. Forward KL makes q cover p's mass;
greedy acceptance only needs argmax q = argmax p, which it pulls towards strongly.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM


@dataclass
class TrainConfig:
    steps: int  # optimizer steps
    batch_size: int = 16  # windows per step
    context: int = 256  # tokens per window (training context length)
    lr: float = 2e-3  # peak AdamW learning rate (small models tolerate high rates)
    min_lr_frac: float = 0.1  # cosine decays to lr * min_lr_frac at the last step
    warmup: int = 50  # linear warm-up steps
    weight_decay: float = 0.1  # AdamW decoupled decay, on matrices only (not norms)
    grad_clip: float = 1.0  # global gradient-norm clip
    kd_weight: float = 0.9  # draft only: weight of KL(p || q); the rest is ordinary next-token loss
    log_every: int = 10  # log (and print) the mean loss of the last log_every steps
    time_budget_s: float = 0.0  # > 0: schedule progress = max(step/steps, elapsed/budget); stops at 1 (see lr_at)
    seed: int = 0  # seeds the batch generator


def token_stream(encoded: list[list[int]], special_id: int) -> torch.Tensor:
    """[special, doc0..., special, doc1..., ...] as one int64 tensor."""
    parts = [torch.tensor([special_id] + ids, dtype=torch.int64) for ids in encoded]
    return torch.cat(parts)


def sample_batch(stream: torch.Tensor, batch: int, context: int, gen: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: inputs x (B, T) and next-token targets y (B, T)."""
    starts = torch.randint(0, len(stream) - context - 1, (batch,), generator=gen)
    win = torch.stack([stream[s : s + context + 1] for s in starts.tolist()])
    return win[:, :-1], win[:, 1:]


def lr_at(progress: float, cfg: TrainConfig) -> float:
    """Linear warm-up over cfg.warmup steps' worth of progress, then cosine decay to min_lr_frac * lr.

    progress in [0, 1] is step/steps, or the elapsed fraction of a wall-clock budget when that is ahead: on a
    shared CPU the schedule then still completes its full decay by the deadline instead of being cut mid-way.
    """
    warm = cfg.warmup / cfg.steps
    if progress < warm:
        return cfg.lr * max(progress, 1 / cfg.steps) / warm
    frac = min(1.0, (progress - warm) / max(1e-9, 1 - warm))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * frac)))


def _progress(step: int, t0: float, cfg: TrainConfig) -> float:
    """Fraction of training done before `step`: by steps, or by wall clock if a budget is set and ahead."""
    by_time = (time.perf_counter() - t0) / cfg.time_budget_s if cfg.time_budget_s > 0 else 0.0
    return max(step / cfg.steps, by_time)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on >= 2-D weights only (embeddings, projections), none on RMSNorm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def run_loop(model: LlamaForCausalLM, stream: torch.Tensor, cfg: TrainConfig, loss_fn: LossFn, tag: str) -> list[dict]:
    """Generic loop: sample, loss_fn(x, y), clip, step. Returns the logged curve [{step, loss, lr, s_per_step}]."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = make_optimizer(model, cfg)
    model.train()
    curve, acc, n, t0 = [], 0.0, 0, time.perf_counter()
    t_log, step = t0, 0
    # at least one step, however small the time budget: a model is always trained a little and has a curve
    while step < cfg.steps and ((progress := _progress(step, t0, cfg)) < 1.0 or step == 0):
        lr = lr_at(progress, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = sample_batch(stream, cfg.batch_size, cfg.context, gen)
        loss = loss_fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        acc, n, step = acc + loss.item(), n + 1, step + 1
        if n == cfg.log_every or step == cfg.steps:
            sps = (time.perf_counter() - t_log) / n
            curve.append({"step": step, "loss": acc / n, "lr": lr, "s_per_step": sps})
            print(f"[{tag}] step {step}/{cfg.steps} loss {acc / n:.4f} lr {lr:.2e} {sps:.2f} s/step", flush=True)
            acc, n, t_log = 0.0, 0, time.perf_counter()
    if n:  # stopped by the time budget between two log lines
        curve.append({"step": step, "loss": acc / n, "lr": lr, "s_per_step": (time.perf_counter() - t_log) / n})
    model.eval()
    return curve


def train_target(model: LlamaForCausalLM, stream: torch.Tensor, cfg: TrainConfig) -> list[dict]:
    """Plain next-token cross-entropy."""

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=x, use_cache=False).logits
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))

    return run_loop(model, stream, cfg, loss_fn, "target")


def distill_draft(draft: LlamaForCausalLM, target: LlamaForCausalLM, stream: torch.Tensor, cfg: TrainConfig
                  ) -> list[dict]:
    """kd_weight * KL(p_target || q_draft) + (1 - kd_weight) * CE, target frozen in eval mode."""
    target.eval()

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logp = F.log_softmax(target(input_ids=x, use_cache=False).logits, dim=-1).flatten(0, 1)
            p = logp.exp()
            entropy = -(p * logp).sum(-1).mean()  # H(p): a constant, subtracted only so the log shows KL
        logits = draft(input_ids=x, use_cache=False).logits.flatten(0, 1)
        # cross_entropy with probability targets = H(p, q) = KL(p || q) + H(p): same gradient as the KL, and one
        # fused op is ~3x faster on CPU than spelling out p * (log p - log q) over the 8192-way vocabulary
        kl = F.cross_entropy(logits, p) - entropy
        ce = F.cross_entropy(logits, y.reshape(-1))
        return cfg.kd_weight * kl + (1 - cfg.kd_weight) * ce

    return run_loop(draft, stream, cfg, loss_fn, "draft")


@torch.no_grad()
def evaluate(model: LlamaForCausalLM, stream: torch.Tensor, context: int, max_windows: int, batch: int = 16) -> dict:
    """Mean next-token loss over up to max_windows non-overlapping windows of the stream; ppl = exp(loss)."""
    model.eval()
    n_win = min(max_windows, (len(stream) - 1) // context)
    total, count = 0.0, 0
    for b0 in range(0, n_win, batch):
        starts = range(b0 * context, min(n_win, b0 + batch) * context, context)
        win = torch.stack([stream[s : s + context + 1] for s in starts])
        logits = model(input_ids=win[:, :-1], use_cache=False).logits
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), win[:, 1:].reshape(-1), reduction="sum").item()
        count += win[:, 1:].numel()
    loss = total / max(1, count)
    return {"loss": loss, "ppl": math.exp(loss), "tokens": count}


def write_curve(curve: list[dict], path: Path) -> None:
    """loss_curve.csv next to the saved model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "loss", "lr", "s_per_step"])
        w.writeheader()
        w.writerows(curve)
