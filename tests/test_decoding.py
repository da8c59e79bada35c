"""The decode loops against each other: greedy speculative == greedy target-only, token for token (float32)."""

from __future__ import annotations

import pytest
import torch

from tiny_models import first_layers, make_model
from workbench.models import CausalLM
from workbench.recorder import NullRecorder, TraceRecorder
from workbench.sampling import SamplingConfig
from workbench.speculative import Decoding, generate_baseline, generate_speculative
from workbench.timing import PhaseClock

PROMPTS = ["The quick brown fox", "def add(a, b):", "A speculative decoder drafts tokens and"]


def decoding(target, draft, *, vocab, max_new=24, eos=frozenset(), sampling=SamplingConfig(), seed=0):
    return Decoding(target=CausalLM(target, vocab), draft=CausalLM(draft, vocab) if draft is not None else None,
                    sampling=sampling, generator=torch.Generator().manual_seed(seed),
                    clock=PhaseClock(torch.device("cpu")), eos_ids=eos, max_new_tokens=max_new)


class CacheChecker(TraceRecorder):
    """Records, and checks after every step that the target cache holds the sequence minus its last token."""

    def __init__(self, dec):
        super().__init__()
        self.dec = dec

    def on_step(self, event):
        super().on_step(event)
        length = event.context_len + len(event.emitted)
        assert self.dec.target.length == length - 1
        if event.step > 0:
            assert length - 2 <= self.dec.draft.length <= length - 1


def run_pair(dec, prompt_ids, gamma):
    rec = CacheChecker(dec)
    spec = generate_speculative(dec, prompt_ids, gamma, rec)
    dec.clock.finish()
    base = generate_baseline(dec, prompt_ids, NullRecorder())
    dec.clock.finish()
    return spec, base, [r.event for r in rec._steps]


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("draft_kind", ["same", "random", "prefix"])
@pytest.mark.parametrize("gamma", [1, 2, 4, 8])
def test_greedy_speculative_equals_greedy_target(tokenizer, kind, draft_kind, gamma):
    vocab = len(tokenizer)
    target = make_model(kind, vocab_size=vocab, seed=1, layers=3)
    draft = {"same": target, "random": make_model(kind, vocab_size=vocab, seed=2, layers=1),
             "prefix": first_layers(target, 1)}[draft_kind]
    accepted = drafted = 0
    for text in PROMPTS:
        dec = decoding(target, draft, vocab=vocab)
        spec, base, events = run_pair(dec, tokenizer(text)["input_ids"], gamma)
        assert spec.tokens == base.tokens and len(spec.tokens) == 24
        accepted += sum(e.n_accepted for e in events)
        drafted += sum(e.gamma for e in events)
    rate = accepted / drafted
    if draft_kind == "same":
        assert rate == 1.0
    elif draft_kind == "random":
        assert rate < 0.2  # an unrelated draft is almost never right
    else:
        assert 0.0 < rate < 1.0


def test_all_accepted_steps_end_with_a_bonus_and_the_draft_catches_up(tokenizer):
    target = make_model("llama", vocab_size=len(tokenizer), seed=1, layers=2)
    dec = decoding(target, target, vocab=len(tokenizer), max_new=1 + 5 * 3)
    spec, base, events = run_pair(dec, tokenizer("The quick")["input_ids"], 4)
    assert spec.tokens == base.tokens
    drafting = [e for e in events if e.step > 0]
    assert [e.role for e in drafting] == ["bonus"] * 3
    assert all(e.n_accepted == 4 and len(e.emitted) == 5 for e in drafting)


def test_eos_inside_an_accepted_run_stops_exactly(tokenizer):
    target = make_model("llama", vocab_size=len(tokenizer), seed=1, layers=2)
    prompt = tokenizer("The quick brown fox")["input_ids"]
    free = generate_baseline(decoding(target, None, vocab=len(tokenizer)), prompt, NullRecorder()).tokens
    eos = free[6]  # a token the target produces mid-sequence becomes the EOS
    stop_at = free.index(eos) + 1
    dec = decoding(target, target, vocab=len(tokenizer), eos=frozenset({eos}))
    spec, base, events = run_pair(dec, prompt, 8)
    assert spec.tokens == base.tokens == free[:stop_at]
    assert spec.stop_reason == base.stop_reason == "eos"
    # prefill emits token 1; step 1 accepts all 8 drafts but emits only up to the EOS (stop_at ≤ 7 tokens in all)
    assert len(events) == 2 and events[1].n_accepted == 8
    assert len(events[1].emitted) == stop_at - 1 < 9 and events[1].emitted[-1] == eos


def test_max_new_tokens_reached_mid_step(tokenizer):
    target = make_model("llama", vocab_size=len(tokenizer), seed=1, layers=2)
    dec = decoding(target, target, vocab=len(tokenizer), max_new=5)
    spec, base, events = run_pair(dec, tokenizer("def add")["input_ids"], 8)
    assert spec.tokens == base.tokens and len(spec.tokens) == 5
    assert spec.stop_reason == "max_new_tokens"
    assert events[1].n_accepted == 8 and len(events[1].emitted) == 4  # 1 from prefill + 4 of the 9 proposed


def test_trace_rows_keep_the_invariants(tokenizer):
    vocab = len(tokenizer)
    target = make_model("llama", vocab_size=vocab, seed=1, layers=3)
    dec = decoding(target, first_layers(target, 1), vocab=vocab, sampling=SamplingConfig(temperature=0.8))
    rec = TraceRecorder()
    gen = generate_speculative(dec, tokenizer("The quick brown")["input_ids"], 3, rec)
    steps, tokens = rec.rows(dec.clock.finish(), {"run_id": "r", "request_id": "x"}, tokenizer.batch_decode)
    assert sum(s["n_emitted"] for s in steps) == len(gen.tokens)
    for s in steps[1:]:
        rows = [t for t in tokens if t["step"] == s["step"]]
        drafts = [t for t in rows if t["role"] == "draft"]
        finals = [t for t in rows if t["role"] != "draft"]
        assert len(drafts) == s["gamma"] == 3 and len(finals) == 1
        assert sum(t["accepted"] for t in drafts) == s["n_accepted"] <= s["gamma"]
        assert sum(t["emitted"] for t in rows) == s["n_emitted"]
        assert (finals[0]["role"] == "bonus") == (s["n_accepted"] == 3)
        assert all(0 < t["p"] <= 1 and 0 < t["q"] <= 1 and 0 <= t["alpha_tv"] <= 1 for t in drafts)
        final = finals[0]
        assert 0 < final["p"] <= 1 and final["position"] == s["n_accepted"] + 1
        if final["role"] == "correction":  # same position as the rejected draft: same α, and the draft had a q there
            assert final["alpha_tv"] == drafts[s["n_accepted"]]["alpha_tv"] and 0 <= final["q"] <= 1
        else:
            assert final["q"] != final["q"] and final["alpha_tv"] != final["alpha_tv"]  # NaN: no draft at γ+1
        assert min(s["draft_ms"], s["verify_ms"], s["other_ms"]) >= 0


def test_both_kv_caches_equal_a_fresh_prefill_after_many_rejections(tokenizer):
    vocab = len(tokenizer)
    target = make_model("llama", vocab_size=vocab, seed=1, layers=3)
    draft = first_layers(target, 1)
    dec = decoding(target, draft, vocab=vocab, max_new=30)
    prompt = tokenizer("A speculative decoder drafts")["input_ids"]
    gen = generate_speculative(dec, prompt, 4, NullRecorder())
    ids = prompt + gen.tokens
    for lm, model in ((dec.target, target), (dec.draft, draft)):
        fresh = CausalLM(model, vocab)
        fresh.forward(torch.tensor(ids[: lm.length]))
        for kept, ref in zip(lm.cache.layers, fresh.cache.layers):
            assert torch.allclose(kept.keys, ref.keys, atol=1e-5) and torch.allclose(kept.values, ref.values, atol=1e-5)
