"""The committed default pair: loads offline, shares a tokenizer, and greedy speculative == greedy target-only."""

from __future__ import annotations

from workbench import paths
from workbench.config import RunConfig
from workbench.decoding import Decoding, generate_baseline, generate_speculative
from workbench.drafters import parse_drafter
from workbench.drafters.model import ModelDrafter
from workbench.pair import load_pair
from workbench.policies import parse_policy
from workbench.prompts import load_prompts
from workbench.recorder import NullRecorder, TraceRecorder


def test_default_pair_greedy_speculative_equals_target_and_drafts_are_often_right():
    d = RunConfig()
    pair = load_pair(target=d.target, drafts=[parse_drafter("default")], device="cpu", dtype="float32")
    draft = pair.drafts["default-draft"]
    assert pair.info["drafts"]["default-draft"]["parameters"] * 3 < pair.info["target"]["parameters"]  # 2.53 vs 8.66 M
    blocks = [sum(p.numel() for p in lm.model.model.layers.parameters()) for lm in (draft, pair.target)]
    assert blocks[0] * 5 < blocks[1]  # 0.96 M vs 7.08 M in the transformer blocks (the rest is the tied embedding)
    accepted = drafted = 0
    for prompt in load_prompts(paths.prompts_path(d.prompts), per_category=1):
        ids = pair.encode(prompt.prompt)
        dec = Decoding.create(pair, d.sampling, seed=0, max_new_tokens=32)
        rec = TraceRecorder()
        spec = generate_speculative(dec, ModelDrafter(draft, "default-draft"), parse_policy("constant:4"), ids, rec)
        base = generate_baseline(dec, ids, NullRecorder())
        assert spec.tokens == base.tokens, prompt.id
        accepted += sum(s.event.n_accepted for s in rec._steps)
        drafted += sum(s.event.gamma for s in rec._steps)
    assert accepted / drafted > 0.3  # a trained, distilled draft (a random one is near 0)
