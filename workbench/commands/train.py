"""``workbench train``: build the default draft/target pair with the project's recipe (workbench/train/)."""

from __future__ import annotations

import argparse
import dataclasses

from workbench.commands import description
from workbench.errors import WorkbenchError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `train` subcommand (its handler is run)."""
    p = subparsers.add_parser("train", help="train the default draft/target pair from local corpora (CPU ok)",
                              description=description(__doc__))
    p.add_argument("--out", required=True, help="output dir (gets <target-name>/, <draft-name>/, training_log.json)")
    p.add_argument("--preset", choices=["default", "micro"], default="default", help="sizes/steps preset")
    p.add_argument("--steps-target", type=int, help="override the target's optimizer steps")
    p.add_argument("--steps-draft", type=int, help="override the draft's distillation steps")
    p.add_argument("--time-budget-target-min", type=float, default=0.0,
                   help="wall-clock cap for the target; the LR schedule finishes by then (0 = steps only)")
    p.add_argument("--time-budget-draft-min", type=float, default=0.0, help="same for the draft's distillation")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed for split, init, batches, prompts")
    p.add_argument("--target-name", default="target", help="sub-directory name of the target (default: target)")
    p.add_argument("--draft-name", default="draft", help="sub-directory name of the draft (default: draft)")
    p.add_argument("--prompts-out", default="", help="held-out prompt JSONL path (default: <out>/heldout.jsonl)")
    p.add_argument("--prompts-only", action="store_true",
                   help="only re-cut the held-out prompt set, using the tokenizer already saved in <out>/<target-name>")
    p.add_argument("--draft-only", action="store_true",
                   help="keep the trained target in <out>/<target-name>; distill a new draft from it")
    p.add_argument("--draft-layers", type=int, help="override the draft's transformer blocks")
    p.add_argument("--draft-hidden", type=int, help="override the draft's width (heads = hidden / 64, MLP 3x)")
    p.add_argument("--code-dir", action="append", default=[], help="dir of .py files -> category python-code")
    p.add_argument("--docs-dir", action="append", default=[],
                   help="Sphinx _sources dir of .txt reST -> categories docs-reference and docs-guide")
    p.add_argument("--bible-dir", action="append", default=[],
                   help="dir holding bible.data (Debian bible-kjv-text, read via `bible`) or *.txt books -> bible")
    p.set_defaults(func=main)
    return p


def _sources(args: argparse.Namespace) -> list:
    """Corpus sources from the flags; none given = this machine's Debian packages."""
    from workbench.train.recipe import default_sources

    if not (args.code_dir or args.docs_dir or args.bible_dir):
        return default_sources()
    defaults = {s.category: s for s in default_sources()}
    out = [dataclasses.replace(defaults["python-code"], path=d) for d in args.code_dir]
    for d in args.docs_dir:
        out += [dataclasses.replace(defaults[c], path=d) for c in ("docs-reference", "docs-guide")]
    out += [dataclasses.replace(defaults["bible"], path=d) for d in args.bible_dir]
    return out


def config_from_args(args: argparse.Namespace):
    """RecipeConfig for the preset, with the command-line overrides applied."""
    from workbench.train.recipe import RecipeConfig, micro_preset

    if args.time_budget_target_min < 0 or args.time_budget_draft_min < 0:
        raise WorkbenchError("--time-budget-*-min must be >= 0")
    for flag in ("steps_target", "steps_draft"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise WorkbenchError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    sources = _sources(args)
    cfg = micro_preset(args.out, sources) if args.preset == "micro" else RecipeConfig(out=args.out, sources=sources)
    cfg.threads, cfg.seed = args.threads, args.seed
    cfg.target_name, cfg.draft_name, cfg.prompts_out = args.target_name, args.draft_name, args.prompts_out
    if args.steps_target:
        cfg.target_train.steps = args.steps_target
    if args.steps_draft:
        cfg.draft_train.steps = args.steps_draft
    if args.draft_layers or args.draft_hidden:
        layers = args.draft_layers or cfg.draft_shape.n_layers
        hidden = args.draft_hidden or cfg.draft_shape.hidden
        if layers < 1 or hidden < 64 or hidden % 64:
            raise WorkbenchError("--draft-layers must be >= 1 and --draft-hidden a multiple of 64")
        cfg.draft_shape = dataclasses.replace(cfg.draft_shape, n_layers=layers, hidden=hidden,
                                              n_heads=hidden // 64, intermediate=3 * hidden)
    cfg.target_train.time_budget_s = 60 * args.time_budget_target_min
    cfg.draft_train.time_budget_s = 60 * args.time_budget_draft_min
    return cfg


def main(args: argparse.Namespace) -> int:
    """Train, print a one-paragraph summary, return 0."""
    from workbench.train.recipe import rebuild_prompts, retrain_draft, train_default_pair

    cfg = config_from_args(args)
    if args.prompts_only:
        print(f"{rebuild_prompts(cfg)} held-out prompts written")
        return 0
    log = retrain_draft(cfg) if args.draft_only else train_default_pair(cfg)
    for name in ("target", "draft"):
        m, h = log[name], log[name]["heldout"]
        print(f"{name}: {m['params'] / 1e6:.2f}M params, held-out loss {h['loss']:.3f} ppl {h['ppl']:.1f}, "
              f"{m['one_token_ms_fp32']:.2f} ms/token fp32, trained {m['wall_s'] / 60:.1f} min")
    print(f"c = {log['c']:.3f}; log: {args.out}/training_log.json")
    return 0

