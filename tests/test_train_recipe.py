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
