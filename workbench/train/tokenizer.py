"""Byte-level BPE tokenizer trained on the training documents, saved as a PreTrainedTokenizerFast directory.

Byte-level (GPT-2 style) means every string round-trips exactly: no unknown tokens, whitespace and indentation
of Python code preserved. One special token, <|endoftext|>, serves as bos, eos and pad: it separates documents
in the training stream, and the tokenizer prepends it to every encoded text (add_special_tokens=True) so a
prompt looks like the start of a document, as in training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL = "<|endoftext|>"


@dataclass
class TokenizerConfig:
    vocab_size: int = 8192  # total vocabulary incl. the 256 byte symbols and the special token
    min_frequency: int = 2  # a pair must occur this often to be merged
    max_train_chars: int = 12_000_000  # cap on text fed to the BPE trainer (evenly strided docs); ~10 s on 2 cores


def train_tokenizer(texts: list[str], cfg: TokenizerConfig) -> Tokenizer:
    """Train BPE merges on (a strided subset of) texts; deterministic for a given text order."""
    total = sum(len(t) for t in texts)
    stride = max(1, -(-total // cfg.max_train_chars))  # keep every stride-th document when over the cap
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=[SPECIAL],  # id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, so nothing is ever unknown
        show_progress=False,
    )
    tok.train_from_iterator(texts[::stride], trainer=trainer, length=len(texts[::stride]))
    bos = tok.token_to_id(SPECIAL)
    tok.post_processor = processors.TemplateProcessing(  # "<|endoftext|> $A": a prompt starts a document
        single=f"{SPECIAL} $A", pair=f"{SPECIAL} $A {SPECIAL} $B", special_tokens=[(SPECIAL, bos)]
    )
    return tok


def to_hf(tok: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    """Wrap as a transformers fast tokenizer with bos/eos/pad all set to <|endoftext|>."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL,
        eos_token=SPECIAL,
        pad_token=SPECIAL,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,  # byte-level decode is exact; no space "clean-up" on code
    )


def save_tokenizer(hf_tok: PreTrainedTokenizerFast, out_dir: Path) -> None:
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json, loadable by AutoTokenizer offline."""
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_tok.save_pretrained(str(out_dir))
    # transformers 5 folds the special tokens into tokenizer_config.json; older loaders also read this file
    special = {"bos_token": SPECIAL, "eos_token": SPECIAL, "pad_token": SPECIAL}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
