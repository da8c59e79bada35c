"""Which model architectures the loop runs losslessly: tiny random models of many Hugging Face architectures, each
with a 1-block draft, early exit and prompt lookup, greedy and sampled.

    python benchmarks/architectures.py                     # every architecture below (~3 s each on a 2-core CPU)
    python benchmarks/architectures.py llama opt gemma2    # some of them
    python benchmarks/architectures.py --out /tmp/arch     # keep the models and runs (each architecture's folder
                                                           # is replaced; default: a temporary folder)

Per architecture: a 2-block target (hidden 32, random weights, float32) and a draft of 1 block holding the target's
first block (so `draft` and `early-exit:1` compute the same function and should measure the same acceptance), saved
as safetensors with the tests' tiny tokenizer. Then, as a user would (`workbench run` through the CLI's own `main`):
greedy with the draft, `early-exit:1` and `ngram` at γ ∈ {1, 3} beside the baseline, and T = 0.8 at γ = 3. It prints
one row per architecture: whether each drafter's greedy output equals the baseline's token for token on every
prompt, acceptance at γ = 1, whether the sampled run finished, and any `error:` line (early exit refuses a layout it
cannot take apart: that is a refusal, not a failure). Random models tie easily: the output layer is scaled until the
median top-2 logit gap is ≥ 0.5, and a few architectures get a tweak (noted in ``config_for``) so greedy does not
just repeat a token. An architecture missing from this transformers is skipped. Exit 1 if any greedy output differs
or a run fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers as hf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_models import make_tokenizer  # noqa: E402

from workbench import trace  # noqa: E402
from workbench.cli import main as workbench_main  # noqa: E402

ARCHS = ("llama", "qwen2", "qwen3", "mistral", "mixtral", "gemma", "gemma2", "gemma3", "phi", "phi3", "gpt2", "gptj",
         "gpt_neox", "opt", "falcon", "stablelm", "starcoder2", "olmo2", "cohere", "granite", "bloom")
HIDDEN, CONTEXT, INIT_STD = 32, 256, 0.5
PROMPTS = [{"id": "a", "category": "prose", "prompt": "The quick brown fox jumps over the lazy dog. The quick brown"},
           {"id": "b", "category": "code", "prompt": "def add(a, b):\n    return a + b\n\ndef add(a, b):"},
           {"id": "c", "category": "prose", "prompt": "A speculative decoder drafts tokens and the target"}]


def config_for(arch: str, vocab: int, layers: int):
    """A tiny config of ``arch`` (None when this transformers lacks it)."""
    ids = dict(vocab_size=vocab, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    llama = dict(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=layers, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=CONTEXT, initializer_range=INIT_STD, **ids)
    sliding = dict(head_dim=8, sliding_window=8, query_pre_attn_scalar=8,  # a window shorter than every request
                   layer_types=["sliding_attention", "full_attention"][:layers])
    table = {
        "llama": ("LlamaConfig", llama), "qwen2": ("Qwen2Config", llama),
        "qwen3": ("Qwen3Config", {**llama, "head_dim": 8}),
        "mistral": ("MistralConfig", {**llama, "sliding_window": 8}),
        "mixtral": ("MixtralConfig", {**llama, "num_local_experts": 4, "num_experts_per_tok": 2}),
        "gemma": ("GemmaConfig", {**llama, "head_dim": 8}), "gemma2": ("Gemma2Config", {**llama, **sliding}),
        "gemma3": ("Gemma3TextConfig", {**llama, **sliding}), "phi3": ("Phi3Config", llama),
        "phi": ("PhiConfig", {k: v for k, v in llama.items() if k != "num_key_value_heads"}),
        "stablelm": ("StableLmConfig", llama), "starcoder2": ("Starcoder2Config", llama),
        "olmo2": ("Olmo2Config", llama),
        "cohere": ("CohereConfig", {**llama, "logit_scale": 1.0}),  # its default 0.0625 flattens random logits
        "granite": ("GraniteConfig", llama),
        "gpt2": ("GPT2Config", dict(n_embd=HIDDEN, n_layer=layers, n_head=4, n_positions=CONTEXT,
                                    initializer_range=INIT_STD, **ids)),
        "gptj": ("GPTJConfig", dict(n_embd=HIDDEN, n_layer=layers, n_head=4, rotary_dim=4, n_positions=CONTEXT,
                                    initializer_range=INIT_STD, **ids)),
        "gpt_neox": ("GPTNeoXConfig", dict(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=layers,
                                           num_attention_heads=4, max_position_embeddings=CONTEXT,
                                           initializer_range=INIT_STD, **ids)),
        "opt": ("OPTConfig", dict(hidden_size=HIDDEN, ffn_dim=2 * HIDDEN, num_hidden_layers=layers,
                                  num_attention_heads=4, max_position_embeddings=CONTEXT, word_embed_proj_dim=HIDDEN,
                                  init_std=INIT_STD, **ids)),
        "falcon": ("FalconConfig", dict(hidden_size=HIDDEN, num_hidden_layers=layers, num_attention_heads=4,
                                        max_position_embeddings=CONTEXT, initializer_range=INIT_STD, **ids)),
        "bloom": ("BloomConfig", dict(hidden_size=HIDDEN, n_layer=layers, n_head=4, initializer_range=INIT_STD, **ids)),
    }
    name, kwargs = table[arch]
    cls = getattr(hf, name, None)
    return cls(**kwargs) if cls else None


def top2_gap(model, ids) -> float:
    with torch.inference_mode():
        top = model(ids).logits[0].topk(2, dim=-1).values
    return float((top[:, 0] - top[:, 1]).median())


def loaded_vocab(arch: str, path: Path, tokenizer) -> int:
    """How many tokens AutoTokenizer loads beside this architecture's config: the model must score them all (for
    model_type qwen2 transformers loads a Qwen2 tokenizer, which adds <|endoftext|>)."""
    config_for(arch, len(tokenizer), 2).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return len(hf.AutoTokenizer.from_pretrained(path, local_files_only=True))


def build(arch: str, root: Path, tokenizer) -> bool:
    """Save ``root/arch/{target,draft}`` (replacing what a run before left there); False when this transformers
    lacks ``arch``."""
    if config_for(arch, len(tokenizer), 2) is None:
        return False
    shutil.rmtree(root / arch, ignore_errors=True)
    (root / arch / "target").mkdir(parents=True)
    vocab = loaded_vocab(arch, root / arch / "target", tokenizer)
    torch.manual_seed(0)
    config = config_for(arch, vocab, 2)
    target = hf.AutoModelForCausalLM.from_config(config).eval()
    if arch in ("gemma2", "gemma3"):  # post-norms keep each block's output small beside the scaled embedding:
        with torch.no_grad():          # greedy would repeat the input token; strengthen the blocks
            for layer in target.model.layers:
                layer.post_attention_layernorm.weight.fill_(4.0)
                layer.post_feedforward_layernorm.weight.fill_(4.0)
    ids = tokenizer(PROMPTS[0]["prompt"], return_tensors="pt").input_ids
    for _ in range(6):  # peaked logits: no near-ties between a batched and a one-token forward
        if top2_gap(target, ids) >= 0.5:
            break
        with torch.no_grad():
            target.get_output_embeddings().weight.mul_(2.0)
    draft = hf.AutoModelForCausalLM.from_config(config_for(arch, vocab, 1)).eval()
    missing, _ = draft.load_state_dict(target.state_dict(), strict=False)  # the target's first block, norm, head
    assert not missing, (arch, missing)
    for name, model in (("target", target), ("draft", draft)):
        model.save_pretrained(root / arch / name, safe_serialization=True)
        tokenizer.save_pretrained(root / arch / name)
    return True


def run(args: list[str]) -> tuple[int, str]:
    """``workbench`` in this process; (exit status, its `error:` line or "")."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = workbench_main(args)
    return status, next((line for line in err.getvalue().splitlines() if line.startswith("error:")), "")


def check(arch: str, root: Path, prompts: Path) -> dict:
    d = root / arch
    common = ["--target", str(d / "target"), "--prompts", str(prompts), "--max-new-tokens", "24", "--baseline",
              "--no-progress", "--no-warmup"]
    drafters = f"{d / 'draft'},early-exit:1,ngram"
    status, error = run(["run", *common, "--draft", drafters, "--gamma", "1,3", "--out", str(d / "greedy")])
    row = {"arch": arch}
    if status == 2 and "cannot take the first layers" in error:  # a layout early exit refuses: the rest must run
        row["note"] = error
        drafters = f"{d / 'draft'},ngram"
        status, error = run(["run", *common, "--draft", drafters, "--gamma", "1,3", "--out", str(d / "greedy-2")])
    if status != 0:
        return {**row, "greedy": f"exit {status}", "note": error}
    t = trace.load(d / ("greedy-2" if (d / "greedy-2").exists() else "greedy"))
    req = t.requests
    base = req[req["mode"] == "baseline"].set_index("prompt_id")["output_token_ids"].map(list)
    spec = req[req["mode"] == "speculative"]
    for drafter, rows in spec.groupby("drafter"):
        label = "draft" if drafter == "draft" else drafter
        row[label] = all(list(r.output_token_ids) == base[r.prompt_id] for r in rows.itertuples())
        steps = t.steps[t.steps["request_id"].isin(rows[rows["policy"] == "constant:1"]["request_id"])]
        steps = steps[steps["gamma"] > 0]
        row[f"α {label}"] = round(steps["n_accepted"].sum() / max(steps["gamma"].sum(), 1), 3)
    status, error = run(["run", *common, "--draft", drafters, "--gamma", "3", "--temperature", "0.8",
                         "--out", str(d / "sampled")])
    row["sampled"] = "ok" if status == 0 else f"exit {status}"
    if error:
        row["note"] = error
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archs", nargs="*", default=list(ARCHS), help=f"architectures (default: all of {', '.join(ARCHS)})")
    p.add_argument("--out", type=Path, help="keep the models and runs here (default: a temporary folder)")
    args = p.parse_args(argv)
    unknown = [a for a in args.archs if a not in ARCHS]
    if unknown:
        p.error(f"unknown architecture {unknown[0]!r} (known: {', '.join(ARCHS)})")
    tokenizer = make_tokenizer()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        prompts = root / "prompts.jsonl"
        root.mkdir(parents=True, exist_ok=True)
        prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
        for arch in args.archs:
            started = time.perf_counter()
            row = check(arch, root, prompts) if build(arch, root, tokenizer) else {"arch": arch, "greedy": "skipped"}
            rows.append({**row, "s": round(time.perf_counter() - started, 1)})
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    import pandas as pd

    table = pd.DataFrame(rows).drop(columns="note", errors="ignore").astype(object).fillna("")
    print(table.to_string(index=False))
    for r in rows:
        if r.get("note"):
            print(f"{r['arch']}: {r['note']}")
    lossy = [r["arch"] for r in rows if any(v is False for v in r.values())]
    failed = [r["arch"] for r in rows if str(r.get("greedy", "")).startswith("exit")
              or str(r.get("sampled", "")).startswith("exit")]
    print(f"greedy output differs from the baseline on: {', '.join(lossy) or 'none'}; a run failed on: "
          f"{', '.join(failed) or 'none'} ({len(rows)} architectures)")
    return 1 if lossy or failed else 0


if __name__ == "__main__":
    sys.exit(main())
