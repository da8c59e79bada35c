"""The decode loop against the baseline: greedy speculative == greedy target-only, token for token (float32), for
every drafter (model, n-gram, early exit), every policy and three architectures; cache invariants after rejections."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import SLIDING, decoding, drafter, first_layers, make_model

from workbench.decoding import generate_baseline, generate_speculative
from workbench.errors import WorkbenchError
from workbench.lm import CausalLM, check_can_draft, full_logits, sliding_drafts_supported
from workbench.policies import parse_policy
from workbench.recorder import NullRecorder, TraceRecorder
from workbench.sampling import SamplingConfig

PROMPTS = ["The quick brown fox", "def add(a, b):", "A speculative decoder drafts tokens and"]
POLICIES = ["constant:1", "constant:4", "heuristic:2", "threshold:0.5:6", "entropy:1.5:6", "adaptive:6"]


class CacheChecker(TraceRecorder):
    """Records, and checks after every step that the target cache holds the sequence minus its last token and that
    a model drafter's cache holds no token past that (it may lag further: it reads what it missed at its next
    propose; its content is checked against a fresh prefill in test_kv_caches_equal_a_fresh_prefill…)."""

    def __init__(self, dec, draft=None):
        super().__init__()
        self.dec, self.draft = dec, draft

    def on_step(self, event):
        super().on_step(event)
        length = event.context_len + len(event.emitted)
        assert self.dec.target.length == length - 1
        if hasattr(self.draft, "lm"):
            assert self.draft.lm.length <= length - 1


def run_pair(dec, draft, policy, prompt_ids):
    rec = CacheChecker(dec, draft)
    spec = generate_speculative(dec, draft, policy, prompt_ids, rec)
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
    draft_model = {"same": target, "random": make_model(kind, vocab_size=vocab, seed=2, layers=1),
                   "prefix": first_layers(target, 1)}[draft_kind]
    accepted = drafted = 0
    for text in PROMPTS:
        dec = decoding(target, vocab)
        spec, base, events = run_pair(dec, drafter("model", target, vocab, draft_model),
                                      parse_policy(f"constant:{gamma}"), tokenizer(text)["input_ids"])
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


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("spec", ["ngram", "ngram:2:2", "early-exit:1", "early-exit:2"])
@pytest.mark.parametrize("policy", ["constant:3", "heuristic:2", "threshold:0.4:6", "adaptive:6"])
def test_every_drafter_and_policy_is_lossless_under_greedy(tokenizer, kind, spec, policy):
    vocab = len(tokenizer)
    target = make_model(kind, vocab_size=vocab, seed=1, layers=3)
    pol = parse_policy(policy)
    for text in PROMPTS[:2]:
        dec = decoding(target, vocab, max_new=20)
        out, base, events = run_pair(dec, drafter(spec, target, vocab), pol, tokenizer(text * 2)["input_ids"])
        assert out.tokens == base.tokens, (spec, policy, text)
        assert all(0 <= e.n_accepted <= e.gamma for e in events)


@pytest.mark.parametrize("policy", POLICIES)
def test_model_drafter_policies_are_lossless_and_record_their_plan(tokenizer, policy):
    vocab = len(tokenizer)
    target = make_model("llama", vocab_size=vocab, seed=1, layers=3)
    for text in PROMPTS:
        dec = decoding(target, vocab, max_new=30)
        pol = parse_policy(policy)
        spec, base, events = run_pair(dec, drafter("model", target, vocab, first_layers(target, 1)), pol,
                                      tokenizer(text)["input_ids"])
        assert spec.tokens == base.tokens
        for e in events[1:]:
            assert e.gamma <= max(e.gamma_planned, 0) and e.draft_stop in {"cap", "policy", "threshold", "budget",
                                                                            "eos", "no-match"}
            if e.draft_stop == "threshold":
                assert e.gamma < e.gamma_planned


def test_heuristic_grows_by_two_after_full_acceptance_and_shrinks_by_one(tokenizer):
    vocab = len(tokenizer)
    target = make_model("llama", vocab_size=vocab, seed=1, layers=3)
    dec = decoding(target, vocab, max_new=40)
    _, _, events = run_pair(dec, drafter("model", target, vocab, first_layers(target, 1)), parse_policy("heuristic:3"),
                            tokenizer(PROMPTS[2])["input_ids"])
    drafting = [e for e in events if e.step > 0]
    assert drafting[0].gamma_planned == 3
    for before, after in zip(drafting, drafting[1:]):
        expected = before.gamma_planned + 2 if before.n_accepted == before.gamma else max(1, before.gamma_planned - 1)
        assert after.gamma_planned == expected


def test_all_accepted_steps_end_with_a_bonus_and_the_draft_catches_up(tokenizer):
    target = make_model("llama", vocab_size=len(tokenizer), seed=1, layers=2)
    dec = decoding(target, len(tokenizer), max_new=1 + 5 * 3)
    spec, base, events = run_pair(dec, drafter("model", target, len(tokenizer), target), parse_policy("constant:4"),
                                  tokenizer("The quick")["input_ids"])
    assert spec.tokens == base.tokens
    drafting = [e for e in events if e.step > 0]
    assert [e.role for e in drafting] == ["bonus"] * 3
    assert all(e.n_accepted == 4 and len(e.emitted) == 5 for e in drafting)


def test_eos_inside_an_accepted_run_stops_exactly(tokenizer):
    target = make_model("llama", vocab_size=len(tokenizer), seed=1, layers=2)
    prompt = tokenizer("The quick brown fox")["input_ids"]
    free = generate_baseline(decoding(target, len(tokenizer)), prompt, NullRecorder()).tokens
    eos = free[6]  # a token the target produces mid-sequence becomes the EOS
    stop_at = free.index(eos) + 1
    dec = decoding(target, len(tokenizer), eos=frozenset({eos}))
    spec, base, events = run_pair(dec, drafter("model", target, len(tokenizer), target), parse_policy("constant:8"),
                                  prompt)
    assert spec.tokens == base.tokens == free[:stop_at]
    assert spec.stop_reason == base.stop_reason == "eos"
    # the draft (= the target) drafts the EOS too: drafting ends there, and the step emits up to the EOS
    assert len(events) == 2 and events[1].draft_stop == "eos" and events[1].emitted[-1] == eos


def test_an_eos_that_is_also_the_last_token_of_the_budget_stops_as_eos(tokenizer):
    target = make_model("llama", vocab_size=len(tokenizer), seed=1, layers=2)
    prompt = tokenizer("The quick brown fox")["input_ids"]
    free = generate_baseline(decoding(target, len(tokenizer)), prompt, NullRecorder()).tokens
    eos = free[6]
    stop_at = free.index(eos) + 1
    dec = decoding(target, len(tokenizer), eos=frozenset({eos}), max_new=stop_at)  # the budget ends on the EOS
    spec, base, _ = run_pair(dec, drafter("model", target, len(tokenizer), target), parse_policy("constant:3"),
                             prompt)
    assert spec.tokens == base.tokens == free[:stop_at]
    assert spec.stop_reason == base.stop_reason == "eos"


def test_gamma_is_clipped_to_the_token_budget(tokenizer):
    target = make_model("llama", vocab_size=len(tokenizer), seed=1, layers=2)
    dec = decoding(target, len(tokenizer), max_new=5)
    spec, base, events = run_pair(dec, drafter("model", target, len(tokenizer), target), parse_policy("constant:8"),
                                  tokenizer("def add")["input_ids"])
    assert spec.tokens == base.tokens and len(spec.tokens) == 5
    assert spec.stop_reason == "max_new_tokens"
    # 1 token from the prefill; then γ = min(8, 5 − 1 − 1) = 3 drafts, all accepted, + the bonus = 4 tokens
    assert events[1].gamma == 3 and events[1].gamma_planned == 8 and events[1].draft_stop == "budget"
    assert events[1].n_accepted == 3 and len(events[1].emitted) == 4


def test_trace_rows_keep_the_invariants(tokenizer):
    vocab = len(tokenizer)
    target = make_model("llama", vocab_size=vocab, seed=1, layers=3)
    dec = decoding(target, vocab, sampling=SamplingConfig(temperature=0.8), max_new=40)
    rec = TraceRecorder()
    draft = drafter("model", target, vocab, first_layers(target, 1))
    gen = generate_speculative(dec, draft, parse_policy("constant:3"), tokenizer("The quick brown")["input_ids"], rec)
    steps, tokens = rec.rows(dec.clock.finish(), {"run_id": "r", "request_id": "x"}, tokenizer.batch_decode)
    assert sum(s["n_emitted"] for s in steps) == len(gen.tokens)
    assert any(s["n_accepted"] < s["gamma"] - 1 for s in steps)  # rejections with unobserved drafts behind them
    for s in steps[1:]:
        rows = [t for t in tokens if t["step"] == s["step"]]
        drafts = [t for t in rows if t["role"] == "draft"]
        finals = [t for t in rows if t["role"] != "draft"]
        assert len(drafts) == s["gamma"] and len(finals) == 1 and s["gamma"] <= 3
        assert sum(t["accepted"] for t in drafts) == s["n_accepted"] <= s["gamma"]
        # judged = the accepted drafts and the first rejected one; drafts after a rejection are unobserved
        assert [t["evaluated"] for t in drafts] == [t["position"] <= s["n_accepted"] + 1 for t in drafts]
        assert sum(t["emitted"] for t in rows) == s["n_emitted"]
        if s["gamma"] == 0:  # nothing drafted (the last step, cut by the token budget): a plain target token
            assert finals[0]["role"] == "target" and finals[0]["position"] == 0
            continue
        assert (finals[0]["role"] == "bonus") == (s["n_accepted"] == s["gamma"])
        assert all(0 < t["p"] <= 1 and 0 < t["q"] <= 1 and 0 <= t["alpha_tv"] <= 1 for t in drafts)
        final = finals[0]
        assert 0 < final["p"] <= 1 and final["position"] == s["n_accepted"] + 1
        if final["role"] == "correction":  # same position as the rejected draft: same α, and the draft had a q there
            assert final["alpha_tv"] == drafts[s["n_accepted"]]["alpha_tv"] and 0 <= final["q"] <= 1
        else:
            assert final["q"] != final["q"] and final["alpha_tv"] != final["alpha_tv"]  # NaN: no draft at γ+1
        assert min(s["draft_ms"], s["verify_ms"], s["other_ms"]) >= 0


@pytest.mark.parametrize("settings", [SamplingConfig(temperature=1.0, top_k=2),
                                      SamplingConfig(temperature=0.7, top_p=0.5)], ids=["top_k2", "T0.7-top_p0.5"])
def test_the_draft_samples_from_the_filtered_distribution_the_target_verifies_with(tokenizer, settings):
    # Any q keeps the output lossless, so a draft that skipped top-k/top-p would only lose acceptance, silently.
    # With the target as its own draft, q = p after the same filters: every draft is accepted.
    target = make_model("llama", vocab_size=len(tokenizer), seed=1, layers=2)
    supports, steps = [], []

    class Supports(NullRecorder):
        def on_step(self, event):
            if event.q is not None and len(event.q):
                supports.append(int((event.q > 0).sum(-1).max()))
                steps.append((event.gamma, event.n_accepted))

    dec = decoding(target, len(tokenizer), sampling=settings, max_new=30)
    draft = drafter("model", target, len(tokenizer), target)
    for prompt in PROMPTS:
        generate_speculative(dec, draft, parse_policy("constant:4"), tokenizer(prompt)["input_ids"], Supports())
    assert len(steps) >= 6 and all(n == gamma for gamma, n in steps)
    if settings.top_k:
        assert max(supports) <= settings.top_k


@pytest.mark.skipif(not sliding_drafts_supported(),
                    reason="this transformers cannot draft past a sliding window (refused: tests/test_cli.py)")
@pytest.mark.parametrize("draft_kind", ["random", "prefix"])
@pytest.mark.parametrize("policy", ["constant:3", "adaptive:5"])
def test_sliding_window_models_roll_back_past_their_window(tokenizer, draft_kind, policy):
    # a sliding-window cache layer drops what leaves the window; rolling it back needs the past kept (transformers
    # raised "crop was called, but the current layer does not track past states" once the window was full)
    vocab = len(tokenizer)
    target = make_model("mistral-sw", vocab_size=vocab, seed=1, layers=3)
    draft_model = {"random": make_model("mistral-sw", vocab_size=vocab, seed=2, layers=1),
                   "prefix": first_layers(target, 1)}[draft_kind]
    for text in PROMPTS:
        dec = decoding(target, vocab, max_new=24)
        spec, base, events = run_pair(dec, drafter("model", target, vocab, draft_model), parse_policy(policy),
                                      tokenizer(text)["input_ids"])
        ids = tokenizer(text)["input_ids"]
        assert spec.tokens == base.tokens and len(ids) + len(spec.tokens) > 3 * 8
        assert any(e.n_accepted < e.gamma for e in events)  # rejections happened past the window
        # and both are the model's own greedy output: one forward without a cache (the mask applies the window)
        with torch.no_grad():
            logits = target(torch.tensor([ids + base.tokens])).logits[0]
        assert logits[len(ids) - 1:-1].argmax(-1).tolist() == base.tokens
        # after the target-only run (the last here) the cache holds one window, not every token: both loops trim
        assert all(layer.keys.shape[-2] < SLIDING for layer in dec.target.cache.layers)


def test_a_prefill_trims_a_sliding_window_cache_to_its_window(tokenizer):
    # before transformers 5.18 the forward after a prefill failed while the prompt's recorded past was still held
    vocab = len(tokenizer)
    lm = CausalLM(make_model("mistral-sw", vocab_size=vocab, seed=1, layers=2), vocab)
    ids = torch.arange(1, 3 * SLIDING + 2)
    lm.prefill(ids[:-1])
    assert lm.length == 3 * SLIDING and all(layer.keys.shape[-2] < SLIDING for layer in lm.cache.layers)
    # the next forward sees the window it should: the same logits as one cache-free forward over everything
    assert torch.allclose(lm.forward(ids[-1:])[0], full_logits(lm, ids.tolist())[-1], atol=1e-4)


def test_a_sliding_draft_is_refused_on_an_old_transformers_only_where_a_sequence_fills_its_window(tokenizer,
                                                                                                monkeypatch):
    import transformers
    vocab = len(tokenizer)
    lm = CausalLM(make_model("mistral-sw", vocab_size=vocab, seed=1, layers=2), vocab)
    assert lm.sliding and lm.window == SLIDING
    monkeypatch.setattr(transformers, "__version__", "5.17.0")
    check_can_draft(lm, "d", SLIDING - 1, "p")  # never fills the window: runs on 5.17 too
    with pytest.raises(WorkbenchError, match=f"prompt 'p': draft 'd' has a {SLIDING}-token sliding attention window"):
        check_can_draft(lm, "d", SLIDING, "p")
    monkeypatch.setattr(transformers, "__version__", "5.18.0")
    check_can_draft(lm, "d", 10 * SLIDING, "p")
    plain = CausalLM(make_model("llama", vocab_size=vocab, seed=1, layers=1), vocab)
    assert not plain.sliding and plain.window is None


@pytest.mark.parametrize("spec", ["model", "early-exit:1"])
def test_a_sliding_draft_whose_window_the_request_never_fills_runs_on_any_transformers(tokenizer, spec):
    # the refusal above is for requests that reach the window: below it transformers 5.17 drafts correctly too
    vocab, max_new = len(tokenizer), 24
    ids = tokenizer(PROMPTS[2])["input_ids"]
    window = len(ids) + max_new + 1
    target = make_model("mistral-sw", vocab_size=vocab, seed=1, layers=3, window=window)
    draft = drafter(spec, target, vocab, make_model("mistral-sw", vocab_size=vocab, seed=2, layers=1, window=window))
    assert draft.lm.window == window
    check_can_draft(draft.lm, "d", len(ids) + max_new, "p")  # not refused, whatever the version
    spec_out, base, events = run_pair(decoding(target, vocab, max_new=max_new), draft, parse_policy("constant:4"), ids)
    assert spec_out.tokens == base.tokens and any(e.n_accepted < e.gamma for e in events)


@pytest.mark.parametrize("spec", ["model", "early-exit:2"])
def test_kv_caches_equal_a_fresh_prefill_after_many_rejections(tokenizer, spec):
    vocab = len(tokenizer)
    target = make_model("llama", vocab_size=vocab, seed=1, layers=3)
    dec = decoding(target, vocab, max_new=30)
    draft = drafter(spec, target, vocab, first_layers(target, 1))
    prompt = tokenizer("A speculative decoder drafts")["input_ids"]
    gen = generate_speculative(dec, draft, parse_policy("adaptive:5"), prompt, NullRecorder())
    ids = prompt + gen.tokens
    for lm in (dec.target, draft.lm):
        assert lm.length <= len(ids) - 1
        fresh = CausalLM(lm.model, vocab)
        fresh.forward(torch.tensor(ids[: lm.length]))
        for kept, ref in zip(lm.cache.layers, fresh.cache.layers):
            # a stale or misplaced token differs by O(1); batched vs incremental float32 differs by ~1e-6 relative
            assert torch.allclose(kept.keys, ref.keys, rtol=1e-4, atol=1e-4)
            assert torch.allclose(kept.values, ref.values, rtol=1e-4, atol=1e-4)


def test_early_exit_view_shares_weights_and_leaves_the_target_whole(tokenizer):
    from workbench.drafters.early_exit import first_layers_view

    target = make_model("llama", vocab_size=len(tokenizer), seed=1, layers=3)
    view = first_layers_view(target, 2)
    assert len(target.model.layers) == 3 and target.config.num_hidden_layers == 3
    assert len(view.model.layers) == 2 and view.config.num_hidden_layers == 2
    assert view.model.layers[0].self_attn.q_proj.weight is target.model.layers[0].self_attn.q_proj.weight
    assert view.lm_head.weight is target.lm_head.weight


@pytest.mark.parametrize("kind, blocks", [("opt", lambda m: m.model.decoder.layers),
                                          ("gpt_neox", lambda m: m.gpt_neox.layers)])
def test_early_exit_takes_apart_opt_and_gpt_neox(tokenizer, kind, blocks):
    from workbench.drafters.early_exit import first_layers_view

    vocab = len(tokenizer)
    target = make_model(kind, vocab_size=vocab, seed=1, layers=3)
    view = first_layers_view(target, 1)
    assert len(blocks(target)) == 3 and target.config.num_hidden_layers == 3  # the target is left whole
    assert len(blocks(view)) == 1 and blocks(view)[0] is blocks(target)[0]  # shared weights, not a copy
    ids = torch.tensor([tokenizer(PROMPTS[0])["input_ids"]])
    with torch.inference_mode():  # the view computes what a model of the first block alone computes
        assert torch.allclose(view(ids).logits, first_layers(target, 1)(ids).logits, atol=1e-5)
    for policy in ("constant:3", "heuristic:2"):
        dec = decoding(target, vocab, max_new=20)
        out, base, events = run_pair(dec, drafter("early-exit:1", target, vocab), parse_policy(policy),
                                     tokenizer(PROMPTS[1] * 2)["input_ids"])
        assert out.tokens == base.tokens and 0 < sum(e.n_accepted for e in events) < sum(e.gamma for e in events)


def test_early_exit_view_says_l_layers_whatever_the_config_calls_them():
    import transformers as hf

    from workbench.drafters.early_exit import first_layers_view

    ids = dict(vocab_size=64, bos_token_id=0, eos_token_id=0)
    for config in (hf.FalconConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, **ids),  # no n_layer
                   hf.GPT2Config(n_embd=32, n_layer=3, n_head=4, **ids)):  # n_layer, mapped to num_hidden_layers
        model = hf.AutoModelForCausalLM.from_config(config).eval()
        view = first_layers_view(model, 1)
        assert view.config.num_hidden_layers == 1 and model.config.num_hidden_layers == 3
        with torch.inference_mode():
            cache = view(torch.tensor([[1, 2, 3]]), use_cache=True).past_key_values
        assert len(cache.layers) == 1  # its own KV cache holds its one layer, not the target's three


def test_ngram_lookup_takes_the_latest_earlier_occurrence():
    from workbench.drafters.ngram import lookup

    ids = [1, 2, 3, 9, 1, 2, 3, 7, 8, 1, 2, 3]
    assert lookup(ids, 2, 3, 1) == [7, 8]          # the later "1 2 3" is followed by 7 8
    assert lookup(ids, 5, 3, 1) == [7, 8, 1, 2, 3]
    assert lookup([5, 6, 7], 3, 2, 1) == []       # no earlier occurrence of any suffix
    assert lookup([4, 5, 4], 2, 3, 1) == [5, 4]   # falls back to a 1-gram


def test_the_draft_signal_reads_the_entropy_only_for_a_policy_that_needs_it():
    from workbench.drafters.base import read_signal

    q = torch.tensor([0.5, 0.25, 0.25])
    conf, entropy = read_signal(q, torch.tensor(1), with_entropy=False)
    assert conf == 0.25 and entropy != entropy  # NaN: the full-vocabulary pass was skipped
    conf, entropy = read_signal(q, torch.tensor(0), with_entropy=True)
    assert conf == 0.5 and entropy == pytest.approx(1.5 * math.log(2))
    assert [parse_policy(s).reads_entropy for s in ("entropy:1.5", "threshold:0.4", "adaptive")] == [True, False, False]


def test_an_ngram_draft_cut_by_the_policy_is_labelled_threshold():
    from workbench.drafters.ngram import NgramDrafter

    class StopAfterOne:
        reads_draft, reads_entropy = True, False

        def stop_after(self, i, confidence, entropy):
            return True

    ngram = NgramDrafter("ngram:3:1", 3, 1, vocab=16, device=torch.device("cpu"))
    ids = [1, 2, 3, 4, 5, 1, 2, 3]  # "1 2 3" occurred before, followed by 4 5 1 2 3
    cut = ngram.propose(ids, 4, StopAfterOne(), SamplingConfig(), torch.Generator())
    assert cut.tokens == [4] and cut.stop == "threshold"
    whole = ngram.propose(ids, 4, parse_policy("constant:4"), SamplingConfig(), torch.Generator())
    assert whole.tokens == [4, 5, 1, 2] and whole.stop == "cap"
    short = ngram.propose(ids, 8, parse_policy("constant:8"), SamplingConfig(), torch.Generator())
    assert short.tokens == [4, 5, 1, 2, 3] and short.stop == "no-match"


def test_a_drafted_eos_ends_the_draft_and_stays_in_it():
    from workbench.drafters.base import Proposal, cut_at_eos

    q = torch.eye(10)[[5, 9, 7]]
    cut = cut_at_eos(Proposal(x=torch.tensor([5, 9, 7]), q=q, stop="cap", confidences=(1.0, 1.0, 1.0)), frozenset({9}))
    assert cut.tokens == [5, 9] and cut.stop == "eos" and len(cut.q) == 2 and cut.confidences == (1.0, 1.0)
    last = Proposal(x=torch.tensor([5, 9]), q=q[:2], stop="cap")
    assert cut_at_eos(last, frozenset({9})) is last  # an EOS drafted last: nothing to cut, the stop reason stays


def test_why_drafting_stopped_is_labelled_by_what_ended_it():
    from workbench.decoding import draft_stop

    assert draft_stop("cap", 4, 4, cap=4) == "cap"  # the policy planned its cap and drafted it all
    assert draft_stop("cap", 4, 4, cap=None) == "policy"  # a policy without a cap (constant:4) chose 4
    assert draft_stop("cap", 1, 1, cap=6) == "policy"  # a probe: planned below its cap
    assert draft_stop("cap", 2, 4, cap=4) == "budget"
    assert draft_stop("threshold", 2, 4, cap=4) == "threshold" and draft_stop("eos", 1, 4, cap=4) == "eos"


def test_a_draw_is_torch_multinomial_s_and_a_broken_distribution_draws_an_index_instead_of_asserting():
    from workbench.sampling import SamplingConfig, choose

    sampled = SamplingConfig(temperature=1.0)
    probs = torch.softmax(torch.randn(4, 30, generator=torch.Generator().manual_seed(0)), dim=-1)
    ours, theirs = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(3):  # the same draws and the same generator state as torch.multinomial, draw after draw
        assert torch.equal(choose(probs, sampled, ours), torch.multinomial(probs, 1, generator=theirs).squeeze(-1))
    assert torch.equal(ours.get_state(), theirs.get_state())
    # multinomial checks its input (on CUDA a device-side assert, fatal to the process's CUDA context); choose draws
    # a valid index from a NaN/inf row, and the loop's check_finite then names the model
    broken = torch.tensor([[float("nan")] * 5, [0.1, float("inf"), 0.2, 0.3, 0.4]])
    drawn = choose(broken, sampled, ours)
    assert drawn.shape == (2,) and ((0 <= drawn) & (drawn < 5)).all()
