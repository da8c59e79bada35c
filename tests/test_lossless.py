"""A χ² test that speculative sampling is lossless: for every drafter, for non-constant policies, under temperature
and the top-k/top-p filters and on three architectures (and that the test can fail), and that target-only sampling
follows the same law. ~15-20 s each on this project's CPU; in their own file so pytest-xdist can run them beside the
rest of the suite."""

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
from workbench.rejection import Verdict, accept_sampling
from workbench.sampling import SamplingConfig, probabilities

# The joint law of generated tokens 1-3 (after a fixed prompt, over a 6-token vocabulary) must be the target's.
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
