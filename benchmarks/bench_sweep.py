"""Wall time of one 4-run sweep: sequential in this process vs a local Ray cluster with 2 workers, and what Ray adds
per task.

    .venv/bin/python benchmarks/bench_sweep.py [--size tiny|default] [--workers 2]

tiny (default; seconds): random 3-layer Llama target, 1-layer drafts (tests/tiny_models.py), 3 prompts,
8 new tokens; runs = 2 drafts × γ ∈ {1, 3}. default: the embedded pair on 2 held-out prompts, 32 new tokens;
runs = γ ∈ {2, 4, 6, 8}. No baseline runs (4 runs exactly), no warm-up requests. Nothing is recorded: it prints.

Per-task overhead = (Ray wall × workers − sequential wall) / runs: worker-seconds Ray spent per task beyond the
sequential work (worker processes importing torch and loading the models afresh, scheduling, serialisation).
Ray's cluster start is printed separately and is not in the Ray wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ['{"id": "a", "category": "prose", "prompt": "The quick brown fox"}',
           '{"id": "b", "category": "code", "prompt": "def add(a, b):"}',
           '{"id": "c", "category": "prose", "prompt": "A speculative decoder drafts"}']


def tiny_grid(root: Path) -> dict:
    """Random tiny models (seconds to build) and a 3-prompt file under ``root``."""
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import first_layers, make_model, make_tokenizer, save

    tok = make_tokenizer()
    target = make_model("llama", vocab_size=len(tok), seed=1, layers=3)
    dirs = [save(target, tok, root / "target"), save(first_layers(target, 1), tok, root / "draft_prefix"),
            save(make_model("llama", vocab_size=len(tok), seed=2, layers=1), tok, root / "draft_random")]
    (root / "prompts.jsonl").write_text("\n".join(PROMPTS) + "\n")
    return {"target": str(dirs[0]), "draft": [str(d) for d in dirs[1:]], "gamma": [1, 3],
            "prompts": str(root / "prompts.jsonl"), "max_new_tokens": 8, "device": "cpu"}


def write_sweep(path: Path, grid: dict, limit: int | None) -> Path:
    settings = {"baseline": False, "warmup": False, **({"limit": limit} if limit else {})}
    lines = ["[grid]", *(f"{k} = {json.dumps(v)}" for k, v in grid.items()),
             "[settings]", *(f"{k} = {json.dumps(v)}" for k, v in settings.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(label: str, fn) -> float:
    start = time.perf_counter()
    failed = fn()
    wall = time.perf_counter() - start
    if failed:
        raise SystemExit(f"{label}: {len(failed)} run(s) failed: {failed[0]['error']}")
    print(f"{label:<34} {wall:8.2f} s", flush=True)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("tiny", "default"), default="tiny", help="models (default: tiny)")
    ap.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray cluster = parallel runs")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ray
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    from workbench.sweep import run_sweep

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        tmp = Path(tmp)
        grid = tiny_grid(tmp) if args.size == "tiny" else {"gamma": [2, 4, 6, 8], "max_new_tokens": 32,
                                                           "device": "cpu"}
        sweep_file = write_sweep(tmp / "sweep.toml", grid, None if args.size == "tiny" else 2)
        torch.set_num_threads(1)  # one thread per run, as each Ray task gets (num_cpus=1)
        print(f"sweep: 4 runs, {args.size} models, torch {torch.__version__}, ray {ray.__version__}, "
              f"{os.cpu_count()} CPUs on this machine")
        seq = timed("sequential (this process)", lambda: run_sweep(sweep_file, tmp / "seq", progress=False))
        start = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        print(f"{'ray cluster start':<34} {time.perf_counter() - start:8.2f} s")
        try:
            par = timed(f"ray, {args.workers} workers", lambda: run_sweep(sweep_file, tmp / "ray", ray="auto",
                                                                          progress=False))
        finally:
            ray.shutdown()
        print(f"{'ray overhead per task':<34} {(par * args.workers - seq) / 4:8.2f} s  "
              "(= (ray wall × workers − sequential wall) / 4)")


if __name__ == "__main__":
    main()
