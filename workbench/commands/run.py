"""``workbench run``: speculative generation (each drafter × policy) and the baseline over a prompt set, traced."""

from __future__ import annotations

import argparse
import sys

from workbench.commands import description, out_path
from workbench.config import RunConfig


def comma_list(text: str) -> tuple[str, ...]:
    """An argparse type: "a, b,c" → ("a", "b", "c"); an empty list or an empty item ("a,,b") is an error."""
    items = tuple(t.strip() for t in text.split(","))
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list without empty items, got {text!r}")
    return items


class OneList(argparse.Action):
    """A list option (``--draft``, ``--policy``, ``--gamma``) is given once, as one comma-separated value: argparse
    would keep the last of ``--gamma 2 --gamma 4`` and drop the first without a word, where the user meant both.
    (A plain option given twice keeps the last, as on any command line: scripts append overrides.)"""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(self, "given", False):  # a parser is built for one command line (cli.build_parser)
            parser.error(f"{option_string} is given twice: give its list once, comma-separated "
                         f"({option_string} A,B)")
        self.given = True
        setattr(namespace, self.dest, values)


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {text!r}")
    return value


def _gammas(text: str) -> tuple[str, ...]:
    try:
        return tuple(f"constant:{int(g)}" for g in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or a comma-separated list, got {text!r}") from None


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The settings of a run (shared with ``workbench demo`` where it makes sense)."""
    d = RunConfig()
    p.add_argument("--target", default=d.target,
                   help="target model: local HF dir, cached hub id, or 'default' (the default)")
    p.add_argument("--draft", type=comma_list, action=OneList, default=d.drafts, dest="drafts", metavar="DRAFTERS",
                   help="drafters, comma-separated: model dir / hub id / 'default', ngram[:N[:M]], early-exit:L "
                        "(several = compared in one run)")
    p.add_argument("--policy", type=comma_list, action=OneList, default=None, dest="policies", metavar="POLICIES",
                   help="draft-length policies, comma-separated: constant:G, heuristic[:G0], threshold:P[:GMAX], "
                        "entropy:H[:GMAX], adaptive[:GMAX] (default constant:4)")
    p.add_argument("--gamma", type=_gammas, action=OneList, default=None, metavar="G[,G...]",
                   help="shorthand for --policy constant:G,...; combined with --policy")
    p.add_argument("--prompts", default=d.prompts,
                   help="JSONL prompts file (id, category, prompt) or a bundled set: heldout | general | chat "
                        "(chat: conversations, needs --chat-template)")
    p.add_argument("--temperature", type=float, default=d.temperature, help="0 = greedy (default); sampling: ≥ 1e-5")
    p.add_argument("--top-k", type=int, default=d.top_k, help="top-k filter for p and q; 0 = off (default %(default)s)")
    p.add_argument("--top-p", type=float, default=d.top_p,
                   help="nucleus filter for p and q; 1 = off (default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens,
                   help="new tokens per request (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the run's torch.Generator (default %(default)s)")
    p.add_argument("--device", default=d.device, help="auto | cpu | cuda | mps (default %(default)s)")
    p.add_argument("--dtype", default=d.dtype,
                   help="auto (float32 on CPU, bfloat16 on CUDA, float16 on MPS) | float32 | bfloat16 | float16")
    p.add_argument("--baseline", action="store_true", help="also run target-only decoding on every prompt")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    p.add_argument("--per-category", type=int, default=None, help="only the first N prompts of each category")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the flagged warm-up requests")
    p.add_argument("--ignore-eos", action="store_true", help="always generate --max-new-tokens tokens")
    p.add_argument("--chat-template", action="store_true",
                   help="give each prompt as a user message through the target tokenizer's chat template "
                        "(chat/instruct models); off: the prompt text as is")
    p.add_argument("--system-prompt", metavar="TEXT", default=d.system_prompt,
                   help="with --chat-template: a system message before every prompt (default: none)")
    p.add_argument("--no-replay-data", dest="replay_data", action="store_false",
                   help="skip the teacher-forced pass that `workbench replay` needs")
    p.add_argument("--trust-remote-code", action="store_true", help="allow code shipped with a model (off by default)")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    policies = (args.gamma or ()) + (args.policies or ())
    temperature = args.temperature + 0.0  # --temperature -0 is recorded (and shown) as 0
    return RunConfig(target=args.target, drafts=args.drafts, policies=policies or RunConfig().policies,
                     prompts=args.prompts, temperature=temperature, top_k=args.top_k, top_p=args.top_p,
                     max_new_tokens=args.max_new_tokens, seed=args.seed, device=args.device, dtype=args.dtype,
                     baseline=args.baseline, limit=args.limit, per_category=args.per_category, warmup=args.warmup,
                     ignore_eos=args.ignore_eos, chat_template=args.chat_template, system_prompt=args.system_prompt,
                     replay_data=args.replay_data, trust_remote_code=args.trust_remote_code)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("run", help="speculative generation (and baseline) over a prompt set, with traces",
                       description=description(__doc__))
    add_run_arguments(p)
    p.add_argument("--out", required=True, type=out_path, help="run directory to create (or continue with --resume)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run, skipping completed requests")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from workbench.runner import execute

    out = execute(config_from_args(args), args.out, resume=args.resume, progress=args.progress)
    print_summary(out)
    return 0


def print_summary(out) -> None:
    """What a finished run measured, per setting (``summary.summary_table``), and a warning on stderr when its
    clock was disturbed (``clock.clock_note``): what ``run`` and ``demo`` print."""
    from workbench import trace
    from workbench.analysis.clock import clock_note
    from workbench.analysis.summary import summary_table

    loaded = trace.load(out)
    print(f"run {loaded.meta['run_id']} → {out}")
    table = summary_table(loaded)
    if "temperature" in table:  # 1e-05 must not print as 0.000, which reads as greedy
        table["temperature"] = table["temperature"].map(lambda t: f"{t:g}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    disturbed = clock_note(loaded.steps, loaded.requests)
    if disturbed:
        print(f"warning: {disturbed}", file=sys.stderr)
