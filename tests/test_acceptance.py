"""The acceptance rule on hand-made p/q; a χ² test that speculative sampling is lossless for every drafter and for
non-constant policies (and that the test can fail), and that target-only sampling follows the same law; the
report's check of greedy outputs against the baseline's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import chi2
from tiny_models import decoding, drafter, make_model

import workbench.decoding as decoding_module
from workbench.decoding import generate_baseline, generate_speculative
from workbench.policies import parse_policy
from workbench.recorder import NullRecorder
from workbench.rejection import Verdict, accept_greedy, accept_sampling, residual
from workbench.sampling import SamplingConfig, probabilities


def dist(*values):
    return torch.tensor(values, dtype=torch.float32)


def test_greedy_accepts_the_matching_prefix_then_takes_the_target_argmax():
    p = torch.stack([dist(0.1, 0.7, 0.1, 0.1), dist(0.1, 0.1, 0.1, 0.7), dist(0.7, 0.1, 0.1, 0.1)])
    assert accept_greedy(torch.tensor([1, 2]), p) == Verdict(n=1, token=3)
    assert accept_greedy(torch.tensor([1, 3]), p) == Verdict(n=2, token=0)  # all accepted: bonus = argmax p_3
    assert accept_greedy(torch.tensor([0, 3]), p) == Verdict(n=0, token=1)


def test_sampling_accepts_everything_when_p_equals_q():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(4, 6, generator=g), dim=-1)
    x = torch.tensor([0, 3, 5])
    for _ in range(50):
        assert accept_sampling(x, p, p[:3], g).n == 3


def test_sampling_rejects_a_token_the_target_never_produces_and_corrects_from_the_residual():
    g = torch.Generator().manual_seed(0)
    q = torch.stack([dist(0.5, 0.5, 0.0)])
    p = torch.stack([dist(0.0, 0.5, 0.5), dist(1.0, 0.0, 0.0)])
    for _ in range(50):
        verdict = accept_sampling(torch.tensor([0]), p, q, g)
        assert verdict == Verdict(n=0, token=2)  # residual max(0, p − q) puts all mass on token 2


def test_residual_is_the_normalised_positive_part():
    assert torch.allclose(residual(dist(0.2, 0.5, 0.3), dist(0.4, 0.2, 0.4)), dist(0.0, 1.0, 0.0))
    assert torch.allclose(residual(dist(0.5, 0.5), dist(0.5, 0.5)), dist(0.5, 0.5))  # p == q: falls back to p


def test_acceptance_frequency_is_min_one_p_over_q():
    g = torch.Generator().manual_seed(1)
    q, p = torch.stack([dist(0.6, 0.4)]), torch.stack([dist(0.3, 0.7), dist(0.5, 0.5)])
    hits = sum(accept_sampling(torch.tensor([0]), p, q, g).n for _ in range(4000))
    assert abs(hits / 4000 - 0.5) < 0.04  # p/q = 0.3/0.6


def test_top_k_and_top_p_filter_p_and_q_alike():
    logits = torch.log(dist(0.5, 0.3, 0.15, 0.05))
    assert torch.allclose(probabilities(logits, SamplingConfig(temperature=1.0, top_k=2)), dist(0.625, 0.375, 0, 0))
    assert torch.allclose(probabilities(logits, SamplingConfig(temperature=1.0, top_p=0.8)), dist(0.625, 0.375, 0, 0))
    assert torch.allclose(probabilities(logits, SamplingConfig(temperature=1.0, top_p=0.81)),
                          dist(0.5, 0.3, 0.15, 0) / 0.95)
    # both filters at once: top-k first (0.5, 0.3, 0.15 renormalised), then top-p over what is left
    assert torch.allclose(probabilities(logits, SamplingConfig(temperature=1.0, top_k=3, top_p=0.8)),
                          dist(0.625, 0.375, 0, 0))


def test_temperature_divides_the_logits():
    # checked against softmax itself: the χ² tests build their expectation with `probabilities`, so a wrong
    # temperature would follow them there unseen
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    for t in (0.5, 0.7, 2.0):
        assert torch.allclose(probabilities(logits, SamplingConfig(temperature=t)), torch.softmax(logits / t, -1))
    assert torch.allclose(probabilities(logits, SamplingConfig(temperature=0.0)), torch.softmax(logits, -1))


# --- lossless sampling: the joint law of generated tokens 1-3 must be the target's --------------------------------
VOCAB, PROMPT = 6, [1, 2, 1, 2, 1]
SETTINGS = SamplingConfig(temperature=1.0)


def _target(kind: str = "llama"):
    return make_model(kind, vocab_size=VOCAB, seed=11, layers=2, hidden=16)


@torch.inference_mode()
def _exact_target_joint(target, settings: SamplingConfig = SETTINGS) -> dict[tuple[int, int, int], float]:
    """P(t1, t2, t3 | prompt) under target-only sampling, computed from the target's distributions."""
    def next_dist(ids):
        return probabilities(target(torch.tensor([ids])).logits[0, -1], settings).tolist()
    joint = {}
    p1 = next_dist(PROMPT)
    for a in range(VOCAB):
        p2 = next_dist(PROMPT + [a])
        for b in range(VOCAB):
            p3 = next_dist(PROMPT + [a, b])
            for c in range(VOCAB):
                joint[(a, b, c)] = p1[a] * p2[b] * p3[c]
    return joint


def _chi2_pvalue(samples: int, seed: int, spec: str = "model", policy: str = "constant:2",
                 kind: str = "llama", settings: SamplingConfig = SETTINGS) -> float:
    """χ² p-value of 3-token samples against the exact target law; ``spec="baseline"``: target-only sampling."""
    target = _target(kind)
    draft_model = make_model("llama", vocab_size=VOCAB, seed=12, layers=1, hidden=16)
    expected = _exact_target_joint(target, settings)
    dec = decoding(target, VOCAB, sampling=settings, seed=seed, max_new=3)
    if spec == "baseline":  # the loop every speedup divides by must sample the target's law too
        sample = lambda: generate_baseline(dec, PROMPT, NullRecorder()).tokens  # noqa: E731
    else:
        draft, pol = drafter(spec, target, VOCAB, draft_model), parse_policy(policy)
        sample = lambda: generate_speculative(dec, draft, pol, PROMPT, NullRecorder()).tokens  # noqa: E731
    counts = dict.fromkeys(itertools.product(range(VOCAB), repeat=3), 0)
    for _ in range(samples):
        counts[tuple(sample())] += 1
    obs = np.array([counts[k] for k in expected])
    exp = np.array([expected[k] for k in expected]) * samples
    if obs[exp == 0].sum():  # a sequence the (filtered) target never produces: not lossless, whatever χ² says
        return 0.0
    obs, exp = obs[exp > 0], exp[exp > 0]
    # pool cells with small expectation into one, so the χ² approximation holds
    small = exp < 5
    if small.any():
        obs, exp = np.append(obs[~small], obs[small].sum()), np.append(exp[~small], exp[small].sum())
    stat = ((obs - exp) ** 2 / exp).sum()
    return float(chi2.sf(stat, df=len(obs) - 1))


@pytest.mark.parametrize("spec, policy", [("baseline", "-"), ("model", "constant:2"), ("model", "adaptive:3"),
                                          ("model", "threshold:0.5:3"), ("ngram:2:1", "constant:2"),
                                          ("early-exit:1", "heuristic:1")])
def test_speculative_sampling_matches_the_target_distribution(spec, policy):
    assert _chi2_pvalue(samples=3000, seed=0, spec=spec, policy=policy) > 0.001


# ~20 s each on this project's CPU: two cases cover temperature and both filters
@pytest.mark.parametrize("settings", [SamplingConfig(temperature=0.7, top_k=3),
                                      SamplingConfig(temperature=1.0, top_p=0.8)], ids=["T0.7-top_k3", "top_p0.8"])
def test_speculative_sampling_is_lossless_under_temperature_top_k_and_top_p(settings):
    # the filters apply to p and q alike; the output must follow the *filtered* target (zero mass outside it)
    assert _chi2_pvalue(samples=3000, seed=0, policy="threshold:0.5:3", settings=settings) > 0.001


@pytest.mark.parametrize("kind", ["qwen2", "gpt2"])
@pytest.mark.parametrize("spec, policy", [("ngram:2:1", "constant:2"), ("early-exit:1", "heuristic:1")])
def test_ngram_and_early_exit_are_lossless_on_other_architectures(kind, spec, policy):
    assert _chi2_pvalue(samples=3000, seed=0, spec=spec, policy=policy, kind=kind) > 0.001


@pytest.mark.parametrize("broken", ["always_accept", "correct_from_p"])
def test_the_chi2_test_catches_a_broken_rule(monkeypatch, broken):
    def always_accept(x, p, q, sampling, generator):
        return Verdict(n=len(x), token=int(torch.multinomial(p[len(x)], 1, generator=generator)))

    def correct_from_p(x, p, q, sampling, generator):  # accepts right, but corrects from p instead of the residual
        v = accept_sampling(x, p, q, generator)
        if v.n == len(x):
            return v
        return Verdict(n=v.n, token=int(torch.multinomial(p[v.n], 1, generator=generator)))

    rules = {"always_accept": always_accept, "correct_from_p": correct_from_p}
    monkeypatch.setattr(decoding_module, "accept", rules[broken])
    assert _chi2_pvalue(samples=3000, seed=0) < 0.001


def test_greedy_agreement_counts_outputs_equal_to_the_baseline_and_where_the_first_parts():
    import pandas as pd

    from workbench.analysis.acceptance import greedy_agreement

    def req(prompt, mode, out, drafter="d", temperature=0.0, run="r"):
        return dict(run_id=run, request_id=f"{prompt}/{mode}/{drafter}", prompt_id=prompt, mode=mode,
                    drafter="" if mode == "baseline" else drafter, policy="" if mode == "baseline" else "constant:2",
                    temperature=temperature, warmup=False, output_token_ids=out)
    rows = [req("a", "baseline", [1, 2, 3]), req("b", "baseline", [4, 5, 6]),
            req("a", "speculative", [1, 2, 3]), req("b", "speculative", [4, 9, 6]),  # parts at index 1
            req("c", "speculative", [7]),                                              # no baseline: not counted
            req("a", "speculative", [1, 2], drafter="e"),                              # shorter: parts at 2
            req("f", "baseline", [1, 1, 1, 1, 1]), req("f", "speculative", [1, 1, 1, 1, 2])]  # parts at 4
    table = greedy_agreement(pd.DataFrame(rows)).set_index("drafter")
    # first_difference: the earliest index at which any of the setting's outputs parts from its baseline
    assert table.loc["d", ["requests", "identical"]].tolist() == [3, 1] and table.loc["d", "first_difference"] == 1
    assert table.loc["e", "identical"] == 0 and table.loc["e", "first_difference"] == 2
    sampled = pd.DataFrame([{**r, "temperature": 0.8} for r in rows])
    assert greedy_agreement(sampled).empty  # at T > 0 outputs are samples: nothing to compare
