"""The acceptance rule on hand-made p/q (the χ² tests of the whole loop are in test_lossless.py); the report's check
of greedy outputs against the baseline's."""

from __future__ import annotations

import torch

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
