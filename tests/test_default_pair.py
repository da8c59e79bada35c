"""The committed default pair: loads offline, shares a tokenizer, and greedy speculative == greedy target-only."""

from __future__ import annotations

import torch

from workbench.pair import load_pair
from workbench.prompts import load_prompts
from workbench.recorder import NullRecorder, TraceRecorder
from workbench.runner import RunConfig
from workbench.speculative import Decoding, generate_baseline, generate_speculative
from workbench.timing import PhaseClock


def test_default_pair_greedy_speculative_equals_target_and_drafts_are_often_right():
    d = RunConfig()
    pair = load_pair(target=d.target, draft=d.draft, device="cpu", dtype="float32")
    assert pair.info["draft"]["parameters"] * 3 < pair.info["target"]["parameters"]  # 2.53 M vs 8.66 M in all
    blocks = [sum(p.numel() for p in lm.model.model.layers.parameters()) for lm in (pair.draft, pair.target)]
    assert blocks[0] * 5 < blocks[1]  # 0.96 M vs 7.08 M in the transformer blocks (the rest is the tied embedding)
    accepted = drafted = 0
    for prompt in load_prompts(d.prompts, per_category=1):
        ids = pair.encode(prompt.prompt)
        dec = Decoding(target=pair.target, draft=pair.draft, sampling=d.sampling,
                       generator=torch.Generator().manual_seed(0), clock=PhaseClock(pair.device),
                       eos_ids=pair.eos_ids(), max_new_tokens=32)
        rec = TraceRecorder()
        spec = generate_speculative(dec, ids, 4, rec)
        base = generate_baseline(dec, ids, NullRecorder())
        assert spec.tokens == base.tokens, prompt.id
        accepted += sum(s.event.n_accepted for s in rec._steps)
        drafted += sum(s.event.gamma for s in rec._steps)
    assert accepted / drafted > 0.3  # a trained, distilled draft (a random one is near 0)
