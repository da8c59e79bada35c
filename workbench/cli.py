"""The ``workbench`` command: ``run`` (speculative + baseline generation with traces), and the other subcommands.

Bad input ends with one line ``error: …`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from workbench import demo, report
from workbench.errors import WorkbenchError
from workbench.interrupts import exit_code, install_sigterm_handler, interrupted_message
from workbench.progress import quiet_libraries
from workbench.train import cli as train_cli

EXIT_USAGE = 2
OOM_HINT = "out of memory (try a smaller model, --dtype bfloat16, fewer --max-new-tokens or a smaller --gamma)"


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line, like every other bad input."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _gammas(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(g) for g in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or a comma-separated list, got {text!r}") from None


def add_run_parser(sub) -> None:
    from workbench.runner import RunConfig

    d = RunConfig()
    p = sub.add_parser("run", help="speculative generation (and baseline) over a prompt set, with traces")
    p.add_argument("--target", default=d.target, help="target model: local HF dir or cached hub id (default: embedded)")
    p.add_argument("--draft", default=d.draft, help="draft model: local HF dir or cached hub id (default: embedded)")
    p.add_argument("--prompts", default=d.prompts, help="JSONL prompts file: id, category, prompt")
    p.add_argument("--gamma", type=_gammas, default=d.gammas, help="draft length γ, or a list like 1,2,4,8 (sweep)")
    p.add_argument("--temperature", type=float, default=d.temperature, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=d.top_k, help="top-k filter for p and q; 0 = off")
    p.add_argument("--top-p", type=float, default=d.top_p, help="nucleus filter for p and q; 1 = off")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="new tokens per request")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the run's torch.Generator")
    p.add_argument("--device", default=d.device, help="auto | cpu | cuda | mps")
    p.add_argument("--dtype", default=d.dtype, help="auto (float32 on CPU, bfloat16 on CUDA) | float32 | bfloat16 | float16")
    p.add_argument("--baseline", action="store_true", help="also run target-only decoding on every prompt")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    p.add_argument("--per-category", type=int, default=None, help="only the first N prompts of each category")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the flagged warm-up requests")
    p.add_argument("--ignore-eos", action="store_true", help="always generate --max-new-tokens tokens")
    p.add_argument("--trust-remote-code", action="store_true", help="allow code shipped with a model (off by default)")
    p.add_argument("--out", required=True, help="run directory to create (or continue with --resume)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run, skipping completed requests")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from workbench import trace
    from workbench.analysis.metrics import summary_table
    from workbench.runner import RunConfig, execute

    cfg = RunConfig(target=args.target, draft=args.draft, prompts=args.prompts, gammas=args.gamma,
                    temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                    max_new_tokens=args.max_new_tokens, seed=args.seed, device=args.device, dtype=args.dtype,
                    baseline=args.baseline, limit=args.limit, per_category=args.per_category, warmup=args.warmup,
                    ignore_eos=args.ignore_eos, trust_remote_code=args.trust_remote_code)
    out = execute(cfg, args.out, resume=args.resume, progress=args.progress)
    loaded = trace.load(out)
    print(f"run {loaded.meta['run_id']} → {out}")
    print(summary_table(loaded.requests, loaded.steps).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="workbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_run_parser(sub)
    demo.add_parser(sub)
    report.add_parser(sub)
    train_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
    quiet_libraries()  # no "Loading weights" bars or library chatter between our own lines
    install_sigterm_handler()  # SIGTERM (kill, timeout, pre-emption) unwinds like Ctrl-C below
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C → 130, SIGTERM (Terminated) → 143
        print(interrupted_message(sys.argv[1:] if argv is None else argv, getattr(args, "out", None)), file=sys.stderr)
        return exit_code(exc)
    except MemoryError:
        print(f"error: {OOM_HINT}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # CUDA OOM is a RuntimeError subclass; anything else is a bug: show it whole
        if "out of memory" not in str(exc):
            raise
        print(f"error: {OOM_HINT}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
