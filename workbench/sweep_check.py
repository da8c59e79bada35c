"""What a sweep's run directories hold, checked against its manifest (docs/SWEEP.md): the manifest is not trusted for
what it cannot see.

``settings_diff`` is the one comparison of a run's recorded settings (its meta.json) with a manifest row's point. The
driver uses it to rerun a ``done`` run whose directory no longer holds its complete run (``recheck_done``); ``report``
and ``replay`` use it to refuse a run that is not the one the manifest names (``check_row``): a row edited by hand,
or a run directory replaced by another run, would label or pair the run by settings it was not made with. Loads no
model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.sweep import BASELINE_KEYS, MANIFEST, RunPlan, run_config_for, value_label

NAMED = ("target", "prompts")  # compared by name (as the report labels them): a resume compares their content


def settings_diff(config: dict, point: dict) -> list[str]:
    """Where a run's recorded config (meta.json's ``config``) and a manifest point disagree, each as "KEY RUN in the
    run, POINT in the manifest" ([] when the run is the point's): ``runner.config_diff`` (drafters by label), and the
    target and prompts by name, as the report labels them. A setting the config does not record (an older
    workbench's run, made before the setting existed) is compared at its default, which is what that run did."""
    from workbench.runner import config_diff, recorded_config

    cfg = run_config_for(point)
    want = cfg.as_dict()
    recorded = recorded_config(config)
    keys = config_diff(config, cfg)
    keys += [k for k in NAMED if k in config and _shown(k, config[k]) != _shown(k, want[k])]
    return [f"{k} {_shown(k, recorded.get(k))} in the run, {_shown(k, want.get(k))} in the manifest"
            for k in sorted(keys)]


def _shown(key: str, value) -> str:
    """A setting as the sweep table shows it: drafters by label, the target and prompts by name."""
    from workbench.drafters import parse_drafters

    if key == "drafts":
        value = [d.label for d in parse_drafters(value)]
    elif key in NAMED:
        value = value_label(str(value))
    return json.dumps(value, default=str)


def check_row(sweep_dir: Path, row: dict, rerun: str) -> None:
    """Refuse, in one line naming the run, what differs and what to do, a run directory of the sweep whose meta.json
    records other settings than its manifest row (TraceError when it holds no readable meta.json). ``rerun``: the
    command that runs the sweep's missing runs."""
    from workbench import trace

    run_dir = Path(sweep_dir) / "runs" / row["name"]
    meta = trace.read_meta(run_dir, resume=False)
    try:
        diff = settings_diff(meta.get("config") or {}, row["point"])
    except WorkbenchError as exc:  # a drafter that does not parse, in the run or in the manifest
        diff = [str(exc)]
    if diff:
        raise WorkbenchError(
            f"{run_dir}: holds another run than {MANIFEST} names {row['name']} ({'; '.join(diff)}): the manifest or "
            f"the run directory was changed by hand; restore the manifest, or move the directory away and run it "
            f"again with {rerun}")


def check_pair(sweep_dir: Path, row: dict, base: dict) -> None:
    """Refuse a speculative row paired with a baseline row of other baseline settings (the report would divide by
    another target's, temperature's, … baseline)."""
    other = [k for k in BASELINE_KEYS if json.dumps(row["point"].get(k)) != json.dumps(base["point"].get(k))]
    if other:
        raise WorkbenchError(f"{Path(sweep_dir) / MANIFEST}: run {row['name']} is paired with baseline run "
                             f"{base['name']} of other settings ({', '.join(other)}); restore the manifest")


def recheck_done(out: Path, rows: dict[str, dict], plans: list[RunPlan]) -> None:
    """Mark ``pending`` (with a warning line) each run the manifest calls done whose directory no longer holds its
    complete run (removed, or damaged since): the manifest is not trusted for what it cannot see. Loads no model."""
    for plan in plans:
        why = rows[plan.name]["state"] == "done" and not_complete(out / "runs" / plan.name, plan.point)
        if why:
            print(f"warning: run {plan.name} is marked done but {why}: running it again", file=sys.stderr)
            rows[plan.name].update(state="pending", error=None)


def not_complete(run_dir: Path, point: dict) -> str | None:
    """Why ``run_dir`` does not hold the complete run of ``point`` (None: it does): no directory, no meta.json of
    these settings whose last session finished, or a planned request without its part (checked where the prompts file
    the run was made with is here)."""
    from workbench import paths, trace
    from workbench.prompts import load_prompts
    from workbench.runner import file_hash, plan

    if not run_dir.is_dir():
        return "its directory is missing"
    cfg = run_config_for(point)
    try:
        meta = trace.read_meta(run_dir)
        if meta.get("trace_version") != trace.TRACE_VERSION:
            return None  # an older workbench's run, complete when it was marked done (a rerun could not resume it)
        changed = settings_diff(meta["config"], point)
    except WorkbenchError as exc:  # no meta.json, a corrupt one, a drafter no longer parsed
        return f"its directory holds no run of it ({exc})"
    last = meta["sessions"][-1] if meta["sessions"] else None
    if changed or not (isinstance(last, dict) and "finished" in last):
        return f"its meta.json records other settings ({'; '.join(changed)})" if changed else \
            "its last session did not finish"
    try:
        prompts_file = paths.prompts_path(cfg.prompts)
        if file_hash(prompts_file) != meta.get("prompts_sha256"):
            return None  # not here (with --ray it may be on the workers only), or edited since: no plan to check
        prompts = load_prompts(prompts_file, limit=cfg.limit, per_category=cfg.per_category)
    except (WorkbenchError, OSError):
        return None
    have = _request_ids(run_dir, meta["run_id"])
    if isinstance(have, str):
        return have
    missing = [spec.request_id for spec in plan(cfg, prompts) if spec.request_id not in have]
    return f"{len(missing)} of its requests are missing" if missing else None


def _request_ids(run_dir: Path, run_id: str) -> set[str] | str:
    """The ids of run ``run_id``'s completed requests in ``run_dir`` (read from their requests parts only), or which
    part is unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from workbench import trace

    ids: set[str] = set()
    for i in trace.completed_parts(run_dir):
        path = trace.part_path(run_dir, "requests", i)
        try:
            rows = pq.read_table(path, columns=["run_id", "request_id"]).to_pylist()
        except (pa.ArrowException, OSError, ValueError, KeyError):
            return f"{path.name} cannot be read"
        ids.update(row["request_id"] for row in rows if row["run_id"] == run_id)  # not a part copied in
    return ids
