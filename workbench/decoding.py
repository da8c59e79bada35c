"""The decoding loops: speculative (plan → draft → verify → accept → rollback) and the target-only baseline.

Notation: p = target, q = draft, γ = tokens drafted in a step, n = drafts accepted. Cache invariant between steps:
with ``ids`` the prompt plus everything emitted so far, the target's KV cache holds ``ids[:-1]`` (the last token is
fed by the next verify); each drafter keeps its own invariant (workbench.drafters). γ is clipped so that a step never
proposes past the request's token budget (as HF does), and every forward's probabilities are checked for NaN/inf
(one reduction and one host read per step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.drafters.base import Drafter, Proposal, cut_at_eos
from workbench.errors import WorkbenchError
from workbench.lm import CausalLM
from workbench.policies import Policy, StepOutcome
from workbench.recorder import Recorder, StepEvent
from workbench.rejection import accept
from workbench.sampling import SamplingConfig, choose, probabilities
from workbench.timing import PhaseClock


class NonFiniteLogits(WorkbenchError):
    """A forward produced NaN or inf: the run stops instead of averaging garbage."""

    def __init__(self, model: str, step: int):
        super().__init__(f"the {model} produced NaN/inf logits at step {step}")
        self.model, self.step = model, step


@dataclass
class Decoding:
    """Everything a request's loop needs besides the prompt, the drafter and the policy."""

    target: CausalLM
    sampling: SamplingConfig
    generator: torch.Generator  # one per run, never reseeded here
    clock: PhaseClock
    eos_ids: frozenset[int]  # empty = run to max_new_tokens
    max_new_tokens: int

    @classmethod
    def create(cls, pair, sampling: SamplingConfig, *, seed: int, max_new_tokens: int,
               ignore_eos: bool = False) -> Decoding:
        """The one constructor: from a loaded ``ModelPair`` and the run's settings."""
        return cls(target=pair.target, sampling=sampling,
                   generator=torch.Generator(device=pair.device).manual_seed(seed), clock=PhaseClock(pair.device),
                   eos_ids=frozenset() if ignore_eos else pair.eos_ids(), max_new_tokens=max_new_tokens)


@dataclass
class Generation:
    tokens: list[int]  # the generated tokens (prompt excluded)
    stop_reason: str  # "eos" or "max_new_tokens"


def check_finite(step: int, p: torch.Tensor, q: torch.Tensor | None = None) -> None:
    """One reduction per step; says which model when a forward produced NaN/inf."""
    total = p.sum() if q is None else p.sum() + q.sum()
    if not torch.isfinite(total):
        bad_target = not torch.isfinite(p).all()
        raise NonFiniteLogits("target" if bad_target else "draft", step)


def draft(dec: Decoding, drafter: Drafter, policy: Policy, ids: list[int], gamma: int) -> Proposal:
    """Up to γ tokens from q (the policy may stop early; a drafted EOS ends the draft). A q that holds NaN/inf (a
    broken draft) still draws valid token ids (``sampling.choose``); the step's ``check_finite`` names the draft."""
    return cut_at_eos(drafter.propose(ids, gamma, policy, dec.sampling, dec.generator), dec.eos_ids)


def verify(dec: Decoding, last_token: int, x: torch.Tensor) -> torch.Tensor:
    """One target forward over [last token, x_1..x_γ]; returns p_1..p_{γ+1} ([γ+1, V]). The last token goes in by a
    fill, not a host→device copy: on CUDA a copy from pageable memory waits for the stream, so the host would wait
    for the queued draft kernels before it could queue the verify's."""
    tokens = torch.cat([torch.full((1,), last_token, dtype=torch.long, device=dec.target.device), x])
    return probabilities(dec.target.forward(tokens), dec.sampling)


def emit(dec: Decoding, proposal: list[int], generated: int) -> tuple[list[int], str | None]:
    """The prefix of ``proposal`` that enters the output, and why the request stops (None = go on)."""
    out: list[int] = []
    for token in proposal:
        out.append(token)
        if token in dec.eos_ids:
            return out, "eos"
        if generated + len(out) >= dec.max_new_tokens:
            return out, "max_new_tokens"
    return out, None


def first_token(dec: Decoding, ids: list[int], recorder: Recorder, drafter: Drafter | None) -> str | None:
    """Step 0: prefill (the drafter too, when speculative); the target's prediction is the first token."""
    prompt = torch.tensor(ids, device=dec.target.device)
    start = dec.clock.start()
    if drafter is not None:
        drafter.begin(prompt)
    after_draft = dec.clock.mark() if drafter is not None else start
    p = probabilities(dec.target.prefill(prompt), dec.sampling)
    after_verify = dec.clock.mark()
    check_finite(0, p)
    token = int(choose(p[-1], dec.sampling, dec.generator))
    emitted, stop = emit(dec, [token], 0)
    recorder.on_step(StepEvent(step=0, gamma=0, n_accepted=0, emitted=emitted, context_len=len(ids),
                               marks=(start, after_draft, after_verify), p=p, token=token, role="target"))
    ids += emitted
    return stop


def draft_stop(proposal_stop: str, gamma: int, planned: int, cap: int | None) -> str:
    """Why drafting ended: the drafter's own reason, else the budget, the policy's choice, or its cap."""
    if proposal_stop != "cap":
        return proposal_stop
    if gamma < planned:
        return "budget"
    return "cap" if cap is not None and planned >= cap else "policy"


def generate_speculative(dec: Decoding, drafter: Drafter, policy: Policy, prompt_ids: list[int],
                         recorder: Recorder) -> Generation:
    """Speculative decoding of one request; every step is reported to ``recorder.on_step``."""
    ids = list(prompt_ids)
    policy.begin_request()
    stop = first_token(dec, ids, recorder, drafter)
    step = 0
    while stop is None:
        step, context_len, generated = step + 1, len(ids), len(ids) - len(prompt_ids)
        start = dec.clock.mark()
        # 1. plan γ (0 = a target-only step), never past the token budget
        planned = policy.plan()
        gamma = min(planned, dec.max_new_tokens - generated - 1)
        # 2. draft up to γ tokens with q (the policy may stop early; a drafted EOS ends the draft)
        proposal = draft(dec, drafter, policy, ids, gamma)
        after_draft = dec.clock.mark()
        # 3. verify them in one target forward → p_1..p_{k+1}
        p = verify(dec, ids[-1], proposal.x)
        after_verify = dec.clock.mark()
        check_finite(step, p, proposal.q)
        # 4. accept a prefix of n drafts; the target adds a correction (n < k) or a bonus token (n = k)
        k = len(proposal.x)
        verdict = accept(proposal.x, p, proposal.q, dec.sampling, dec.generator)
        emitted, stop = emit(dec, proposal.tokens[: verdict.n] + [verdict.token], generated)
        ids += emitted
        # 5. roll the caches back to the accepted sequence; tell the policy what happened
        dec.target.crop(len(ids) - 1)
        drafter.rollback(ids)
        policy.observe(StepOutcome(gamma=k, n=verdict.n, confidences=proposal.confidences))
        recorder.on_step(StepEvent(step=step, gamma=k, n_accepted=verdict.n, emitted=emitted,
                                   context_len=context_len, marks=(start, after_draft, after_verify), p=p,
                                   token=verdict.token, role=verdict.role(k), x=proposal.x, q=proposal.q,
                                   gamma_planned=planned,
                                   draft_stop=draft_stop(proposal.stop, k, planned, policy.cap)))
    dec.clock.mark()  # end of the last step
    return Generation(tokens=ids[len(prompt_ids):], stop_reason=stop)


def generate_baseline(dec: Decoding, prompt_ids: list[int], recorder: Recorder) -> Generation:
    """Target-only autoregressive decoding through the same wrapper, clock and recorder."""
    ids = list(prompt_ids)
    stop = first_token(dec, ids, recorder, None)
    step = 0
    while stop is None:
        step, context_len = step + 1, len(ids)
        start = dec.clock.mark()
        p = probabilities(dec.target.forward(torch.tensor([ids[-1]], device=dec.target.device)), dec.sampling)
        after_verify = dec.clock.mark()
        check_finite(step, p)
        token = int(choose(p[-1], dec.sampling, dec.generator))
        emitted, stop = emit(dec, [token], len(ids) - len(prompt_ids))
        ids += emitted
        dec.target.crop(len(ids) - 1)  # removes nothing; trims a sliding-window layer as a speculative step does
        recorder.on_step(StepEvent(step=step, gamma=0, n_accepted=0, emitted=emitted, context_len=context_len,
                                   marks=(start, start, after_verify), p=p, token=token, role="target"))
    dec.clock.mark()
    return Generation(tokens=ids[len(prompt_ids):], stop_reason=stop)
