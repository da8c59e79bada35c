"""Draft-length policies: how many tokens to draft in each step, and when to stop drafting early.

Before a step the loop asks ``plan()`` for γ (0 = a target-only step); while drafting, a policy that ``reads_draft``
sees each drafted token's confidence (the draft's probability of its own token) — and its entropy, if it
``reads_entropy`` (a full-vocabulary pass, NaN otherwise) — and may stop early
(``stop_after``); after the step it sees the outcome (``observe``), and after each request with its drafter, under
any policy, the measured phase times of that request's steps (``observe_times``: on CUDA the clock is resolved only
at request boundaries, so times never arrive per step).
The same objects drive offline replay (workbench.analysis.replay), fed from recorded traces instead of models.

* ``constant:G`` — always draft G (Leviathan et al. 2023).
* ``heuristic[:G0]`` — start each request at G0 (5); +2 after a fully accepted step, −1 (never below 1) otherwise
  (HF ``num_assistant_tokens_schedule="heuristic_transient"``; HF's plain ``"heuristic"`` carries its last value
  over to the next generate call, through ``assistant_model.generation_config``).
* ``threshold:P[:GMAX]`` — stop after a drafted token whose confidence is < P (the token is kept, as HF does); cap
  GMAX (16) (HF ``assistant_confidence_threshold``, llama.cpp ``--draft-p-min``).
* ``entropy:H[:GMAX]`` — stop after a drafted token whose draft distribution has entropy > H nats (entropy stop
  rules such as AdaEDL).
* ``adaptive[:GMAX]`` — stop when one more draft token is expected to lower tokens per ms (online-calibrated
  acceptance, measured costs); may draft 0 (vLLM's adaptive K, SpecDec++; workbench/adaptive.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from workbench.errors import WorkbenchError

DEFAULT_GMAX = 16  # cap of the early-stopping policies: long enough not to bind on this project's pair
MAX_GAMMA = 64  # the longest draft a spec may ask for: a longer one is never useful and usually a typo
HEURISTIC_START = 5  # heuristic's G0 when not given (HF's num_assistant_tokens default)
HF_THRESHOLD = 0.4  # HF's default assistant_confidence_threshold (the replay widgets start there)
SYNTAX = "constant:G, heuristic[:G0], threshold:P[:GMAX], entropy:H[:GMAX], adaptive[:GMAX]"


@dataclass(frozen=True)
class StepOutcome:
    gamma: int  # tokens actually drafted (≤ what plan() said: early stop, EOS, no proposal, or the token budget)
    n: int  # drafts accepted
    confidences: tuple[float, ...] = ()  # draft's probability of each drafted token (policies that read drafts)


class Policy(Protocol):
    spec: str  # canonical spec, e.g. "threshold:0.4:16" (names the policy in request ids and reports)
    cap: int | None  # the most tokens a step may draft (None: no fixed cap, e.g. heuristic)
    reads_draft: bool  # True: drafters report each token's confidence and entropy (one small host read per token)
    reads_entropy: bool  # True: stop_after needs the draft's entropy (a full-vocabulary pass; NaN is passed otherwise)
    reads_clock: bool  # True: decisions depend on the measured phase times (``observe_times``), not on a seed

    def begin_request(self) -> None: ...
    def plan(self) -> int: ...
    def stop_after(self, i: int, confidence: float, entropy: float) -> bool: ...
    def observe(self, outcome: StepOutcome) -> None: ...
    def observe_times(self, gamma: int, draft_ms: float, verify_ms: float, other_ms: float) -> None: ...


class _Base:
    """Defaults: no early stop, nothing learned."""

    reads_draft = False
    reads_entropy = False
    reads_clock = False

    def begin_request(self) -> None:
        pass

    def stop_after(self, i: int, confidence: float, entropy: float) -> bool:
        return False

    def observe(self, outcome: StepOutcome) -> None:
        pass

    def observe_times(self, gamma: int, draft_ms: float, verify_ms: float, other_ms: float) -> None:
        pass


class Constant(_Base):
    def __init__(self, gamma: int):
        self.gamma, self.cap, self.spec = gamma, gamma, f"constant:{gamma}"

    def plan(self) -> int:
        return self.gamma


class Heuristic(_Base):
    """HF's schedule; restarts at G0 in every request, like HF's ``heuristic_transient`` (benchmarks/compare_hf.py)."""

    def __init__(self, start: int = HEURISTIC_START):
        self.start, self.spec, self.gamma, self.cap = start, f"heuristic:{start}", start, None

    def begin_request(self) -> None:
        self.gamma = self.start

    def plan(self) -> int:
        return self.gamma

    def observe(self, outcome: StepOutcome) -> None:
        # HF compares the matches with the candidates actually drafted (a budget-cut step counts as drafted). A step
        # that drafted nothing (an n-gram drafter with no match; a request's last token) says nothing: γ stays.
        if outcome.gamma:
            self.gamma = self.gamma + 2 if outcome.n == outcome.gamma else max(1, self.gamma - 1)


class _EarlyStop(_Base):
    """Plans GMAX and stops early on what each drafted token says (``stop_after``)."""

    reads_draft = True
    gmax: int

    def plan(self) -> int:
        return self.gmax


class Threshold(_EarlyStop):
    def __init__(self, p_min: float, gmax: int = DEFAULT_GMAX):
        self.p_min, self.gmax, self.cap, self.spec = p_min, gmax, gmax, f"threshold:{p_min:g}:{gmax}"

    def stop_after(self, i: int, confidence: float, entropy: float) -> bool:
        return confidence < self.p_min


class Entropy(_EarlyStop):
    reads_entropy = True

    def __init__(self, h_max: float, gmax: int = DEFAULT_GMAX):
        self.h_max, self.gmax, self.cap, self.spec = h_max, gmax, gmax, f"entropy:{h_max:g}:{gmax}"

    def stop_after(self, i: int, confidence: float, entropy: float) -> bool:
        return entropy > self.h_max


def parse_policy(spec: str) -> Policy:
    """A fresh policy object from its spec; one-line WorkbenchError naming the spec when it is malformed."""
    from workbench.adaptive import Adaptive

    name, *args = spec.strip().split(":")
    kinds = {"constant": (Constant, [_gamma], 1), "heuristic": (Heuristic, [_gamma], 0),
             "threshold": (Threshold, [_prob, _gamma], 1), "entropy": (Entropy, [_positive, _gamma], 1),
             "adaptive": (Adaptive, [_gamma], 0)}
    if name not in kinds:
        raise WorkbenchError(f"unknown policy {spec!r} (expected {SYNTAX})")
    cls, parsers, required = kinds[name]
    if not required <= len(args) <= len(parsers):
        raise WorkbenchError(f"policy {spec!r}: expected {SYNTAX}")
    return cls(*(parse(spec, value) for parse, value in zip(parsers, args)))


def parse_policies(specs) -> list[Policy]:
    """Parse a list of specs; refuses an empty list and duplicates (by canonical spec)."""
    policies = [parse_policy(s) for s in specs]
    if not policies:
        raise WorkbenchError("--policy: give at least one policy")
    names = [p.spec for p in policies]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise WorkbenchError(f"--policy lists {', '.join(dupes)} more than once")
    return policies


def _number(spec: str, text: str, kind: type, ok, what: str):
    """``text`` parsed as ``kind`` and checked by ``ok``; one-line WorkbenchError saying what it must be."""
    try:
        value = kind(text) if plain_number(text) else None
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise WorkbenchError(f"policy {spec!r}: {text!r} must be {what}")
    return value


def plain_number(text: str) -> bool:
    """Whether ``text`` is written as numbers usually are on a command line: ASCII, no surrounding spaces, no ``_``
    (Python's int() and float() also read "4_0" as 40, "٤" as 4 and " 4" as 4; a spec is recorded as typed, so it
    must say what it means)."""
    return text.isascii() and text == text.strip() and "_" not in text


def _gamma(spec: str, text: str) -> int:
    return _number(spec, text, int, lambda v: 1 <= v <= MAX_GAMMA,
                   f"a whole number of draft tokens from 1 to {MAX_GAMMA}")


def _prob(spec: str, text: str) -> float:
    return _number(spec, text, float, lambda v: 0.0 < v < 1.0, "a probability between 0 and 1 (exclusive)")


def _positive(spec: str, text: str) -> float:
    return _number(spec, text, float, lambda v: 0.0 < v < math.inf, "a positive number (nats)")  # NaN fails too
