"""A run: every prompt through speculative decoding (for each γ) and, optionally, the target-only baseline.

Requests are interleaved prompt by prompt (baseline, then each γ) so slow drifts of the machine hit both modes alike,
and each one is written to the run directory as soon as it finishes (``--resume`` skips those on a rerun).
"""

from __future__ import annotations

import dataclasses
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from workbench import meta, trace
from workbench.errors import WorkbenchError
from workbench.pair import ModelPair, check_fits, load_pair
from workbench.prompts import Prompt, load_prompts
from workbench.recorder import TraceRecorder
from workbench.sampling import SamplingConfig
from workbench.speculative import Decoding, generate_baseline, generate_speculative
from workbench.timing import PhaseClock

DATA = Path(__file__).resolve().parent.parent / "data"
WARMUP_TOKENS = 16  # new tokens of each warm-up request (enough to run every code path once)


@dataclass
class RunConfig:
    target: str = str(DATA / "models" / "default-target")  # HF dir or locally cached hub id: the target (p)
    draft: str = str(DATA / "models" / "default-draft")  # same for the draft (q); must share the tokenizer
    prompts: str = str(DATA / "prompts" / "heldout.jsonl")  # JSONL: id, category, prompt
    gammas: tuple[int, ...] = (4,)  # draft lengths γ to run (several = a sweep within one run)
    temperature: float = 0.0  # 0 = greedy; > 0 samples (applied to p and q alike)
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1.0 = off
    max_new_tokens: int = 64  # per request
    seed: int = 0  # seeds the run's single torch.Generator
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: str = "auto"  # auto (float32 on CPU, bfloat16 on CUDA) | float32 | bfloat16 | float16
    baseline: bool = False  # also run target-only decoding on every prompt
    limit: int | None = None  # only the first N prompts
    per_category: int | None = None  # only the first N prompts of each category (applied before limit)
    warmup: bool = True  # run (and flag) one short warm-up request per mode and γ first
    ignore_eos: bool = False  # always generate max_new_tokens (fixed-length benchmarks)
    trust_remote_code: bool = False  # let transformers run code shipped with a model (off unless asked)

    def validate(self) -> None:
        if not self.gammas or any(g < 1 for g in self.gammas):
            raise WorkbenchError("--gamma must be ≥ 1 (draft tokens per step)")
        if any(g > 64 for g in self.gammas):
            raise WorkbenchError("--gamma above 64 is not a useful draft length")
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1:
            raise WorkbenchError("need --temperature ≥ 0, --top-k ≥ 0 and 0 < --top-p ≤ 1")
        if self.max_new_tokens < 1 or any(v is not None and v < 1 for v in (self.limit, self.per_category)):
            raise WorkbenchError("--max-new-tokens, --limit and --per-category must be ≥ 1")

    @property
    def sampling(self) -> SamplingConfig:
        return SamplingConfig(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)


@dataclass(frozen=True)
class RequestSpec:
    request_id: str
    prompt: Prompt
    mode: str  # speculative | baseline
    gamma: int  # 0 for baseline
    warmup: bool = False


def plan(cfg: RunConfig, prompts: list[Prompt]) -> list[RequestSpec]:
    """Per prompt: the baseline (when asked), then speculative decoding at each γ."""
    specs = []
    for prompt in prompts:
        if cfg.baseline:
            specs.append(RequestSpec(f"{prompt.id}/baseline", prompt, "baseline", 0))
        specs += [RequestSpec(f"{prompt.id}/speculative/g{g}", prompt, "speculative", g) for g in cfg.gammas]
    return specs


def warmups(cfg: RunConfig, prompt: Prompt, session: int) -> list[RequestSpec]:
    return [dataclasses.replace(s, request_id=f"warmup{session}/{s.request_id.split('/', 1)[1]}", warmup=True)
            for s in plan(cfg, [prompt])]


def run_request(pair: ModelPair, dec: Decoding, spec: RequestSpec, run_id: str, *,
                max_new_tokens: int) -> dict[str, list[dict]]:
    """Decode one request and return its rows for the three tables."""
    prompt_ids = pair.encode(spec.prompt.prompt)
    dec = dataclasses.replace(dec, max_new_tokens=max_new_tokens)
    recorder = TraceRecorder()
    if spec.mode == "baseline":
        gen = generate_baseline(dec, prompt_ids, recorder)
    else:
        gen = generate_speculative(dec, prompt_ids, spec.gamma, recorder)
    times = dec.clock.finish()
    ids = {"run_id": run_id, "request_id": spec.request_id}
    steps, tokens = recorder.rows(times, ids, pair.decode_each)
    total = times[-1]
    prefill = steps[0]["draft_ms"] + steps[0]["verify_ms"] + steps[0]["other_ms"]  # step 0 ends with token 1
    request = {**ids, "prompt_id": spec.prompt.id, "category": spec.prompt.category, "mode": spec.mode,
               "gamma": spec.gamma, "temperature": dec.sampling.temperature, "prompt_tokens": len(prompt_ids),
               "new_tokens": len(gen.tokens), "prefill_ms": prefill, "ttft_ms": prefill, "total_ms": total,
               "tokens_per_s": len(gen.tokens) / total * 1000.0, "ms_per_token": total / len(gen.tokens),
               "output_text": pair.tokenizer.decode(gen.tokens, skip_special_tokens=True),
               "stop_reason": gen.stop_reason, "warmup": spec.warmup}
    return {"requests": [request], "steps": steps, "tokens": tokens}


def open_run_dir(cfg: RunConfig, out: Path, *, resume: bool) -> dict | None:
    """Existing meta.json when resuming a matching run; None for a new run. Refuses to mix runs."""
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"--out {out}: exists and is not a directory")
    if (out / trace.META_FILE).is_file():
        old = trace.read_meta(out)
        if not resume:
            raise WorkbenchError(f"--out {out} already holds run {old.get('run_id')}; "
                                 "pass --resume to continue it or choose another --out")
        new = _config_dict(cfg)
        diff = sorted(k for k in new.keys() | old["config"].keys() if new.get(k) != old["config"].get(k))
        if diff:
            raise WorkbenchError(f"--resume: this command's settings differ from the run in {out} ({', '.join(diff)})")
        return old
    if out.is_dir() and any(out.iterdir()):
        raise WorkbenchError(f"--out {out}: directory is not empty and holds no workbench run")
    return None


def check_same_models(old: dict, new: dict, out: Path) -> None:
    """A resumed run must use the very weights (content hash) and dtype it started with, not just the same paths."""
    changed = [role for role in ("target", "draft")
               if (old.get(role) or {}).get("content_sha256") != (new.get(role) or {}).get("content_sha256")]
    changed += ["dtype"] if old.get("dtype") != new.get("dtype") else []
    if changed:
        raise WorkbenchError(f"--resume: the run in {out} was made with other models ({', '.join(changed)} changed "
                             "since); remove it or choose another --out")


def _config_dict(cfg: RunConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def new_meta(cfg: RunConfig, pair: ModelPair) -> dict:
    return {"run_id": uuid.uuid4().hex[:12], "created": meta.now_utc(), "command": sys.argv,
            "config": _config_dict(cfg), "seed": cfg.seed, "models": pair.info,
            "environment": meta.environment(pair.device), "sessions": []}


def _running_acceptance(stats: dict, rows: dict) -> str:
    """Pooled acceptance of this session's speculative requests, for the progress bar."""
    for step in rows["steps"]:
        if step["gamma"] > 0:
            stats["n"] += step["n_accepted"]
            stats["gamma"] += step["gamma"]
    return f"{stats['n'] / stats['gamma']:.2f}" if stats["gamma"] else "-"


def execute(cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True) -> Path:
    """Run (or resume) a whole job into ``out``; returns the run directory."""
    cfg.validate()
    out = Path(out)
    prompts = load_prompts(cfg.prompts, limit=cfg.limit, per_category=cfg.per_category)
    old = open_run_dir(cfg, out, resume=resume)
    pair = load_pair(target=cfg.target, draft=cfg.draft, device=cfg.device, dtype=cfg.dtype,
                     trust_remote_code=cfg.trust_remote_code)
    for prompt in prompts:
        check_fits(pair, prompt.id, len(pair.encode(prompt.prompt)), cfg.max_new_tokens, max(cfg.gammas))
    if old is not None:
        check_same_models(old["models"], pair.info, out)
    run_meta = old or new_meta(cfg, pair)
    session = len(run_meta["sessions"])
    run_meta["sessions"].append({"started": meta.now_utc(), "command": sys.argv,
                                 "environment": meta.environment(pair.device)})
    out.mkdir(parents=True, exist_ok=True)
    trace.write_meta(out, run_meta)

    done = set()
    if old is not None:  # request ids already on disk are skipped
        done = set(trace.load(out).requests["request_id"]) if trace.completed_parts(out) else set()
    todo = [s for s in plan(cfg, prompts) if s.request_id not in done]
    generator = torch.Generator(device=pair.device).manual_seed(cfg.seed + session)
    dec = Decoding(target=pair.target, draft=pair.draft, sampling=cfg.sampling, generator=generator,
                   clock=PhaseClock(pair.device), eos_ids=frozenset() if cfg.ignore_eos else pair.eos_ids(),
                   max_new_tokens=cfg.max_new_tokens)
    next_part = max(trace.completed_parts(out), default=-1) + 1
    if cfg.warmup and todo:
        for spec in warmups(cfg, prompts[0], session):
            rows = run_request(pair, dec, spec, run_meta["run_id"], max_new_tokens=min(WARMUP_TOKENS,
                                                                                        cfg.max_new_tokens))
            trace.write_part(out, next_part, rows)
            next_part += 1
    stats = {"n": 0, "gamma": 0}
    bar = tqdm(todo, desc="requests", unit="req", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    for spec in bar:
        rows = run_request(pair, dec, spec, run_meta["run_id"], max_new_tokens=cfg.max_new_tokens)
        trace.write_part(out, next_part, rows)
        next_part += 1
        bar.set_postfix(tok_s=f"{rows['requests'][0]['tokens_per_s']:.1f}", acceptance=_running_acceptance(stats, rows))
    run_meta["sessions"][-1]["finished"] = meta.now_utc()
    trace.write_meta(out, run_meta)
    return out
