"""Sweeps: a TOML file of setting lists → a grid of `workbench run`s, a manifest, and their execution.

A sweep directory holds ``manifest.json`` (one row per run: name, kind, settings, state, error line; rewritten
atomically by the driver only) and ``runs/<stable name>/`` (ordinary run directories, written by whoever executes
the run: this process, or a Ray worker when ``--ray`` is given). The format is documented in docs/SWEEP.md.

Everything that knows ``RunConfig``'s fields is in ``run_config_for``; the rest of the sweep speaks "points" (plain
dicts of settings). Nothing here imports torch or ray at module level (ray only in ``--ray`` mode).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench import atomic
from workbench.errors import WorkbenchError

MANIFEST = "manifest.json"
FORMAT = "workbench-sweep/1"
# Grid keys → element type (float accepts ints). Every point carries all of them (defaults filled in).
GRID_TYPES: dict[str, type] = {"target": str, "draft": str, "policy": str, "gamma": int, "temperature": float,
                               "top_k": int, "top_p": float, "prompts": str, "max_new_tokens": int, "seed": int,
                               "device": str, "dtype": str}
GRID_DEFAULTS = {"target": "default", "draft": "default", "policy": "constant:4", "temperature": 0.0, "top_k": 0,
                 "top_p": 1.0, "prompts": "heldout", "max_new_tokens": 64, "seed": 0, "device": "auto",
                 "dtype": "auto"}
# [settings]: scalars applied to every run (absent = RunConfig's default).
SETTING_TYPES: dict[str, type] = {"baseline": bool, "limit": int, "per_category": int, "warmup": bool,
                                  "ignore_eos": bool, "trust_remote_code": bool}
# The settings that change a baseline run: one baseline per distinct combination of these.
BASELINE_KEYS = ("target", "temperature", "top_k", "top_p", "prompts", "max_new_tokens", "seed", "device", "dtype")
PATH_KEYS = ("target", "draft", "prompts")  # values that may be paths (resolved against the sweep file's folder)


@dataclass(frozen=True)
class RunPlan:
    """One run of the grid: its stable name, kind and full settings (``point``)."""

    name: str
    kind: str  # speculative | baseline
    point: dict
    baseline: str | None = None  # name of the baseline run a speculative run is compared with


@dataclass
class SweepSpec:
    path: Path
    grid: dict[str, list]
    settings: dict = field(default_factory=dict)
    exclude: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------- parsing
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
    return str(candidate.resolve()) if value != "default" and not Path(value).is_absolute() and \
        candidate.exists() else value


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
        spec.grid[key] = [_resolve(path, v) if key in PATH_KEYS else v for v in _as_list(value, GRID_TYPES[key], bad)]
    for key, value in settings.items():
        if key not in SETTING_TYPES or not _check_type(value, SETTING_TYPES[key]):
            what = "unknown key" if key not in SETTING_TYPES else f"expected {SETTING_TYPES[key].__name__}"
            raise _bad(path, text, "settings", key, f"[settings] {key}: {what}, got {value!r}")
        spec.settings[key] = value
    for i, table in enumerate(exclude):
        if not isinstance(table, dict):
            raise _bad(path, text, "", "exclude", "exclude must be an array of tables [[exclude]]")
        for key, value in table.items():
            bad = lambda what, k=key, n=i: _bad(path, text, "exclude", k, f"[[exclude]] {k}: {what}", n)  # noqa: E731
            if key not in GRID_TYPES:
                raise bad(f"unknown key (known: {', '.join(GRID_TYPES)})")
            _as_list(value, GRID_TYPES[key], bad)
        spec.exclude.append({k: [_resolve(path, x) if k in PATH_KEYS else x for x in _as_list(v, GRID_TYPES[k], None)]
                             for k, v in table.items()})
    return spec


# ---------------------------------------------------------------------------------------------------------- the grid
def _axes(spec: SweepSpec) -> dict[str, list]:
    """Values of each grid key; γ values join the policies as constant:G."""
    axes = {k: spec.grid.get(k, [v]) for k, v in GRID_DEFAULTS.items()}
    if "gamma" in spec.grid:
        axes["policy"] = (spec.grid.get("policy", [])) + [f"constant:{g}" for g in spec.grid["gamma"]]
    for key, values in axes.items():
        if not values:
            raise WorkbenchError(f"{spec.path}: empty grid ([grid] {key} is an empty list)")
        axes[key] = list(dict.fromkeys(values))  # drop repeats, keep order
    for policy in axes["policy"]:
        if not _valid_policy(policy):
            raise WorkbenchError(f"{spec.path}: [grid] policy {policy!r}: expected constant:G, heuristic[:G0], "
                                 "threshold:P[:GMAX], entropy:H[:GMAX] or adaptive[:GMAX]")
    return axes


def _excluded(point: dict, rules: list[dict]) -> bool:
    def hit(key, values):
        if key == "gamma":
            return point["policy"] in [f"constant:{g}" for g in values]
        return point[key] in values
    return any(rule and all(hit(k, v) for k, v in rule.items()) for rule in rules)


def _label(value) -> str:
    text = Path(value).name or str(value) if isinstance(value, str) and "/" in value else str(value)
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-") or "x"


def _names(points: list[dict], keys: tuple[str, ...], prefix: str) -> list[str]:
    """``prefix__key-value__…`` over the keys whose value varies among ``points``; a short hash on collision."""
    varying = [k for k in keys if len({json.dumps(p[k]) for p in points}) > 1]
    names = ["__".join([prefix] + [f"{k}-{_label(p[k])}" for k in varying]) for p in points]
    clash = {n for n in names if names.count(n) > 1}  # e.g. two paths ending in the same folder name
    digest = lambda p: hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()[:8]  # noqa: E731
    return [f"{n}__{digest(p)}" if n in clash else n for n, p in zip(names, points)]


def expand(spec: SweepSpec) -> list[RunPlan]:
    """The grid's runs: baselines first (one per distinct BASELINE_KEYS combination, when asked), then the rest."""
    axes = _axes(spec)
    settings = {k: spec.settings.get(k) for k in SETTING_TYPES if k != "baseline"}
    points = [{**dict(zip(axes, combo)), **settings} for combo in itertools.product(*axes.values())]
    points = [p for p in points if not _excluded(p, spec.exclude)]
    if not points:
        raise WorkbenchError(f"{spec.path}: empty grid (every combination is excluded)")
    spec_names = _names(points, tuple(GRID_DEFAULTS), "spec")
    if not spec.settings.get("baseline", True):
        return [RunPlan(n, "speculative", p) for n, p in zip(spec_names, points)]
    base_of = lambda p: tuple(json.dumps(p[k]) for k in BASELINE_KEYS)  # noqa: E731
    firsts: dict[tuple, dict] = {}  # the first point of each baseline group, in grid order
    for p in points:
        firsts.setdefault(base_of(p), p)
    bases = [{**{k: p[k] for k in BASELINE_KEYS}, "draft": None, "policy": None,
              **settings} for p in firsts.values()]
    base_names = dict(zip((base_of(b) for b in bases), _names(bases, BASELINE_KEYS, "baseline")))
    return [RunPlan(base_names[base_of(b)], "baseline", b) for b in bases] + \
        [RunPlan(n, "speculative", p, base_names[base_of(p)]) for n, p in zip(spec_names, points)]


def _valid_policy(text: str) -> bool:
    from workbench.policies import parse_policy

    try:
        parse_policy(text)
    except WorkbenchError:
        return False
    return True


def grid_hash(plans: list[RunPlan]) -> str:
    """Identity of an expanded grid (names, kinds, settings): a directory holds one sweep only."""
    blob = json.dumps([[p.name, p.kind, p.point] for p in plans], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------- RunConfig adapter
def run_config_for(point: dict):
    """The single place that maps a sweep point onto ``RunConfig``: a speculative run is one drafter × one policy,
    a baseline run has no drafter (``drafts=()``, ``baseline=True``)."""
    from workbench.config import RunConfig

    fixed = {k: point[k] for k in SETTING_TYPES if k != "baseline" and point.get(k) is not None}
    spec = point["draft"] is not None
    return RunConfig(target=point["target"], drafts=(point["draft"],) if spec else (),
                     policies=(point["policy"],) if spec else RunConfig().policies, prompts=point["prompts"],
                     temperature=point["temperature"], top_k=point["top_k"], top_p=point["top_p"],
                     max_new_tokens=point["max_new_tokens"], seed=point["seed"], device=point["device"],
                     dtype=point["dtype"], baseline=not spec, **fixed)


# ---------------------------------------------------------------------------------------------------------- manifest
def _write_json(path: Path, data: dict) -> None:
    atomic.write_text(path, json.dumps(data, indent=1, default=str) + "\n")


def open_manifest(out: Path, plans: list[RunPlan], sweep_file: Path) -> dict:
    """The manifest of ``out`` (created for a new sweep); refuses a directory holding another sweep."""
    path, digest = out / MANIFEST, grid_hash(plans)
    if path.is_file():
        manifest = json.loads(path.read_text())
        if manifest.get("grid_hash") != digest:
            raise WorkbenchError(f"--out {out} holds a different sweep (grid hash {manifest.get('grid_hash')} ≠ "
                                 f"{digest}); choose another --out")
        return manifest
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WorkbenchError(f"--out {out}: exists, is not empty and holds no sweep manifest")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT, "grid_hash": digest, "sweep_file": str(sweep_file),
                "runs": [{**asdict(p), "state": "pending", "error": None} for p in plans]}
    _write_json(path, manifest)
    return manifest


def read_manifest(sweep_dir: str | os.PathLike) -> dict | None:
    path = Path(sweep_dir) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def manifest_row(run_dir: str | os.PathLike) -> dict | None:
    """The manifest row of ``run_dir`` when it is a run of a sweep (``SWEEP/runs/<name>``), else None (an unreadable
    manifest too: the callers only word a message or a note with it)."""
    path = Path(run_dir).resolve()
    try:
        rows = (read_manifest(path.parent.parent) or {}).get("runs", []) if path.parent.name == "runs" else []
        return next((r for r in rows if r.get("name") == path.name), None)
    except (OSError, ValueError, AttributeError, TypeError):
        return None


# ---------------------------------------------------------------------------------------------------------- a sweep
def run_sweep(sweep_file: str | os.PathLike, out: str | os.PathLike, *, ray: str | None = None,
              cpus_per_task: int = 1, progress: bool = True) -> list[dict]:
    """Run every unfinished run of the sweep into ``out``; returns the manifest rows of failed runs.

    ``ray`` = None runs here, one after another; "auto" or "HOST:PORT" sends one Ray task per run.
    """
    from workbench import sweep_run

    spec = load_spec(sweep_file)
    plans = expand(spec)
    if cpus_per_task < 1:
        raise WorkbenchError("--cpus-per-task must be ≥ 1")
    sweep_run.precheck_runs(plans, prompts=ray is None)  # before anything is written
    if ray not in (None, "auto"):
        sweep_run.precheck_address(ray)
    out = Path(out).resolve()
    manifest = open_manifest(out, plans, spec.path)
    rows = {r["name"]: r for r in manifest["runs"]}
    todo = [p for p in plans if rows[p.name]["state"] != "done"]
    for plan in todo:  # a driver killed earlier may have left "running" rows
        rows[plan.name].update(state="pending", error=None)
    bar = sweep_run.Progress(out, manifest, progress)
    try:
        if ray is None:
            sweep_run.run_local(out, todo, bar)
        elif todo:
            sweep_run.run_ray(out, todo, bar, address=ray, cpus_per_task=cpus_per_task)
    finally:
        bar.close()
    return [r for r in manifest["runs"] if r["state"] == "failed"]
