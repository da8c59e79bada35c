"""The sweep file (TOML, docs/SWEEP.md): the keys it may hold, their types and defaults, and its parser, which
names the key and line of every mistake. ``workbench.sweep`` expands what it reads into runs."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from workbench.config import RunConfig, setting_problem
from workbench.errors import WorkbenchError
from workbench.paths import DEFAULT

# Grid keys → element type (float accepts ints). Every point carries all of them (defaults filled in).
GRID_TYPES: dict[str, type] = {"target": str, "draft": str, "policy": str, "gamma": int, "temperature": float,
                               "top_k": int, "top_p": float, "prompts": str, "max_new_tokens": int, "seed": int,
                               "device": str, "dtype": str}
_RUN = RunConfig()  # a grid key left out takes `workbench run`'s default (one drafter, one policy per run)
GRID_DEFAULTS = {"target": _RUN.target, "draft": _RUN.drafts[0], "policy": _RUN.policies[0],
                 **{k: getattr(_RUN, k) for k in ("temperature", "top_k", "top_p", "prompts", "max_new_tokens", "seed",
                                                  "device", "dtype")}}
# [settings]: scalars applied to every run (absent = RunConfig's default).
SETTING_TYPES: dict[str, type] = {"baseline": bool, "limit": int, "per_category": int, "warmup": bool,
                                  "ignore_eos": bool, "trust_remote_code": bool, "chat_template": bool,
                                  "system_prompt": str}
# baseline = "interleaved": no baseline runs; every speculative run measures its own baseline, prompt by prompt
# (`workbench run --baseline`), so its speedups are in-run ratios, at the cost of one baseline per run.
INTERLEAVED = "interleaved"
# Settings added after the manifest format was fixed, with their defaults: a point carries one only when the sweep
# file sets it to another value, so a sweep directory made before the key existed (or a sweep file that spells out
# the default) keeps its grid identity (workbench.sweep.grid_hash) and reruns.
LATER_SETTINGS = {"chat_template": _RUN.chat_template, "system_prompt": _RUN.system_prompt}
PATH_KEYS = ("target", "draft", "prompts")  # values that may be paths (resolved against the sweep file's folder)


@dataclass
class SweepSpec:
    """A sweep file as read: each grid key's values (paths resolved where they exist), settings, exclude rules."""

    path: Path
    grid: dict[str, list]
    settings: dict = field(default_factory=dict)
    exclude: list[dict] = field(default_factory=list)


def _line_of(text: str, table: str, key: str, index: int = 0) -> int | None:
    """1-based line of ``key = …`` in ``[table]`` (in the index-th ``[[table]]``; "" = top level), else None."""
    current, count = "", {}
    key_re = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for no, line in enumerate(text.splitlines(), 1):
        head = re.match(r"\s*\[(\[)?\s*([\w.-]+)\s*\]", line)
        if head:
            current = head.group(2)
            count[current] = count.get(current, -1) + 1 if head.group(1) else 0
        elif current == table and count.get(table, 0) == index and key_re.match(line):
            return no
    return None


def where_set(path: Path, key: str) -> str:
    """``path:line: [grid] key``, the line of the sweep file that sets the grid key ``key``: what an error about its
    value starts with, as those the file's own checks raise (``_bad``)."""
    text = path.read_text(encoding="utf-8")
    line = _line_of(text, "grid", key) or _line_of(text, "", key)
    return f"{path}:{line}: [grid] {key}" if line else f"{path}: [grid] {key}"


def _bad(path: Path, text: str, table: str, key: str, what: str, index: int = 0) -> WorkbenchError:
    line = _line_of(text, table, key, index) or _line_of(text, "", key)
    where = f"{path}:{line}" if line else str(path)
    return WorkbenchError(f"{where}: {what}")


def _check_type(value, want: type) -> bool:
    if isinstance(value, bool):
        return want is bool
    return isinstance(value, want) or (want is float and isinstance(value, int))


def _as_list(value, want: type, bad) -> list:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not _check_type(v, want):
            raise bad(f"expected {want.__name__} or a list of {want.__name__}, got {type(v).__name__} {v!r}")
    return [float(v) if want is float else v for v in values]


def _resolve(sweep_file: Path, value: str) -> str:
    """A relative path that exists next to the sweep file → absolute (workers may run in another directory)."""
    candidate = sweep_file.parent / value
    return str(candidate.resolve()) if value != DEFAULT and not Path(value).is_absolute() and \
        candidate.exists() else value


def value_problem(key: str, value) -> str | None:
    """What no run could take in one value of a grid key or setting (the rules of RunConfig, the policy and the
    drafter parsers), else None. Whether a model or prompt file exists is left to the runs."""
    from workbench.drafters import parse_drafter
    from workbench.policies import parse_policy

    parse = {"policy": parse_policy, "gamma": lambda g: parse_policy(f"constant:{g}"), "draft": parse_drafter}
    if key in PATH_KEYS and not value.strip():
        return "an empty value (give a path, or `default`)"
    if key in ("draft", "policy") and "," in value:  # `workbench run` takes a list here; a grid point is one of each
        return f"one {key} per run: list them as [grid] {key} = [\"a\", \"b\"]"
    try:
        if key in parse:
            parse[key](value)
    except WorkbenchError as exc:
        return str(exc)
    return setting_problem(key, value)


def _settings(path: Path, text: str, settings: dict) -> dict:
    """[settings], type-checked before its values: the value rules (config.RULES) compare numbers and assume the
    type is right (``limit = "1"`` is a wrong type, not a TypeError)."""
    for key, value in settings.items():
        bad = lambda what, k=key: _bad(path, text, "settings", k, f"[settings] {k}: {what}")  # noqa: E731
        if key not in SETTING_TYPES:
            raise bad(f"unknown key (known: {', '.join(SETTING_TYPES)})")
        want = SETTING_TYPES[key]
        if key == "baseline" and value == INTERLEAVED:  # the one setting that also takes a word
            continue
        problem = value_problem(key, value) if _check_type(value, want) else \
            f"expected {want.__name__}" + (f' or "{INTERLEAVED}"' if key == "baseline" else "")
        if problem:
            raise bad(f"{problem}, got {value!r}")
    if settings.get("system_prompt") and not settings.get("chat_template"):
        raise _bad(path, text, "settings", "system_prompt", "[settings] system_prompt needs chat_template = true "
                   "(the system message goes in through the target's chat template)")
    return dict(settings)


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Parse and type-check a sweep file; raises WorkbenchError naming the key and its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise WorkbenchError(f"{path}: cannot read the sweep file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise WorkbenchError(f"{path}: not UTF-8 text (a sweep file is TOML)") from None
    except tomllib.TOMLDecodeError as exc:
        raise WorkbenchError(f"{path}: invalid TOML ({exc})") from None
    for key in data:
        if key not in ("grid", "settings", "exclude"):
            raise _bad(path, text, "", key, f"unknown key {key!r} (expected [grid], [settings], [[exclude]])")
    grid, settings, exclude = data.get("grid", {}), data.get("settings", {}), data.get("exclude", [])
    if not isinstance(grid, dict) or not isinstance(settings, dict) or not isinstance(exclude, list):
        raise WorkbenchError(f"{path}: grid and settings must be tables and exclude an array of tables [[exclude]]")
    spec = SweepSpec(path, {}, {}, [])
    for key, value in grid.items():
        bad = lambda what, k=key: _bad(path, text, "grid", k, f"[grid] {k}: {what}")  # noqa: E731
        if key not in GRID_TYPES:
            raise bad(f"unknown key (known: {', '.join(GRID_TYPES)})")
        values = _as_list(value, GRID_TYPES[key], bad)
        for v in values:  # as written: "" would resolve to the sweep file's own folder
            problem = value_problem(key, v)
            if problem:
                raise bad(f"{v!r}: {problem}")
        spec.grid[key] = [_resolve(path, v) if key in PATH_KEYS else v for v in values]
    spec.settings = _settings(path, text, settings)
    for i, table in enumerate(exclude):
        if not isinstance(table, dict):
            raise _bad(path, text, "", "exclude", "exclude must be an array of tables [[exclude]]")
        if not table:  # matching every key of none, it would leave out every run
            heads = [n for n, line in enumerate(text.splitlines(), 1) if line.strip().startswith("[[exclude]]")]
            where = f"{path}:{heads[i]}" if i < len(heads) else str(path)
            raise WorkbenchError(f"{where}: an empty [[exclude]] table: give the grid keys and values of the runs "
                                 "to leave out")
        for key, value in table.items():
            bad = lambda what, k=key, n=i: _bad(path, text, "exclude", k, f"[[exclude]] {k}: {what}", n)  # noqa: E731
            if key not in GRID_TYPES:
                raise bad(f"unknown key (known: {', '.join(GRID_TYPES)})")
            _as_list(value, GRID_TYPES[key], bad)
        spec.exclude.append({k: [_resolve(path, x) if k in PATH_KEYS else x for x in _as_list(v, GRID_TYPES[k], None)]
                             for k, v in table.items()})
    return spec
