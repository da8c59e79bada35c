"""Selecting and shaping the trace tables: the one place that decides what counts and how request settings are
attached to steps. Every analysis module goes through here.

Conventions (docs/TRACE.md): ``gamma`` is always the number of tokens drafted *in that step* (a steps column);
what a request was configured with is its ``drafter`` and ``policy`` (requests columns; for ``constant:G`` policies
``policy_gamma`` gives G as a number). Warm-up requests never count. Decode steps are steps ≥ 1 (step 0 is the
prefill, reported as TTFT).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SETTING = ["drafter", "policy", "temperature"]  # what identifies a speculative variant within a run
REQUEST_COLUMNS = ["request_id", "prompt_id", "category", "mode", "drafter", "policy", "temperature"]


def measured_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """Requests that count in summaries: warm-ups dropped."""
    return requests[~requests["warmup"].astype(bool)]


BASELINE_KEY = ["run_id", "prompt_id", "temperature"]  # a speculative request pairs with this baseline


def baseline_ms_per_token(requests: pd.DataFrame) -> pd.Series:
    """ms/token of each prompt's baseline request, indexed by BASELINE_KEY (the median where a prompt's baseline
    ran more than once in a run): what every measured and predicted speedup divides. The run is part of the key: in
    a combined trace (several runs, perhaps several machines or targets) a request pairs only with its own run's
    baseline."""
    req = measured_requests(requests)
    return req[req["mode"] == "baseline"].groupby(BASELINE_KEY)["ms_per_token"].median()


def paired_speedups(requests: pd.DataFrame, baseline: pd.DataFrame | None = None) -> pd.DataFrame:
    """Measured speculative requests with ``base_ms_per_token`` (the same prompt's baseline in the same run; NaN if
    none) and ``speedup`` = base_ms_per_token ÷ ms_per_token: the per-prompt ratio every speedup is a median of.
    ``baseline``: the requests of a separate target-only run to pair with instead (a sweep keeps its baseline in a
    run of its own), by prompt and temperature."""
    req = measured_requests(requests)
    spec = req[req["mode"] == "speculative"]
    if baseline is None:
        base, key = baseline_ms_per_token(requests), BASELINE_KEY
    else:
        key = [k for k in BASELINE_KEY if k != "run_id"]
        base = baseline_ms_per_token(baseline.assign(run_id="")).droplevel("run_id")
    keys = pd.MultiIndex.from_arrays([spec[c] for c in key])
    paired = base.reindex(keys).to_numpy(float) if len(base) else np.full(len(spec), np.nan)
    return spec.assign(base_ms_per_token=paired, speedup=paired / spec["ms_per_token"].to_numpy(float))


def policy_gamma(policy: pd.Series) -> pd.Series:
    """G of ``constant:G`` policies as a float; NaN for every other policy (and for baseline rows)."""
    g = policy.astype(str).str.extract(r"^constant:(\d+)$")[0]
    return pd.to_numeric(g, errors="coerce")


def decode_steps(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Steps ≥ 1 of measured requests with the request columns attached (mode, drafter, policy, temperature,
    category, prompt_id) and derived columns ``k`` (tokens in the target forward: γ + 1), ``step_ms`` (the sum of
    the phases), ``ms_per_token`` (step_ms / n_emitted) and ``judged`` (drafts the rule judged: n, plus the rejected
    one when n < γ)."""
    req = measured_requests(requests)[REQUEST_COLUMNS]
    s = steps[steps["step"] >= 1].merge(req, on="request_id", how="inner")
    s["k"] = s["gamma"] + 1
    s["step_ms"] = s["draft_ms"] + s["verify_ms"] + s["other_ms"]
    s["ms_per_token"] = s["step_ms"] / s["n_emitted"].where(s["n_emitted"] > 0)
    s["judged"] = s["n_accepted"] + (s["n_accepted"] < s["gamma"])
    return s


def speculative_steps(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Decode steps of measured speculative requests (steps that drafted nothing included: they cost a target
    call and emit one token)."""
    s = decode_steps(steps, requests)
    return s[s["mode"] == "speculative"]


def constant_steps(steps: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Speculative decode steps of constant-γ requests, with ``policy_gamma`` (their configured γ)."""
    s = speculative_steps(steps, requests)
    s = s.assign(policy_gamma=policy_gamma(s["policy"]))
    return s[s["policy_gamma"].notna()]


def setting_label(frame: pd.DataFrame) -> pd.Series:
    """"drafter · policy" (and T when several temperatures are present) for legends and table rows."""
    label = frame["drafter"].astype(str) + " · " + frame["policy"].astype(str)
    if frame["temperature"].nunique() > 1:
        label = label + " T=" + frame["temperature"].map("{:g}".format)
    return label.where(frame["drafter"].astype(str) != "", "baseline")


def head_rows(frame: pd.DataFrame, rows: int = 40) -> pd.DataFrame:
    """At most ``rows`` rows, for tables shown in a report (a 1M-step trace must not print a million rows)."""
    return frame if len(frame) <= rows else frame.head(rows)


def sample_requests(frame: pd.DataFrame, limit: int, seed: int = 0, key: str = "request_id") -> pd.DataFrame:
    """Rows of at most ``limit`` values of ``key`` (request ids, or prompt ids), chosen at random (seeded) when
    there are more: the same values for the same set, whichever frame they are drawn from."""
    ids = np.sort(frame[key].unique())
    if len(ids) <= limit:
        return frame
    keep = np.random.default_rng(seed).choice(ids, size=limit, replace=False)
    return frame[frame[key].isin(keep)]
