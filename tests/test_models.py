"""Model loading: local dirs, hub ids from the local HF cache (offline), dtypes, and what is refused."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from workbench import paths
from workbench.drafters import parse_drafter
from workbench.errors import WorkbenchError
from workbench.loading import resolve_device, resolve_dtype, resolve_model_dir
from workbench.pair import load_pair


def test_a_hub_id_resolves_from_the_local_cache_without_network(model_dirs, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    snapshot = tmp_path / "hub" / "models--tiny--llama" / "snapshots" / ("a" * 40)
    shutil.copytree(model_dirs["target"], snapshot)
    (tmp_path / "hub" / "models--tiny--llama" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny--llama" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model_dir("tiny/llama") == snapshot
    with pytest.raises(WorkbenchError, match="not in the local Hugging Face cache"):
        resolve_model_dir("tiny/absent")


def test_device_and_dtype_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    with pytest.raises(WorkbenchError, match="expected auto, float32"):
        resolve_dtype("float8", torch.device("cpu"))
    with pytest.raises(WorkbenchError, match="--device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(WorkbenchError, match="no CUDA device"):
            resolve_device("cuda")


def test_pair_loads_in_bfloat16_and_records_it(model_dirs):
    pair = load_pair(target=str(model_dirs["target"]), drafts=[parse_drafter(str(model_dirs["draft_prefix"]))],
                     device="cpu", dtype="bfloat16")
    assert pair.dtype == torch.bfloat16 and pair.info["dtype"] == "bfloat16"
    assert next(pair.target.model.parameters()).dtype == torch.bfloat16
    assert pair.info["target"]["parameters"] > pair.info["drafts"]["draft_prefix"]["parameters"]
    assert len(pair.info["target"]["content_sha256"]) == 64


def test_a_directory_without_config_is_refused(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(WorkbenchError, match="no config.json"):
        resolve_model_dir(str(tmp_path))


def test_a_single_name_hub_id_resolves_from_the_local_cache(model_dirs, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    snapshot = tmp_path / "hub" / "models--tinyllama" / "snapshots" / ("b" * 40)  # like `gpt2`: no organisation
    shutil.copytree(model_dirs["target"], snapshot)
    (tmp_path / "hub" / "models--tinyllama" / "refs").mkdir()
    (tmp_path / "hub" / "models--tinyllama" / "refs" / "main").write_text("b" * 40)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    assert resolve_model_dir("tinyllama") == snapshot
    with pytest.raises(WorkbenchError, match="not a local directory and not in the local Hugging Face cache"):
        resolve_model_dir("absent")


class _Vocab:
    def __init__(self, vocab: dict):
        self.vocab = vocab

    def get_vocab(self) -> dict:
        return dict(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)


def test_tokenizers_that_swap_any_two_ids_are_refused():
    from workbench.loading import check_same_vocabulary

    target = {f"tok{i}": i for i in range(5000)}
    check_same_vocabulary(_Vocab(target), _Vocab(target))
    swapped = {**target, "tok501": 502, "tok502": 501}  # one pair, between any sampled positions
    with pytest.raises(WorkbenchError, match="map tokens to different ids .first: 'tok501' is 501 for the target"):
        check_same_vocabulary(_Vocab(target), _Vocab(swapped))


def test_a_config_that_fails_validation_is_one_line(model_dirs, tmp_path):
    import json

    from workbench.loading import load_tokenizer

    bad = tmp_path / "bad"
    shutil.copytree(model_dirs["target"], bad)
    config = json.loads((bad / "config.json").read_text())
    config["num_attention_heads"] = config["hidden_size"] + 1  # the hidden size is not a multiple of the heads
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(WorkbenchError, match="cannot load the tokenizer of") as raised:
        load_tokenizer(bad, trust_remote_code=False)
    assert "\n" not in str(raised.value)


def test_two_draft_models_with_one_folder_name_get_labels_that_tell_them_apart():
    from workbench.drafters import parse_drafters

    labels = [d.label for d in parse_drafters(["/runs/x1/m", "/runs/x2/m", "ngram", "default"])]
    assert labels == ["x1-m", "x2-m", "ngram:3:1", "default-draft"]
    assert [d.label for d in parse_drafters(["a/m", "/x/a/m"])] == ["a-m", "x-a-m"]
    with pytest.raises(WorkbenchError, match="lists m more than once"):  # the same place twice
        parse_drafters(["/runs/x1/m", "/runs/x1/m"])
    with pytest.raises(WorkbenchError, match="lists m more than once"):  # … once relative, once absolute
        parse_drafters(["x1/m", os.path.join(os.getcwd(), "x1", "m")])
    with pytest.raises(WorkbenchError, match="lists default-draft more than once"):  # … once by its name
        parse_drafters(["default", str(paths.data_dir() / "models" / "default-draft")])


def test_one_token_latency_leaves_the_warm_up_calls_out(monkeypatch):
    from tiny_models import make_model

    import workbench.lm as lm

    clock = {"now": 0.0, "forwards": 0}
    forward = lm.CausalLM.forward

    def timed_forward(self, *args, **kwargs):  # the prefill and the 10 warm-ups take 100 ms, the rest 1 ms
        clock["forwards"] += 1
        clock["now"] += 0.1 if clock["forwards"] <= 11 else 0.001
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(lm.CausalLM, "forward", timed_forward)
    monkeypatch.setattr(lm.time, "perf_counter", lambda: clock["now"])
    model = make_model("llama", vocab_size=32, seed=0, layers=1, hidden=16)
    assert lm.one_token_latency_ms(model, context=8, calls=5, warmup=10) == pytest.approx(1.0)
