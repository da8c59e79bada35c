"""CUDA checks (marked ``gpu``; skipped without a CUDA device): the loop and the event clock on the GPU."""

from __future__ import annotations

import pytest
import torch

from tiny_models import first_layers, make_model
from workbench.models import CausalLM
from workbench.recorder import NullRecorder, TraceRecorder
from workbench.sampling import SamplingConfig
from workbench.speculative import Decoding, generate_baseline, generate_speculative
from workbench.timing import PhaseClock

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("gamma", [1, 4, 8])
def test_greedy_speculative_equals_greedy_target_on_cuda(tokenizer, gamma):
    cuda = torch.device("cuda")
    target = make_model("llama", vocab_size=len(tokenizer), seed=1, layers=3).to(cuda)
    vocab = len(tokenizer)
    dec = Decoding(target=CausalLM(target, vocab), draft=CausalLM(first_layers(target, 1), vocab),
                   sampling=SamplingConfig(), generator=torch.Generator(device=cuda).manual_seed(0),
                   clock=PhaseClock(cuda), eos_ids=frozenset(), max_new_tokens=32)
    ids = tokenizer("The quick brown fox")["input_ids"]
    rec = TraceRecorder()
    spec = generate_speculative(dec, ids, gamma, rec)
    times = dec.clock.finish()
    base = generate_baseline(dec, ids, NullRecorder())
    dec.clock.finish()
    assert spec.tokens == base.tokens
    steps, _ = rec.rows(times, {"run_id": "r", "request_id": "x"}, tokenizer.batch_decode)
    assert all(s["verify_ms"] > 0 for s in steps) and times == sorted(times)
