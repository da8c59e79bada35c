"""The recorded outputs offline replay walks (``workbench.analysis.replay``; docs/REPLAY.md).

One ``Recorded`` per measured prompt of a drafter: the output the run produced and, at every position, what the
drafter proposes along it (from the run's teacher-forced ``forced`` table; an n-gram drafter redoes its lookup in
replay). Each session's warm-up comes first in its session, and each record carries the clock readings the run took
before it, so a policy that learns replays the way it learned live.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.analysis import frames, latency
from workbench.drafters import kind_of, parse_drafter
from workbench.errors import TraceError, WorkbenchError
from workbench.trace import META_FILE, Trace


@dataclass
class Recorded:
    """One recorded output and what the drafter proposes along it (arrays over output positions t)."""

    prompt_id: str
    category: str
    prompt_ids: list[int]
    output: list[int]
    match: np.ndarray  # the draft's token at t equals the output token (on the accepted path)
    conf: np.ndarray  # the draft's probability of its token at t (its confidence)
    entropy: np.ndarray  # entropy of the draft's distribution at t (nats)
    alpha: np.ndarray  # Σ min(p, q) at t
    base_ms_per_token: float = float("nan")  # measured by the baseline request of the same prompt (NaN if none)
    times_before: tuple = ()  # (γ, draft, verify, other ms) of the drafter's steps measured since the previous
    #                           recorded prompt, in run order: what a policy that reads the clock had learned live
    warmup: bool = False  # a session's warm-up (replayed for what a policy learns from it, never counted)
    sample_conf: np.ndarray | None = None  # at T > 0: q of one draw of the draft at t (None: not recorded)
    sample_accept: np.ndarray | None = None  # ... and that draw's acceptance probability min(1, p/q)


def recorded_outputs(trace: Trace, drafter: str, limit: int = 200) -> list[Recorded]:
    """The recorded outputs replay walks for ``drafter`` (at most ``limit`` prompts, sampled with a fixed seed)."""
    req = frames.measured_requests(trace.requests)
    spec = req[(req["drafter"] == drafter) & (req["mode"] == "speculative")].drop_duplicates("prompt_id")
    if not len(spec):
        raise WorkbenchError(f"replay: the run has no speculative request with drafter {drafter!r}")
    spec = frames.sample_requests(spec, limit, key="prompt_id")  # the prompts speedup.prompt_fits samples
    base_ms = latency.calm_baseline_ms_per_token(trace.steps, req).to_dict()  # (run, prompt, T) → ms/token
    is_ngram = ngram_of(drafter) is not None
    forced = trace.forced if trace.forced is not None else pd.DataFrame()
    if not is_ngram:
        forced = forced[forced["drafter"] == drafter] if len(forced) else forced
        if not len(forced):
            raise WorkbenchError(f"replay: the run has no replay data for drafter {drafter!r} (it was made with "
                                 "--no-replay-data or by an older workbench); rerun it to replay policies")
        by_prompt = {rid: g.sort_values("index") for rid, g in forced.groupby("request_id")}
        req_of = forced.drop_duplicates("request_id").merge(req[["request_id", "prompt_id"]], on="request_id")
        forced_of = dict(zip(req_of["prompt_id"], req_of["request_id"]))
    out = []
    for r in spec.itertuples(index=False):
        output, prompt_ids = list(r.output_token_ids), list(r.prompt_token_ids)
        base = base_ms.get((r.run_id, r.prompt_id, r.temperature), np.nan)
        if is_ngram:
            n = len(output)
            out.append(Recorded(r.prompt_id, r.category, prompt_ids, output, np.zeros(n, bool), np.ones(n),
                                np.zeros(n), np.full(n, np.nan), base))
            continue
        rows = by_prompt.get(forced_of.get(r.prompt_id))
        if rows is None:
            continue
        drawn = rows["sample_conf"].notna().all()  # recorded by this workbench; absent (NaN) in older runs
        out.append(Recorded(r.prompt_id, r.category, prompt_ids, rows["token_id"].tolist(),
                            rows["match"].to_numpy(bool), rows["draft_conf"].to_numpy(float),
                            rows["draft_entropy"].to_numpy(float), rows["alpha_tv"].to_numpy(float), base,
                            sample_conf=rows["sample_conf"].to_numpy(float) if drawn else None,
                            sample_accept=rows["sample_accept"].to_numpy(float) if drawn else None))
    return _with_times(_warmups(trace, drafter, out) + out, trace, drafter)


def _warmups(trace: Trace, drafter: str, recorded: list[Recorded]) -> list[Recorded]:
    """Each session's warm-up, as live policies saw it: under greedy decoding its output is the first tokens of
    the same prompt's recorded output (at T > 0 it is another sample, with no replay data: skipped)."""
    req = trace.requests
    warm = req[req["warmup"].astype(bool) & (req["drafter"] == drafter) & (req["temperature"] == 0.0)]
    full = {r.prompt_id: r for r in recorded}
    out = []
    for session, g in warm.groupby(warm["request_id"].str.split("/").str[0]):
        rec, tokens = full.get(g["prompt_id"].iloc[0]), int(g["new_tokens"].max())
        if rec is not None and tokens <= len(rec.output):
            cut = slice(0, tokens)
            drawn = {k: getattr(rec, k)[cut] for k in ("sample_conf", "sample_accept") if getattr(rec, k) is not None}
            out.append(dataclasses.replace(rec, prompt_id=session, output=rec.output[cut], match=rec.match[cut],
                                           conf=rec.conf[cut], entropy=rec.entropy[cut], alpha=rec.alpha[cut],
                                           warmup=True, **drawn))
    return out


def _with_times(recorded: list[Recorded], trace: Trace, drafter: str) -> list[Recorded]:
    """``recorded`` in run order, each with the step times the run measured with ``drafter`` (warm-ups included)
    after the previous one's last request and before its own last request."""
    req = trace.requests[(trace.requests["drafter"] == drafter) & (trace.requests["mode"] == "speculative")]
    warm = req["warmup"].astype(bool)
    last = pd.concat([req[~warm].groupby("prompt_id")["started_at"].max(),
                      req[warm].groupby(req[warm]["request_id"].str.split("/").str[0])["started_at"].max()])
    steps = trace.steps[trace.steps["step"] >= 1].merge(req[["request_id", "started_at"]], on="request_id")
    steps = steps.sort_values(["started_at", "step"])
    at = steps["started_at"].to_numpy()
    rows = list(zip(steps["gamma"], steps["draft_ms"], steps["verify_ms"], steps["other_ms"]))
    starts = req[warm].groupby(req[warm]["request_id"].str.split("/").str[0])["started_at"].min()
    out, begin = [], 0
    for rec in sorted(recorded, key=lambda r: last.get(r.prompt_id, np.inf)):
        if rec.warmup:  # a new session's policies are new objects: they never saw the times of an earlier session
            begin = max(begin, int(np.searchsorted(at, starts.get(rec.prompt_id, -np.inf), side="left")))
        end = int(np.searchsorted(at, last.get(rec.prompt_id, np.inf), side="left"))
        out.append(dataclasses.replace(rec, times_before=tuple(rows[begin:max(end, begin)])))
        begin = max(end, begin)
    return out


def token_budget(trace: Trace) -> int:
    """The run's ``max_new_tokens``, which replay clips every step to: meta.json's config, checked against the
    measured speculative requests (one stopped by the budget holds exactly that many new tokens, none holds more), so
    a hand-edited value is one line (TraceError), not a replay of another budget. A config without it (none this
    workbench wrote) falls back to the longest output the budget stopped, else no budget."""
    req = frames.measured_requests(trace.requests)
    new = req.loc[req["mode"] == "speculative", ["new_tokens", "stop_reason"]]
    at_budget = new.loc[new["stop_reason"] == "max_new_tokens", "new_tokens"]
    value = (trace.meta.get("config") or {}).get("max_new_tokens")
    if value is None:
        return int(at_budget.max()) if len(at_budget) else 1 << 30
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1 and (at_budget == value).all() \
            and (new["new_tokens"] <= value).all():
        return value
    held = f"its requests stopped by the budget hold {sorted(set(at_budget))[:5]} new tokens" if len(at_budget) else \
        f"its longest request holds {int(new['new_tokens'].max()) if len(new) else 0} new tokens"
    raise TraceError(f"replay: the run's {META_FILE} says max_new_tokens {value!r} in its config, but {held} "
                     "(edited by hand? restore the config the run wrote)")


def ngram_of(drafter: str) -> tuple[int, int] | None:
    """(N, M) of an n-gram drafter's label, None for any other drafter."""
    if kind_of(drafter) != "ngram":
        return None
    spec = parse_drafter(drafter)
    return spec.n_max, spec.n_min
