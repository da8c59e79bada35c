"""Memory over a long run: does RSS grow with the number of requests? (issue 12)

Runs N short requests in one process through the code path ``workbench run`` uses per request
(``Session.run``: decoding + TraceRecorder + row building, then ``trace.write_part`` into a temp dir unless
``--no-write``) and prints RSS at start, after the warm-up requests, and at the end, with the growth per 1,000
requests after warm-up. Prints figures only; the lead records them (idle machine) in benchmarks/RESULTS.md.

    python benchmarks/bench_memory.py                          # 2,000 requests × 8 new tokens, default pair
    python benchmarks/bench_memory.py --tiny --requests 50     # seconds: tiny random models (a smoke check)
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

from workbench import paths, trace
from workbench.config import RunConfig
from workbench.prompts import load_prompts
from workbench.runner import RequestSpec
from workbench.session import Session


def rss_mib() -> float:
    """Resident set size of this process (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    import psutil  # not Linux
    return psutil.Process().memory_info().rss / 2**20


def tiny_pair_dirs(root: Path) -> tuple[str, str]:
    """The test suite's tiny Llama target and its 1-layer prefix draft, saved under ``root``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from tiny_models import first_layers, make_model, make_tokenizer, save

    tok = make_tokenizer()
    target = make_model("llama", vocab_size=len(tok), seed=1, layers=3)
    return (str(save(target, tok, root / "target")), str(save(first_layers(target, 1), tok, root / "draft")))


def main() -> None:
    d = RunConfig()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=100, help="requests before the 'after warm-up' reading")
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--tiny", action="store_true", help="tiny random models instead of the default pair")
    ap.add_argument("--no-write", dest="write", action="store_false", help="skip writing Parquet parts")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from workbench.progress import quiet_libraries
    quiet_libraries()

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        start = rss_mib()
        target, draft = tiny_pair_dirs(Path(tmp)) if args.tiny else (d.target, d.drafts[0])
        policy = f"constant:{args.gamma}"
        cfg = RunConfig(target=target, drafts=(draft,), policies=(policy,), device=args.device,
                        max_new_tokens=args.max_new_tokens, ignore_eos=True)
        session = Session.open(cfg)  # the very object `workbench run` decodes every request with
        label = next(iter(session.drafters))
        prompts = load_prompts(paths.prompts_path(d.prompts))
        out = Path(tmp) / "run"
        out.mkdir()
        print(f"start {start:.1f} MiB; after loading the models {rss_mib():.1f} MiB")
        t0, warm = time.perf_counter(), None
        for i in range(args.requests):
            prompt = prompts[i % len(prompts)]
            mode = "baseline" if i % 2 else "speculative"  # both code paths, alternating as a run does
            spec = RequestSpec(f"{prompt.id}~{i}/{mode}", prompt, mode, *(("", "") if i % 2 else (label, policy)))
            rows = session.run(spec, "bench", args.max_new_tokens)
            if args.write:
                trace.write_part(out, i, rows)
            if i + 1 == min(args.warmup, args.requests):
                gc.collect()
                warm = rss_mib()
                print(f"after {i + 1} warm-up requests {warm:.1f} MiB")
        gc.collect()
        end, seconds = rss_mib(), time.perf_counter() - t0
        after = max(args.requests - args.warmup, 1)
        print(f"end after {args.requests} requests ({seconds:.1f} s) {end:.1f} MiB; growth since warm-up "
              f"{end - warm:+.1f} MiB ({(end - warm) / after * 1000:+.2f} MiB per 1,000 requests)")


if __name__ == "__main__":
    main()
