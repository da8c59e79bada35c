"""``workbench train``: build the default draft/target pair with the project's recipe (workbench/train/)."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

from workbench.commands import check_dir_path, description, out_path
from workbench.config import MAX_SEED  # the run's bound; the draft's init and the copy prompts use seed + 1
from workbench.errors import WorkbenchError

# file names the recipe writes into --out itself, so neither can be a model's sub-directory
_RESERVED_NAMES = ("training_log.json", "heldout.jsonl")
# What a valid value of a numeric flag is: dest → (test, wording). An absent optional flag (None) is not checked;
# 0 and negative values are, so none is dropped by a truthiness test.
_RULES = {
    "steps_target": (lambda v: v >= 1, "≥ 1"),
    "steps_draft": (lambda v: v >= 1, "≥ 1"),
    "time_budget_target_min": (lambda v: v >= 0 and math.isfinite(60 * v), "a finite number ≥ 0 (0 = steps only)"),
    "time_budget_draft_min": (lambda v: v >= 0 and math.isfinite(60 * v), "a finite number ≥ 0 (0 = steps only)"),
    "threads": (lambda v: 1 <= v < 2**31, "≥ 1 (and < 2**31)"),
    "seed": (lambda v: 0 <= v <= MAX_SEED, f"an integer in 0 … {MAX_SEED}"),
    "draft_layers": (lambda v: v >= 1, "≥ 1"),
    "draft_hidden": (lambda v: v >= 64 and v % 64 == 0, "a positive multiple of 64 (heads = hidden / 64)"),
}
# flags that would be ignored with --draft-only (the target is kept) and with --prompts-only (nothing is trained)
_NOT_WITH = {
    "draft_only": ("steps_target", "time_budget_target_min", "prompts_out"),
    "prompts_only": ("steps_target", "steps_draft", "time_budget_target_min", "time_budget_draft_min",
                     "draft_layers", "draft_hidden"),
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `train` subcommand (its handler is run)."""
    p = subparsers.add_parser("train", help="train the default draft/target pair from local corpora (CPU ok)",
                              description=description(__doc__))
    p.add_argument("--out", required=True, type=out_path,
                   help="output dir (gets <target-name>/, <draft-name>/, training_log.json)")
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


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _check_values(args: argparse.Namespace) -> None:
    """Every numeric flag against its rule, and no flag that the chosen mode would ignore."""
    for dest, (ok, wording) in _RULES.items():
        value = getattr(args, dest)
        if value is not None and not ok(value):  # NaN fails every test above
            raise WorkbenchError(f"{_flag(dest)} must be {wording}, got {value}")
    if args.draft_only and args.prompts_only:
        raise WorkbenchError("--draft-only and --prompts-only exclude each other (give one)")
    for mode, dests in _NOT_WITH.items():
        given = [d for d in dests if getattr(args, mode) and getattr(args, d) not in (None, 0, "", False)]
        if given:
            raise WorkbenchError(f"{_flag(given[0])} cannot be combined with {_flag(mode)} (it would be ignored)")


def _check_names(args: argparse.Namespace) -> None:
    """--target-name / --draft-name: two different plain directory names inside --out."""
    for dest in ("target_name", "draft_name"):
        name = getattr(args, dest)
        if name in ("", ".", "..") or "/" in name or "\\" in name or name in _RESERVED_NAMES:
            raise WorkbenchError(f"{_flag(dest)} must be a plain directory name inside --out (no '/', not "
                                 f"'.', '..', {' or '.join(_RESERVED_NAMES)}), got {name!r}")
    if args.target_name == args.draft_name:
        raise WorkbenchError(f"--target-name and --draft-name are both {args.target_name!r}: the draft would "
                             "replace the target")


def _check_paths(args: argparse.Namespace) -> None:
    """Paths that would fail or be skipped only after the corpus is read (or after training): refused first."""
    if args.prompts_out and (not args.prompts_out.strip() or Path(args.prompts_out).is_dir()):
        raise WorkbenchError(f"--prompts-out {args.prompts_out!r}: expected the path of a .jsonl file to write")
    check_dir_path("--out", args.out)  # the directory itself, or the one the file goes in
    if args.prompts_out:
        check_dir_path("--prompts-out", args.prompts_out, Path(args.prompts_out).absolute().parent)
    for flag in ("code_dir", "docs_dir", "bible_dir"):
        for d in getattr(args, flag):
            if not Path(d).is_dir():
                raise WorkbenchError(f"{_flag(flag)} {d}: not a directory")


def _sources(args: argparse.Namespace) -> list:
    """Corpus sources from the flags; none given = this machine's Debian packages (missing ones skipped). A
    directory given here must yield documents of its category: it is marked required, never silently skipped."""
    from workbench.train.recipe import default_sources

    if not (args.code_dir or args.docs_dir or args.bible_dir):
        return default_sources()
    defaults = {s.category: dataclasses.replace(s, required=True) for s in default_sources()}
    out = [dataclasses.replace(defaults["python-code"], path=d) for d in args.code_dir]
    for d in args.docs_dir:
        out += [dataclasses.replace(defaults[c], path=d) for c in ("docs-reference", "docs-guide")]
    out += [dataclasses.replace(defaults["bible"], path=d) for d in args.bible_dir]
    return out


def config_from_args(args: argparse.Namespace):
    """RecipeConfig for the preset, with the command-line overrides applied; every value checked first."""
    _check_values(args)
    _check_names(args)
    _check_paths(args)
    from workbench.train.recipe import RecipeConfig, micro_preset  # torch: only once the flags are known good

    sources = _sources(args)
    cfg = micro_preset(args.out, sources) if args.preset == "micro" else RecipeConfig(out=args.out, sources=sources)
    cfg.threads, cfg.seed = args.threads, args.seed
    cfg.target_train.seed = cfg.draft_train.seed = cfg.prompts.seed = args.seed  # batches and prompts too
    cfg.target_name, cfg.draft_name, cfg.prompts_out = args.target_name, args.draft_name, args.prompts_out
    if args.steps_target is not None:
        cfg.target_train.steps = args.steps_target
    if args.steps_draft is not None:
        cfg.draft_train.steps = args.steps_draft
    if args.draft_layers is not None:
        cfg.draft_shape = dataclasses.replace(cfg.draft_shape, n_layers=args.draft_layers)
    if args.draft_hidden is not None:  # the width alone sets heads and MLP; --draft-layers alone keeps them
        h = args.draft_hidden
        cfg.draft_shape = dataclasses.replace(cfg.draft_shape, hidden=h, n_heads=h // 64, intermediate=3 * h)
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

