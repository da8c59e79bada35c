"""Observing the decode loop: the loop reports a ``StepEvent`` per step to a ``Recorder``.

``TraceRecorder`` reduces each step's tensors to a few numbers at once (so no γ×V tensor outlives its step) and
builds the ``steps`` and ``tokens`` rows of docs/TRACE.md when the request ends and its clock is resolved.
``NullRecorder`` does nothing: the benchmark uses it to measure what tracing costs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Protocol

import torch

from workbench.rejection import acceptance_probability

NAN = math.nan


@dataclass
class StepEvent:
    step: int  # 0 = prefill
    gamma: int  # drafts proposed (0 for prefill and baseline steps)
    n_accepted: int  # drafts accepted by the rule
    emitted: list[int]  # tokens that entered the output
    context_len: int  # sequence length when the step started
    marks: tuple[int, int, int]  # clock marks: step start, after draft, after verify
    p: torch.Tensor  # target distributions of the step ([γ+1, V]; [1, V] for target-only steps)
    token: int  # the token the target produced (correction, bonus or plain target token)
    role: str  # role of that token: correction | bonus | target
    x: torch.Tensor | None = None  # drafted tokens [γ]
    q: torch.Tensor | None = None  # draft distributions [γ, V]
    gamma_planned: int = 0  # γ the policy planned before the step (before the budget clip and any early stop)
    draft_stop: str = ""  # why drafting ended: cap | policy | threshold | budget | eos | no-match ("" = no drafting)


class Recorder(Protocol):
    """What the decode loop reports to: one call per step, tensors valid only during the call."""

    def on_step(self, event: StepEvent) -> None: ...


class NullRecorder:
    def on_step(self, event: StepEvent) -> None:
        pass


@dataclass
class _Step:
    event: StepEvent  # with its tensors dropped
    draft_stats: list[list[float]] = field(default_factory=list)  # per draft: token, q, p, alpha_tv
    final_stats: tuple[float, float, float] = (NAN, NAN, NAN)  # target's token: q, p, alpha_tv


class TraceRecorder:
    """Collects one request's steps; ``rows()`` returns the ``steps`` and ``tokens`` table rows."""

    def __init__(self) -> None:
        self._steps: list[_Step] = []

    def on_step(self, event: StepEvent) -> None:
        self._steps.append(_reduce(event))

    def rows(self, times_ms: list[float], keys: dict, decode) -> tuple[list[dict], list[dict]]:
        """``times_ms``: the resolved clock marks; ``keys``: the row keys run_id / request_id; ``decode``: token id →
        text."""
        steps, tokens = [], []
        for i, rec in enumerate(self._steps):
            ev = rec.event
            start, after_draft, after_verify = (times_ms[m] for m in ev.marks)
            end = times_ms[self._steps[i + 1].event.marks[0]] if i + 1 < len(self._steps) else times_ms[-1]
            steps.append({**keys, "step": ev.step, "gamma": ev.gamma, "gamma_planned": ev.gamma_planned,
                          "draft_stop": ev.draft_stop, "n_accepted": ev.n_accepted,
                          "n_emitted": len(ev.emitted), "context_len": ev.context_len,
                          "draft_ms": after_draft - start, "verify_ms": after_verify - after_draft,
                          "other_ms": end - after_verify, "t_start_ms": start})
            tokens += _token_rows(rec, keys, decode)
        return steps, tokens


def _reduce(event: StepEvent) -> _Step:
    """Pull the per-token numbers out of the step's tensors in one host transfer."""
    p, x, q, n = event.p, event.x, event.q, event.n_accepted
    if x is None or x.shape[0] == 0:  # target-only step (baseline, prefill, or nothing drafted): p of the token
        rec = _Step(event=_strip(event))
        rec.final_stats = (NAN, float(p[-1, event.token]), NAN)
        return rec
    gamma = x.shape[0]
    rows = torch.arange(gamma, device=x.device)
    alpha = acceptance_probability(p[:gamma], q)  # Σ_x min(p, q) = 1 − TV(p, q), per position
    table = torch.stack([x.to(p.dtype), q[rows, x], p[rows, x], alpha], dim=1)
    # the target's own token: p at position n + 1, and q there when the draft had one (a correction, n < γ)
    final = torch.stack([q[min(n, gamma - 1), event.token], p[n, event.token]])
    flat = torch.cat([table.flatten(), final]).tolist()  # one host transfer per step
    rec = _Step(event=_strip(event), draft_stats=[flat[4 * i: 4 * i + 4] for i in range(gamma)])
    rec.final_stats = (flat[-2], flat[-1], flat[4 * n + 3]) if n < gamma else (NAN, flat[-1], NAN)
    return rec


def _strip(event: StepEvent) -> StepEvent:
    """The event without its tensors (they must not outlive the step)."""
    return dataclasses.replace(event, p=None, x=None, q=None)


def _token_rows(rec: _Step, keys: dict, decode) -> list[dict]:
    ev, n, emitted = rec.event, rec.event.n_accepted, len(rec.event.emitted)
    rows = []
    for i, (token, q, p, alpha) in enumerate(rec.draft_stats):
        rows.append({**keys, "step": ev.step, "position": i + 1, "token_id": int(token), "q": q, "p": p,
                     "accept_prob": min(1.0, p / q) if q > 0 else NAN, "accepted": i < n, "evaluated": i <= n,
                     "emitted": i < min(n, emitted), "alpha_tv": alpha, "role": "draft"})
    q, p, alpha = rec.final_stats
    position = 0 if ev.role == "target" else n + 1
    rows.append({**keys, "step": ev.step, "position": position, "token_id": ev.token, "q": q, "p": p,
                 "accept_prob": NAN, "accepted": False, "evaluated": False, "emitted": emitted == n + 1,
                 "alpha_tv": alpha, "role": ev.role})
    texts = decode([r["token_id"] for r in rows])
    for row, text in zip(rows, texts):
        row["token_text"] = text
    return rows
