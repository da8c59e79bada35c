"""The ``copy`` held-out prompts (workbench.train.heldout_prompts.copy_prompts) on small synthetic documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_models import make_tokenizer

from workbench.train.corpus import Document
from workbench.train.heldout_prompts import PromptConfig, copy_prompts

FUNCS = "".join(f"""
def helper_{i}(a, b):
    \"\"\"Add a and b, then {i}.\"\"\"

    total = a + b
    return total + {i}


x_{i} = helper_{i}(1, 2)
""" for i in range(3))
PARAS = "".join(f"Heading {i}\n\nThe draft model proposes tokens number {i} and the target checks them all in a "
                f"single forward pass over the sequence.\n\n.. note:: markup is never a start\n\n"
                for i in range(3))
VERSES = "Book 1\n\n" + "\n".join(f"And the LORD spake unto Moses in the {i} day of the month, saying, go in peace."
                                  for i in range(4))
DOCS = [Document("python-code", "m.py", FUNCS), Document("docs-guide", "g.rst.txt", PARAS),
        Document("bible", "Book", VERSES)]
CFG = PromptConfig(copy_count=6, min_tokens=8)


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer().backend_tokenizer


def test_copy_prompts_show_a_text_then_start_it_again(tok):
    rows = copy_prompts(DOCS, tok, CFG)
    assert [r["id"] for r in rows] == [f"copy-{k:02d}" for k in range(6)]
    assert [r["task"] for r in rows] == ["passage"] * 2 + ["function"] * 2 + ["verse"] * 2
    assert {r["category"] for r in rows} == {"copy"} and rows[0]["source"] == "docs-guide:g.rst.txt"
    for r in rows:
        assert not r["prompt"].endswith((" ", "\n"))
        if r["task"] == "passage":
            shown, again = r["prompt"].split("\n\n")
            assert shown in PARAS and shown.startswith(again) and 4 <= len(again.split()) <= 8
        elif r["task"] == "function":
            shown, again = r["prompt"].rsplit("\n\n\n", 1)
            assert shown in FUNCS and shown.startswith("def helper_") and shown.endswith("return total + "
                                                                                          + shown[11])
            assert again in (shown.split("\n")[0], shown.split("\n")[0].replace("(", "_v2(", 1))
        else:
            shown, again = r["prompt"].split("\n")
            changed = [(a, b) for a, b in zip(shown.split(), again.split()) if a != b]
            assert shown in VERSES and len(changed) == 1 and changed[0][1] in shown.split()[len(again.split()):]


def test_copy_prompts_are_deterministic_and_seeded(tok):
    assert copy_prompts(DOCS, tok, CFG) == copy_prompts(DOCS, tok, CFG)
    other = copy_prompts(DOCS, tok, PromptConfig(copy_count=6, min_tokens=8, seed=5))
    assert other != copy_prompts(DOCS, tok, CFG)
    assert copy_prompts(DOCS, tok, PromptConfig(copy_count=0)) == []


def test_candidates_that_do_not_fit_are_skipped_not_chosen(tok):
    # the paragraphs (115 tokens of the tiny tokenizer) exceed copy_max_tokens (functions: 90, verses: 77): no
    # passage prompts, and the count is not made up by the other tasks
    rows = copy_prompts(DOCS, tok, PromptConfig(copy_count=6, min_tokens=8, copy_max_tokens=100))
    assert "passage" not in {r["task"] for r in rows} and len(rows) == 4
    # with more wanted than exist, every candidate is kept (3 paragraphs, 3 functions, 4 verses)
    rows = copy_prompts(DOCS, tok, PromptConfig(copy_count=30, min_tokens=8))
    assert [sum(r["task"] == t for r in rows) for t in ("passage", "function", "verse")] == [3, 3, 4]


def test_the_committed_prompt_file_holds_the_copy_category():
    rows = [json.loads(line) for line in
            (Path(__file__).resolve().parent.parent / "data/prompts/heldout.jsonl").read_text().splitlines()]
    copy = [r for r in rows if r["category"] == "copy"]
    assert len(rows) == 80 and len(copy) == 16 and rows[-16:] == copy
    assert {r["task"] for r in copy} == {"passage", "function", "verse"}
