"""The sweep section of ``workbench report DIR`` when DIR is a sweep: runs compared across the grid.

Speedup of a speculative run = median over prompts of (its baseline run's ms/token ÷ its ms/token) for the same
prompt_id, where "its baseline" is the sweep's baseline run with the same target, temperature, prompts and other
baseline settings. These are cross-run ratios measured on the same machine (not interleaved within one run).
Acceptance = Σn/Σγ over the run's speculative steps; tokens per step τ = mean(n + 1). Warm-ups never count.
Each finished run is first checked against its manifest row (``done_runs``), as is the pairing ``workbench replay``
takes for a sweep's speculative run (``baseline_run``).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.sweep import BASELINE_KEYS, own_baseline, read_manifest, value_label
from workbench.sweep_file import GRID_DEFAULTS

SHOWN = ("target", "draft", "policy", "temperature")  # always shown; other settings only when they vary


def expand_dirs(dirs: list[Path]) -> tuple[list[Path], list[Path]]:
    """Replace each sweep directory by its finished run directories (checked: ``done_runs``); returns (run dirs,
    sweep dirs)."""
    runs, sweeps = [], []
    for d in dirs:
        if read_manifest(d) is None:
            runs.append(d)
            continue
        sweeps.append(d)
        runs += [Path(d) / "runs" / name for name in done_runs(d)]
    return runs, sweeps


def done_runs(sweep_dir: str | os.PathLike) -> dict[str, dict]:
    """The manifest rows of the sweep's finished runs (name → row), each checked against what its directory holds:
    a run (else removed since: the sweep runs it again), of the row's settings (``sweep_check.check_row``: the
    comparison labels each run by its row), complete (``sweep_check.not_complete``: a request lost since, from a
    baseline run above all, would quietly drop its prompt from every median), and a speculative row's baseline of
    the same baseline settings. One ``error:`` line naming the run and what to do otherwise."""
    from workbench.sweep_check import check_pair, check_row, not_complete

    sweep_dir = Path(sweep_dir)
    rows = {r["name"]: r for r in read_manifest(sweep_dir)["runs"]}
    done = {name: r for name, r in rows.items() if r["state"] == "done"}
    rerun = resume_command(sweep_dir) if done else ""
    for name, row in done.items():
        if not (sweep_dir / "runs" / name / "meta.json").is_file():  # removed since it was done
            raise WorkbenchError(f"{sweep_dir / 'runs' / name}: the manifest calls this run done but it holds no "
                                 f"run (removed?); {rerun} runs it again")
        check_row(sweep_dir, row, rerun)
        damaged = not_complete(sweep_dir / "runs" / name, row["point"])
        if damaged:
            raise WorkbenchError(f"{sweep_dir / 'runs' / name}: the manifest calls this run done but {damaged}; "
                                 f"{rerun} runs it again")
        if row["baseline"] is not None:
            check_pair(sweep_dir, row, rows[row["baseline"]])
    return done


def baseline_run(run_dir: str | os.PathLike) -> Path | None:
    """The baseline run a sweep's speculative run ``run_dir`` is compared with, as the comparison pairs them (its
    manifest row's ``baseline``), both checked as ``done_runs`` checks them; None when ``run_dir`` is not a run of a
    sweep or its sweep planned no baseline. Refuses (one line) a baseline run that is not finished."""
    from workbench.sweep_check import check_pair, check_row

    run_dir = Path(run_dir).resolve()
    sweep_dir = run_dir.parent.parent
    manifest = read_manifest(sweep_dir) if run_dir.parent.name == "runs" else None
    row = next((r for r in manifest["runs"] if r["name"] == run_dir.name), None) if manifest else None
    if row is None or row["baseline"] is None:
        return None
    rows, rerun = {r["name"]: r for r in manifest["runs"]}, resume_command(sweep_dir)
    check_row(sweep_dir, row, rerun)
    base = rows[row["baseline"]]
    check_pair(sweep_dir, row, base)
    base_dir = sweep_dir / "runs" / base["name"]
    if base["state"] != "done" or not (base_dir / "meta.json").is_file():
        why = f"is not finished ({base['state']})" if base["state"] != "done" else "holds no run (removed?)"
        raise WorkbenchError(f"{base_dir}: the sweep's baseline run of {run_dir.name} {why}; {rerun} finishes it")
    check_row(sweep_dir, base, rerun)
    return base_dir


def clock_warnings(sweep_dir: str | os.PathLike) -> list[str]:
    """``clock.clock_note`` of each finished run of the sweep whose clock was disturbed, naming the run, in manifest
    order: what ``workbench sweep`` prints on stderr when it stops (the report's index says the same per run). Each
    run's clock is read on its own steps; a run whose trace cannot be read is left to the report, which refuses it
    with the reason."""
    from workbench import trace
    from workbench.analysis.clock import clock_note

    sweep_dir, said = Path(sweep_dir), []
    for row in read_manifest(sweep_dir)["runs"]:
        run_dir = sweep_dir / "runs" / row["name"]
        if row["state"] != "done" or not (run_dir / "meta.json").is_file():
            continue
        try:
            t = trace.load(run_dir)
        except WorkbenchError:
            continue
        note = clock_note(t.steps, t.requests, f"run {row['name']}", interleaved=own_baseline(row["point"]))
        said += [note] if note else []
    return said


NOT_DRAFTED = {"acceptance": float("nan"), "tokens_per_step": float("nan")}  # no decode step: nothing was judged


def _pooled(t, by: str | None = None) -> dict:
    """A speculative run's pooled acceptance and τ as ``acceptance.acceptance_by`` defines them (steps that drafted
    nothing count as one target call, one token); ``by`` (a request column such as "category"): value → the same,
    pooled over that value's requests only."""
    from workbench.analysis.acceptance import acceptance_by

    pooled = acceptance_by(t.steps, None, t.requests, [by] if by else None)  # no row without a decode step
    figures = lambda row: {"acceptance": float(row["acceptance_rate"]),  # noqa: E731
                           "tokens_per_step": float(row["tokens_per_step"])}
    if by:
        return {row[by]: figures(row) for _, row in pooled.iterrows()}
    return figures(pooled.iloc[0]) if len(pooled) else dict(NOT_DRAFTED)


def comparison(sweep_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per finished speculative run, one row per run × prompt category) with speedup and acceptance."""
    from workbench import trace
    from workbench.analysis import frames

    sweep_dir = Path(sweep_dir)
    done = done_runs(sweep_dir)
    runs, cats = [], []
    for name, row in done.items():
        if row["kind"] != "speculative":
            continue
        t = trace.load(sweep_dir / "runs" / name)
        record = {"run": name, **{k: row["point"][k] for k in GRID_DEFAULTS}, **_pooled(t), "speedup": float("nan")}
        own = own_baseline(row["point"])  # the run measured its own baseline, prompt by prompt
        if own or row.get("baseline") in done:  # the per-prompt ratios every speedup is a median of (frames)
            base = None if own else trace.load(sweep_dir / "runs" / row["baseline"]).requests
            paired = frames.paired_speedups(t.requests, baseline=base).dropna(subset=["speedup"])
            record["speedup"] = paired["speedup"].median()
            by_category = _pooled(t, "category")  # each category's own acceptance, not the run's
            for cat, g in paired.groupby("category"):
                cats.append({**record, **by_category.get(cat, NOT_DRAFTED), "category": cat,
                             "speedup": g["speedup"].median(), "n_prompts": g["prompt_id"].nunique()})
        runs.append(record)
    return pd.DataFrame(runs), pd.DataFrame(cats)


def best_per_category(per_category: pd.DataFrame) -> pd.DataFrame:
    """The fastest run per target, temperature and prompt category (a temperature changes what is decoded, so
    runs at different temperatures are not rivals for the same choice)."""
    if per_category.empty:
        return per_category
    keys = ["target", "temperature", "category"]
    best = per_category.loc[per_category.groupby(keys)["speedup"].idxmax()]
    return best.sort_values(keys).reset_index(drop=True)


def _table(frame: pd.DataFrame, columns: list[str], pages: dict[str, str]) -> str:
    """Rows of ``frame`` with links to each run's pages (``pages``: run name → its page stem in this report)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns + ["pages"])
    body = []
    for rec in frame.to_dict("records"):
        cells = [("–" if v != v else f"{v:.3f}") if isinstance(v, float)  # NaN: not measured (no baseline run)
                 else html.escape(value_label(v) if k in ("target", "draft", "prompts") else str(v))
                 for k, v in ((c, rec[c]) for c in columns)]
        run = html.escape(pages.get(rec["run"], rec["run"]))
        links = f"<a href='acceptance_{run}.html'>acceptance</a> · <a href='latency_{run}.html'>latency</a>"
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + f"<td>{links}</td></tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def unfinished_note(sweep_dir: str | os.PathLike) -> str:
    """"" when every run of the sweep is done; else how many are not (by state), left out, and how to finish them."""
    manifest = read_manifest(sweep_dir)
    states = pd.Series([r["state"] for r in manifest["runs"] if r["state"] != "done"], dtype=object)
    if not len(states):
        return ""
    counts = ", ".join(f"{n} {state}" for state, n in states.value_counts().items())
    return (f"{len(states)} of {len(manifest['runs'])} runs of this sweep are not finished ({counts}) and are left "
            f"out: {resume_command(sweep_dir)} runs them.")


def resume_command(sweep_dir: str | os.PathLike) -> str:
    """The command that runs a sweep's unfinished runs."""
    return f"`workbench sweep {read_manifest(sweep_dir).get('sweep_file', 'SWEEP_FILE')} --out {sweep_dir}`"


def sweep_index_html(sweep_dir: str | os.PathLike, pages: dict[str, str] | None = None) -> str:
    """The index section of one sweep: the comparison per draft × policy × temperature and the best settings.
    ``pages``: run name → the stem of its pages in this report (the run name unless made unique)."""
    pages = pages or {}
    runs, cats = comparison(sweep_dir)
    left_out = unfinished_note(sweep_dir)
    left_out = f"<p class='wb-note'>{html.escape(left_out)}</p>" if left_out else ""
    if runs.empty:
        return f"<h2>Sweep {html.escape(str(sweep_dir))}</h2><p>No finished speculative run yet.</p>{left_out}"
    varying = [k for k in GRID_DEFAULTS if k not in SHOWN and runs[k].astype(str).nunique() > 1]
    settings = list(SHOWN) + varying
    runs = runs.sort_values(settings, key=lambda s: s.astype(str))
    best = best_per_category(cats)
    own = own_baseline(read_manifest(sweep_dir)["runs"][-1]["point"])  # one setting for all of a sweep's runs
    note = ("Speedup = median over prompts of (baseline ms/token ÷ speculative ms/token), "
            + ("each speculative run dividing by its own baseline, measured prompt by prompt within the run "
               "(baseline = \"interleaved\"): in-run ratios, as in `workbench run --baseline`. " if own else
               f"each speculative run paired with the sweep's baseline run of the same {', '.join(BASELINE_KEYS)}: "
               "cross-run ratios measured on the same machine, one run after the other (not interleaved within a "
               "run, so slow drifts of the machine are not cancelled; baseline = \"interleaved\" in the sweep file "
               "measures each run's own). ")
            + "Acceptance = Σn/Σγ; tokens per step τ = mean(n+1).")
    shown = ["target", "temperature", "category", "run", *(k for k in settings[1:] if k != "temperature"), "speedup",
             "acceptance", "tokens_per_step", "n_prompts"]
    best_html = (_table(best, shown, pages)
                 if not best.empty else "<p>No baseline to compare with (baseline = false in the sweep file).</p>")
    return (f"<h2>Sweep {html.escape(Path(sweep_dir).name)}: {len(runs)} speculative runs compared</h2>"
            f"<p>{html.escape(note)}</p>{left_out}"
            f"{_table(runs, settings + ['speedup', 'acceptance', 'tokens_per_step'], pages)}"
            f"<h3>Best setting per target, temperature and prompt category</h3>{best_html}")


def add_to_index(index: Path, sweep_dirs: list[Path], pages: dict[Path, str]) -> None:
    """Insert each sweep's section into a report's index.html, right after its title. ``pages``: run directory →
    the stem of its pages in this report (``report._names``: unique across every run reported)."""
    sections = "".join(sweep_index_html(d, {r.name: stem for r, stem in pages.items() if r.parent == Path(d) / "runs"})
                       for d in sweep_dirs)
    page = index.read_text(encoding="utf-8")
    index.write_text(page.replace("</h1>", "</h1>" + sections, 1), encoding="utf-8")
