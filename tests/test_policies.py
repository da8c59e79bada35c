"""Draft-length policies on their own: the adaptive policy's costs, plan and probes, the heuristic schedule, and
that every policy of a drafter learns from the steps of the others (the loop's side is in test_decoding)."""

from __future__ import annotations

import pytest

from workbench.policies import parse_policy


def test_adaptive_costs_are_per_k_means_with_lines_between():
    from workbench.adaptive import Costs

    c = Costs()
    for k, draft, verify in [(1, 2.0, 8.0), (1, 4.0, 10.0), (3, 6.0, 12.0)]:
        c.add(k, draft, verify, 1.0)
    # draft: means 3 (k = 1), 6 (k = 3) → line 1.5 + 1.5·k; verify: 9 (k = 2), 12 (k = 4) → 6 + 1.5·k; other 1
    assert c.step_ms(4) == pytest.approx([0 + 7.5 + 1, 3 + 9 + 1, 4.5 + 10.5 + 1, 6 + 12 + 1, 7.5 + 13.5 + 1])


@pytest.mark.parametrize("draft_ms, accepted, plan", [(40.0, 0, 0), (0.4, 4, 4)])
def test_adaptive_drafts_only_what_pays(draft_ms, accepted, plan):
    from workbench.adaptive import Adaptive
    from workbench.policies import StepOutcome

    policy = Adaptive(4)
    for _ in range(30):
        policy.observe(StepOutcome(gamma=4, n=accepted, confidences=(0.9,) * 4))
        policy.observe_times(4, draft_ms, 10.0, 0.0)
        policy.observe_times(0, 0.0, 9.0, 0.0)
    assert policy.plan() == plan  # drafts always rejected and dear: a target-only step; cheap and accepted: GMAX
    if plan:  # and it drafts on to its cap: no position before GMAX stops
        assert not any(policy.stop_after(i, 0.9, 0.0) for i in range(1, 4))


def test_adaptive_with_a_cap_of_one_drafts_one_token_when_it_pays():
    from workbench.adaptive import Adaptive
    from workbench.policies import StepOutcome

    policy = Adaptive(1)
    for _ in range(30):
        policy.observe(StepOutcome(gamma=1, n=1, confidences=(0.9,)))
        policy.observe_times(1, 0.4, 10.0, 0.0)
        policy.observe_times(0, 0.0, 9.0, 0.0)
    assert policy.plan() == 1


def test_adaptive_counts_a_step_as_fully_accepted_only_when_every_draft_was():
    from workbench.adaptive import Adaptive
    from workbench.policies import StepOutcome

    policy = Adaptive(4)
    policy.observe(StepOutcome(gamma=3, n=1, confidences=(0.9,) * 3))
    assert policy.after_full is False
    policy.observe(StepOutcome(gamma=3, n=2, confidences=(0.9,) * 3))  # learned as "after a partial acceptance"
    assert (policy.first_any[False].trials, policy.first_any[True].trials) == (2, 0)
    policy.observe(StepOutcome(gamma=3, n=3, confidences=(0.9,) * 3))
    assert policy.after_full is True
    policy.observe(StepOutcome(gamma=2, n=0, confidences=(0.9,) * 2))
    assert policy.first_any[True].trials == 1 and policy.after_full is False


@pytest.mark.parametrize("probe_accepted", [False, True])
def test_adaptive_probes_after_target_only_steps_so_it_can_draft_again(probe_accepted):
    from workbench.adaptive import PROBE, Adaptive
    from workbench.policies import StepOutcome

    policy = Adaptive(4)
    for _ in range(30):  # cheap drafts, all rejected: not worth drafting
        policy.observe(StepOutcome(gamma=4, n=0, confidences=(0.9,) * 4))
        policy.observe_times(4, 0.4, 10.0, 0.0)
        policy.observe_times(0, 0.0, 9.0, 0.0)
    plans = []
    while len(plans) < 200 and 4 not in plans:
        plans.append(policy.plan())
        k = plans[-1]
        policy.observe(StepOutcome(gamma=k, n=k if probe_accepted else 0, confidences=(0.9,) * k))
    probes = [i for i, k in enumerate(plans) if k == 1]
    if probe_accepted:  # one accepted probe: drafting pays again, at once
        assert probes == [PROBE] and plans[PROBE + 1:] == [4]
    else:  # probes keep failing: the wait doubles (16, 32, 64, …), so a useless draft costs little
        assert probes == [PROBE, 3 * PROBE + 1, 7 * PROBE + 2] and 4 not in plans


def test_heuristic_keeps_its_gamma_after_a_step_that_drafted_nothing():
    from workbench.policies import StepOutcome

    policy = parse_policy("heuristic:3")
    policy.observe(StepOutcome(gamma=0, n=0))  # an n-gram drafter found no match: no evidence either way
    assert policy.plan() == 3
    policy.observe(StepOutcome(gamma=3, n=3))
    assert policy.plan() == 5
    # "all accepted" compares with what was drafted: 2 of 2 (the budget cut the step short of 5) is a full step
    policy.observe(StepOutcome(gamma=2, n=2))
    assert policy.plan() == 7


def test_every_policy_of_a_drafter_learns_the_costs_of_its_steps(model_dirs, prompts_file):
    from workbench.config import RunConfig
    from workbench.prompts import load_prompts
    from workbench.runner import plan
    from workbench.session import Session

    cfg = RunConfig(target=str(model_dirs["target"]), drafts=(str(model_dirs["draft_prefix"]),),
                    policies=("constant:3", "adaptive:4"), prompts=str(prompts_file), max_new_tokens=8)
    session = Session.open(cfg)
    constant = next(s for s in plan(cfg, load_prompts(prompts_file)) if s.policy == "constant:3")
    session.run(constant, "r", 8)
    (adaptive,) = [p for (_, spec), p in session.policies.items() if spec == "adaptive:4"]
    assert 3 in adaptive.costs.draft  # it learned from the constant:3 request it did not run


def test_policies_learn_the_times_of_decode_steps_not_of_the_prefill():
    from workbench.session import _teach_times

    seen = []

    class Listener:
        def observe_times(self, gamma, draft_ms, verify_ms, other_ms):
            seen.append((gamma, verify_ms))

    steps = [{"step": 0, "gamma": 0, "draft_ms": 5.0, "verify_ms": 50.0, "other_ms": 1.0},  # the prefill (step 0)
             {"step": 1, "gamma": 4, "draft_ms": 2.0, "verify_ms": 9.0, "other_ms": 0.5},
             {"step": 2, "gamma": 0, "draft_ms": 0.0, "verify_ms": 7.0, "other_ms": 0.5}]
    _teach_times([Listener()], steps)
    assert seen == [(4, 9.0), (0, 7.0)]  # a prompt-long forward is no k = 1 verify
