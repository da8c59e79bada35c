"""Hand-made traces for the analysis and notebook tests (docs/TRACE.md schema).

Nothing here is a measurement: the tables are constructed so that the answers are known. ``request_rows`` builds
one request's rows from a list of per-step facts, keeping every invariant of docs/TRACE.md (Σ n_emitted =
new_tokens, γ draft rows + one correction-or-bonus row per speculative step, ...). ``write_synthetic_run`` writes a
small γ sweep with baseline into a run directory, for notebook tests when no real sample run is committed.
"""

from __future__ import annotations

import random
from pathlib import Path

from workbench import trace as wtrace

RUN_ID = "test-run"


def request_rows(prompt_id, mode, gamma, steps, *, category="cat", temperature=0.0, alpha_tv=0.5,
                 prefill_ms=10.0, warmup=False, run_id=RUN_ID, texts=None, drafter="draft", policy=None):
    """Rows of one request. ``steps``: list of (n_accepted, draft_ms, verify_ms, other_ms) for steps ≥ 1, or
    (n_accepted, draft_ms, verify_ms, other_ms, γ) for a step that drafted another γ (variable-γ policies), or
    (..., γ, draft_stop) for a step the policy planned at ``gamma`` that drafted γ and stopped for that reason
    (e.g. (0, 0.1, 20, 1, 0, "no-match"): an n-gram search that found nothing).

    Baseline requests (gamma 0) take n_accepted = 0. The policy defaults to ``constant:<gamma>``. Tokens get ids from
    a counter and text ``texts[id % len]`` (default ``"t<id>"``); p = 0.9 for accepted drafts and target tokens,
    0.1 for rejected drafts; q = 0.5.
    """
    policy = "" if mode == "baseline" else (policy or f"constant:{gamma}")
    drafter = "" if mode == "baseline" else drafter
    rid = f"{prompt_id}/baseline" if mode == "baseline" else f"{prompt_id}/{drafter}/{policy}"
    if warmup:
        rid = f"warmup0/{rid}"
    step_rows, tok_rows, counter, t = [], [], [0], 0.0

    def tok(step, pos, role, accepted=False, evaluated=False, emitted=True):
        tid = counter[0]
        counter[0] += 1
        text = texts[tid % len(texts)] if texts else f"t{tid}"
        is_draft = role == "draft"
        tok_rows.append(dict(run_id=run_id, request_id=rid, step=step, position=pos, token_id=tid, token_text=text,
                             q=0.5 if is_draft else float("nan"), p=0.9 if (accepted or not is_draft) else 0.1,
                             accept_prob=(1.0 if accepted else 0.2) if is_draft else float("nan"),
                             accepted=accepted, evaluated=evaluated, emitted=emitted,
                             alpha_tv=alpha_tv if is_draft else float("nan"), role=role))

    step_rows.append(dict(run_id=run_id, request_id=rid, step=0, gamma=0, gamma_planned=0, draft_stop="",
                          n_accepted=0, n_emitted=1, context_len=5, draft_ms=0.0, verify_ms=prefill_ms, other_ms=0.0,
                          t_start_ms=0.0))
    tok(0, 0, "target")
    t = prefill_ms
    for i, (n, d, v, o, *own) in enumerate(steps, start=1):
        g = (own[0] if own else gamma) if mode == "speculative" else 0
        planned, stop = (gamma, own[1]) if len(own) > 1 else (g, "cap" if g else "")
        for pos in range(1, g + 1):
            tok(i, pos, "draft", accepted=pos <= n, evaluated=pos <= n + 1, emitted=pos <= n)
        if g == 0:
            tok(i, 0, "target")
        else:
            tok(i, n + 1, "bonus" if n == g else "correction")
        step_rows.append(dict(run_id=run_id, request_id=rid, step=i, gamma=g, gamma_planned=planned,
                              draft_stop=stop, n_accepted=n, n_emitted=n + 1, context_len=5 + i,
                              draft_ms=d, verify_ms=v, other_ms=o, t_start_ms=t))
        t += d + v + o
    new = sum(r["n_emitted"] for r in step_rows)
    req = dict(run_id=run_id, request_id=rid, prompt_id=prompt_id, category=category, mode=mode, drafter=drafter,
               policy=policy, temperature=temperature, prompt_tokens=5, new_tokens=new, prefill_ms=prefill_ms,
               ttft_ms=prefill_ms, total_ms=t, tokens_per_s=new / t * 1000, ms_per_token=t / new, output_text="",
               stop_reason="max_new_tokens", warmup=warmup, started_at=0.0, prompt_token_ids=[1, 2, 3, 4, 5],
               output_token_ids=[r["token_id"] for r in tok_rows if r["emitted"]])
    return {"requests": [req], "steps": step_rows, "tokens": tok_rows, "forced": []}


def write_run(run_dir: Path, requests: list[dict], meta: dict | None = None) -> Path:
    """Write request row-dicts (from ``request_rows``) as parts 0, 1, ... of a run directory."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    wtrace.write_meta(run_dir, meta or {"run_id": RUN_ID, "synthetic": True, "trace_version": wtrace.TRACE_VERSION})
    for k, rows in enumerate(requests):
        wtrace.write_part(run_dir, k, rows)
    return run_dir


def write_synthetic_run(run_dir: Path, *, gammas=(1, 2, 4), prompts=3, steps=12, alpha=0.7, temperature=0.0,
                        run_id=RUN_ID, seed=0) -> Path:
    """A small synthetic γ sweep with baseline (i.i.d. acceptance α, T_t(k) = 20 + 2k ms, T_d = 2 ms, other 1 ms)."""
    rng = random.Random(seed)
    words = ["def", " f", "(", "x", "):", "\n", " return", " x", " +", " 1", " <b>", "&"]
    reqs = [request_rows("w", "baseline", 0, [(0, 0.0, 22.0, 1.0)] * 2, warmup=True, run_id=run_id)]
    for p in range(prompts):
        cat = "code" if p % 2 == 0 else "prose"
        common = dict(category=cat, temperature=temperature, run_id=run_id, texts=words)
        reqs.append(request_rows(f"p{p}", "baseline", 0,
                                 [(0, 0.0, 22.0 + rng.random(), 1.0) for _ in range(steps)], **common))
        for g in gammas:
            rows = []
            for _ in range(steps):
                n = 0
                while n < g and rng.random() < alpha:
                    n += 1
                rows.append((n, 2.0 * g + rng.random(), 20.0 + 2.0 * (g + 1) + rng.random(), 1.5))
            reqs.append(request_rows(f"p{p}", "speculative", g, rows, alpha_tv=alpha, **common))
    return write_run(run_dir, reqs, {"run_id": run_id, "synthetic": True, "trace_version": wtrace.TRACE_VERSION,
                                     "config": {"temperature": temperature}})


def as_killed(run_dir: Path, parts=()) -> None:
    """``run_dir`` as a kill leaves it: these parts without their requests file (written last, so the part is not
    complete), and its last session without the ``finished`` mark and request count a finished session records."""
    import json

    for k in parts:
        (Path(run_dir) / f"requests-{k:05d}.parquet").unlink()
    meta = json.loads((Path(run_dir) / "meta.json").read_text())
    for key in ("finished", "requests"):
        meta["sessions"][-1].pop(key, None)
    (Path(run_dir) / "meta.json").write_text(json.dumps(meta))
