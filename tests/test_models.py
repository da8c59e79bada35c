"""Model loading: local dirs, hub ids from the local HF cache (offline), dtypes, and what is refused."""

from __future__ import annotations

import shutil

import pytest
import torch

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
