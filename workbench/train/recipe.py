"""The project's recipe for its embedded default draft/target pair, end to end.

    documents -> split by document -> BPE tokenizer -> target (next-token loss) -> draft (distilled from target)
    -> held-out loss/ppl of both, one-token latencies and c -> half-precision HF dirs + training_log.json
    + held-out prompt set

Everything lands in a hidden staging directory inside `out` first and is moved into place only at the end, so
an interrupted run never leaves a half-written model where a loader would find it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer

from workbench.errors import WorkbenchError
from workbench.lm import one_token_latency_ms
from workbench.loading import n_params
from workbench.meta import cpu_name
from workbench.train.corpus import SourceSpec, corpus_stats, load_documents, split_documents
from workbench.train.heldout_prompts import PromptConfig, heldout_prompts, write_jsonl
from workbench.train.loop import TrainConfig, distill_draft, evaluate, token_stream, train_target, write_curve
from workbench.train.shapes import ModelShape, build_model, save_half
from workbench.train.tokenizer import SPECIAL, TokenizerConfig, save_tokenizer, to_hf, train_tokenizer

_PSF = "PSF License Agreement for Python (Debian copyright: /usr/share/doc/python3.11*/copyright)"
_KJV = "public domain (KJV 1611; /usr/share/doc/bible-kjv-text/copyright)"
_DOCS = "/usr/share/doc/python3.11-doc/html/_sources"
# narrative docs ("" = the top-level pages: about, bugs, glossary, ...); the rest of _sources is reference
_GUIDE_DIRS = ["tutorial", "howto", "faq", "whatsnew", "using", "extending", "distributing", "installing", "install",
               "distutils", ""]


def default_sources() -> list[SourceSpec]:
    """This machine's Debian packages (python3.11, python3.11-doc, bible-kjv-text); missing ones are skipped."""
    return [
        SourceSpec("python-code", "py", "/usr/lib/python3.11", licence=_PSF),
        SourceSpec("docs-reference", "rst", _DOCS, ["library", "c-api", "reference"], licence=_PSF),
        SourceSpec("docs-guide", "rst", _DOCS, _GUIDE_DIRS, licence=_PSF),
        SourceSpec("bible", "kjv", "/usr/lib", licence=_KJV),
    ]


@dataclass
class RecipeConfig:
    out: str  # output directory; receives <target_name>/, <draft_name>/, training_log.json
    sources: list[SourceSpec] = field(default_factory=default_sources)  # corpus sources (data, not code)
    target_name: str = "target"  # sub-directory of out for the target model
    draft_name: str = "draft"  # sub-directory of out for the draft model
    prompts_out: str = ""  # where heldout.jsonl goes; "" = <out>/heldout.jsonl
    heldout_frac: float = 0.05  # fraction of each category's documents held out (whole documents)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # BPE settings
    # depth sets one-token cost on CPU (per-layer overhead), so the target is deep and narrow, the draft shallow
    target_shape: ModelShape = field(default_factory=lambda: ModelShape(16, 192, 3, 512))  # ~8.7M params
    draft_shape: ModelShape = field(default_factory=lambda: ModelShape(2, 192, 3, 576))  # ~2.5M params
    target_train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1200))  # next-token training
    draft_train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1200, lr=3e-3))  # distillation
    eval_windows: int = 32  # held-out windows (of train context) evaluated per category
    prompts: PromptConfig = field(default_factory=PromptConfig)  # held-out prompt set settings
    latency_calls: int = 50  # calls per one-token latency median (after 10 warm-up calls)
    threads: int = 2  # torch intra-op threads (CPU)
    seed: int = 0  # split and init derive from this (`workbench train --seed` also sets the batch and prompt seeds)


def micro_preset(out: str, sources: list[SourceSpec]) -> RecipeConfig:
    """Tiny sizes and steps: the whole recipe in well under a minute on CPU (the test suite's preset)."""
    return RecipeConfig(
        out=out,
        sources=sources,
        heldout_frac=0.25,
        tokenizer=TokenizerConfig(vocab_size=512, min_frequency=1),
        target_shape=ModelShape(2, 64, 2, 128, max_positions=256),
        draft_shape=ModelShape(1, 32, 1, 64, max_positions=256),
        target_train=TrainConfig(steps=40, batch_size=8, context=64, lr=5e-3, warmup=5, log_every=5),
        draft_train=TrainConfig(steps=30, batch_size=8, context=64, lr=5e-3, warmup=5, log_every=5),
        eval_windows=4,
        prompts=PromptConfig(per_category=4, min_tokens=8, max_tokens=16, min_chars_after=20, copy_count=3),
        latency_calls=10,
    )


def _eval_all(model: torch.nn.Module, held: dict[str, torch.Tensor], cfg: RecipeConfig) -> dict:
    """Per-category held-out loss/ppl plus the token-weighted overall figure."""
    ctx = cfg.target_train.context
    per = {cat: evaluate(model, s, ctx, cfg.eval_windows) for cat, s in held.items() if len(s) > ctx + 1}
    tokens = sum(r["tokens"] for r in per.values())
    loss = sum(r["loss"] * r["tokens"] for r in per.values()) / max(1, tokens)
    return {"loss": loss, "ppl": float(torch.tensor(loss).exp()), "tokens": tokens, "per_category": per}


def _train_pair(cfg: RecipeConfig, stage: Path, train_stream: torch.Tensor, held: dict, vocab: int, sid: int) -> dict:
    """Target then draft; each saved in half precision with its curve. Returns the models part of the log."""
    log: dict = {}
    target = build_model(cfg.target_shape, vocab, sid, cfg.seed)
    t0 = time.perf_counter()
    curve = train_target(target, train_stream, cfg.target_train)
    log["target"] = {"params": n_params(target), "wall_s": time.perf_counter() - t0, "curve": curve}
    log["target"]["heldout"] = _eval_all(target, held, cfg)
    draft = build_model(cfg.draft_shape, vocab, sid, cfg.seed + 1)
    t0 = time.perf_counter()
    curve = distill_draft(draft, target, train_stream, cfg.draft_train)
    log["draft"] = {"params": n_params(draft), "wall_s": time.perf_counter() - t0, "curve": curve}
    log["draft"]["heldout"] = _eval_all(draft, held, cfg)
    for name, model in (("target", target), ("draft", draft)):
        log[name]["one_token_ms_fp32"] = one_token_latency_ms(model, calls=cfg.latency_calls)
        d = stage / name
        save_half(model, d)
        write_curve(log[name]["curve"], d / "loss_curve.csv")
        tr = cfg.target_train if name == "target" else cfg.draft_train
        log[name]["steps"] = log[name]["curve"][-1]["step"]  # fewer than tr.steps if the time budget ran out
        log[name]["train_tokens"] = log[name]["steps"] * tr.batch_size * tr.context
    log["c"] = log["draft"]["one_token_ms_fp32"] / log["target"]["one_token_ms_fp32"]
    return log


def _publish(stage: Path, cfg: RecipeConfig, log: dict) -> None:
    """Move the staged dirs into place (replacing older ones) and write the log last."""
    out = Path(cfg.out)
    for staged, final in (("target", cfg.target_name), ("draft", cfg.draft_name)):
        dest = out / final
        if dest.exists():
            shutil.rmtree(dest)
        (stage / staged).rename(dest)
    prompts = _prompts_path(cfg)
    prompts.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(stage / "heldout.jsonl"), prompts)
    shutil.rmtree(stage)
    (out / "training_log.json").write_text(json.dumps(log, indent=1) + "\n")


def _prompts_path(cfg: RecipeConfig) -> Path:
    """cfg.prompts_out, or <out>/heldout.jsonl."""
    return Path(cfg.prompts_out) if cfg.prompts_out else Path(cfg.out) / "heldout.jsonl"


def _set_threads(cfg: RecipeConfig) -> None:
    """torch's CPU threads; a bad count is one clear error before any work (torch would raise RuntimeError)."""
    if not 1 <= cfg.threads < 2**31:
        raise WorkbenchError(f"--threads must be ≥ 1 (and < 2**31), got {cfg.threads}")
    torch.set_num_threads(cfg.threads)


def _check_same_split(cfg: RecipeConfig) -> None:
    """--draft-only and --prompts-only re-split the documents: with another seed or held-out fraction than the
    saved target's (training_log.json), the draft would train on, or the prompts be cut from, its training data."""
    log_path = Path(cfg.out) / "training_log.json"
    try:
        saved = json.loads(log_path.read_text()).get("config", {}) if log_path.exists() else {}
    except (ValueError, AttributeError):  # not JSON, not UTF-8, or not an object
        raise WorkbenchError(f"{log_path}: not a training log written by `workbench train`") from None
    if saved.get("target_name") != cfg.target_name:
        return  # no log, or the log of another target: nothing to compare with
    for key, flag in (("seed", "--seed"), ("heldout_frac", "--preset (held-out fraction)")):
        if key in saved and saved[key] != getattr(cfg, key):
            raise WorkbenchError(f"{flag}: {getattr(cfg, key)} differs from the {saved[key]} that the target in "
                                 f"{Path(cfg.out) / cfg.target_name} was trained with; the train/held-out split would "
                                 "differ (give the same value)")


def rebuild_prompts(cfg: RecipeConfig) -> int:
    """Re-cut the held-out prompt set without training: same split (seed), tokenizer of the saved target."""
    _check_same_split(cfg)
    tok_file = Path(cfg.out) / cfg.target_name / "tokenizer.json"
    if not tok_file.exists():
        raise WorkbenchError(f"no trained tokenizer at {tok_file}; train first (without --prompts-only)")
    _, held_docs = split_documents(load_documents(cfg.sources), cfg.heldout_frac, cfg.seed)
    rows = heldout_prompts(held_docs, Tokenizer.from_file(str(tok_file)), cfg.prompts)
    write_jsonl(rows, _prompts_path(cfg))
    return len(rows)


def train_default_pair(cfg: RecipeConfig) -> dict:
    """Run the whole recipe into cfg.out; returns the training log (also written as training_log.json)."""
    _set_threads(cfg)
    t_start = time.perf_counter()
    docs = load_documents(cfg.sources)
    train_docs, held_docs = split_documents(docs, cfg.heldout_frac, cfg.seed)
    if not train_docs or not held_docs:
        raise WorkbenchError("corpus too small: need at least 2 documents in some category to hold one out")
    tok = train_tokenizer([d.text for d in train_docs], cfg.tokenizer)
    sid = tok.token_to_id(SPECIAL)
    train_ids = [e.ids for e in tok.encode_batch([d.text for d in train_docs], add_special_tokens=False)]
    train_stream = token_stream(train_ids, sid)
    held = {}  # category -> held-out token stream
    for c in sorted({d.category for d in held_docs}):
        ids = [tok.encode(d.text, add_special_tokens=False).ids for d in held_docs if d.category == c]
        held[c] = token_stream(ids, sid)
    if len(train_stream) <= cfg.target_train.context + 1:
        raise WorkbenchError(f"corpus too small: {len(train_stream)} tokens for context {cfg.target_train.context}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    stage = out / f".train-staging-{os.getpid()}"
    corpus = {"train": corpus_stats(train_docs), "heldout": corpus_stats(held_docs),
              "train_tokens_available": len(train_stream),
              "heldout_documents": sorted(f"{d.category}:{d.name}" for d in held_docs),
              "licences": {s.category: s.licence for s in cfg.sources}}
    log = {"config": asdict(cfg), "corpus": corpus}
    log.update(_train_pair(cfg, stage, train_stream, held, tok.get_vocab_size(), sid))
    hf_tok = to_hf(tok, cfg.target_shape.max_positions)
    for name in ("target", "draft"):
        save_tokenizer(hf_tok, stage / name)
    write_jsonl(heldout_prompts(held_docs, tok, cfg.prompts), stage / "heldout.jsonl")
    log["wall_s"] = time.perf_counter() - t_start
    log["hardware"] = {"cpu": cpu_name(), "threads": cfg.threads, "torch": torch.__version__,
                       "transformers": transformers.__version__}
    _publish(stage, cfg, log)
    return log


def training_streams(cfg: RecipeConfig) -> tuple[Tokenizer, torch.Tensor, dict[str, torch.Tensor]]:
    """(tokenizer, training stream, held-out stream per category) of the trained pair in cfg.out: the same
    documents and split as the full recipe, re-encoded with the saved tokenizer.json into the identical stream."""
    target_dir = Path(cfg.out) / cfg.target_name
    if not (target_dir / "tokenizer.json").exists():
        raise WorkbenchError(f"no trained target at {target_dir}; run the full recipe first")
    _check_same_split(cfg)
    tok = Tokenizer.from_file(str(target_dir / "tokenizer.json"))
    sid = tok.token_to_id(SPECIAL)
    train_docs, held_docs = split_documents(load_documents(cfg.sources), cfg.heldout_frac, cfg.seed)
    train_stream = token_stream([e.ids for e in tok.encode_batch([d.text for d in train_docs],
                                                                 add_special_tokens=False)], sid)
    held = {c: token_stream([tok.encode(d.text, add_special_tokens=False).ids for d in held_docs
                             if d.category == c], sid) for c in sorted({d.category for d in held_docs})}
    return tok, train_stream, held


def retrain_draft(cfg: RecipeConfig) -> dict:
    """Distill a new draft (cfg.draft_shape) from the already trained target in cfg.out; the target is untouched.

    Same documents, split and tokenizer as the full recipe (the saved tokenizer.json re-encodes the training
    documents into the identical stream). The draft directory and the draft part of training_log.json are replaced.
    """
    _set_threads(cfg)
    out = Path(cfg.out)
    target_dir = out / cfg.target_name
    tok, train_stream, held = training_streams(cfg)
    sid = tok.token_to_id(SPECIAL)
    target = transformers.AutoModelForCausalLM.from_pretrained(target_dir, dtype=torch.float32)
    draft = build_model(cfg.draft_shape, tok.get_vocab_size(), sid, cfg.seed + 1)
    t0 = time.perf_counter()
    curve = distill_draft(draft, target, train_stream, cfg.draft_train)
    entry = {"params": n_params(draft), "wall_s": time.perf_counter() - t0, "curve": curve,
             "heldout": _eval_all(draft, held, cfg), "steps": curve[-1]["step"], "shape": asdict(cfg.draft_shape),
             "train_tokens": curve[-1]["step"] * cfg.draft_train.batch_size * cfg.draft_train.context,
             "one_token_ms_fp32": one_token_latency_ms(draft, calls=cfg.latency_calls)}
    stage = out / f".draft-staging-{os.getpid()}"
    save_half(draft, stage)
    write_curve(curve, stage / "loss_curve.csv")
    save_tokenizer(to_hf(tok, cfg.target_shape.max_positions), stage)
    dest = out / cfg.draft_name
    if dest.exists():
        shutil.rmtree(dest)
    stage.rename(dest)
    log_path = out / "training_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    log["draft"] = entry
    log["c"] = entry["one_token_ms_fp32"] / log.get("target", {}).get("one_token_ms_fp32", float("nan"))
    log["draft_retrained"] = {"config": asdict(cfg.draft_train), "hardware_cpu": cpu_name()}
    log_path.write_text(json.dumps(log, indent=1) + "\n")
    return log
