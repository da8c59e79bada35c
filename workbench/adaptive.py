"""The ``adaptive[:GMAX]`` policy: draft while one more token is expected to raise tokens per millisecond.

A step that drafts i tokens and is then verified costs C_i = i·T_d + T_t(i+1) + O (T_t(k) = a + b·k, fitted online
from the measured phase times) and is expected to yield E_i = 1 + Σ_{j≤i} π_j tokens, where π_j is the probability
that drafts 1..j are all accepted. Acceptance comes in bursts, so π is built from *conditional* rates: after drafting
token i with confidence κ_i (the draft's probability of it), π_i = π_{i−1} · P(x_i accepted | x_{i−1} accepted, κ_i,
position i) (for i = 1: given whether the previous step was fully accepted), and one more token adds
ΔE = π_i · P(x_{i+1} accepted | x_i accepted, κ_i) at cost ΔC = T_d + b. Drafting goes on while ΔE / ΔC > E_i / C_i
— the marginal rule that maximises the ratio E / C — up to GMAX. Before the step the same rule decides whether to
draft at all (k = 0 is a target-only step).

Every probability is a running count with a weak prior, learned online from the outcomes of this run (the
warm-up request included); costs start from neutral guesses (relative units) until the first request's times arrive.
The decisions therefore depend on measured times: unlike the other policies, ``adaptive`` is not bit-reproducible
from a seed.
"""

from __future__ import annotations

import bisect

from workbench.policies import DEFAULT_GMAX, StepOutcome

EDGES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # confidence bins: [0, .05), [.05, .1), … [.9, 1]
POSITIONS = 4  # position buckets of the conditional rates: 2, 3, 4, ≥ 5 (position 1 has its own table)
PRIOR = 2.0  # pseudo-observations behind every estimated probability; a table cell is shrunk towards the run's
#             overall acceptance rate (learned too, from 0.5), so sparse cells start from what is typical
GUESS = {"t_d": 0.2, "a": 1.0, "b": 0.1, "o": 0.05}  # cost guesses (units of one target forward) before timing


class Rate:
    """A probability estimated from counts, shrunk towards a prior mean with PRIOR pseudo-observations."""

    def __init__(self) -> None:
        self.hits = self.trials = 0.0

    def add(self, hit: bool) -> None:
        self.hits += hit
        self.trials += 1

    def value(self, prior: float = 0.5, weight: float = PRIOR) -> float:
        return (self.hits + weight * prior) / (self.trials + weight)


class Costs:
    """Running fit of T_d (per drafted token), the verify line a + b·k, and O (other time per step), in ms."""

    def __init__(self) -> None:
        self.draft_ms = self.drafted = 0.0
        self.n = self.sk = self.skk = self.sv = self.skv = 0.0
        self.other_ms = self.steps = 0.0

    def add(self, gamma: int, draft_ms: float, verify_ms: float, other_ms: float) -> None:
        k = gamma + 1
        self.draft_ms += draft_ms
        self.drafted += gamma
        self.n, self.sk, self.skk = self.n + 1, self.sk + k, self.skk + k * k
        self.sv, self.skv = self.sv + verify_ms, self.skv + k * verify_ms
        self.other_ms, self.steps = self.other_ms + other_ms, self.steps + 1

    def current(self) -> tuple[float, float, float, float]:
        """(T_d, a, b, O): the guesses until something was measured; a flat line until two k were seen."""
        if not self.steps:
            return GUESS["t_d"], GUESS["a"], GUESS["b"], GUESS["o"]
        mean_v, mean_k = self.sv / self.n, self.sk / self.n
        var_k = self.skk / self.n - mean_k ** 2
        b = (self.skv / self.n - mean_k * mean_v) / var_k if var_k > 1e-9 else GUESS["b"] * mean_v
        b = max(b, 0.0)
        t_d = self.draft_ms / self.drafted if self.drafted else GUESS["t_d"] * mean_v
        return t_d, mean_v - b * mean_k, b, self.other_ms / self.steps


class Adaptive:
    reads_draft = True

    def __init__(self, gmax: int = DEFAULT_GMAX, prior: float = PRIOR):
        self.gmax, self.cap, self.spec = gmax, gmax, f"adaptive:{gmax}"
        self.prior = prior  # pseudo-observations behind each estimated rate (the replay widgets vary it)
        bins = len(EDGES) + 1
        # P(x_1 accepted | previous step fully accepted, κ_1 bin), and the same without the bin (for plan())
        self.first = {full: [Rate() for _ in range(bins)] for full in (False, True)}
        self.first_any = {False: Rate(), True: Rate()}
        # P(x_i accepted | x_{i−1} accepted, position bucket, κ_i bin), i ≥ 2
        self.cont = [[Rate() for _ in range(bins)] for _ in range(POSITIONS)]
        self.next = [Rate() for _ in range(bins)]  # P(x_{i+1} accepted | x_i accepted, κ_i bin)
        self.overall = Rate()  # every judged draft: the prior mean of every cell above
        self.chain = Rate()  # P(x_{i+1} accepted | x_i accepted), all bins: the rate assumed for unseen tokens
        self.costs = Costs()
        self.after_full = False
        self._pi = self._e = 1.0

    def begin_request(self) -> None:
        self.after_full = False

    def plan(self) -> int:
        """GMAX, or 0 when even the first draft token is not expected to pay for itself."""
        t_d, a, b, o = self.costs.current()
        self._pi, self._e = 1.0, 1.0
        worth = self._rate(self.first_any[self.after_full]) / (t_d + b) > 1.0 / (a + b + o)
        return self.gmax if worth else 0

    def stop_after(self, i: int, confidence: float, entropy: float) -> bool:
        t_d, a, b, o = self.costs.current()
        tier = bisect.bisect_right(EDGES, confidence)
        rate = self.first[self.after_full][tier] if i == 1 else self.cont[min(i, POSITIONS + 1) - 2][tier]
        self._pi *= self._rate(rate)
        self._e += self._pi
        return not self._worth_more(i, self._pi * self._rate(self.next[tier]), t_d, a, b, o)

    def _rate(self, rate: Rate) -> float:
        """A table cell, shrunk towards the overall acceptance rate."""
        return rate.value(self.overall.value(0.5, self.prior), self.prior)

    def _worth_more(self, i: int, pi_next: float, t_d: float, a: float, b: float, o: float) -> bool:
        """Whether drafting h ≥ 1 more tokens (up to GMAX) beats stopping now, for the best h: the ratio E / C is
        not concave in h, so one step of look-ahead alone would stop too early in a burst."""
        now = self._e / (i * t_d + a + b * (i + 1) + o)
        chain = self._rate(self.chain)  # P(next accepted | this one accepted), for tokens not drafted yet
        e, pi = self._e, pi_next
        for h in range(1, self.gmax - i + 1):
            e += pi
            if e / ((i + h) * t_d + a + b * (i + h + 1) + o) > now:
                return True
            pi *= chain
        return False

    def observe(self, outcome: StepOutcome) -> None:
        n, conf = outcome.n, outcome.confidences
        if outcome.gamma:
            self.first_any[self.after_full].add(n >= 1)
        for j, kappa in enumerate(conf[: n + 1]):  # judged drafts (0-based j): accepted up to n, rejected at n + 1
            tier = bisect.bisect_right(EDGES, kappa)
            table = self.first[self.after_full] if j == 0 else self.cont[min(j + 1, POSITIONS + 1) - 2]
            table[tier].add(j < n)
            self.overall.add(j < n)
            if j < n and j + 1 < len(conf):  # draft j accepted and draft j + 1 was judged
                self.next[tier].add(j + 1 < n)
                self.chain.add(j + 1 < n)
        self.after_full = outcome.gamma > 0 and n == outcome.gamma

    def observe_times(self, gamma: int, draft_ms: float, verify_ms: float, other_ms: float) -> None:
        self.costs.add(gamma, draft_ms, verify_ms, other_ms)
