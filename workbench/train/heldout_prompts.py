"""Held-out prompt set: natural passage starts cut from the held-out documents (never seen in training).

A candidate start is the first line of a paragraph (text after a blank line) that begins with a letter, or for
Python code a top-level `def`/`class`/decorator line. From a start we keep between min_tokens and max_tokens
tokens (length drawn per prompt), then cut back to the last whole word so the prompt never ends in a space or a
half word (which would push the model into a tokenization it never saw). Selection is round-robin over the
category's held-out documents in a seeded order, so every document contributes and the set is deterministic.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from workbench.train.corpus import Document

_CODE_START = re.compile(r"^(def |class |async def |@)")
_TEXT_START = re.compile(r"^[A-Z][a-z]")  # a sentence, not markup (.., ==, ::), a list bullet or a number


@dataclass
class PromptConfig:
    per_category: int = 16  # prompts per category (fewer only if the held-out documents run out of starts)
    min_tokens: int = 20  # shortest prompt, in tokens of the trained tokenizer (before the word-boundary cut)
    max_tokens: int = 60  # longest prompt
    min_chars_after: int = 200  # the passage must continue at least this far past the prompt (room to continue)
    min_gap_chars: int = 400  # starts in one document at least this far apart (a heading and its first line
    #                           are two starts; without the gap they would give two near-identical prompts)
    seed: int = 0  # seeds document order, start choice and lengths


def _starts(doc: Document) -> list[int]:
    """Character offsets of candidate passage starts in doc.text."""
    pattern = _CODE_START if doc.category.endswith("code") else _TEXT_START
    offsets, prev_blank = [], True
    pos = 0
    for line in doc.text.split("\n"):
        if prev_blank and pattern.match(line):
            offsets.append(pos)
        prev_blank = not line.strip()
        pos += len(line) + 1
    return offsets


def _cut(tok: Tokenizer, text: str, n_tokens: int) -> str | None:
    """About n_tokens of text, trimmed back to the last whole word; None if too little text remains."""
    n_tokens += 4  # a few spare tokens, so the word-boundary cut rarely drops below the requested length
    enc = tok.encode(text[: n_tokens * 12], add_special_tokens=False)  # 12 chars/token is a safe upper bound
    if len(enc.ids) < n_tokens:
        return None
    prefix = text[: enc.offsets[n_tokens - 1][1]]
    cut = max(prefix.rfind(" "), prefix.rfind("\n"))
    return prefix[:cut].rstrip() if cut > 0 else None


def _category_prompts(docs: list[Document], tok: Tokenizer, cfg: PromptConfig, gen: torch.Generator) -> list[dict]:
    """Round-robin over documents; from each, a not-yet-used random start per round."""
    order = torch.randperm(len(docs), generator=gen).tolist()
    pools = {i: _starts(docs[i]) for i in order}
    used: dict[int, list[int]] = {i: [] for i in order}  # chosen start offsets per document
    picked: list[dict] = []
    while len(picked) < cfg.per_category and any(pools.values()):
        for i in order:
            if not pools[i] or len(picked) >= cfg.per_category:
                continue
            start = pools[i].pop(int(torch.randint(len(pools[i]), (1,), generator=gen)))
            n_tok = int(torch.randint(cfg.min_tokens, cfg.max_tokens + 1, (1,), generator=gen))
            if any(abs(start - u) < cfg.min_gap_chars for u in used[i]):
                continue
            text = docs[i].text[start:]
            prompt = _cut(tok, text, n_tok)
            if not prompt or len(text) - len(prompt) < cfg.min_chars_after:
                continue
            if len(tok.encode(prompt, add_special_tokens=False).ids) >= cfg.min_tokens and len(prompt.split()) >= 5:
                used[i].append(start)
                picked.append({"source": docs[i].name, "prompt": prompt})
    return picked


def heldout_prompts(heldout: list[Document], tok: Tokenizer, cfg: PromptConfig) -> list[dict]:
    """[{id, category, source, prompt}] for every category, ids like 'bible-03'."""
    gen = torch.Generator().manual_seed(cfg.seed)
    rows = []
    for cat in sorted({d.category for d in heldout}):
        docs = sorted((d for d in heldout if d.category == cat), key=lambda d: d.name)
        for k, p in enumerate(_category_prompts(docs, tok, cfg, gen)):
            rows.append({"id": f"{cat}-{k:02d}", "category": cat, **p})
    return rows


def write_jsonl(rows: list[dict], path: Path) -> None:
    """One JSON object per line, UTF-8, key order as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
