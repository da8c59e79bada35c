"""Smoke test of the training recipe (workbench/train): micro preset on a tiny corpus written into tmp_path.

No Debian packages needed: the corpus sources are passed as paths. Checks that the saved directories load with
AutoModelForCausalLM / AutoTokenizer, that training actually lowered the target's loss, and the bad-input paths.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import pytest
import torch

from workbench.commands import train as train_cli
from workbench.errors import WorkbenchError
from workbench.train.corpus import SourceSpec, load_documents, split_documents
from workbench.train.recipe import micro_preset, rebuild_prompts, train_default_pair

_WORDS = "the model drafts tokens and the target verifies them in one forward pass while the cache grows".split()


def _write_corpus(root: Path) -> list[SourceSpec]:
    """Four categories, several whole documents each, enough text for a 64-token context."""
    code, docs, bible = root / "code", root / "docs", root / "bible"
    for d in (code / "pkg", code / "test", docs / "library", docs / "tutorial", bible):
        d.mkdir(parents=True)
    for i in range(6):
        fn = textwrap.dedent(f"""
            def add_{i}(a, b):
                \"\"\"Return the sum of a and b plus {i}.\"\"\"
                return a + b + {i}


            class Box{i}:
                def __init__(self, value):
                    self.value = value * {i}
            """)
        (code / "pkg" / f"mod{i}.py").write_text(fn * 8)
        prose = " ".join(_WORDS[(i + k) % len(_WORDS)] for k in range(160))
        (docs / "library" / f"ref{i}.rst.txt").write_text(f"Reference {i}\n\nThe {prose}.\n\nThe {prose}.\n" * 2)
        (docs / "tutorial" / f"tut{i}.rst.txt").write_text(f"Tutorial {i}\n\nWe {prose}.\n\nNow {prose}.\n" * 2)
        verses = "\n".join(f"And the {_WORDS[(i + k) % 17]} said unto them, go in peace." for k in range(40))
        (bible / f"Book{i}.txt").write_text(f"Book{i} 1\n\n{verses}\n")
    (code / "test" / "test_skipped.py").write_text("SKIPPED = True\n")
    return [
        SourceSpec("python-code", "py", str(code)),
        SourceSpec("docs-reference", "rst", str(docs), ["library"]),
        SourceSpec("docs-guide", "rst", str(docs), ["tutorial"]),
        SourceSpec("bible", "kjv", str(bible)),
    ]


def test_micro_recipe_trains_saves_and_loads(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = micro_preset(str(tmp_path / "out"), _write_corpus(tmp_path / "corpus"))
    log = train_default_pair(cfg)
    curve = log["target"]["curve"]
    assert curve[-1]["loss"] < curve[0]["loss"] - 0.5, "target loss did not go down"
    assert log["target"]["heldout"]["ppl"] < 512  # better than uniform over the 512-token vocabulary
    for name in ("target", "draft"):
        d = tmp_path / "out" / name
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(d)
        assert json.loads((d / "config.json").read_text())["dtype"] in ("float16", "bfloat16")
        assert model.config.eos_token_id == tok.eos_token_id == model.generation_config.eos_token_id
        ids = tok("def add_1(a, b):", return_tensors="pt").input_ids
        assert ids[0, 0].item() == tok.bos_token_id
        out = model.generate(ids, max_new_tokens=5, do_sample=False)
        assert out.shape[1] == ids.shape[1] + 5 or out[0, -1].item() == tok.eos_token_id
        assert (d / "loss_curve.csv").read_text().startswith("step,loss")
    assert log["draft"]["params"] < log["target"]["params"]
    rows = [json.loads(line) for line in (tmp_path / "out" / "heldout.jsonl").read_text().splitlines()]
    assert {r["category"] for r in rows} == {"python-code", "docs-reference", "docs-guide", "bible", "copy"}
    assert all(r["prompt"] and not r["prompt"].endswith(" ") for r in rows)
    assert json.loads((tmp_path / "out" / "training_log.json").read_text())["c"] == pytest.approx(log["c"])
    assert not list((tmp_path / "out").glob(".train-staging-*"))
    # --prompts-only re-cuts the identical set from the saved tokenizer (the prompt set is deterministic)
    before = (tmp_path / "out" / "heldout.jsonl").read_text()
    assert rebuild_prompts(cfg) == len(rows)
    assert (tmp_path / "out" / "heldout.jsonl").read_text() == before


def test_split_is_by_whole_document_and_skips_tests(tmp_path: Path) -> None:
    docs = load_documents(_write_corpus(tmp_path))
    assert not any("test" in d.name for d in docs if d.category == "python-code")
    train, held = split_documents(docs, 0.25, seed=0)
    assert {d.name for d in train}.isdisjoint({d.name for d in held})
    assert [d.name for d in split_documents(docs, 0.25, seed=0)[1]] == [d.name for d in held]


def test_no_sources_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="no corpus documents"):
        load_documents([SourceSpec("python-code", "py", str(tmp_path / "missing"))])


def test_cli_rejects_bad_steps(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    train_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--out", str(tmp_path), "--steps-target", "0", "--code-dir", str(tmp_path)])
    with pytest.raises(WorkbenchError, match="steps-target"):
        train_cli.main(args)


def test_draft_only_redistills_the_draft_from_the_saved_target(tmp_path: Path) -> None:
    import dataclasses

    from transformers import AutoModelForCausalLM

    from workbench.train.recipe import retrain_draft

    cfg = micro_preset(str(tmp_path / "out"), _write_corpus(tmp_path / "corpus"))
    first = train_default_pair(cfg)
    target_bytes = (tmp_path / "out" / "target" / "model.safetensors").read_bytes()
    cfg.draft_shape = dataclasses.replace(cfg.draft_shape, n_layers=2)
    log = retrain_draft(cfg)
    assert log["draft"]["params"] > first["draft"]["params"] and log["draft"]["shape"]["n_layers"] == 2
    assert (tmp_path / "out" / "target" / "model.safetensors").read_bytes() == target_bytes  # target untouched
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "draft").config.num_hidden_layers == 2
    assert log["draft"]["curve"][-1]["loss"] < log["draft"]["curve"][0]["loss"]


# --- `workbench train` argument handling: every bad value is one WorkbenchError before any work, none ignored ----


def _args(tmp_path: Path, *flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", "--out", str(tmp_path / "out"), *flags])


@pytest.mark.parametrize("mode", [[], ["--draft-only"], ["--prompts-only"]])
@pytest.mark.parametrize("threads", ["0", "-1", str(2**40)])
def test_cli_threads_are_checked_on_every_path(tmp_path: Path, mode: list[str], threads: str) -> None:
    with pytest.raises(WorkbenchError, match=f"--threads must be ≥ 1.*got {threads}"):
        train_cli.config_from_args(_args(tmp_path, "--threads", threads, *mode))


def test_retrain_draft_refuses_bad_threads_before_any_work(tmp_path: Path) -> None:
    from workbench.train.recipe import retrain_draft

    cfg = micro_preset(str(tmp_path / "out"), _write_corpus(tmp_path / "corpus"))
    cfg.threads = 0
    with pytest.raises(WorkbenchError, match="--threads must be ≥ 1.*got 0"):  # not torch's RuntimeError
        retrain_draft(cfg)


@pytest.mark.parametrize("flags, message", [
    (["--draft-layers", "0"], "--draft-layers must be ≥ 1, got 0"),
    (["--draft-layers", "-2"], "--draft-layers must be ≥ 1, got -2"),
    (["--draft-hidden", "0"], "--draft-hidden must be a positive multiple of 64 .*got 0"),
    (["--draft-hidden", "-64"], "--draft-hidden must be a positive multiple of 64 .*got -64"),
    (["--draft-hidden", "96"], "--draft-hidden must be a positive multiple of 64 .*got 96"),
    (["--steps-draft", "0"], "--steps-draft must be ≥ 1, got 0"),
    (["--seed", "-1"], "--seed must be an integer in 0 … "),
    (["--seed", str(2**64)], "--seed must be an integer in 0 … "),
])
def test_cli_zero_or_out_of_range_numbers_are_errors(tmp_path: Path, flags: list[str], message: str) -> None:
    with pytest.raises(WorkbenchError, match=message):
        train_cli.config_from_args(_args(tmp_path, *flags))


def test_cli_draft_layers_alone_keeps_the_preset_width(tmp_path: Path) -> None:
    micro = micro_preset("x", []).draft_shape  # 1 x 32, one head: --draft-layers must not demand a width of 64
    cfg = train_cli.config_from_args(_args(tmp_path, "--preset", "micro", "--draft-layers", "3"))
    assert (cfg.draft_shape.n_layers, cfg.draft_shape.hidden, cfg.draft_shape.n_heads) == (3, micro.hidden, 1)
    cfg = train_cli.config_from_args(_args(tmp_path, "--preset", "micro", "--draft-hidden", "128"))
    shape = cfg.draft_shape
    assert (shape.n_layers, shape.hidden, shape.n_heads, shape.intermediate) == (micro.n_layers, 128, 2, 384)


@pytest.mark.parametrize("flag", ["--time-budget-target-min", "--time-budget-draft-min"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e308"])
def test_cli_time_budgets_must_be_finite_and_not_negative(tmp_path: Path, flag: str, value: str) -> None:
    with pytest.raises(WorkbenchError, match=f"{flag} must be a finite number ≥ 0"):
        train_cli.config_from_args(_args(tmp_path, f"{flag}={value}"))  # "=": argparse takes -inf for an option


def test_cli_time_budget_zero_means_steps_only(tmp_path: Path) -> None:
    cfg = train_cli.config_from_args(_args(tmp_path, "--time-budget-target-min", "0", "--time-budget-draft-min", "2"))
    assert (cfg.target_train.time_budget_s, cfg.draft_train.time_budget_s) == (0.0, 120.0)


def test_cli_seed_reaches_split_init_batches_and_prompts(tmp_path: Path) -> None:
    cfg = train_cli.config_from_args(_args(tmp_path, "--seed", "7"))
    assert (cfg.seed, cfg.target_train.seed, cfg.draft_train.seed, cfg.prompts.seed) == (7, 7, 7, 7)


@pytest.mark.parametrize("flags, message", [
    (["--target-name", ""], "--target-name must be a plain directory name"),
    (["--draft-name", "."], "--draft-name must be a plain directory name"),
    (["--target-name", ".."], "--target-name must be a plain directory name"),
    (["--draft-name", "sub/draft"], "--draft-name must be a plain directory name"),
    (["--target-name", "training_log.json"], "--target-name must be a plain directory name"),
    (["--draft-name", "target"], "--target-name and --draft-name are both 'target'"),
])
def test_cli_model_names_are_two_plain_directory_names(tmp_path: Path, flags: list[str], message: str) -> None:
    with pytest.raises(WorkbenchError, match=message):
        train_cli.config_from_args(_args(tmp_path, *flags))


@pytest.mark.parametrize("flags, message", [
    (["--draft-only", "--prompts-only"], "--draft-only and --prompts-only exclude each other"),
    (["--draft-only", "--steps-target", "5"], "--steps-target cannot be combined with --draft-only"),
    (["--draft-only", "--time-budget-target-min", "3"], "--time-budget-target-min cannot be combined with --draft"),
    (["--draft-only", "--prompts-out", "p.jsonl"], "--prompts-out cannot be combined with --draft-only"),
    (["--prompts-only", "--steps-draft", "5"], "--steps-draft cannot be combined with --prompts-only"),
    (["--prompts-only", "--draft-layers", "2"], "--draft-layers cannot be combined with --prompts-only"),
    (["--prompts-only", "--time-budget-draft-min", "1"], "--time-budget-draft-min cannot be combined with --prompts"),
])
def test_cli_refuses_flags_the_mode_would_ignore(tmp_path: Path, flags: list[str], message: str) -> None:
    with pytest.raises(WorkbenchError, match=message):
        train_cli.config_from_args(_args(tmp_path, *flags))


def test_cli_paths_are_checked_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for flags, message in ([["--out", str(tmp_path / "file" / "out")], "--out .*file exists and is not a directory"],
                           [["--prompts-out", str(tmp_path)], "--prompts-out .*expected the path of a .jsonl file"],
                           [["--prompts-out", str(tmp_path / "file" / "p.jsonl")], "--prompts-out .*not a directory"],
                           [["--code-dir", str(tmp_path / "missing")], "--code-dir .*missing: not a directory"]):
        with pytest.raises(WorkbenchError, match=message):
            train_cli.config_from_args(_args(tmp_path, *flags))
    with pytest.raises(SystemExit):  # argparse: an empty --out would silently mean the current directory
        _args(tmp_path / "x", "--out", "")


def test_a_named_corpus_dir_without_documents_is_an_error(tmp_path: Path) -> None:
    sources = _write_corpus(tmp_path / "corpus")
    (tmp_path / "no-py").mkdir()
    args = _args(tmp_path, "--code-dir", str(tmp_path / "no-py"), "--bible-dir", sources[3].path)
    cfg = train_cli.config_from_args(args)
    assert all(s.required for s in cfg.sources)
    with pytest.raises(WorkbenchError, match="no-py: no python-code documents"):  # not silently a bible-only corpus
        load_documents(cfg.sources)


def test_a_tiny_time_budget_still_trains_one_step() -> None:
    from workbench.train.loop import TrainConfig, train_target
    from workbench.train.shapes import ModelShape, build_model

    model = build_model(ModelShape(1, 32, 1, 64, max_positions=32), 16, 0, seed=0)
    stream = torch.randint(0, 16, (200,), generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(steps=5, batch_size=2, context=8, warmup=1, log_every=1, time_budget_s=1e-12)
    curve = train_target(model, stream, cfg)  # the recipe reads curve[-1]: an empty curve was an IndexError
    assert [row["step"] for row in curve] == [1]


@pytest.mark.parametrize("mode", ["draft", "prompts"])
def test_draft_only_and_prompts_only_refuse_another_split(tmp_path: Path, mode: str) -> None:
    from workbench.train.recipe import retrain_draft

    cfg = micro_preset(str(tmp_path / "out"), _write_corpus(tmp_path / "corpus"))
    (tmp_path / "out" / "target").mkdir(parents=True)
    (tmp_path / "out" / "target" / "tokenizer.json").write_text("{}")
    log = {"config": {"target_name": "target", "seed": 0, "heldout_frac": cfg.heldout_frac}}
    (tmp_path / "out" / "training_log.json").write_text(json.dumps(log))
    cfg.seed = 1
    with pytest.raises(WorkbenchError, match="--seed: 1 differs from the 0 that the target"):
        retrain_draft(cfg) if mode == "draft" else rebuild_prompts(cfg)
    cfg.seed, cfg.heldout_frac = 0, 0.05  # the default preset's fraction against the micro target's
    with pytest.raises(WorkbenchError, match="--preset .*differs"):
        retrain_draft(cfg) if mode == "draft" else rebuild_prompts(cfg)
