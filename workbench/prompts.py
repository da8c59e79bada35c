"""Prompt sets: JSONL files with one ``{"id", "category", "prompt"}`` object per line (``category`` optional:
``default``); for chat models a line may hold a conversation instead, ``"messages": [{"role": "system" | "user" |
"assistant", "content": "…"}, …]`` ending with the user's turn, which the models then answer (it needs
``--chat-template``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.paths import PROMPT_SETS


@dataclass(frozen=True)
class Prompt:
    id: str  # unique within the file; names the request in traces
    category: str  # grouping for per-category analysis
    prompt: str  # the text given to the models as is (a conversation's: its last user message)
    messages: tuple[tuple[str, str], ...] = ()  # a conversation as (role, content) pairs, ending with the user's
    #                                             turn; () = the prompt text alone


def _parse_line(path: Path, lineno: int, line: str) -> Prompt:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise WorkbenchError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise WorkbenchError(f"{path}:{lineno}: expected an object with id and prompt (category optional)")
    messages = _messages(path, lineno, obj)
    if messages:
        obj = {**obj, "prompt": messages[-1][1]}
    missing = [key for key in ("id", "prompt") if key not in obj]
    if missing:
        raise WorkbenchError(f"{path}:{lineno}: missing {', '.join(missing)} (or messages, a conversation)")
    if not isinstance(obj["prompt"], str):
        raise WorkbenchError(f"{path}:{lineno}: prompt must be a string, got {type(obj['prompt']).__name__}")
    if not obj["prompt"].strip():
        raise WorkbenchError(f"{path}:{lineno}: empty prompt")
    if isinstance(obj["id"], bool) or not isinstance(obj["id"], (str, int)):  # "id": null must not become "None"
        raise WorkbenchError(f"{path}:{lineno}: id must be a string or an integer, got {type(obj['id']).__name__}")
    pid = str(obj["id"])
    if not pid.strip() or "/" in pid or re.fullmatch(r"warmup\d+", pid):  # request ids are <prompt id>/<drafter>/…
        raise WorkbenchError(f"{path}:{lineno}: id {pid!r}: give a non-empty id without '/' that is not warmupN "
                             "(request ids are built from it; warmupN names a warm-up request)")
    category = obj.get("category")
    if category is not None and not isinstance(category, str):
        raise WorkbenchError(f"{path}:{lineno}: category must be a string, got {type(category).__name__}")
    prompt = Prompt(id=pid, category=category or "default", prompt=obj["prompt"], messages=messages)
    texts = {"id": prompt.id, "category": prompt.category, "prompt": prompt.prompt,
             **{f"messages[{i}]": content for i, (_, content) in enumerate(messages)}}
    for field, text in texts.items():  # JSON can spell a lone surrogate ("\\ud800"); no tokenizer takes it
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise WorkbenchError(f"{path}:{lineno}: {field} is not valid Unicode text (a lone surrogate)") from None
    return prompt


ROLES = ("system", "user", "assistant")


def _messages(path: Path, lineno: int, obj: dict) -> tuple[tuple[str, str], ...]:
    """A line's conversation, checked: a non-empty list of {role, content} ending with the user's turn; () if the
    line has a plain prompt instead."""
    if "messages" not in obj:
        return ()
    where = f"{path}:{lineno}: messages"
    if "prompt" in obj:
        raise WorkbenchError(f"{where}: give prompt or messages, not both")
    turns = obj["messages"]
    if not isinstance(turns, list) or not turns:
        raise WorkbenchError(f"{where}: expected a non-empty list of {{\"role\", \"content\"}} objects")
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or not isinstance(turn.get("content"), str) \
                or not turn["content"].strip():
            raise WorkbenchError(f"{where}[{i}]: expected {{\"role\": {' | '.join(map(repr, ROLES))}, \"content\": "
                                 f"non-empty text}}, got {json.dumps(turn, ensure_ascii=False)[:80]}")
    if turns[-1]["role"] != "user":
        raise WorkbenchError(f"{where}: the last message must be the user's (the models answer it), not "
                             f"{turns[-1]['role']!r}")
    return tuple((t["role"], t["content"]) for t in turns)


def load_prompts(path: str | Path, *, limit: int | None = None, per_category: int | None = None) -> list[Prompt]:
    """Read and validate a prompts file; ``per_category`` keeps the first N of each category, then ``limit`` the
    first N prompts."""
    path = Path(path)
    if not path.is_file():
        why = "a directory, not a file" if path.is_dir() else "not a regular file" if path.exists() else "no such file"
        raise WorkbenchError(f"prompts file {path}: {why} (give a JSONL file, or a bundled set: "
                             f"{', '.join(PROMPT_SETS)})")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")  # JSON strings may hold U+2028 etc.: not line breaks
    except UnicodeDecodeError:
        raise WorkbenchError(f"prompts file {path}: not UTF-8 text") from None
    prompts = [_parse_line(path, i, line) for i, line in enumerate(lines, 1) if line.strip()]
    if not prompts:
        raise WorkbenchError(f"prompts file {path}: no prompts")
    seen: set[str] = set()
    for prompt in prompts:
        if prompt.id in seen:
            raise WorkbenchError(f"prompts file {path}: duplicate id {prompt.id!r}")
        seen.add(prompt.id)
    if per_category:
        seen_in: dict[str, int] = {}
        kept = []
        for prompt in prompts:
            seen_in[prompt.category] = seen_in.get(prompt.category, 0) + 1
            if seen_in[prompt.category] <= per_category:
                kept.append(prompt)
        prompts = kept
    return prompts[:limit] if limit else prompts
