"""Model weights checked before and after ``from_pretrained``: every fault is one line naming the file and the cause.

Before: each ``*.safetensors`` header is read (8-byte little-endian length + JSON; no tensor is loaded) to catch
truncated downloads and corrupt files, and a sharded checkpoint's index must list only shards that exist.
After: transformers *random-initialises* parameters that the checkpoint lacks (e.g. config.json says 5 layers, the
file holds 3) and merely logs it; generation then produces fluent-looking garbage. ``check_loading_info`` refuses
that. Measured with transformers 5.24 on a tiny Llama (tests/test_faults.py pins each case):

* more layers in config.json than in the weights → loads, ``missing_keys`` lists the extra layers' parameters;
* fewer layers → loads, ``unexpected_keys`` lists the weights that were dropped;
* another hidden size → ``RuntimeError("You set `ignore_mismatched_sizes` to `False`, thus raising an error…")``;
* unknown ``model_type`` → ``ValueError("… has model type `foo` but Transformers does not recognize this
  architecture …")``;
* truncated/corrupt file → ``safetensors.SafetensorError("Error while deserializing header: …")``.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable
from pathlib import Path

from workbench.errors import WorkbenchError

INDEX_FILE = "model.safetensors.index.json"
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
# Checkpoint entries that are legitimately ignored on load (buffers recomputed from config in newer transformers).
BENIGN_UNEXPECTED = re.compile(r"(rotary_emb\.inv_freq|\.masked_bias|\.attn\.bias|position_ids)$")


def read_header(path: Path) -> tuple[dict, int]:
    """(JSON header, header length) of one safetensors file; WorkbenchError if it is not a valid one."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise WorkbenchError(f"{path}: {size} bytes, too short for a safetensors file (truncated download?)")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER:
            raise WorkbenchError(f"{path}: corrupt safetensors header (declared length {length} bytes; "
                                 "not a safetensors file, or a damaged one)")
        if 8 + length > size:
            raise WorkbenchError(f"{path}: truncated ({size} bytes, shorter than its {length}-byte header; "
                                 "an interrupted download or copy?)")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise WorkbenchError(f"{path}: corrupt safetensors header (not JSON; a damaged or non-safetensors "
                             "file)") from None
    if not isinstance(header, dict):
        raise WorkbenchError(f"{path}: corrupt safetensors header (not a JSON object)")
    return header, length


def data_end(header: dict, path: Path) -> int:
    """Largest ``data_offsets`` end over the tensors of a header (bytes after the header)."""
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise WorkbenchError(f"{path}: corrupt safetensors header (tensor {name!r} has no valid data_offsets)")
        end = max(end, offsets[1])
    return end


def check_safetensors_file(path: Path) -> None:
    header, length = read_header(path)
    need, size = 8 + length + data_end(header, path), path.stat().st_size
    if size < need:
        raise WorkbenchError(f"{path}: truncated ({size} of {need} bytes; an interrupted download or copy? "
                             "fetch the file again)")


def check_index(model_dir: Path) -> None:
    """Every shard named in ``model.safetensors.index.json`` must exist."""
    index = model_dir / INDEX_FILE
    if not index.is_file():
        return
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise WorkbenchError(f"{index}: corrupt index (expected JSON with a weight_map)") from None
    for shard in shards:
        if not (model_dir / shard).is_file():
            raise WorkbenchError(f"{model_dir}: missing shard {shard} listed in {INDEX_FILE} "
                                 "(an incomplete download?)")


def check_safetensors_files(model_dir: Path) -> None:
    """Check every ``*.safetensors`` header and the shard index of ``model_dir`` without loading any tensor."""
    model_dir = Path(model_dir)
    check_index(model_dir)
    for path in sorted(model_dir.glob("*.safetensors")):
        check_safetensors_file(path)


def _few(keys: Iterable[str], n: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def check_loading_info(model_dir: Path, info: dict, tied: Iterable[str] = ()) -> None:
    """Refuse a load whose weights do not match config.json (``info`` from ``output_loading_info=True``).

    ``tied``: parameters shared with another one (e.g. ``lm_head.weight`` tied to the embeddings); they are
    legitimately absent from the checkpoint.
    """
    missing = set(info.get("missing_keys") or ()) - set(tied)
    mismatched = info.get("mismatched_keys") or ()
    unexpected = {k for k in info.get("unexpected_keys") or () if not BENIGN_UNEXPECTED.search(k)}
    errors = [e for e in info.get("error_msgs") or () if str(e).strip()]
    where = f"the weights in {model_dir} do not match its config.json"
    if mismatched:  # entries are (key, shape in checkpoint, shape in model) in transformers 4.x/5.x
        keys = [m[0] if isinstance(m, (tuple, list)) else str(m) for m in mismatched]
        raise WorkbenchError(f"{where}: {len(keys)} tensors have other shapes ({_few(keys)}); "
                             "a config for another model size?")
    if missing:
        raise WorkbenchError(f"{where}: {len(missing)} parameters are missing from the checkpoint ({_few(missing)}) "
                             "and would be random (more layers in the config than in the weights?)")
    if unexpected:
        raise WorkbenchError(f"{where}: {len(unexpected)} weights are not used by the model ({_few(unexpected)}); "
                             "fewer layers in the config than in the weights?")
    if errors:
        raise WorkbenchError(f"cannot load the weights in {model_dir}: {str(errors[0]).strip().splitlines()[0]}")


def explain_load_error(model_dir: Path, exc: BaseException) -> WorkbenchError:
    """One line for whatever ``from_pretrained`` raised (the caller raises it ``from None``)."""
    import transformers

    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    model_type = _config_value(model_dir, "model_type")
    if "does not recognize this architecture" in text or "Unrecognized model" in text:
        return WorkbenchError(f"model {model_dir}: architecture {model_type!r} not known to transformers "
                              f"{_major_minor(transformers.__version__)} (upgrade transformers or pass "
                              "--trust-remote-code if the model ships code)")
    if "ignore_mismatched_sizes" in text:
        return WorkbenchError(f"the weights in {model_dir} do not match its config.json: tensors have other shapes "
                              "(a config for another model size, e.g. hidden_size?)")
    if type(exc).__name__ == "SafetensorError":
        return WorkbenchError(f"model {model_dir}: corrupt safetensors file ({first})")
    if "custom code" in text or "trust_remote_code" in text:
        return WorkbenchError(f"model {model_dir} ships its own code, which runs only with --trust-remote-code "
                              "(read it first: it runs with your permissions)")
    return WorkbenchError(f"cannot load model {model_dir}: {first}")


def _config_value(model_dir: Path, key: str) -> object:
    try:
        return json.loads((Path(model_dir) / "config.json").read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])
