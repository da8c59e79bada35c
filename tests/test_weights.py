"""Faults in model weights (issue 12): damaged or missing safetensors files, checked before loading, and weights
that do not match their config, refused through `workbench run` with one `error: …` line naming the cause."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_faults import one_error_line, run_args

from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.weights import check_loading_info, check_safetensors_files

# ---------------------------------------------------------------- weights: files before loading

@pytest.fixture
def weights_dir(tmp_path):
    d = tmp_path / "w"
    d.mkdir()
    save_file({"a": torch.zeros(64, 64), "b": torch.ones(10)}, d / "model.safetensors")
    return d


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) - 100], "truncated"),          # cut inside the tensor data
    (lambda b: b[:20], "truncated"),                     # cut inside the header
    (lambda b: b[:5], "too short for a safetensors file"),
    (lambda b: b"\xff" * 100, "corrupt safetensors header"),
    (lambda b: (20).to_bytes(8, "little") + b"{not json at all!!!}", "not JSON"),
])
def test_damaged_safetensors_are_named_with_the_cause(weights_dir, damage, message):
    check_safetensors_files(weights_dir)  # intact: silent
    f = weights_dir / "model.safetensors"
    f.write_bytes(damage(f.read_bytes()))
    with pytest.raises(WorkbenchError, match=message) as err:
        check_safetensors_files(weights_dir)
    assert str(f) in str(err.value) and "\n" not in str(err.value)


def test_a_missing_shard_is_named(weights_dir):
    index = {"metadata": {}, "weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (weights_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(WorkbenchError, match="missing shard model-00002-of-00002.safetensors listed in "
                                             "model.safetensors.index.json"):
        check_safetensors_files(weights_dir)


def test_loading_info_tolerates_tied_heads_and_benign_buffers(tmp_path):
    ok = {"missing_keys": {"lm_head.weight"}, "unexpected_keys": {"model.layers.0.self_attn.rotary_emb.inv_freq"},
          "mismatched_keys": set(), "error_msgs": []}
    check_loading_info(tmp_path, ok, tied={"lm_head.weight": "model.embed_tokens.weight"})
    with pytest.raises(WorkbenchError, match="1 parameters are missing .*lm_head.weight"):
        check_loading_info(tmp_path, ok)  # untied: the head would be random
    with pytest.raises(WorkbenchError, match="other shapes"):
        check_loading_info(tmp_path, {"mismatched_keys": [("x.weight", (2, 2), (4, 4))]})


# ---------------------------------------------------------------- weights: through `workbench run`

def _edit_config(src: Path, dst: Path, **changes) -> Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config.update(changes)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.mark.parametrize("changes, message", [
    ({"num_hidden_layers": 5}, "parameters are missing from the checkpoint"),      # transformers: missing_keys
    ({"num_hidden_layers": 2}, "weights are not used by the model"),               # transformers: unexpected_keys
    ({"hidden_size": 64, "intermediate_size": 128}, "tensors have other shapes"),  # transformers: RuntimeError
    ({"model_type": "foo"}, "architecture 'foo' not known to transformers 5."),     # transformers: ValueError
])
def test_weights_that_do_not_match_the_config_are_refused(model_dirs, prompts_file, tmp_path, capsys, changes,
                                                          message):
    target = _edit_config(model_dirs["target"], tmp_path / "target", **changes)
    args = run_args(model_dirs, prompts_file, tmp_path / "run", "--no-warmup")
    args[args.index("--target") + 1] = str(target)
    assert main(args) == 2
    err = one_error_line(capsys, message, str(target))
    if changes.get("model_type") == "foo":
        assert "upgrade transformers or pass --trust-remote-code" in err
    assert not (tmp_path / "run").exists()


def test_truncated_weights_are_refused_before_loading(model_dirs, prompts_file, tmp_path, capsys):
    target = _edit_config(model_dirs["target"], tmp_path / "target")
    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    args = run_args(model_dirs, prompts_file, tmp_path / "run", "--no-warmup")
    args[args.index("--target") + 1] = str(target)
    assert main(args) == 2
    one_error_line(capsys, f"{weights}: truncated")


def _as_draft(args: list[str], draft: Path) -> list[str]:
    args[args.index("--draft") + 1] = str(draft)
    return args


def test_a_model_without_its_tokenizer_is_named_as_such(model_dirs, prompts_file, tmp_path, capsys):
    draft = shutil.copytree(model_dirs["draft_prefix"], tmp_path / "bare")
    for f in draft.glob("*token*"):  # weights and config kept: only the tokenizer is missing
        f.unlink()
    assert main(_as_draft(run_args(model_dirs, prompts_file, tmp_path / "run"), draft)) == 2
    one_error_line(capsys, f"{draft}: no tokenizer files", "tokenizer.save_pretrained")


def test_a_draft_whose_output_layer_is_short_of_the_tokenizer_is_named(model_dirs, prompts_file, tokenizer, tmp_path,
                                                                       capsys):
    from tiny_models import make_model, save

    draft = save(make_model("llama", vocab_size=len(tokenizer) - 8, seed=3, layers=1), tokenizer, tmp_path / "short")
    assert main(_as_draft(run_args(model_dirs, prompts_file, tmp_path / "run"), draft)) == 2
    one_error_line(capsys, f"model {draft}: its output layer has {len(tokenizer) - 8} rows")


def test_a_model_that_ships_code_asks_for_trust_remote_code(model_dirs, prompts_file, tmp_path, capsys):
    draft = _edit_config(model_dirs["draft_prefix"], tmp_path / "custom", model_type="mytiny",
                         auto_map={"AutoConfig": "modeling_mytiny.MyTinyConfig",
                                   "AutoModelForCausalLM": "modeling_mytiny.MyTinyForCausalLM"})
    (draft / "modeling_mytiny.py").write_text("raise RuntimeError('this code must not run without the flag')\n")
    assert main(_as_draft(run_args(model_dirs, prompts_file, tmp_path / "run"), draft)) == 2
    one_error_line(capsys, f"model {draft} ships its own code, which runs only with --trust-remote-code")
