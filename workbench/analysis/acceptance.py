"""Acceptance analysis: how many drafts the target keeps, where in the draft and in the response they stop, and which
tokens fail.

Pure functions over the trace tables of docs/TRACE.md, each returning a DataFrame (or an HTML string for the text
view). Callers pass whole tables; warm-ups and prefill steps are dropped here through ``frames``, so every function
agrees on what is counted. A position that a step never drafted (short γ, early stop) is unobserved, not rejected.

Three estimates of the per-position acceptance probability α appear side by side (docs/SPEEDUP_MODEL.md):
* ``acceptance_rate`` = Σn / Σγ, the headline number (it counts never-judged drafts after a rejection as failures);
* ``alpha_mle`` = accepted / judged drafts, the maximum-likelihood α of the i.i.d. (geometric) model;
* ``alpha_tv`` = mean Σ_x min(p, q) over judged drafts, the low-variance estimate from the two distributions
  (equal in expectation to ``alpha_mle`` when sampling; with greedy decoding it only says how close q came to p).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from workbench.analysis import frames, theory


def wilson_interval(successes, trials, z: float = 1.96):
    """Wilson score interval (lo, hi) for a binomial proportion; NaN where trials = 0. Vectorised.

    Preferred over the normal interval because acceptance is often near 0 or 1 and trial counts are small.
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        phat = k / n
        denom = 1.0 + z * z / n
        centre = (phat + z * z / (2 * n)) / denom
        half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def draft_tokens(tokens: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Draft rows (role ``draft``) of measured requests, with the request columns attached."""
    req = frames.measured_requests(requests)[frames.REQUEST_COLUMNS]
    return tokens[tokens["role"] == "draft"].merge(req, on="request_id", how="inner")


def acceptance_by(steps: pd.DataFrame, tokens: pd.DataFrame | None, requests: pd.DataFrame,
                  by: list[str] | str | None = None) -> pd.DataFrame:
    """Acceptance per group of speculative decode steps (``by`` = request or step columns such as "category",
    "drafter", "policy", "request_id", "gamma"; None = all).

    Columns: steps, drafted (Σγ), accepted (Σn), judged (drafts the rule judged), acceptance_rate with Wilson bounds
    rate_lo / rate_hi (drafts treated as independent trials: an approximation, drafts within a step are correlated),
    tokens_per_step τ = mean(n + 1) (steps that drafted nothing count as 1), alpha_mle = accepted / judged and
    alpha_tv (mean over judged draft rows; NaN without ``tokens``). All pooled (token-weighted) in a group.
    """
    keys = ([by] if isinstance(by, str) else list(by or [])) or ["_all"]
    s = frames.speculative_steps(steps, requests).assign(_all="all", _tau=lambda f: f["n_accepted"] + 1)
    out = s.groupby(keys).agg(steps=("step", "size"), drafted=("gamma", "sum"), accepted=("n_accepted", "sum"),
                              judged=("judged", "sum"), tokens_per_step=("_tau", "mean"))
    if tokens is not None:
        d = draft_tokens(tokens, requests)
        if any(k not in d.columns for k in keys if k != "_all"):  # a steps column (e.g. gamma): join it on
            d = d.merge(s[["request_id", "step", *[k for k in keys if k not in d.columns]]],
                        on=["request_id", "step"])
        d = d[(d["step"] >= 1) & d["evaluated"].astype(bool)].assign(_all="all")
        out = out.join(d.groupby(keys)["alpha_tv"].mean(), how="left")
    else:
        out["alpha_tv"] = np.nan
    out = out.reset_index()
    out["acceptance_rate"] = out["accepted"] / out["drafted"]
    out["rate_lo"], out["rate_hi"] = wilson_interval(out["accepted"], out["drafted"])
    out["alpha_mle"] = out["accepted"] / out["judged"]
    return out.drop(columns=["_all"], errors="ignore")


def reach_counts(gamma: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per draft position i = 1..max γ, over the steps that drafted at least i tokens: how many there are
    (proposed), how many accepted at least i drafts (accepted) and at least i − 1 (reached)."""
    rows = [(int(at.size), int((at >= i).sum()), int((at >= i - 1).sum()))
            for i in range(1, int(gamma.max()) + 1 if len(gamma) else 1) for at in [n[gamma >= i]]]
    return tuple(np.array([r[j] for r in rows], dtype=int) for j in range(3))


def position_acceptance(steps: pd.DataFrame, requests: pd.DataFrame, alpha: float | None = None,
                        constant_only: bool = False) -> pd.DataFrame:
    """Per draft position i: unconditional a_i = P(x_i accepted | drafted) and the conditional P(x_i accepted |
    x_1..x_{i−1} accepted), with Wilson CIs, over the steps that drafted at least i tokens (a position never drafted
    is unobserved).

    From the steps table alone: a_i = #(n ≥ i) / #(γ ≥ i) and the conditional = #(n ≥ i) / #(n ≥ i−1), both over
    steps with γ ≥ i. Under the i.i.d. model a_i = α^i and the conditional is flat at α (``geometric`` / ``alpha``;
    α defaults to the pooled alpha_mle). A conditional that rises with i means acceptances cluster (easy stretches).
    ``constant_only`` keeps constant-γ requests: early-stopping policies select which positions get drafted.
    """
    s = frames.constant_steps(steps, requests) if constant_only else frames.speculative_steps(steps, requests)
    if alpha is None:
        alpha = alpha_mle(s)
    proposed, accepted, reached = reach_counts(s["gamma"].to_numpy(), s["n_accepted"].to_numpy())
    out = pd.DataFrame({"position": np.arange(1, len(proposed) + 1), "proposed": proposed, "accepted": accepted,
                        "reached": reached})
    out["a"] = out["accepted"] / out["proposed"]
    out["a_lo"], out["a_hi"] = wilson_interval(out["accepted"], out["proposed"])
    out["conditional"] = out["accepted"] / out["reached"]
    out["cond_lo"], out["cond_hi"] = wilson_interval(out["accepted"], out["reached"])
    out["geometric"] = alpha ** out["position"]
    out["alpha"] = alpha
    return out


def alpha_mle(steps: pd.DataFrame) -> float:
    """accepted ÷ judged drafts of ``steps`` (frames' step rows), pooled; NaN when nothing was judged."""
    judged = steps["judged"].sum()
    return float(steps["n_accepted"].sum() / judged) if judged else float("nan")


def n_distribution(steps: pd.DataFrame, requests: pd.DataFrame, alpha: float | None = None) -> pd.DataFrame:
    """Per drafter and constant γ: observed distribution of n (accepted drafts per step) vs the truncated geometric.

    α defaults to the alpha_mle of each group's own steps (so the comparison tests the *shape*, not the level).
    Columns: drafter, gamma, n, count, observed (fraction), expected (theory.truncated_geometric_pmf), alpha.
    """
    s = frames.constant_steps(steps, requests)
    s = s[s["gamma"] == s["policy_gamma"]]  # steps cut short by the token budget or EOS are not this γ's shape
    frames_out = []
    for (drafter, g), grp in s.groupby(["drafter", "gamma"]):
        a = alpha if alpha is not None else alpha_mle(grp)
        counts = grp["n_accepted"].value_counts().reindex(range(int(g) + 1), fill_value=0)
        frames_out.append(pd.DataFrame({"drafter": drafter, "gamma": int(g), "n": counts.index,
                                        "count": counts.to_numpy(), "observed": counts.to_numpy() / len(grp),
                                        "expected": theory.truncated_geometric_pmf(float(a), int(g)), "alpha": a}))
    cols = ["drafter", "gamma", "n", "count", "observed", "expected", "alpha"]
    return pd.concat(frames_out, ignore_index=True) if frames_out else pd.DataFrame(columns=cols)


def carry_over(steps: pd.DataFrame, requests: pd.DataFrame, by=frames.SETTING) -> pd.DataFrame:
    """Does acceptance carry over from one step to the next? Per group, P(the step's first draft is accepted)
    after a step that accepted all its drafts (``after_full``) and after one that rejected a draft
    (``after_reject``), with Wilson bounds and step counts, beside the rate over all steps (``first``).

    Over decode steps that drafted ≥ 1 token, each compared with the previous step of its request if that one
    drafted too. ``carry`` = after_full − after_reject: near 0, acceptance is memoryless from step to step and a
    schedule that lengthens the draft after a full acceptance (``heuristic``) has little to exploit; large, it pays.
    """
    s = frames.speculative_steps(steps, requests).sort_values(["request_id", "step"])
    prev = s.groupby("request_id")[["gamma", "n_accepted"]].shift()
    s = s.assign(hit=s["n_accepted"] >= 1, full=prev["n_accepted"] == prev["gamma"], drafted_before=prev["gamma"] >= 1)
    s = s[s["gamma"] >= 1]
    keys = list(by)
    after = s[s["drafted_before"]]
    out = s.groupby(keys).agg(steps=("hit", "size"), first=("hit", "mean"))
    for name, rows in (("after_full", after[after["full"]]), ("after_reject", after[~after["full"]])):
        g = rows.groupby(keys)["hit"].agg(["size", "sum"]).reindex(out.index, fill_value=0)
        out[f"{name}_steps"] = g["size"]
        out[name] = g["sum"] / g["size"].where(g["size"] > 0)
        out[f"{name}_lo"], out[f"{name}_hi"] = wilson_interval(g["sum"], g["size"])
    out["carry"] = out["after_full"] - out["after_reject"]
    return out.reset_index()


OUTPUT_BINS = (1, 4, 8, 16, 32, 64, 128, 256, 512)  # edges of the output-position bins: each twice the last


def along_output(steps: pd.DataFrame, requests: pd.DataFrame, by=frames.SETTING) -> pd.DataFrame:
    """Acceptance along the response: per group and bin of output position t (the index in the response of the
    token a draft proposes; t = 0 is the prefill's token, so drafts start at t = 1), P(a draft is accepted | the
    rule judged it) with Wilson bounds. Columns: the ``by`` keys, positions (the bin, "1–3", "4–7", …, "512+"),
    first (its first t), judged, accepted, rate, rate_lo, rate_hi; only bins that hold a judged draft.

    From the steps table: a step that starts at t judges drafts t … t + judged − 1 and accepts the first n; t is 1
    plus the tokens its request emitted before it. Flat along t: acceptance does not depend on how much of the
    response the draft has seen; low at the start: the draft does worse with little context.
    """
    s = frames.speculative_steps(steps, requests).sort_values(["request_id", "step"])
    s = s.assign(start=1 + s.groupby("request_id")["n_emitted"].cumsum() - s["n_emitted"])
    judged = s["judged"].to_numpy(int)
    row = np.repeat(np.arange(len(s)), judged)  # one entry per judged draft
    i = np.arange(len(row)) - np.repeat(np.cumsum(judged) - judged, judged)  # 0-based position in its step
    edges = [*OUTPUT_BINS, np.inf]
    labels = [f"{a}–{b - 1}" for a, b in zip(OUTPUT_BINS, OUTPUT_BINS[1:])] + [f"{OUTPUT_BINS[-1]}+"]
    drafts = s.iloc[row][list(by)].reset_index(drop=True).assign(
        first=pd.cut(s["start"].to_numpy(int)[row] + i, edges, right=False, labels=OUTPUT_BINS).astype(int),
        accepted=i < s["n_accepted"].to_numpy(int)[row])
    keys = [*by, "first"]
    out = drafts.groupby(keys)["accepted"].agg(judged="size", accepted="sum").reset_index()
    out.insert(len(by), "positions", out["first"].map(dict(zip(OUTPUT_BINS, labels))))
    out["rate"] = out["accepted"] / out["judged"]
    out["rate_lo"], out["rate_hi"] = wilson_interval(out["accepted"], out["judged"])
    return out


def most_rejected(tokens: pd.DataFrame, requests: pd.DataFrame, top: int = 20) -> pd.DataFrame:
    """The draft tokens the target rejected most often (judged and not accepted), with how often each was judged.

    Grouped by token_text (what the reader sees; distinct ids with the same text are merged). Columns: token_text,
    rejected, evaluated, reject_rate, mean_q, mean_p (mean probabilities of the token under draft and target at
    its rejections), sorted by rejected count, then text.
    """
    d = draft_tokens(tokens, requests)
    d = d[d["evaluated"].astype(bool)].assign(_rej=lambda f: ~f["accepted"].astype(bool))
    rej = d[d["_rej"]].groupby("token_text").agg(rejected=("_rej", "size"), mean_q=("q", "mean"),
                                                 mean_p=("p", "mean"))
    ev = d.groupby("token_text").size().rename("evaluated")
    out = rej.join(ev).reset_index()
    out["reject_rate"] = out["rejected"] / out["evaluated"]
    out = out.sort_values(["rejected", "token_text"], ascending=[False, True]).head(top).reset_index(drop=True)
    return out[["token_text", "rejected", "evaluated", "reject_rate", "mean_q", "mean_p"]]


# Colours of the text view, one per token origin (role); accepted drafts are the "free" tokens.
ROLE_STYLE = {"draft": ("#c8f7c5", "accepted draft"), "correction": ("#ffd8a8", "target correction"),
              "bonus": ("#a5d8ff", "target bonus"), "target": ("#e9ecef", "target (prefill, baseline, no draft)")}


def output_html(tokens: pd.DataFrame, request_id: str) -> str:
    """The generated text of one request as HTML, each emitted token a span coloured by where it came from.

    Tokens are the emitted rows ordered by (step, position); text is HTML-escaped and whitespace preserved. The
    hover title shows step, position, p and q. Returns a self-contained ``<div>`` with a legend.
    """
    t = tokens[(tokens["request_id"] == request_id) & tokens["emitted"].astype(bool)]
    t = t.sort_values(["step", "position"])
    spans = []
    for row in t.itertuples(index=False):
        colour = ROLE_STYLE.get(row.role, ("#ffffff", row.role))[0]
        title = f"step {row.step} pos {row.position} {row.role} p={row.p:.3f} q={row.q:.3f}"
        spans.append(f'<span style="background:{colour}" title="{html.escape(title)}">'
                     f"{html.escape(str(row.token_text))}</span>")
    legend = " ".join(f'<span style="background:{c};padding:0 4px">{html.escape(label)}</span>'
                      for c, label in ROLE_STYLE.values())
    return (f'<div class="wb-output"><div style="font-size:90%;margin-bottom:4px">{html.escape(request_id)}: '
            f'{legend}</div><div style="white-space:pre-wrap;font-family:monospace;line-height:1.6">'
            f'{"".join(spans)}</div></div>')


def greedy_agreement(requests: pd.DataFrame) -> pd.DataFrame:
    """Per drafter × policy, over greedy (T = 0) requests whose prompt has a baseline in the same run: how many
    outputs equal target-only greedy token for token, and where the first one that does not parts from it (output
    index; NaN when all agree). A verify over γ + 1 tokens rounds differently from a one-token forward: float32
    (machine ε ≈ 1e-7) flips only an exact near-tie, so every output agrees in practice (tested); bfloat16 (ε ≈ 8e-3)
    and float16 (ε ≈ 1e-3) round far coarser, and a near-tie in p can go the other way."""
    cols = ["drafter", "policy", "requests", "identical", "share_identical", "first_difference"]
    req = frames.measured_requests(requests)
    req = req[req["temperature"] == 0]
    base = req[req["mode"] == "baseline"].drop_duplicates(frames.BASELINE_KEY).set_index(frames.BASELINE_KEY)
    spec = req[req["mode"] == "speculative"]
    keys = list(zip(*(spec[k] for k in frames.BASELINE_KEY)))
    paired = [k in base.index for k in keys]
    spec = spec[paired]
    if not len(spec):
        return pd.DataFrame(columns=cols)
    ref = base["output_token_ids"].reindex([k for k, ok in zip(keys, paired) if ok]).to_list()
    parted = [_first_difference(list(s), list(b)) for s, b in zip(spec["output_token_ids"], ref)]
    out = spec.assign(_same=[p is None for p in parted], _at=[np.nan if p is None else p for p in parted])
    g = out.groupby(["drafter", "policy"], sort=False)
    table = pd.DataFrame({"requests": g.size(), "identical": g["_same"].sum(), "first_difference": g["_at"].min()})
    table["share_identical"] = table["identical"] / table["requests"]
    return table.reset_index()[cols]


def _first_difference(a: list, b: list) -> int | None:
    """The first index where two token lists differ (a length difference counts), None if they are equal."""
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
