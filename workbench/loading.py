"""Loading models and tokenizers: local, offline, safetensors only; device and dtype resolution; vocabulary checks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from workbench import weights
from workbench.config import setting_problem
from workbench.errors import WorkbenchError

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}  # --dtype → torch


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise WorkbenchError("--device cuda: no CUDA device is available to this PyTorch build")
    if name == "mps" and not torch.backends.mps.is_available():
        raise WorkbenchError("--device mps: MPS is not available on this machine")
    problem = setting_problem("device", name)  # the names RunConfig accepts (config.RULES)
    if problem:
        raise WorkbenchError(f"--device {name!r}: {problem}")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` is float32 on CPU (exact, and fastest there), bfloat16 on CUDA, float16 on MPS."""
    if name == "auto":
        return {"cuda": torch.bfloat16, "mps": torch.float16}.get(device.type, torch.float32)
    if name not in TORCH_DTYPES:
        raise WorkbenchError(f"--dtype {name!r}: {setting_problem('dtype', name) or 'expected a torch dtype'}")
    if name == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise WorkbenchError("--dtype bfloat16 is not supported on this GPU; use float16 or float32")
    return TORCH_DTYPES[name]


def resolve_model_dir(name_or_path: str) -> Path:
    """A local HF-format directory, or a hub id found in the local HF cache (never downloaded)."""
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        if path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
            what = "a file, not a model directory" if path.exists() else "no such directory"
            raise WorkbenchError(f"model {name_or_path!r}: {what}")
        try:
            from huggingface_hub import snapshot_download
            path = Path(snapshot_download(name_or_path, local_files_only=True))
        except Exception:  # noqa: BLE001 - any failure means "not in the local cache"
            raise WorkbenchError(f"model {name_or_path!r}: not a local directory and not in the local "
                                 "Hugging Face cache (the workbench never downloads)") from None
    if not (path / "config.json").is_file():
        raise WorkbenchError(f"model {name_or_path!r}: {path} has no config.json (not a Hugging Face model dir)")
    if not any(path.glob("*.safetensors")):
        raise WorkbenchError(f"model {name_or_path!r}: no .safetensors weights in {path} "
                             "(pickled .bin weights are refused)")
    return path


def content_hash(model_dir: Path) -> str:
    """sha256 over config.json and the safetensors files, in name order (identifies the exact weights)."""
    digest = hashlib.sha256()
    for file in [model_dir / "config.json", *sorted(model_dir.glob("*.safetensors"))]:
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()


def load_model(model_dir: Path, *, device: torch.device, dtype: torch.dtype, trust_remote_code: bool):
    """``AutoModelForCausalLM`` from a resolved directory: safetensors only, offline, in eval mode."""
    weights.check_safetensors_files(model_dir)  # truncated / corrupt files, missing shards: one line each
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=dtype, use_safetensors=True, local_files_only=True,
            trust_remote_code=trust_remote_code, output_loading_info=True)
    except Exception as exc:  # noqa: BLE001 - SafetensorError, shape mismatch (RuntimeError), unknown arch, ...
        if isinstance(exc, MemoryError) or "out of memory" in str(exc):
            raise  # the CLI's OOM hint (exit 1)
        raise weights.explain_load_error(model_dir, exc) from None
    weights.check_loading_info(model_dir, info, tied=getattr(model, "all_tied_weights_keys", None) or ())
    return model.to(device).eval()


# Files a tokenizer is saved as; when loading fails and none is there, that is the cause (transformers would
# blame a missing sentencepiece or tiktoken instead).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model", "merges.txt")


def load_tokenizer(model_dir: Path, *, trust_remote_code: bool):
    try:
        return AutoTokenizer.from_pretrained(model_dir, local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - OSError, invalid JSON, a config that fails validation, ...
        if not any((Path(model_dir) / name).is_file() for name in TOKENIZER_FILES):
            raise WorkbenchError(f"{model_dir}: no tokenizer files (tokenizer.json, tokenizer_config.json, …): save "
                                 "the tokenizer next to the model (tokenizer.save_pretrained)") from None
        said = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())  # one line, cause included
        raise WorkbenchError(f"cannot load the tokenizer of {model_dir}: {said[:300]}") from None


def check_same_vocabulary(target_tok, draft_tok) -> None:
    """Speculative decoding compares p and q token by token: both tokenizers must map every token to the same id
    (the whole token → id maps are compared: a few ms for a 150k vocabulary)."""
    if len(target_tok) != len(draft_tok):
        raise WorkbenchError(f"draft and target vocabularies differ: {len(draft_tok)} vs {len(target_tok)} tokens "
                             "(speculative decoding needs a shared tokenizer)")
    target_vocab, draft_vocab = target_tok.get_vocab(), draft_tok.get_vocab()
    if target_vocab != draft_vocab:
        token = next(t for t in sorted(target_vocab, key=target_vocab.get) if draft_vocab.get(t) != target_vocab[t])
        raise WorkbenchError(f"draft and target tokenizers map tokens to different ids (first: {token!r} is "
                             f"{target_vocab[token]} for the target, {draft_vocab.get(token)} for the draft; "
                             "speculative decoding needs a shared tokenizer)")


def context_window(model) -> int | None:
    """Longest sequence the model accepts, from its config (None when the config does not say)."""
    config = model.config.get_text_config()
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


@dataclass
class ModelInfo:
    """What meta.json records about a model."""

    path: str
    content_sha256: str
    parameters: int
    architecture: str
    context_window: int | None


def n_params(model) -> int:
    """Unique parameters (a tied embedding counted once: ``parameters()`` yields a shared tensor once)."""
    return sum(p.numel() for p in model.parameters())


def describe(model, model_dir: Path) -> ModelInfo:
    return ModelInfo(path=str(model_dir), content_sha256=content_hash(model_dir), parameters=n_params(model),
                     architecture=type(model).__name__, context_window=context_window(model))


def shared_vocab_size(models: dict, tokenizer) -> int:
    """Logit width all models share ({model dir: model}); must cover every token of the tokenizer."""
    rows = {name: m.get_output_embeddings().weight.shape[0] for name, m in models.items()}
    short = [(name, n) for name, n in rows.items() if n < len(tokenizer)]
    if short:
        raise WorkbenchError(f"model {short[0][0]}: its output layer has {short[0][1]} rows, fewer than the "
                             f"tokenizer's {len(tokenizer)} tokens (it cannot score every token)")
    return min(rows.values())
