"""The ``adaptive[:GMAX]`` policy: draft while one more token is expected to raise tokens per millisecond.

A step that drafts i tokens and is then verified costs C_i = draft(i) + T_t(i + 1) + O, read from the measured
means per k (``Costs``), and is expected to yield E_i = 1 + Σ_{j≤i} π_j tokens, where π_j is the probability that
drafts 1..j are all accepted. Acceptance comes in bursts, so π is built from *conditional* rates: after drafting
token i with confidence κ_i (the draft's probability of it), π_i = π_{i−1} · P(x_i accepted | x_{i−1} accepted, κ_i,
position i) (for i = 1: given whether the previous step was fully accepted), and the next token would be accepted
with π_i · P(x_{i+1} accepted | x_i accepted, κ_i). Drafting goes on while some longer draft, up to GMAX, has a
higher expected E / C than stopping now (the tokens beyond the next are assumed to chain at the run's conditional
rate). Before the step the same rule decides whether to draft at all (k = 0 is a target-only step). A target-only
step teaches the estimates nothing, so after PROBE target-only steps in a row the policy drafts one token anyway (a
probe: one draft token and one more verified position), doubling the wait after each probe that does not bring
drafting back (up to PROBE_MAX): without it, one unlucky rejection early in a run could stop drafting for good.

Every probability is a running count with a weak prior, learned online from the outcomes of this run (the
warm-up request included). Costs are learned from the measured times of every step the session runs with this
policy's drafter (other settings' steps included: what a step costs does not depend on the policy), and start from
neutral guesses (relative units) until the first request's times arrive. The decisions therefore depend on
measured times: unlike the other policies, ``adaptive`` is not bit-reproducible from a seed.
"""

from __future__ import annotations

import bisect

from workbench.policies import DEFAULT_GMAX, StepOutcome

EDGES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # confidence bins: [0, .05), [.05, .1), … [.9, 1]
POSITIONS = 4  # position buckets of the conditional rates: 2, 3, 4, ≥ 5 (position 1 has its own table)
PRIOR = 2.0  # pseudo-observations behind every estimated probability; a table cell is shrunk towards the run's
#             overall acceptance rate (learned too, from 0.5), so sparse cells start from what is typical
GUESS = {"t_d": 0.2, "a": 1.0, "b": 0.1, "o": 0.05}  # cost guesses (units of one target forward) before timing
PROBE, PROBE_MAX = 16, 256  # target-only steps in a row before a one-token probe; the wait doubles up to PROBE_MAX


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
    """Running measured costs in ms: the mean draft time of steps that drafted k tokens, the mean verify time of
    target forwards over k tokens, and the mean other time per step. An unseen k is read off a line through the
    per-k means (each k weighted equally): d0 + d1·k for the draft, a + b·k for the verify. On CPU the verify cost is
    far from a line (k = 1 → 2 costs more than 5 → 9), so the per-k means come first. The online, in-loop
    counterpart of ``analysis.latency.StepCosts``, which fits the same shape offline from a whole run's trace (and
    leaves stalls out); this one sees only the steps so far and needs no pandas."""

    def __init__(self) -> None:
        self.draft: dict[int, list[float]] = {}  # k drafted → [Σ ms, count]
        self.verify: dict[int, list[float]] = {}  # tokens in the target forward → [Σ ms, count]
        self.other_ms = self.steps = 0.0

    def add(self, gamma: int, draft_ms: float, verify_ms: float, other_ms: float) -> None:
        for table, k, ms in ((self.draft, gamma, draft_ms), (self.verify, gamma + 1, verify_ms)):
            cell = table.setdefault(k, [0.0, 0.0])
            cell[0], cell[1] = cell[0] + ms, cell[1] + 1
        self.other_ms, self.steps = self.other_ms + other_ms, self.steps + 1

    def step_ms(self, gmax: int) -> list[float]:
        """C_i = draft(i) + verify(i + 1) + O for i = 0..gmax (draft(0) = 0: a target-only step); the guesses
        (units of one target forward) until something was measured."""
        if not self.steps:
            return [i * GUESS["t_d"] + GUESS["a"] + GUESS["b"] * (i + 1) + GUESS["o"] for i in range(gmax + 1)]
        draft, verify = _means(self.draft), _means(self.verify)
        d = _line(draft, through_zero=True)
        v = _line(verify)
        other = self.other_ms / self.steps
        return [(draft.get(i, d[0] + d[1] * i) if i else 0.0) + verify.get(i + 1, v[0] + v[1] * (i + 1)) + other
                for i in range(gmax + 1)]


def _means(table: dict[int, list[float]]) -> dict[int, float]:
    return {k: total / count for k, (total, count) in table.items()}


def _line(means: dict[int, float], through_zero: bool = False) -> tuple[float, float]:
    """``fit_line`` through per-k means (each k weighted equally); with fewer than two k a flat line (or, for the
    draft, ``through_zero``, the mean per token)."""
    pts = [(k, m) for k, m in means.items() if k > 0 or not through_zero]
    if len(pts) < 2 and through_zero:
        return 0.0, (pts[0][1] / pts[0][0]) if pts else 0.0
    return fit_line([k for k, _ in pts], [m for _, m in pts]) if pts else (0.0, 0.0)


def fit_line(ks, values) -> tuple[float, float]:
    """(intercept, slope ≥ 0) of the least-squares line through the points (k, value): the one line fit of step
    costs, online here and offline (``analysis.latency``). A negative slope (noise on a flat cost) becomes 0, the
    line the mean, so an extrapolated cost never falls with k; one distinct k gives that flat mean too."""
    ks, values = [float(k) for k in ks], [float(v) for v in values]
    n = len(ks)
    mk, mv = sum(ks) / n, sum(values) / n
    var = sum((k - mk) ** 2 for k in ks)
    slope = max(sum((k - mk) * (v - mv) for k, v in zip(ks, values)) / var, 0.0) if var else 0.0
    return mv - slope * mk, slope


class Adaptive:
    reads_draft = True
    reads_entropy = False
    reads_clock = True

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
        self._cost, self._stale = self.costs.step_ms(gmax), False  # C_0..C_GMAX, recomputed when times arrive
        self.after_full = False
        self._pi = self._e = 1.0
        self.idle, self.wait = 0, PROBE  # target-only steps since the last draft; the current wait before a probe

    def begin_request(self) -> None:
        self.after_full = False

    def plan(self) -> int:
        """GMAX; 0 when no draft length is expected to beat a target-only step; 1 for a probe."""
        if self._stale:
            self._cost, self._stale = self.costs.step_ms(self.gmax), False
        self._pi, self._e = 1.0, 1.0
        if self._worth_more(0, self._rate(self.first_any[self.after_full])):
            self.idle, self.wait = 0, PROBE
            return self.gmax
        self.idle += 1
        if self.idle <= self.wait:
            return 0
        self.idle, self.wait = 0, min(2 * self.wait, PROBE_MAX)
        return 1

    def stop_after(self, i: int, confidence: float, entropy: float) -> bool:
        tier = bisect.bisect_right(EDGES, confidence)
        rate = self.first[self.after_full][tier] if i == 1 else self.cont[min(i, POSITIONS + 1) - 2][tier]
        self._pi *= self._rate(rate)
        self._e += self._pi
        return not self._worth_more(i, self._pi * self._rate(self.next[tier]))

    def _rate(self, rate: Rate) -> float:
        """A table cell, shrunk towards the overall acceptance rate."""
        return rate.value(self.overall.value(0.5, self.prior), self.prior)

    def _worth_more(self, i: int, pi_next: float) -> bool:
        """Whether drafting h ≥ 1 more tokens (up to GMAX) beats stopping after i, for the best h: the ratio E / C
        is not concave in h, so one step of look-ahead alone would stop too early in a burst."""
        cost = self._cost
        now = self._e / cost[i]
        chain = self._rate(self.chain)  # P(next accepted | this one accepted), for tokens not drafted yet
        e, pi = self._e, pi_next
        for h in range(1, self.gmax - i + 1):
            e += pi
            if e / cost[i + h] > now:
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
        self._stale = True
