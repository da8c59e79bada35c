"""CUDA checks (marked ``gpu``; skipped without a CUDA device): the loop and the event clock on the GPU."""

from __future__ import annotations

import pytest
import torch
from tiny_models import decoding, drafter, first_layers, make_model

from workbench.decoding import generate_baseline, generate_speculative
from workbench.policies import parse_policy
from workbench.recorder import NullRecorder, TraceRecorder
from workbench.sampling import SamplingConfig

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("spec, policy", [("model", "constant:1"), ("model", "constant:4"), ("model", "constant:8"),
                                          ("model", "adaptive:8"), ("ngram", "threshold:0.4:8"),
                                          ("early-exit:1", "heuristic")])
def test_greedy_speculative_equals_greedy_target_on_cuda(tokenizer, spec, policy):
    cuda = torch.device("cuda")
    target = make_model("llama", vocab_size=len(tokenizer), seed=1, layers=3).to(cuda)
    vocab = len(tokenizer)
    dec = decoding(target, vocab, max_new=32)
    ids = tokenizer("The quick brown fox")["input_ids"]
    rec = TraceRecorder()
    spec_out = generate_speculative(dec, drafter(spec, target, vocab, first_layers(target, 1)), parse_policy(policy),
                                    ids, rec)
    times = dec.clock.finish()
    base = generate_baseline(dec, ids, NullRecorder())
    dec.clock.finish()
    assert spec_out.tokens == base.tokens
    steps, _ = rec.rows(times, {"run_id": "r", "request_id": "x"}, tokenizer.batch_decode)
    assert all(s["verify_ms"] > 0 for s in steps) and times == sorted(times)


@pytest.mark.parametrize("spec, policy", [("model", "adaptive:6"), ("ngram", "constant:3"),
                                          ("early-exit:1", "threshold:0.3:6")])
def test_sampling_on_cuda_draws_on_the_device_and_emits_what_the_trace_says(tokenizer, spec, policy):
    # T > 0: the draft's draws, the uniforms of the accept rule and the residual/bonus draws all use the run's CUDA
    # generator on the models' device (a tensor left on the CPU fails here); the trace adds up to the output
    cuda = torch.device("cuda")
    target = make_model("llama", vocab_size=len(tokenizer), seed=1, layers=3).to(cuda)
    vocab = len(tokenizer)
    dec = decoding(target, vocab, max_new=32, sampling=SamplingConfig(temperature=0.8, top_k=50, top_p=0.9), seed=3)
    ids = tokenizer("The quick brown fox")["input_ids"]
    rec = TraceRecorder()
    out = generate_speculative(dec, drafter(spec, target, vocab, first_layers(target, 1)), parse_policy(policy),
                               ids, rec)
    times = dec.clock.finish()
    steps, _ = rec.rows(times, {"run_id": "r", "request_id": "x"}, tokenizer.batch_decode)
    assert len(out.tokens) == 32 and all(0 <= t < vocab for t in out.tokens)
    assert sum(s["n_emitted"] for s in steps) == 32 and all(s["n_accepted"] <= s["gamma"] for s in steps)
    if spec != "ngram":  # a model draft at T = 0.8 on random weights: some drafts are rejected (the residual draw)
        assert any(s["n_accepted"] < s["gamma"] for s in steps)
    base = generate_baseline(dec, ids, NullRecorder())
    dec.clock.finish()
    assert len(base.tokens) == 32 and all(0 <= t < vocab for t in base.tokens)
