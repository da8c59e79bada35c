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
    copy_count: int = 16  # prompts of the ``copy`` category (0 = none); see ``copy_prompts``
    copy_max_tokens: int = 120  # longest passage / function / verse shown before it is started again


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
    """[{id, category, source, prompt}] for every category, ids like 'bible-03', then the ``copy`` prompts
    (``copy_prompts``, their own generator: the other categories do not depend on them)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    rows = []
    for cat in sorted({d.category for d in heldout}):
        docs = sorted((d for d in heldout if d.category == cat), key=lambda d: d.name)
        for k, p in enumerate(_category_prompts(docs, tok, cfg, gen)):
            rows.append({"id": f"{cat}-{k:02d}", "category": cat, **p})
    return rows + copy_prompts(heldout, tok, cfg)


def write_jsonl(rows: list[dict], path: Path) -> None:
    """One JSON object per line, UTF-8, key order as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


# --- the ``copy`` category: prompts whose continuation was shown earlier in the prompt --------------------------
# Three tasks, each cut from the held-out documents of its own kind of category (category name ending in "code" →
# functions, "bible" → verses, any other → reST paragraphs):
#   passage   a paragraph, a blank line, then the paragraph's first words again ("continue a passage shown earlier")
#   function  a top-level Python function, two blank lines, then its def line again, renamed on a seeded coin flip
#             to ``<name>_v2`` ("refactor a function shown in the prompt")
#   verse     a verse, a new line, then its first words with one of them (not the first) replaced by a later word
#             of the same verse ("repeat a verse with a change")
# Candidates of a task come round-robin over its documents (seeded document order, seeded order within each);
# every candidate that passes the filters (fits copy_max_tokens, enough words) is kept, in order, until the task's
# share of copy_count is reached. The repeat is cut at a word boundary, so the prompt never ends in a space.
_COPY_TASKS = ("passage", "function", "verse")
_DEF = re.compile(r"^def (\w+)\(")
_WORD = re.compile(r"^[A-Za-z]+$")


def _paragraphs(text: str) -> list[str]:
    """Paragraphs (blank-line separated) that start like a sentence."""
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text) if _TEXT_START.match(p.strip("\n"))]


def _functions(text: str) -> list[str]:
    """Top-level ``def`` blocks: from the def line to the last indented (or blank) line before column-0 code."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        if not _DEF.match(lines[i]):
            i += 1
            continue
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j][0] in " \t)"):
            j += 1
        out.append("\n".join(lines[i:j]).rstrip())
        i = j
    return out


def _verses(text: str) -> list[str]:
    """Verse lines (one verse a line; chapter headings and short lines left out)."""
    return [line for line in text.split("\n") if len(line.split()) >= 12]


def _first_words(text: str, n: int) -> str:
    """The first n words of text, exactly as written (inner spacing kept, nothing after the n-th word)."""
    return re.match(rf"\s*(?:\S+\s+){{{n - 1}}}\S+", text).group(0).strip()


def _copy_prompt(task: str, shown: str, gen: torch.Generator) -> str | None:
    """The prompt for one candidate; None when the candidate cannot carry the task (too few words)."""
    n_words = int(torch.randint(4, 9, (1,), generator=gen))  # words repeated: 4..8
    words = shown.split()
    if len(words) < n_words + 4:
        return None
    if task == "passage":
        return f"{shown}\n\n{_first_words(shown, n_words)}"
    if task == "function":
        head = shown.split("\n", 1)[0]
        if int(torch.randint(2, (1,), generator=gen)):
            head = _DEF.sub(lambda m: f"def {m.group(1)}_v2(", head, count=1)
        return f"{shown}\n\n\n{head}"
    start = words[:n_words]
    at = 1 + int(torch.randint(n_words - 1, (1,), generator=gen))
    later = [w for w in words[n_words:] if _WORD.match(w) and w != start[at]]
    if not later:
        return None
    start[at] = later[int(torch.randint(len(later), (1,), generator=gen))]
    return f"{shown}\n{' '.join(start)}"


def _copy_candidates(docs: list[Document], task: str, gen: torch.Generator):
    """(document, text) candidates of one task, round-robin over documents, both orders seeded."""
    split = {"passage": _paragraphs, "function": _functions, "verse": _verses}[task]
    order = torch.randperm(len(docs), generator=gen).tolist()
    pools = {i: split(docs[i].text) for i in order}
    pools = {i: [p[k] for k in torch.randperm(len(p), generator=gen).tolist()] for i, p in pools.items()}
    while any(pools.values()):
        for i in order:
            if pools[i]:
                yield docs[i], pools[i].pop(0)


def _task_of(category: str) -> str:
    return "function" if category.endswith("code") else "verse" if category == "bible" else "passage"


def copy_prompts(heldout: list[Document], tok: Tokenizer, cfg: PromptConfig) -> list[dict]:
    """[{id, category: "copy", task, source, prompt}]: cfg.copy_count prompts shared out over the three tasks
    (passage, function, verse; the first tasks take the remainder), ids 'copy-00'... Seeded by cfg.seed + 1."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    rows: list[dict] = []
    for t, task in enumerate(_COPY_TASKS):
        want = cfg.copy_count // len(_COPY_TASKS) + (t < cfg.copy_count % len(_COPY_TASKS))
        docs = sorted((d for d in heldout if _task_of(d.category) == task), key=lambda d: (d.category, d.name))
        kept = 0
        for doc, shown in _copy_candidates(docs, task, gen):
            if kept >= want:
                break
            n_tok = len(tok.encode(shown, add_special_tokens=False).ids)
            prompt = _copy_prompt(task, shown, gen) if cfg.min_tokens <= n_tok <= cfg.copy_max_tokens else None
            if prompt:
                rows.append({"id": f"copy-{len(rows):02d}", "category": "copy", "task": task,
                             "source": f"{doc.category}:{doc.name}", "prompt": prompt})
                kept += 1
    return rows
