"""Engine benchmark: what tracing costs, and speculative vs target-only ms/token on this machine.

Prints figures; record them (with date and device) in benchmarks/RESULTS.md. Nothing here asserts a speed.

    python benchmarks/bench_engine.py                      # default pair, held-out prompts, γ = 4
    python benchmarks/bench_engine.py --target T --draft D --prompts P.jsonl --gamma 3 --device cuda

Method: every measurement is a real request. Requests alternate (tracing on / off, speculative / baseline) prompt by
prompt, in an order rotated from prompt to prompt, so that drifts and order effects hit all variants alike; one
warm-up round is discarded; medians are reported and compared as
ratios within this one process. Tracing "on" is the in-loop recorder the CLI uses; writing the Parquet part after a
request is timed separately.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from workbench import paths, trace
from workbench.config import RunConfig
from workbench.decoding import Decoding, check_finite, generate_baseline, generate_speculative
from workbench.drafters import parse_drafter
from workbench.drafters.model import ModelDrafter
from workbench.errors import WorkbenchError
from workbench.lm import one_token_latency_ms
from workbench.pair import load_pair
from workbench.policies import parse_policy
from workbench.prompts import load_prompts
from workbench.recorder import NullRecorder, StepEvent, TraceRecorder
from workbench.session import encode_prompt


def timed(dec: Decoding, drafter, prompt_ids: list[int], gamma: int, recorder) -> tuple[list[float], int]:
    """One request; returns (its clock marks in ms, new tokens)."""
    gen = (generate_baseline(dec, prompt_ids, recorder) if gamma == 0
           else generate_speculative(dec, drafter, parse_policy(f"constant:{gamma}"), prompt_ids, recorder))
    return dec.clock.finish(), len(gen.tokens)


def main() -> None:
    d = RunConfig()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default=d.target)
    ap.add_argument("--draft", default=d.drafts[0])
    ap.add_argument("--prompts", default=d.prompts)
    ap.add_argument("--per-category", type=int, default=4,
                    help="prompts per category (the prompt files are grouped by category: a plain first-N would "
                         "measure one category only)")
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="rounds over the prompts (after one warm-up round)")
    ap.add_argument("--chat-template", action="store_true",
                    help="each prompt through the target tokenizer's chat template, as `workbench run --chat-template`")
    ap.add_argument("--system-prompt", default="", help="with --chat-template: a system message before every prompt")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()

    spec = parse_drafter(args.draft)
    pair = load_pair(target=args.target, drafts=[spec], device=args.device, dtype=args.dtype)
    drafter = ModelDrafter(pair.drafts[spec.label], spec.label)
    prompts = [encode_prompt(pair, p, chat_template=args.chat_template, system_prompt=args.system_prompt)
               for p in load_prompts(paths.prompts_path(args.prompts), per_category=args.per_category)]
    dec = Decoding.create(pair, RunConfig().sampling, seed=0, max_new_tokens=args.max_new_tokens,
                          ignore_eos=True)  # fixed length: no EOS
    variants = {"spec_traced": (args.gamma, TraceRecorder), "spec_untraced": (args.gamma, NullRecorder),
                "base_traced": (0, TraceRecorder), "base_untraced": (0, NullRecorder)}
    ms_per_token = {k: [] for k in variants}
    write_ms = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats + 1):
            for i, ids in enumerate(prompts):
                order = list(variants.items())
                for name, (gamma, rec_cls) in order[i % 4:] + order[: i % 4]:  # rotate: no variant always first
                    rec = rec_cls()
                    times, tokens = timed(dec, drafter, ids, gamma, rec)
                    if round_ == 0:
                        continue  # warm-up round: discarded
                    ms_per_token[name].append(times[-1] / tokens)
                    if rec_cls is TraceRecorder and gamma:
                        start = time.perf_counter()
                        steps, toks = rec.rows(times, {"run_id": "b", "request_id": f"{i}"}, pair.decode_each)
                        trace.write_part(Path(tmp), len(write_ms), {"steps": steps, "tokens": toks, "requests": []})
                        write_ms.append((time.perf_counter() - start) * 1000)
    report(args, pair, drafter, ms_per_token, write_ms)


def recorder_cost_us(vocab: int, gamma: int, device: torch.device, calls: int = 2000) -> float:
    """Mean µs of TraceRecorder.on_step for one speculative step with this vocabulary and γ (random p, q)."""
    gen = torch.Generator(device=device).manual_seed(0)
    p = torch.softmax(torch.randn(gamma + 1, vocab, generator=gen, device=device), dim=-1)
    q = torch.softmax(torch.randn(gamma, vocab, generator=gen, device=device), dim=-1)
    event = StepEvent(step=1, gamma=gamma, n_accepted=gamma // 2, emitted=[1] * (gamma // 2 + 1), context_len=64,
                      marks=(0, 1, 2), p=p, token=1, role="correction", x=torch.arange(gamma, device=device), q=q)
    rec = TraceRecorder()
    start = time.perf_counter()
    for _ in range(calls):
        rec.on_step(event)
    return (time.perf_counter() - start) / calls * 1e6


def finite_check_us(vocab: int, gamma: int, device: torch.device, calls: int = 2000) -> float:
    """Mean µs of the loop's per-step NaN/inf check (decoding.check_finite) on p [γ+1, V] and q [γ, V]."""
    gen = torch.Generator(device=device).manual_seed(0)
    p = torch.softmax(torch.randn(gamma + 1, vocab, generator=gen, device=device), dim=-1)
    q = torch.softmax(torch.randn(gamma, vocab, generator=gen, device=device), dim=-1)
    start = time.perf_counter()
    for _ in range(calls):
        check_finite(1, p, q)
    return (time.perf_counter() - start) / calls * 1e6


def report(args, pair, drafter, ms_per_token: dict, write_ms: list[float]) -> None:
    med = {k: statistics.median(v) for k, v in ms_per_token.items()}
    env = f"{pair.device} ({torch.cuda.get_device_name() if pair.device.type == 'cuda' else 'cpu'}), {pair.dtype}"
    print(f"device: {env}; threads {torch.get_num_threads()}; torch {torch.__version__}")
    print(f"target {pair.info['target']['parameters'] / 1e6:.2f}M params, draft "
          f"{pair.info['drafts'][drafter.label]['parameters'] / 1e6:.2f}M; gamma {args.gamma}; "
          f"{len(ms_per_token['spec_traced'])} "
          f"requests per variant × {args.max_new_tokens} tokens")
    for k, v in med.items():
        print(f"  {k:14s} median {v:8.3f} ms/token")
    for mode, name in (("spec", "speculative"), ("base", "baseline")):
        overhead = 100 * (med[f"{mode}_traced"] / med[f"{mode}_untraced"] - 1)
        print(f"tracing overhead (in-loop recorder), {name}: {overhead:+.2f} %")
    t_ms, d_ms = (one_token_latency_ms(lm.model) for lm in (pair.target, drafter.lm))
    print(f"isolated one-token forward (KV cache of 64): target {t_ms:.3f} ms, draft {d_ms:.3f} ms, "
          f"c = {d_ms / t_ms:.3f}")
    vocab = pair.info["vocab_size"]
    print(f"recorder work per speculative step: {recorder_cost_us(vocab, args.gamma, pair.device):.0f} µs")
    print(f"NaN/inf check per speculative step: {finite_check_us(vocab, args.gamma, pair.device):.1f} µs")
    print(f"writing one request's Parquet part: median {statistics.median(write_ms):.1f} ms (after the request)")
    print(f"speedup speculative vs baseline (untraced): {med['base_untraced'] / med['spec_untraced']:.3f}x; "
          f"traced: {med['base_traced'] / med['spec_traced']:.3f}x")


if __name__ == "__main__":
    try:
        main()
    except WorkbenchError as exc:  # bad input (a prompt the chat template refuses…): one line, as the CLI
        sys.exit(f"error: {exc}")
