"""How much a draft-length policy could gain on a recorded run, and what signal it would need — by replay.

    workbench run --out runs/policies --policy constant:1,...,constant:8,heuristic,threshold:0.4,threshold:0.1,\
adaptive --baseline --per-category 8 --max-new-tokens 48
    python benchmarks/policy_headroom.py runs/policies [--drafter default-draft] [--no-probe]

Every figure is a *replayed prediction* (docs/REPLAY.md) on the run's own traces, printed beside the live best
constant γ; none is a measurement of a policy that ran. Printed, in order:
1. live: the best constant γ of {2, 4, 6}, each non-constant policy against it, the gap to the oracle it closes;
2. the best constant γ per prompt, picked in hindsight (does choosing γ per request pay?);
3. ``adaptive`` after two passes over the same prompts (its tables learned in-sample);
4. how well cheap draft-side signals rank acceptance (AUC): the draft's confidence, its entropy, whether an n-gram
   lookup agrees with the drafted token, and a logistic model of all of them (fitted in-sample);
5. stopping rules on those signals, replayed as a threshold policy;
6. history: whether acceptance carries over from step to step (measured, ``acceptance.carry_over``), and the best
   schedule that picks γ from the previous step's outcome alone (γ ∈ 1..12 after a full acceptance, γ ∈ 1..12 after
   a rejection; every constant γ is one of them), chosen in hindsight on the same prompts — a bound for every
   schedule that reads the previous step's outcome alone (a longer memory, like the heuristic's, is not covered);
   and how well the target's own confidence at the last verified position ranks the next draft's acceptance;
   then the output position: the draft's match rate over the first positions and after, and the best schedule of
   γ on the position alone (γ ∈ 1..8 before position 4, 6, 8, 12 or 16, γ ∈ 1..12 from there), in hindsight;
7. the signal quality a stopping rule needs: the true accept bit plus Gaussian noise, at several noise levels (an
   optimistic yardstick: its errors are independent of everything else; a real signal of the same AUC replays
   lower: a draft fine-tuned for acceptance, AUC 0.88, replays to 1.03x, benchmarks/draft_objective.py);
8. (unless --no-probe; loads the draft) its top-2 margin 1 − q2/q1 as a signal, and a logistic probe on its last
   hidden state, cross-validated by prompt.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pandas as pd

from workbench import trace as trace_io
from workbench.analysis import acceptance, intervals, replay, speedup
from workbench.analysis.recorded import Recorded, recorded_outputs
from workbench.drafters.ngram import lookup
from workbench.sampling import entropy

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # P of the threshold policies a signal is replayed with
UNTIL = (4, 6, 8, 12, 16)  # output positions where a schedule on the position may change γ


def auc(score, label) -> float:
    """Area under the ROC curve (ties broken by order; rank-sum form)."""
    label = np.asarray(label, bool)
    rank = np.empty(len(score))
    rank[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    pos, neg = label.sum(), (~label).sum()
    return float((rank[label].sum() - pos * (pos + 1) / 2) / (pos * neg))


def logistic(features: np.ndarray, label: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    """Weights of a logistic regression (Newton's method, L2 ridge)."""
    w = np.zeros(features.shape[1])
    for _ in range(30):
        p = 1 / (1 + np.exp(-features @ w))
        hess = (features * (p * (1 - p))[:, None]).T @ features + ridge * np.eye(len(w))
        w += np.linalg.solve(hess, features.T @ (label - p) - ridge * w)
    return w


def signals(trace, recorded: list[Recorded], drafter: str) -> dict[str, np.ndarray]:
    """Per recorded prompt, features at every output position: [1, confidence, entropy, n-gram agrees, n-gram
    found, agrees × confidence] (an n-gram lookup over prompt + output so far, as the n-gram drafter does)."""
    forced = trace.forced[trace.forced["drafter"] == drafter]
    req = trace.requests
    out = {}
    for r in recorded:
        ids = req[(req["prompt_id"] == r.prompt_id) & req["request_id"].isin(forced["request_id"])]["request_id"]
        drafted = forced[forced["request_id"].isin(ids)].sort_values("index")["draft_token"].to_numpy()
        rows = []
        for t in range(len(r.output)):
            ngram = lookup(r.prompt_ids + r.output[:t], 1, 3, 1)
            agrees = float(bool(ngram) and ngram[0] == drafted[t])
            rows.append([1.0, r.conf[t], r.entropy[t], agrees, float(bool(ngram)), agrees * r.conf[t]])
        out[r.prompt_id] = np.array(rows)
    return out


def best_threshold(recorded, score: dict[str, np.ndarray], costs, max_new: int) -> float:
    """The best replayed speedup of threshold:P:16 over THRESHOLDS, with ``score`` in place of the confidence."""
    swapped = [dataclasses.replace(r, conf=score[r.prompt_id]) for r in recorded]
    return max(float(replay.replay_policy(swapped, f"threshold:{p}:16", costs, max_new=max_new)["speedup"].median())
               for p in THRESHOLDS)


def along_path(model, recorded: list[Recorded]) -> list[dict[str, np.ndarray]]:
    """One teacher-forced forward of a draft ``model`` over each recorded prompt + output: at every output position
    t, the draft's token (argmax), its confidence q1, the top-2 margin 1 − q2/q1, the entropy (nats) and the last
    hidden state it predicted from (position start + t − 1)."""
    import torch

    out = []
    with torch.no_grad():
        for r in recorded:
            res = model(torch.tensor([r.prompt_ids + r.output]), output_hidden_states=True)
            start = len(r.prompt_ids)
            q = res.logits[0, start - 1:start - 1 + len(r.output)].float().softmax(-1)
            top, token = q.topk(2, -1)
            out.append({"token": token[:, 0].numpy(), "conf": top[:, 0].numpy(),
                        "margin": (1 - top[:, 1] / top[:, 0]).numpy(),
                        "entropy": entropy(q).numpy(),
                        "hidden": res.hidden_states[-1][0, start - 1:start - 1 + len(r.output)].numpy()})
    return out


def probe_auc(recorded, path: list[dict[str, np.ndarray]], folds: int = 5) -> tuple[float, float]:
    """(out-of-sample, in-sample) AUC of a logistic probe on the draft's last hidden state + confidence + entropy
    (``path``: ``along_path`` of the recorded outputs), cross-validated by prompt."""
    x = np.concatenate([np.column_stack([a["hidden"], r.conf, r.entropy])[1:] for r, a in zip(recorded, path)])
    y = np.concatenate([r.match[1:] for r in recorded]).astype(float)
    groups = np.concatenate([np.full(len(r.output) - 1, g) for g, r in enumerate(recorded)])
    x = np.column_stack([(x - x.mean(0)) / (x.std(0) + 1e-6), np.ones(len(x))])
    score = np.zeros(len(y))
    for fold in range(folds):
        test = groups % folds == fold
        score[test] = x[test] @ logistic(x[~test], y[~test], ridge=1.0)
    return auc(score, y), auc(x @ logistic(x, y, ridge=1.0), y)


@dataclasses.dataclass
class Replayed:
    """A recorded run of a model drafter, ready to replay (every figure below is a prediction from it)."""

    trace: object
    drafter: str
    recorded: list  # Recorded of the measured prompts (warm-ups left out)
    costs: dict  # replay.run_costs: {reads_draft: StepCosts}
    max_new: int

    def speedup(self, spec, recorded=None) -> pd.DataFrame:
        return replay.replay_policy(self.recorded if recorded is None else recorded, spec, self.costs,
                                    max_new=self.max_new)

    def median(self, spec) -> float:
        return float(self.speedup(spec)["speedup"].median())


def live_against_constant(run: Replayed) -> None:
    """1. live: non-constant policies against the best constant γ of {2, 4, 6}, and the gap to the oracle closed."""
    live = speedup.speedup_table(run.trace.requests)
    live = live[live["drafter"] == run.drafter].set_index("policy")["speedup"]
    sure = intervals.against_best_constant(run.trace.requests, run.drafter, (2, 4, 6)).set_index("policy")
    best = max(live[f"constant:{g}"] for g in (2, 4, 6))
    oracle = run.median(replay.ORACLE)
    print(f"live: best constant γ of {{2, 4, 6}} {best:.3f}x; oracle (replayed) {oracle:.3f}x")
    for policy, value in live.items():
        if not policy.startswith("constant"):
            lo, hi = sure.loc[policy, ["vs_best_lo", "vs_best_hi"]]
            print(f"  {policy}: {value:.3f}x = {value / best:.3f}x the best constant (95 % bootstrap over prompts "
                  f"{lo:.3f}–{hi:.3f}), gap closed {(value - best) / (oracle - best):+.0%}")


def per_prompt_and_in_sample(run: Replayed) -> float:
    """2.-3. choosing γ per prompt in hindsight; adaptive with its tables learned in-sample. Returns constant:5."""
    from workbench.adaptive import Adaptive

    base = run.median("constant:5")
    per_gamma = pd.concat([run.speedup(f"constant:{g}") for g in range(1, 13)], ignore_index=True)
    hindsight = per_gamma.loc[per_gamma.groupby("prompt_id")["speedup"].idxmax(), "speedup"].median()
    print(f"replayed constant:5 {base:.3f}x; best constant per prompt in hindsight {hindsight:.3f}x")
    policy = Adaptive(16)
    for _ in range(3):
        again = run.speedup(policy, recorded_outputs(run.trace, run.drafter))
    print(f"adaptive after two passes over the same prompts (in-sample): {again['speedup'].median():.3f}x")
    return base


def cheap_signals(run: Replayed, base: float) -> np.ndarray:
    """4.-5. cheap draft-side signals: how well they rank acceptance, and what a stopping rule on them replays to.
    Returns the accept labels of the drafted positions."""
    feats = signals(run.trace, run.recorded, run.drafter)
    x = np.concatenate([feats[r.prompt_id][1:] for r in run.recorded])
    y = np.concatenate([r.match[1:] for r in run.recorded]).astype(float)
    w = logistic(x, y)
    print(f"{len(y)} drafted positions, acceptance {y.mean():.3f}; AUC confidence {auc(x[:, 1], y):.3f}, "
          f"−entropy {auc(-x[:, 2], y):.3f}, n-gram agrees {auc(np.where(x[:, 4] == 1, x[:, 3], 0.5), y):.3f}, "
          f"logistic of all (in-sample) {auc(x @ w, y):.3f}")
    edges = (0.0, 0.05, 0.2, 0.5, 1.0 + 1e-9)
    print("  accepted by the draft's confidence: " + ", ".join(
        f"[{lo:g}, {min(hi, 1):g}) {y[(x[:, 1] >= lo) & (x[:, 1] < hi)].mean():.1%}"
        for lo, hi in zip(edges, edges[1:]) if ((x[:, 1] >= lo) & (x[:, 1] < hi)).any())
        + f"; below 0.2 in all {y[x[:, 1] < 0.2].mean():.1%}")
    agree, found = x[:, 3] == 1, x[:, 4] == 1
    rate = lambda mask: f"{y[mask].mean():.1%}" if mask.any() else "n/a (no such position)"  # noqa: E731
    print(f"  accepted where the n-gram agrees {rate(agree)}, disagrees {rate(found & ~agree)}, "
          f"finds nothing {rate(~found)}")
    costs = run.costs
    shared = sorted(set(costs[False].draft_by_k) & set(costs[True].draft_by_k) - {0})
    ratio = np.mean([costs[True].draft_by_k[k] / costs[False].draft_by_k[k] for k in shared]) if shared else np.nan
    print(f"  draft time of policies that read each token ÷ of those that do not, same k: {ratio:.3f}")
    rules = {"stop where the n-gram disagrees and confidence < 0.5, or finds nothing and confidence < 0.1":
             lambda f: 1.0 - (((f[:, 3] == 0) & (f[:, 4] == 1) & (f[:, 1] < 0.5)) | ((f[:, 4] == 0) & (f[:, 1] < 0.1))),
             "the logistic model's probability (in-sample)": lambda f: 1 / (1 + np.exp(-f @ w))}
    for name, rule in rules.items():
        value = best_threshold(run.recorded, {k: rule(f) for k, f in feats.items()}, costs, run.max_new)
        print(f"  {name}: {value:.3f}x = {value / base:.3f}x constant:5")
    return y


class _Schedule:
    """A schedule of γ that reads no draft and no clock (the replayed hindsight bounds below)."""

    reads_draft = reads_entropy = reads_clock = False

    def stop_after(self, i: int, confidence: float, entropy: float) -> bool:
        return False

    def observe_times(self, gamma: int, draft_ms: float, verify_ms: float, other_ms: float) -> None:
        pass


class TwoState(_Schedule):
    """A schedule that drafts ``full`` tokens after a step that accepted all its drafts (and at a request's start),
    ``reject`` after a step with a rejection: a schedule with a one-step memory (HF's heuristic remembers more)."""

    def __init__(self, full: int, reject: int):
        self.full, self.reject, self.cap, self.spec = full, reject, max(full, reject), f"two-state:{full}:{reject}"
        self.gamma = full

    def begin_request(self) -> None:
        self.gamma = self.full

    def plan(self) -> int:
        return self.gamma

    def observe(self, outcome) -> None:
        self.gamma = self.full if outcome.n == outcome.gamma else self.reject


class Phased(_Schedule):
    """A schedule on the output position: ``early`` tokens a step until ``until`` tokens are out (the first one,
    from the prefill, included), ``late`` after."""

    def __init__(self, early: int, late: int, until: int):
        self.early, self.late, self.until = early, late, until
        self.cap, self.spec, self.out = max(early, late), f"phased:{early}:{late}:{until}", 1

    def begin_request(self) -> None:
        self.out = 1

    def plan(self) -> int:
        return self.early if self.out < self.until else self.late

    def observe(self, outcome) -> None:
        self.out += outcome.n + 1


def position(run: Replayed, best_constant: float) -> None:
    """6b. the output position: the draft's match rate at the first positions and after, and the best schedule of
    γ on the position (``Phased``; every constant γ is one of them), chosen in hindsight on the same prompts."""
    def rate(lo: int, hi: int | None) -> str:
        match = np.concatenate([r.match[lo:hi] for r in run.recorded])
        return f"{match.mean():.3f}" if match.size else "none"  # outputs shorter than the position: no rate

    print("along the recorded outputs, the draft's token matches " + "; ".join(
        f"{rate(1, u)} at output positions 1–{u - 1}, {rate(u, None)} after" for u in (4, 8, 16)))
    grid = {(e, lt, u): run.median(Phased(e, lt, u)) for e in range(1, 9) for lt in range(1, 13) for u in UNTIL}
    (e, lt, u), value = max(grid.items(), key=lambda kv: kv[1])
    print(f"best schedule on the output position, in hindsight (γ {e} before position {u}, {lt} from there): "
          f"{value:.3f}x = {value / best_constant:.3f}x the best constant in hindsight")


def history(run: Replayed) -> None:
    """6. does acceptance carry over between steps; the best schedule on the previous step's outcome, in hindsight."""
    req = run.trace.requests
    carry = acceptance.carry_over(run.trace.steps, req[req["policy"].str.startswith("constant:")], by=["drafter"])
    c = carry.set_index("drafter").loc[run.drafter]
    print(f"measured, constant-γ steps: first draft accepted {c['after_full']:.3f} after a full acceptance "
          f"({int(c['after_full_steps'])} steps), {c['after_reject']:.3f} after a rejection "
          f"({int(c['after_reject_steps'])} steps)")
    now = np.concatenate([r.match[1:] for r in run.recorded])
    before = np.concatenate([r.match[:-1] for r in run.recorded])
    print(f"along the recorded outputs (replay data): the draft's token matches {now.mean():.3f}; after a position "
          f"that matched {now[before].mean():.3f}, after one that did not {now[~before].mean():.3f}")
    forced = run.trace.forced[run.trace.forced["drafter"] == run.drafter]
    by_request = [g.sort_values("index") for _, g in forced.groupby("request_id")]
    prev_p = np.concatenate([g["p_token"].to_numpy(float)[:-1] for g in by_request])
    match = np.concatenate([g["match"].to_numpy(bool)[1:] for g in by_request])
    print(f"the target's probability of its own token at the previous position (known when a step ends, so a "
          f"policy could read it before drafting): AUC {auc(prev_p, match):.3f} for the next token's acceptance")
    constant = {g: run.median(f"constant:{g}") for g in range(1, 13)}
    best_g = max(constant, key=constant.get)
    grid = {(f, r): run.median(TwoState(f, r)) for f in range(1, 13) for r in range(1, 13)}
    (f, r), value = max(grid.items(), key=lambda kv: kv[1])
    print(f"best schedule on the previous step's outcome, in hindsight (γ {f} after a full acceptance, {r} after "
          f"a rejection): {value:.3f}x = {value / constant[best_g]:.3f}x the best constant in hindsight "
          f"(constant:{best_g}, {constant[best_g]:.3f}x)")
    position(run, constant[best_g])


def needed_signal(run: Replayed, base: float, y: np.ndarray) -> None:
    """7. the signal a stopping rule needs: the true accept bit plus noise."""
    rng = np.random.default_rng(0)
    for strength in (0.5, 1.0, 1.5, 2.0, 3.0):
        noisy = {r.prompt_id: 1 / (1 + np.exp(-(strength * (2 * r.match - 1) + rng.normal(size=len(r.match)))))
                 for r in run.recorded}
        quality = auc(np.concatenate([noisy[r.prompt_id][1:] for r in run.recorded]), y)
        value = best_threshold(run.recorded, noisy, run.costs, run.max_new)
        print(f"  a signal of AUC {quality:.3f}: best threshold policy {value:.3f}x = {value / base:.3f}x constant:5")


def draft_forward(run: Replayed, base: float, y: np.ndarray) -> None:
    """8. what a forward of the draft adds: its top-2 margin, and a probe on its hidden state."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run.trace.meta["models"]["drafts"][run.drafter]["path"],
                                                 dtype=torch.float32).eval()
    path = along_path(model, run.recorded)
    margin = {r.prompt_id: a["margin"] for r, a in zip(run.recorded, path)}
    value = best_threshold(run.recorded, margin, run.costs, run.max_new)
    print(f"the draft's top-2 margin 1 − q2/q1: AUC {auc(np.concatenate([m[1:] for m in margin.values()]), y):.3f}"
          f"; as the stop signal of a threshold policy {value:.3f}x = {value / base:.3f}x constant:5")
    out, ins = probe_auc(run.recorded, path)
    print(f"probe on the draft's last hidden state + confidence + entropy: AUC {out:.3f} out of sample "
          f"(5 folds by prompt), {ins:.3f} in-sample")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a run with constant γ ∈ {2, 4, 6}, other policies, a baseline and replay data")
    ap.add_argument("--drafter", default="default-draft", help="drafter label in the run (a model drafter)")
    ap.add_argument("--no-probe", action="store_true", help="skip the hidden-state probe (loads the draft model)")
    args = ap.parse_args(argv)
    t = trace_io.load(args.run)
    run = Replayed(t, args.drafter, [r for r in recorded_outputs(t, args.drafter) if not r.warmup],
                   replay.run_costs(t, args.drafter), int(t.meta["config"]["max_new_tokens"]))
    live_against_constant(run)
    step = run.costs[False]  # what stopping early saves and what a wrong stop costs: the run's step costs per k
    table = lambda means, ks: ", ".join(f"k={k} {means[k]:.2f}" for k in ks if k in means)  # noqa: E731
    print(f"measured means (ms): target forward over k tokens {table(step.verify_by_k, range(1, 10))}; "
          f"draft of k tokens {table(step.draft_by_k, range(1, 9))}")
    base = per_prompt_and_in_sample(run)
    y = cheap_signals(run, base)
    history(run)
    needed_signal(run, base, y)
    if not args.no_probe:
        draft_forward(run, base, y)


if __name__ == "__main__":
    main()
