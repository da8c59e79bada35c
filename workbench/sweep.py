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
from dataclasses import asdict, dataclass
from pathlib import Path

from workbench import atomic
from workbench.errors import WorkbenchError
from workbench.runlock import LOCK_FILE, RunLock
from workbench.sweep_file import (
    GRID_DEFAULTS,
    INTERLEAVED,
    LATER_SETTINGS,
    PATH_KEYS,
    SETTING_TYPES,
    SweepSpec,
    load_spec,
)

MANIFEST = "manifest.json"
FORMAT = "workbench-sweep/1"
MAX_NAME = 120  # longest run name (a directory name, and part of each report page's file name)
# The settings that change a baseline run: one baseline per distinct combination of these.
BASELINE_KEYS = ("target", "temperature", "top_k", "top_p", "prompts", "max_new_tokens", "seed", "device", "dtype")


@dataclass(frozen=True)
class RunPlan:
    """One run of the grid: its stable name, kind and full settings (``point``)."""

    name: str
    kind: str  # speculative | baseline
    point: dict
    baseline: str | None = None  # name of the baseline run a speculative run is compared with


# ---------------------------------------------------------------------------------------------------------- the grid
def _axes(spec: SweepSpec) -> dict[str, list]:
    """Values of each grid key; γ values join the policies as constant:G."""
    axes = {k: spec.grid.get(k, [v]) for k, v in GRID_DEFAULTS.items()}
    empty = [k for k, values in spec.grid.items() if not values]  # gamma = [] beside a policy list included
    if empty:
        raise WorkbenchError(f"{spec.path}: empty grid ([grid] {empty[0]} is an empty list)")
    if "gamma" in spec.grid:
        axes["policy"] = (spec.grid.get("policy", [])) + [f"constant:{g}" for g in spec.grid["gamma"]]
    for key, values in axes.items():
        if not values:
            raise WorkbenchError(f"{spec.path}: empty grid ([grid] {key} is an empty list)")
        axes[key] = list(dict.fromkeys(values))  # drop repeats, keep order
    return axes


def _excluded(point: dict, rules: list[dict]) -> bool:
    def hit(key, values):
        if key == "gamma":
            return point["policy"] in [f"constant:{g}" for g in values]
        return point[key] in values
    return any(rule and all(hit(k, v) for k, v in rule.items()) for rule in rules)


def value_label(value) -> str:
    """A grid value as it appears in run names and the sweep table: a path by its last folder, in safe characters."""
    text = Path(value).name or str(value) if isinstance(value, str) and "/" in value else str(value)
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-") or "x"


def _names(points: list[dict], keys: tuple[str, ...], prefix: str) -> list[str]:
    """``prefix__key-value__…`` over the keys whose value varies among ``points``; a short hash on collision."""
    varying = [k for k in keys if len({json.dumps(p[k]) for p in points}) > 1]
    names = ["__".join([prefix] + [f"{k}-{value_label(p[k])}" for k in varying]) for p in points]
    clash = {n for n in names if names.count(n) > 1}  # e.g. two paths ending in the same folder name
    digest = lambda p: hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()[:8]  # noqa: E731
    # a name is a directory name: over MAX_NAME characters (file systems allow 255 bytes) it is cut, with a hash
    return [f"{n[:MAX_NAME - 10]}__{digest(p)}" if n in clash or len(n) > MAX_NAME else n
            for n, p in zip(names, points)]


def expand(spec: SweepSpec) -> list[RunPlan]:
    """The grid's runs: baselines first (one per distinct BASELINE_KEYS combination, when asked), then the rest."""
    axes = _axes(spec)
    settings = {k: spec.settings.get(k) for k in SETTING_TYPES
                if k != "baseline" and (k not in LATER_SETTINGS or spec.settings.get(k, LATER_SETTINGS[k]) !=
                                        LATER_SETTINGS[k])}
    points = [{**dict(zip(axes, combo)), **settings} for combo in itertools.product(*axes.values())]
    points = [p for p in points if not _excluded(p, spec.exclude)]
    if not points:
        raise WorkbenchError(f"{spec.path}: empty grid (every combination is excluded)")
    spec_names = _names(points, tuple(GRID_DEFAULTS), "spec")
    if spec.settings.get("baseline", True) == INTERLEAVED:  # each run its own baseline: the point says so
        return [RunPlan(n, "speculative", {**p, "baseline": INTERLEAVED}) for n, p in zip(spec_names, points)]
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


def grid_hash(plans: list[RunPlan], base: Path | None = None) -> str:
    """Identity of an expanded grid (names, kinds, settings): a directory holds one sweep only. A path under
    ``base`` (the sweep file's folder) counts as relative to it: a relative path is made absolute only once it
    exists (``_resolve``), and a model created after a failed run must not turn the sweep into another one."""
    def same(point: dict) -> dict:
        return {k: _relative(v, base) if k in PATH_KEYS else v for k, v in point.items()}

    blob = json.dumps([[p.name, p.kind, same(p.point)] for p in plans], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _relative(value, base: Path | None):
    if base is None or not isinstance(value, str) or not Path(value).is_absolute():
        return value
    try:
        return Path(value).relative_to(base).as_posix()
    except ValueError:
        return value


# ------------------------------------------------------------------------------------------------- RunConfig adapter
def own_baseline(point: dict) -> bool:
    """Whether a sweep point's run measures its own baseline, prompt by prompt (``baseline = "interleaved"``), so
    its speedups are in-run ratios; else a speculative run divides by the sweep's baseline run (cross-run)."""
    return point.get("baseline") == INTERLEAVED


def run_config_for(point: dict):
    """The single place that maps a sweep point onto ``RunConfig``: a speculative run is one drafter × one policy
    (with its own interleaved baseline when the point says ``baseline = "interleaved"``), a baseline run has no
    drafter (``drafts=()``, ``baseline=True``)."""
    from workbench.config import RunConfig

    fixed = {k: point[k] for k in SETTING_TYPES if k != "baseline" and point.get(k) is not None}
    spec = point["draft"] is not None
    return RunConfig(target=point["target"], drafts=(point["draft"],) if spec else (),
                     policies=(point["policy"],) if spec else RunConfig().policies, prompts=point["prompts"],
                     temperature=point["temperature"], top_k=point["top_k"], top_p=point["top_p"],
                     max_new_tokens=point["max_new_tokens"], seed=point["seed"], device=point["device"],
                     dtype=point["dtype"], baseline=not spec or own_baseline(point), **fixed)


# ---------------------------------------------------------------------------------------------------------- manifest
def write_manifest_json(path: Path, data: dict) -> None:
    """The manifest, written atomically (never half a file, even on kill -9)."""
    atomic.write_text(path, json.dumps(data, indent=1, default=str) + "\n")


def open_manifest(out: Path, plans: list[RunPlan], sweep_file: Path) -> dict:
    """The manifest of ``out`` (created for a new sweep); refuses a directory holding another sweep."""
    path, base = out / MANIFEST, sweep_file.resolve().parent
    digest = grid_hash(plans, base)
    if path.is_file():
        manifest = read_manifest(out)
        if manifest["grid_hash"] != digest:
            raise WorkbenchError(f"--out {out} holds a different sweep (grid hash {manifest['grid_hash']} ≠ "
                                 f"{digest}); choose another --out")
        rows = manifest["runs"]  # the same sweep: its rows must be this grid's runs, in order (not edited by hand)
        if [(r["name"], r["kind"], r["baseline"]) for r in rows] != [(p.name, p.kind, p.baseline) for p in plans] \
                or grid_hash([RunPlan(r["name"], r["kind"], r["point"]) for r in rows], base) != digest:
            raise _not_ours(path, f"its runs are not those of grid hash {digest}")
        return manifest
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"--out {out}: is a file, not a directory")
    if out.exists() and not _unstarted(out):
        raise WorkbenchError(f"--out {out}: exists, is not empty and holds no sweep manifest")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    # sweep_file: absolute, so that the rerun command `report` prints works from any directory
    manifest = {"format": FORMAT, "grid_hash": digest, "sweep_file": str(sweep_file.resolve()),
                "runs": [{**asdict(p), "state": "pending", "error": None} for p in plans]}
    write_manifest_json(path, manifest)
    return manifest


def _unstarted(out: Path) -> bool:
    """Whether ``out`` holds nothing but what a sweep leaves before its first manifest is written (its lock, an
    empty runs/, the manifest's temp file): a sweep killed there is started again, not refused."""
    for entry in out.iterdir():
        if entry.name == "runs" and entry.is_dir() and not any(entry.iterdir()):
            continue
        if entry.name != LOCK_FILE and not atomic.is_temp(entry.name, MANIFEST):
            return False
    return True


def read_manifest(sweep_dir: str | os.PathLike) -> dict | None:
    """The manifest of ``sweep_dir`` (None when it has none), checked here, once, for everything its readers take
    from it; WorkbenchError when it is not one this workbench wrote (corrupt, or edited by hand)."""
    path = Path(sweep_dir) / MANIFEST
    if not path.is_file():
        return None
    manifest = _parse(path)
    problem = _manifest_problem(manifest)
    if problem:
        raise _not_ours(path, problem)
    return manifest


def _parse(path: Path):
    """``path`` as JSON, not checked (WorkbenchError when it is not JSON)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise _not_ours(path, f"cannot read it: {exc}") from None


def _not_ours(path: Path, problem: str) -> WorkbenchError:
    return WorkbenchError(f"{path}: not a sweep manifest this workbench wrote ({problem}; edited by hand?); restore "
                          "it, or run the sweep again with another --out")


STATES = ("pending", "running", "done", "failed")
# What each row of a manifest holds: key → (test, what it must be).
ROW_FIELDS = {
    "name": (lambda v: isinstance(v, str) and re.fullmatch(r"[\w.-]+", v, re.ASCII) and v.strip("."), "a run name"),
    "kind": (lambda v: v in ("speculative", "baseline"), "speculative or baseline"),
    "point": (lambda v: isinstance(v, dict) and set(GRID_DEFAULTS) <= set(v), "an object holding every grid key"),
    "baseline": (lambda v: v is None or isinstance(v, str), "null or a baseline run's name"),
    "state": (lambda v: v in STATES, ", ".join(STATES)),
    "error": (lambda v: v is None or isinstance(v, str), "null or a string"),
}


def _manifest_problem(manifest) -> str | None:
    """What makes ``manifest`` (parsed JSON) not a manifest of FORMAT, else None."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return f"no format {FORMAT!r}"
    if not all(isinstance(manifest.get(k), str) for k in ("grid_hash", "sweep_file")):
        return "grid_hash and sweep_file must be strings"
    rows = manifest.get("runs")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return "runs must be a non-empty array of objects"
    for i, row in enumerate(rows):
        for key, (ok, what) in ROW_FIELDS.items():
            if key not in row or not ok(row[key]):
                found = f"is {json.dumps(row[key], default=str)[:40]}" if key in row else "is missing"
                return f"runs[{i}].{key} {found}, expected {what}"
    kinds = {r["name"]: r["kind"] for r in rows}
    if len(kinds) < len(rows):
        return "two runs have the same name"
    orphan = next((i for i, r in enumerate(rows) if r["baseline"] is not None and kinds.get(r["baseline"]) !=
                   "baseline"), None)
    return None if orphan is None else f"runs[{orphan}].baseline names no baseline run of the manifest"


def manifest_row(run_dir: str | os.PathLike) -> dict | None:
    """The manifest row of ``run_dir`` when it is a run of a sweep (``SWEEP/runs/<name>``), else None. Read as it
    is, not checked (an unreadable manifest gives None): the callers only word a message or a note with it, and
    whatever acts on a manifest reads it with ``read_manifest``."""
    path = Path(run_dir).resolve()
    manifest = path.parent.parent / MANIFEST
    try:
        rows = _parse(manifest)["runs"] if path.parent.name == "runs" and manifest.is_file() else []
        return next((r for r in rows if r.get("name") == path.name), None)
    except (OSError, ValueError, AttributeError, TypeError, KeyError, WorkbenchError):
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
    sweep_run.precheck_runs(plans, prompts=ray is None, sweep_file=spec.path)  # before anything is written
    if ray is not None:
        sweep_run.require_ray()
    if ray not in (None, "auto"):
        sweep_run.precheck_address(ray)
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"--out {out}: is a file, not a directory")
    with RunLock(out, "sweep directory", "another `workbench sweep` is driving it"):  # one driver per sweep directory
        return _drive(out, open_manifest(out, plans, spec.path), plans, ray, cpus_per_task, progress)


def _drive(out: Path, manifest: dict, plans: list[RunPlan], ray: str | None, cpus_per_task: int,
           progress: bool) -> list[dict]:
    """Run the unfinished runs of ``manifest`` (the lock on ``out`` held); returns the failed rows."""
    from workbench import sweep_check, sweep_run

    rows = {r["name"]: r for r in manifest["runs"]}
    sweep_check.recheck_done(out, rows, plans)  # a "done" run whose directory was removed or damaged is run again
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
