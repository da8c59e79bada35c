"""A run: every prompt through each drafter × policy and, optionally, the target-only baseline.

Requests are interleaved prompt by prompt (baseline, then each drafter × policy) so slow drifts of the machine hit
every variant alike, and each one is written to the run directory as soon as it finishes (``--resume`` skips those
on a rerun). One policy object lives per drafter × policy for the whole session, so a learning policy (adaptive)
carries what it learned from request to request, the warm-up included.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench import meta, paths, trace
from workbench.config import RunConfig
from workbench.errors import WorkbenchError
from workbench.prompts import Prompt, load_prompts
from workbench.runlock import LOCK_FILE, RunLock

WARMUP_TOKENS = 16  # new tokens of each warm-up request (enough to run every code path once)
__all__ = ["RunConfig", "execute", "plan"]


@dataclass(frozen=True)
class RequestSpec:
    request_id: str  # <prompt_id>/baseline or <prompt_id>/<drafter>/<policy>; warm-ups start with warmup<k>/
    prompt: Prompt
    mode: str  # speculative | baseline
    drafter: str = ""  # drafter label ("" for baseline)
    policy: str = ""  # canonical policy spec ("" for baseline)
    warmup: bool = False


def plan(cfg: RunConfig, prompts: list[Prompt]) -> list[RequestSpec]:
    """Per prompt: the baseline (when asked), then each drafter × policy."""
    from workbench.drafters import parse_drafters
    from workbench.policies import parse_policies

    drafters = [d.label for d in parse_drafters(cfg.drafts)]
    policies = [p.spec for p in parse_policies(cfg.policies)] if drafters else []
    specs = []
    for prompt in prompts:
        if cfg.baseline:
            specs.append(RequestSpec(f"{prompt.id}/baseline", prompt, "baseline"))
        specs += [RequestSpec(f"{prompt.id}/{d}/{p}", prompt, "speculative", d, p) for d in drafters for p in policies]
    return specs


def warmups(cfg: RunConfig, prompt: Prompt, session: int) -> list[RequestSpec]:
    return [dataclasses.replace(s, request_id=f"warmup{session}/{s.request_id.split('/', 1)[1]}", warmup=True)
            for s in plan(cfg, [prompt])]


def file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def open_run_dir(cfg: RunConfig, out: Path, *, resume: bool) -> dict | None:
    """Existing meta.json when resuming a matching run; None for a new run. Refuses to mix runs.

    Settings are compared without the model and prompt *paths* (a moved checkout must resume): models are compared
    by content hash once loaded (``check_same_models``), prompts by the file's hash, drafters by their labels.
    """
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"--out {out}: exists and is not a directory")
    if (out / trace.META_FILE).is_file():
        old = trace.read_meta(out)
        if not resume:
            raise WorkbenchError(f"--out {out} already holds run {old.get('run_id')}; "
                                 "pass --resume to continue it or choose another --out")
        version = old.get("trace_version", 1)
        if version != trace.TRACE_VERSION:
            age = "a newer" if version > trace.TRACE_VERSION else "an older"
            raise WorkbenchError(f"--resume: {out} was written by {age} workbench (trace format {version}; this one "
                                 f"writes {trace.TRACE_VERSION}); start a new run")
        diff = config_diff(old["config"], cfg)
        if old.get("prompts_sha256") != file_hash(paths.prompts_path(cfg.prompts)):
            diff.append("prompts")
        if diff:
            raise WorkbenchError(f"cannot continue the run in {out}: this command's settings differ from it "
                                 f"({', '.join(diff)}); give its own settings, or choose another --out")
        return old
    if out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise WorkbenchError(f"--out {out}: directory is not empty and holds no workbench run")
    return None


def recorded_config(old: dict) -> dict:
    """A run's settings as meta.json records them, with the default of every setting its workbench did not yet
    record (the setting did not exist, so the run did what the default does)."""
    return {**RunConfig().as_dict(), **old}


def config_diff(old: dict, cfg: RunConfig) -> list[str]:
    from workbench.drafters import parse_drafters

    new, old = cfg.as_dict(), recorded_config(old)
    skip = {"target", "drafts", "prompts"}
    diff = sorted(k for k in new.keys() | old.keys() if k not in skip and new.get(k) != old.get(k))
    if [d.label for d in parse_drafters(old.get("drafts", []))] != [d.label for d in parse_drafters(cfg.drafts)]:
        diff.append("drafts")
    return diff


def check_same_models(old: dict, new: dict, out: Path) -> None:
    """A resumed run must use the very weights (content hash) and dtype it started with, not just the same paths."""
    sha = lambda info: (info or {}).get("content_sha256")  # noqa: E731
    changed = ["target"] if sha(old.get("target")) != sha(new.get("target")) else []
    changed += [label for label in new.get("drafts", {})
                if sha(old.get("drafts", {}).get(label)) != sha(new["drafts"][label])]
    changed += ["dtype"] if old.get("dtype") != new.get("dtype") else []
    if changed:
        raise WorkbenchError(f"--resume: the run in {out} was made with other models ({', '.join(changed)} changed "
                             "since); remove it or choose another --out")


def new_meta(cfg: RunConfig, pair) -> dict:
    return {"run_id": uuid.uuid4().hex[:12], "trace_version": trace.TRACE_VERSION, "created": meta.now_utc(),
            "command": sys.argv, "config": cfg.as_dict(), "seed": cfg.seed, "models": pair.info,
            "prompts_sha256": file_hash(paths.prompts_path(cfg.prompts)),
            "environment": meta.environment(pair.device), "sessions": []}


def execute(cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
            after_request: Callable[[int], None] | None = None) -> Path:
    """Run (or resume) a whole job into ``out``; returns the run directory. ``after_request(n)`` (optional) is
    called once the n-th request of this session is saved (the sweep's fault hook kills its worker there).

    Only one process writes a run directory (``RunLock``; a resumed directory is locked before the models load).
    """
    cfg.validate()
    out = Path(out)
    prompts = load_prompts(paths.prompts_path(cfg.prompts), limit=cfg.limit, per_category=cfg.per_category)
    old = open_run_dir(cfg, out, resume=resume)
    with contextlib.ExitStack() as held:
        if old is not None:
            held.enter_context(RunLock(out))
        session, run_meta = _open_session(cfg, prompts, old, out)
        out.mkdir(parents=True, exist_ok=True)  # nothing is written before every check has passed
        if old is None:
            held.enter_context(RunLock(out))
            if any(p.name != LOCK_FILE for p in out.iterdir()):  # written by another process while models loaded
                raise WorkbenchError(f"--out {out}: another process wrote into it while this run was starting; "
                                     "choose another --out")
        trace.remove_stale_temps(out)  # under the lock: no other writer's temp file can be among them
        trace.write_meta(out, run_meta)
        done = set(trace.load(out, whole=False).requests["request_id"]) if old is not None and \
            trace.completed_parts(out) else set()
        todo = [s for s in plan(cfg, prompts) if s.request_id not in done]
        next_part = max(trace.completed_parts(out), default=-1) + 1
        if cfg.warmup and todo:
            for spec in warmups(cfg, prompts[0], len(run_meta["sessions"]) - 1):
                trace.write_part(out, next_part, _run_one(session, spec, run_meta["run_id"],
                                                          min(WARMUP_TOKENS, cfg.max_new_tokens), out))
                next_part += 1
        _run_all(session, todo, out, run_meta["run_id"], next_part, progress, after_request)
        run_meta["sessions"][-1]["finished"] = meta.now_utc()
        run_meta["sessions"][-1]["requests"] = trace.request_count(out)  # a part lost later is then told (trace.load)
        trace.write_meta(out, run_meta)
    return out


def _open_session(cfg: RunConfig, prompts: list[Prompt], old: dict | None, out: Path):
    """Load the models, check every prompt fits and a resumed run's models are the same; the session's meta."""
    from workbench.session import Session

    session = Session.open(cfg)
    for prompt in prompts:
        session.check_fits(prompt)
    if old is not None:
        check_same_models(old["models"], session.pair.info, out)
    run_meta = old or new_meta(cfg, session.pair)
    run_meta["sessions"].append({"started": meta.now_utc(), "command": sys.argv,
                                 "environment": meta.environment(session.pair.device)})
    session.reseed(cfg.seed + len(run_meta["sessions"]) - 1)
    return session, run_meta


def _run_one(session, spec: RequestSpec, run_id: str, max_new: int, out: Path) -> dict:
    """One request's trace rows; a failure (NaN logits, …) names the request and says what is saved."""
    try:
        return session.run(spec, run_id, max_new)
    except WorkbenchError as exc:
        raise WorkbenchError(f"{exc} in request {spec.request_id}; stopped (every request completed before it "
                             f"is saved in {out})") from None


def _run_all(session, todo: list[RequestSpec], out: Path, run_id: str, next_part: int, progress: bool,
             after_request: Callable[[int], None] | None = None) -> None:
    from workbench.progress import Progress

    stats = {"n": 0, "gamma": 0}
    bar = Progress(len(todo), "requests", unit="req", disable=not progress)
    for done, spec in enumerate(todo, start=1):
        rows = _run_one(session, spec, run_id, session.cfg.max_new_tokens, out)
        trace.write_part(out, next_part, rows)
        next_part += 1
        if after_request is not None:
            after_request(done)
        for step in rows["steps"]:
            stats["n"] += step["n_accepted"]
            stats["gamma"] += step["gamma"]
        rate = f"{stats['n'] / stats['gamma']:.2f}" if stats["gamma"] else "-"
        bar.update(1)
        bar.set_postfix(tok_s=f"{rows['requests'][0]['tokens_per_s']:.1f}", acceptance=rate)
    bar.close()
