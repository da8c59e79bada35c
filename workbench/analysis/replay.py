"""Offline replay: what a draft-length policy would have done on a recorded run, without running a model.

A *prediction*, always shown beside live measurements (docs/REPLAY.md states what it approximates). For each
recorded output (the first speculative request of each prompt × drafter) replay walks the output token by token,
asks the very policy objects the live loop uses (``workbench.policies``) how much to draft, and reads off what the
draft would have proposed from the run's teacher-forced ``forced`` table (model drafters) or by redoing the lookup
(n-gram). Under greedy decoding this is exact for acceptance (n per step, tokens per step) as long as the draft stays
on the accepted path; the confidences of drafts *after* a rejection are not observed (they only cost draft time), and
replay uses the confidence recorded at the same output position in their place. Time comes from the run's measured
step costs (``latency.StepCosts``: mean draft and verify time per k); the predicted speedup divides the baseline
measured on the same prompt (in the same run; for a sweep's speculative run, in the sweep's baseline run:
``with_baseline``) by the replayed speculative time. At T > 0 acceptance is drawn with the recorded
α = Σ min(p, q) of each position (expected acceptance: one seeded draw per position, shared by every policy and the
oracle) along the one recorded path.
The oracle drafts exactly the tokens that will be accepted: the bound every policy is measured against.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd

from workbench.analysis import frames, latency
from workbench.analysis.recorded import Recorded, ngram_of, recorded_outputs, token_budget
from workbench.drafters.ngram import lookup
from workbench.errors import WorkbenchError
from workbench.policies import StepOutcome, parse_policy
from workbench.trace import Trace

ORACLE = "oracle"  # the bound: drafts exactly the tokens that will be accepted (never a live policy)
# Figures replay predicts that a live run also measures (``live_table`` adds each as ``measured_<name>``)
MEASURED_TOO = ("tokens_per_step", "acceptance_rate", "wasted_per_token", "target_calls_per_100")
# What the "replay against live" table shows: each figure replayed (a prediction) beside the same one measured live
AGREEMENT = ["policy", "prompts", "tokens_per_step", "measured_tokens_per_step", "tau_error", "predicted_speedup",
             "measured_speedup", "speedup_error"]


def _propose(rec: Recorded, g: int, gamma: int, policy, ngram: tuple[int, int] | None, accept: np.ndarray,
             conf: np.ndarray):
    """Drafted count k, accepted n and the confidences of one step starting at output position g; ``accept[t]``:
    whether a draft at output position t is accepted (``_accepts``); ``conf[t]``: the confidence a policy reads
    there (``_confidences``)."""
    if ngram:
        tokens = lookup(rec.prompt_ids + rec.output[:g], gamma, *ngram)
        if policy is not None and policy.reads_draft:
            for i in range(1, len(tokens)):
                if policy.stop_after(i, 1.0, 0.0):
                    tokens = tokens[:i]
                    break
        truth = rec.output[g:g + len(tokens)]
        n = next((i for i, (x, o) in enumerate(zip(tokens, truth)) if x != o), min(len(tokens), len(truth)))
        return len(tokens), n, (1.0,) * len(tokens)
    k, n, on_path, confs = 0, 0, True, []
    for i in range(1, gamma + 1):
        t = min(g + i - 1, len(rec.output) - 1)
        k += 1
        on_path = on_path and bool(accept[t])
        n += on_path
        confs.append(float(conf[t]))
        if policy is not None and policy.reads_draft and i < gamma and policy.stop_after(i, conf[t], rec.entropy[t]):
            break
    return k, n, tuple(confs)


def _oracle_k(rec: Recorded, g: int, gamma: int, ngram, accept: np.ndarray) -> int:
    if ngram:
        tokens = lookup(rec.prompt_ids + rec.output[:g], gamma, *ngram)
        truth = rec.output[g:g + len(tokens)]
        return next((i for i, (x, o) in enumerate(zip(tokens, truth)) if x != o), min(len(tokens), len(truth)))
    k = 0
    while k < gamma and g + k < len(rec.output) and accept[g + k]:
        k += 1
    return k


def _accepts(rec: Recorded, greedy: bool, seed: int) -> np.ndarray:
    """Whether a draft at each output position is accepted: under greedy decoding the recorded match; at T > 0 one
    seeded draw per position with the recorded draw's min(1, p/q) (``sample_accept``; α, the expected acceptance,
    in runs that did not record it), the same draws for every policy and the oracle, so the oracle bounds every
    policy on the same outcomes."""
    if greedy:
        return np.asarray(rec.match, dtype=bool)
    prob = rec.sample_accept if rec.sample_accept is not None else rec.alpha
    return np.random.default_rng(seed).random(len(prob)) < np.asarray(prob, dtype=float)


def _confidences(rec: Recorded, greedy: bool) -> np.ndarray:
    """What a policy reading the draft's confidence sees at each position: the argmax's q under greedy decoding
    (what the live draft proposes), at T > 0 the q of the recorded draw (a sampled token, as live; runs that did
    not record one give the argmax's, which is higher: such policies then draft longer than they did)."""
    return rec.conf if greedy or rec.sample_conf is None else rec.sample_conf


def replay_request(rec: Recorded, policy, costs: latency.StepCosts, max_new: int, ngram=None, greedy: bool = True,
                   seed: int = 0) -> list[dict]:
    """Replayed steps of one recorded output; ``policy`` None = the oracle. A policy that reads the clock first
    learns the times the run measured before this prompt (``Recorded.times_before``), as it did live; the others
    learn the replayed times."""
    if policy is not None and policy.reads_clock:
        for row in rec.times_before:
            policy.observe_times(*row)
    accept, conf = _accepts(rec, greedy, seed), _confidences(rec, greedy)
    if policy is not None:
        policy.begin_request()
    rows, g, total = [], 1, len(rec.output)
    while g < total:
        budget = max_new - g - 1
        planned = policy.plan() if policy is not None else budget
        gamma = max(0, min(planned, budget))
        if policy is None:
            k = n = _oracle_k(rec, g, gamma, ngram, accept)
            confs = ()
        else:
            k, n, confs = _propose(rec, g, gamma, policy, ngram, accept, conf)
        emitted = min(n + 1, total - g)
        draft_ms, verify_ms, other_ms = costs.step_ms(planned, k)
        if policy is not None:
            policy.observe(StepOutcome(gamma=k, n=n, confidences=confs))
        rows.append({"gamma": k, "n_accepted": n, "n_emitted": emitted, "draft_ms": draft_ms,
                     "verify_ms": verify_ms, "other_ms": other_ms})
        g += emitted
    if policy is not None and not policy.reads_clock:
        for r in rows:
            policy.observe_times(r["gamma"], r["draft_ms"], r["verify_ms"], r["other_ms"])
    return rows


def run_costs(trace: Trace, drafter: str) -> dict[bool, latency.StepCosts]:
    """The run's step costs of ``drafter`` for policies that read each drafted token (True) and those that do not
    (False): reading costs a host sync per drafted token."""
    costs = latency.cost_model(trace.steps, trace.requests, drafter)
    return {kind: latency.step_costs(trace.steps, trace.requests, drafter, reads_draft=kind, costs=costs)
            for kind in (False, True)}


def replay_policy(recorded: list[Recorded], spec, costs, *, max_new: int, greedy: bool = True,
                  ngram: tuple[int, int] | None = None) -> pd.DataFrame:
    """Per recorded prompt: replayed totals and predicted ms/token of one policy (a spec string, a Policy object,
    or ``ORACLE``). One policy object walks all prompts in order, so a learning policy learns as it would live.
    ``costs``: a ``latency.StepCosts``, or ``run_costs``' pair, of which the policy's kind is taken (the oracle
    reads nothing)."""
    policy = None if spec == ORACLE else (parse_policy(spec) if isinstance(spec, str) else spec)
    fresh = copy.deepcopy(policy)  # what a new session starts from: a resumed run's sessions each open new policies
    name = ORACLE if policy is None else policy.spec
    if isinstance(costs, dict):
        costs = costs[bool(policy is not None and policy.reads_draft)]
    c = costs.costs
    rows = []
    for i, rec in enumerate(recorded):
        if rec.warmup and i:  # a later session's warm-up (the first record of its session): new policy objects
            policy = copy.deepcopy(fresh)
        steps = replay_request(rec, policy, costs, len(rec.output) if rec.warmup else max_new, ngram, greedy, seed=i)
        if rec.warmup:
            continue
        tokens = len(rec.output)
        spec_ms = c.prefill_spec + sum(s["draft_ms"] + s["verify_ms"] + s["other_ms"] for s in steps)
        # the baseline is not predicted: it was measured on the same prompt (the cost model where it was not)
        base_ms = (rec.base_ms_per_token * tokens if np.isfinite(rec.base_ms_per_token)
                   else c.prefill_base + (tokens - 1) * c.base_token_ms)
        rows.append({"policy": name, "prompt_id": rec.prompt_id, "category": rec.category, "tokens": tokens,
                     "steps": len(steps), "drafted": sum(s["gamma"] for s in steps),
                     "accepted": sum(s["n_accepted"] for s in steps),
                     "tau_sum": sum(s["n_accepted"] + 1 for s in steps), "spec_ms": spec_ms, "base_ms": base_ms,
                     "speedup": base_ms / spec_ms})
    return pd.DataFrame(rows)


def summarize(per_prompt: pd.DataFrame, by=("policy",)) -> pd.DataFrame:
    """Per policy (and ``by``): replayed tokens per step, target calls per 100 tokens, draft tokens wasted per
    emitted token, acceptance and the predicted speedup (per-prompt median, as measured speedups are)."""
    g = per_prompt.groupby(list(by), sort=False)
    out = pd.DataFrame({
        "prompts": g.size(), "tokens_per_step": g["tau_sum"].sum() / g["steps"].sum(),
        "target_calls_per_100": 100 * (g["steps"].sum() + g.size()) / g["tokens"].sum(),
        "draft_tokens": g["drafted"].sum(), "wasted_per_token": (g["drafted"].sum() - g["accepted"].sum())
        / g["tokens"].sum(), "acceptance_rate": g["accepted"].sum() / g["drafted"].sum().where(g["drafted"].sum() > 0),
        "predicted_speedup": g["speedup"].median()})
    return out.reset_index()


def replay(trace: Trace, drafter: str, specs, *, limit: int = 200,
           recorded: list[Recorded] | None = None) -> pd.DataFrame:
    """Per-prompt replay of every policy in ``specs`` (strings, Policy objects or ``ORACLE``) for ``drafter``.
    A sweep's speculative run has no baseline of its own: give it ``with_baseline(trace, its sweep's baseline
    run)``, which adds that run's baseline requests (the speedups' denominators) and their steps (the target-only
    forwards of the step costs), as a baseline of the run's own would be. ``recorded``: the outputs to walk, if not
    ``recorded_outputs(trace, drafter, limit)`` as they are (e.g. with some recorded columns dropped)."""
    recorded = recorded if recorded is not None else recorded_outputs(trace, drafter, limit)
    costs = run_costs(trace, drafter)
    if not costs[False].costs.has_baseline:
        raise WorkbenchError("replay: the run has no baseline requests: a predicted speedup needs the target-only "
                             "cost measured in the same run (or, for a sweep's run, in the sweep's baseline run)")
    if sampled_ngram(trace, drafter):
        raise WorkbenchError("replay: n-gram drafters replay only from greedy runs (T = 0)")
    greedy = float(frames.measured_requests(trace.requests)["temperature"].max()) == 0.0
    max_new = token_budget(trace)
    return pd.concat([replay_policy(recorded, s, costs, max_new=max_new, greedy=greedy, ngram=ngram_of(drafter))
                      for s in specs], ignore_index=True)


def with_baseline(trace: Trace, baseline: Trace, where: str = "the baseline run") -> Trace:
    """``trace`` (one run, with no baseline requests of its own) with the measured baseline requests of another run
    (``baseline``, at ``where``: a sweep's baseline run) and their steps added under ``trace``'s run id, so each
    pairs with the same prompt and temperature exactly as a baseline of the run's own would (``frames.BASELINE_KEY``;
    the sweep report pairs them the same way, ``frames.paired_speedups(..., baseline=)``). The ratios are then
    across two runs. Refuses a baseline that lacks one of the run's measured prompts."""
    req = frames.measured_requests(trace.requests)
    if (req["mode"] == "baseline").any():
        raise WorkbenchError(f"replay: the run has baseline requests of its own; {where} is not read")
    base = frames.measured_requests(baseline.requests)
    base = base[base["mode"] == "baseline"]
    have = set(zip(base["prompt_id"], base["temperature"]))
    spec = req[req["mode"] == "speculative"]
    lack = sorted({p for p, t in zip(spec["prompt_id"], spec["temperature"]) if (p, t) not in have})
    if lack:
        shown = ", ".join(lack[:5]) + (", …" if len(lack) > 5 else "")
        raise WorkbenchError(f"replay: {where} has no measured baseline request for {len(lack)} of the run's "
                             f"{spec['prompt_id'].nunique()} prompts ({shown}) at its temperature: rerun the sweep "
                             "to finish it")
    run_id = trace.meta["run_id"]
    steps = baseline.steps[baseline.steps["request_id"].isin(base["request_id"])].assign(run_id=run_id)
    return dataclasses.replace(trace, requests=pd.concat([trace.requests, base.assign(run_id=run_id)],
                                                         ignore_index=True),
                               steps=pd.concat([trace.steps, steps], ignore_index=True))


def live_vs_replay(trace: Trace, drafter: str, *, oracle: bool = False, limit: int = 200) -> pd.DataFrame:
    """Every policy measured live with ``drafter`` beside its replay: tokens per step and speedup, and the
    relative errors of the replay (the check that replay can be trusted on this run); ``oracle`` adds its row
    (replayed only: no live figure, no error)."""
    req = frames.measured_requests(trace.requests)
    policies = sorted(set(req[req["drafter"] == drafter]["policy"])) + ([ORACLE] if oracle else [])
    out = live_table(trace, drafter, summarize(replay(trace, drafter, policies, limit=limit)))
    out["tau_error"] = out["tokens_per_step"] / out["measured_tokens_per_step"] - 1
    out["speedup_error"] = out["predicted_speedup"] / out["measured_speedup"] - 1
    return out


def live_table(trace: Trace, drafter: str, replayed: pd.DataFrame) -> pd.DataFrame:
    """``summarize`` output with the live measurement of the same policy beside it (NaN if it did not run): its
    speedup with the 95 % bootstrap interval over prompts (measured_lo / measured_hi, ``intervals``), and its tokens
    per step, acceptance rate, draft tokens wasted per token and target calls per 100 tokens, counted as
    ``summarize`` counts the replayed ones (``measured_*``). A run has one temperature (``--resume`` refuses another),
    so the policy names the live row."""
    from workbench.analysis import acceptance, intervals, speedup

    acc = acceptance.acceptance_by(trace.steps, None, trace.requests, ["drafter", "policy"])
    req = frames.measured_requests(trace.requests)
    made = req[req["mode"] == "speculative"].groupby(["drafter", "policy"]).agg(
        requests=("request_id", "size"), tokens=("new_tokens", "sum")).reset_index()
    acc = acc.merge(made, on=["drafter", "policy"])
    acc["wasted_per_token"] = (acc["drafted"] - acc["accepted"]) / acc["tokens"]
    acc["target_calls_per_100"] = 100 * (acc["steps"] + acc["requests"]) / acc["tokens"]  # the prefill is a call
    sure = intervals.speedup_intervals(trace.requests).rename(columns={"speedup_lo": "measured_lo",
                                                                       "speedup_hi": "measured_hi"})
    live = speedup.speedup_table(trace.requests).drop(columns="requests").merge(acc, on=["drafter", "policy"]).merge(
        sure, on=frames.SETTING, how="left")
    live = live[live["drafter"] == drafter].rename(columns={c: f"measured_{c}" for c in MEASURED_TOO} | {
        "speedup": "measured_speedup"})
    return replayed.merge(live[["policy", "measured_speedup", "measured_lo", "measured_hi",
                                *(f"measured_{c}" for c in MEASURED_TOO)]], on="policy", how="left")


def replayable(trace: Trace, drafter: str) -> bool:
    """Whether ``replay`` can run for ``drafter``: a baseline, and teacher-forced data (or an n-gram drafter of a
    greedy run)."""
    req = frames.measured_requests(trace.requests)
    has_forced = trace.forced is not None and len(trace.forced) and drafter in set(trace.forced["drafter"])
    return bool((req["mode"] == "baseline").any() and (has_forced or ngram_of(drafter) is not None)
                and not sampled_ngram(trace, drafter))


def sampled_ngram(trace: Trace, drafter: str) -> bool:
    """Whether ``drafter`` is an n-gram lookup in a run sampled at T > 0: replay redoes the lookup along the one
    recorded output, which is exact only under greedy decoding, so it does not replay it."""
    return ngram_of(drafter) is not None and float(frames.measured_requests(trace.requests)["temperature"].max()) > 0
