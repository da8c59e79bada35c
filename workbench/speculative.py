"""The decoding loops: speculative (draft → verify → accept → rollback) and the target-only baseline.

Notation: p = target, q = draft, γ = draft length, n = accepted drafts. Cache invariant between steps: with ``ids``
the prompt plus everything emitted so far, the target's KV cache holds ``ids[:-1]`` (the last token is fed by the
next verify) and the draft's holds ``ids[:-1]`` or, after a fully accepted step, ``ids[:-2]`` (x_γ was never fed to
it); the draft catches up by reading every token it has not cached before drafting.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.acceptance import accept
from workbench.models import CausalLM
from workbench.recorder import StepEvent
from workbench.sampling import SamplingConfig, choose, probabilities
from workbench.timing import PhaseClock


@dataclass
class Decoding:
    """Everything a request's loop needs besides the prompt. One generator per run, never reseeded here."""

    target: CausalLM
    draft: CausalLM | None  # None for a baseline-only run
    sampling: SamplingConfig
    generator: torch.Generator
    clock: PhaseClock
    eos_ids: frozenset[int]  # empty = run to max_new_tokens
    max_new_tokens: int


@dataclass
class Generation:
    tokens: list[int]  # the generated tokens (prompt excluded)
    stop_reason: str  # "eos" or "max_new_tokens"


def prefill(lm: CausalLM, prompt: torch.Tensor) -> torch.Tensor:
    """Start a fresh cache with the whole prompt; returns the logits after its last token ([1, V])."""
    lm.reset()
    return lm.forward(prompt, last_only=True)


def draft(dec: Decoding, ids: list[int], gamma: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Propose x_1..x_γ from q, one token at a time; returns x [γ] and q [γ, V]."""
    # 1. read what the draft has not cached yet: the last emitted token (plus x_γ after a fully accepted step)
    unseen = torch.tensor(ids[dec.draft.length:], device=dec.draft.device)
    logits = dec.draft.forward(unseen, last_only=True)
    xs, qs = [], []
    for i in range(gamma):
        # 2. q_i from the draft's last logits; x_i by argmax or a draw — it stays on the device, no host sync
        q_i = probabilities(logits[-1], dec.sampling)
        x_i = choose(q_i, dec.sampling, dec.generator)
        xs.append(x_i)
        qs.append(q_i)
        # 3. feed x_i to get q_{i+1}; x_γ is not fed (its q would be unused) — the next step catches it up
        if i + 1 < gamma:
            logits = dec.draft.forward(x_i.view(1), last_only=True)
    return torch.stack(xs), torch.stack(qs)


def verify(dec: Decoding, last_token: int, x: torch.Tensor) -> torch.Tensor:
    """One target forward over [last token, x_1..x_γ]; returns p_1..p_{γ+1} ([γ+1, V])."""
    tokens = torch.cat([torch.tensor([last_token], device=x.device), x])
    return probabilities(dec.target.forward(tokens), dec.sampling)


def rollback(dec: Decoding, ids: list[int]) -> None:
    """Cut both caches back to the accepted sequence minus its last token, and check the invariant."""
    keep = len(ids) - 1
    dec.target.crop(keep)
    if dec.draft is not None:
        dec.draft.crop(min(dec.draft.length, keep))
        if dec.draft.length < keep - 1:
            raise RuntimeError(f"draft KV cache holds {dec.draft.length} tokens, sequence has {len(ids)}")


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


def first_token(dec: Decoding, ids: list[int], recorder, *, with_draft: bool) -> str | None:
    """Step 0: prefill (the draft too when speculative); the target's prediction is the first token."""
    prompt = torch.tensor(ids, device=dec.target.device)
    start = dec.clock.start()
    if with_draft:
        prefill(dec.draft, prompt)
    after_draft = dec.clock.mark() if with_draft else start
    p = probabilities(prefill(dec.target, prompt), dec.sampling)
    after_verify = dec.clock.mark()
    token = int(choose(p[-1], dec.sampling, dec.generator))
    emitted, stop = emit(dec, [token], 0)
    recorder.on_step(StepEvent(step=0, gamma=0, n_accepted=0, emitted=emitted, context_len=len(ids),
                               marks=(start, after_draft, after_verify), p=p, token=token, role="target"))
    ids += emitted
    return stop


def generate_speculative(dec: Decoding, prompt_ids: list[int], gamma: int, recorder) -> Generation:
    """Speculative decoding of one request; every step is reported to ``recorder.on_step``."""
    ids = list(prompt_ids)
    stop = first_token(dec, ids, recorder, with_draft=True)
    step = 0
    while stop is None:
        step, context_len = step + 1, len(ids)
        start = dec.clock.mark()
        # 1. draft γ tokens with q
        x, q = draft(dec, ids, gamma)
        after_draft = dec.clock.mark()
        # 2. verify them in one target forward → p_1..p_{γ+1}
        p = verify(dec, ids[-1], x)
        after_verify = dec.clock.mark()
        # 3. accept a prefix of n drafts; the target adds a correction (n < γ) or a bonus token (n = γ)
        verdict = accept(x, p, q, dec.sampling, dec.generator)
        emitted, stop = emit(dec, x[: verdict.n].tolist() + [verdict.token], len(ids) - len(prompt_ids))
        ids += emitted
        # 4. roll both KV caches back to the accepted sequence
        rollback(dec, ids)
        recorder.on_step(StepEvent(step=step, gamma=gamma, n_accepted=verdict.n, emitted=emitted,
                                   context_len=context_len, marks=(start, after_draft, after_verify),
                                   p=p, token=verdict.token, role=verdict.role(gamma), x=x, q=q))
    dec.clock.mark()  # end of the last step
    return Generation(tokens=ids[len(prompt_ids):], stop_reason=stop)


def generate_baseline(dec: Decoding, prompt_ids: list[int], recorder) -> Generation:
    """Target-only autoregressive decoding through the same wrapper, clock and recorder."""
    ids = list(prompt_ids)
    stop = first_token(dec, ids, recorder, with_draft=False)
    step = 0
    while stop is None:
        step, context_len = step + 1, len(ids)
        start = dec.clock.mark()
        p = probabilities(dec.target.forward(torch.tensor([ids[-1]], device=dec.target.device)), dec.sampling)
        after_verify = dec.clock.mark()
        token = int(choose(p[-1], dec.sampling, dec.generator))
        emitted, stop = emit(dec, [token], len(ids) - len(prompt_ids))
        ids += emitted
        recorder.on_step(StepEvent(step=step, gamma=0, n_accepted=0, emitted=emitted, context_len=context_len,
                                   marks=(start, start, after_verify), p=p, token=token, role="target"))
    dec.clock.mark()
    return Generation(tokens=ids[len(prompt_ids):], stop_reason=stop)
