"""Batch reports: execute the analysis notebooks on run directories with papermill and export offline HTML.

``workbench report RUN_DIR [RUN_DIR ...] --out REPORT_DIR`` writes, per run, ``acceptance_<run>`` and
``latency_<run>`` (.ipynb executed + .html), one ``tuning`` page comparing all runs, their key figures as
``*_figures.json`` and an ``index.html`` linking everything. Every HTML page renders with no network and on its
own: plotly.js is inlined in each page (about 4.7 MB a page; a page copied alone, or mailed, still draws its plots),
and the CDN scripts nbconvert's template would add (require.js, MathJax, mermaid, the widget manager) are left out;
cells tagged ``jupyterlab-only`` (ipywidgets) are dropped from HTML.

Notebooks run in-process (papermill → nbclient) on a kernel that is *this* interpreter: a kernelspec pointing at
``sys.executable`` (with this checkout on PYTHONPATH) is written to a temporary directory that is prepended to
JUPYTER_PATH for the duration (other JUPYTER_* / IPYTHONDIR settings are honoured as they are).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from workbench import atomic, paths, report_index, trace
from workbench.errors import WorkbenchError
from workbench.interrupts import resume_command

KERNEL_NAME = "workbench-report"
CELL_TIMEOUT_S = 1800  # a cell that runs longer fails the page (a hang must not hang the report forever)
# Remote resources that must never reach a report page (src/href pointing at http(s)).
REMOTE = re.compile(r"""<(script|link)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//[^>]*>(\s*</script>)?""", re.I)
# nbconvert's lab template, with every CDN-loading block emptied (plotly.js comes inlined in the outputs).
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock -%}
{%- block html_head_js_mathjax -%}{%- endblock -%}
{%- block html_head_js_mermaidjs -%}{%- endblock -%}
{%- block jupyter_widgets -%}{%- endblock -%}
"""
PAGES = {"acceptance": "Acceptance: how many drafts are kept, by draft position, along the response, by drafter, "
                       "policy, category and token",
         "latency": "Latency: phases, verify cost, TTFT, predicted vs measured speedup",
         "tuning": "Tuning: speedup vs γ, policies measured and replayed against the oracle, the setting to use"}
# Written into every report: an existing --out is replaced only when it holds this file (atomic.publish_dir), never
# because it holds an index.html, which anyone's website folder may.
MARKER = ".workbench-report"
MARKER_TEXT = ("This directory is a report written by `workbench report`. A later `workbench report --out` naming it "
               "replaces it whole: keep nothing of your own in here.\n")
# What building a report imports (ipykernel runs the notebooks' kernel), checked before anything is measured.
LIBRARIES = ("papermill", "nbformat", "nbconvert", "jinja2", "plotly", "ipykernel")


@contextlib.contextmanager
def _this_interpreter_kernel():
    """Register a kernelspec for sys.executable in a temp dir on JUPYTER_PATH while the block runs."""
    old = os.environ.get("JUPYTER_PATH")
    with tempfile.TemporaryDirectory(prefix="workbench-kernel-") as tmp:
        spec_dir = Path(tmp) / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        # PYTHONPATH: the kernel imports the same workbench package as this process, installed or not.
        path = os.pathsep.join([str(Path(__file__).resolve().parent.parent),  # the package this process imports
                                *([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])])
        spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--log-level=ERROR"],
                "display_name": "workbench (this interpreter)", "language": "python", "env": {"PYTHONPATH": path}}
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        os.environ["JUPYTER_PATH"] = os.pathsep.join([tmp, *([old] if old else [])])
        try:
            yield KERNEL_NAME
        finally:
            if old is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old


def execute(notebook: str, out_ipynb: Path, parameters: dict, kernel_name: str) -> None:
    """Run notebooks/<notebook>.ipynb with papermill (cwd = notebooks/); failures become one-line errors.

    Cells tagged ``jupyterlab-only`` (ipywidgets: they need a live front end) are dropped before execution: a batch
    report never shows them, and an Output widget driven from a front-end-less kernel can block it.
    """
    import nbformat
    import papermill as pm

    nb_dir = paths.notebooks_dir()
    nb = nbformat.read(nb_dir / f"{notebook}.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if "jupyterlab-only" not in c.metadata.get("tags", [])]
    try:
        pm.execute_notebook(nb, str(out_ipynb), parameters=parameters, cwd=str(nb_dir), kernel_name=kernel_name,
                            progress_bar=False, log_output=False, execution_timeout=CELL_TIMEOUT_S)
    except pm.PapermillExecutionError as exc:  # out_ipynb lies in the report's temp dir, removed on failure
        runs = parameters.get("run_dirs") or [parameters.get("run_dir", "?")]
        raise WorkbenchError(f"{notebook} notebook (notebooks/{notebook}.ipynb) failed on {_runs(runs)}: "
                             f"{exc.ename}: {exc.evalue}") from None


def _runs(run_dirs: list, shown: int = 3) -> str:
    """"run DIR" or "runs A, B, C (+N more)" for one-line errors."""
    head = ", ".join(str(d) for d in run_dirs[:shown]) + (f" (+{len(run_dirs) - shown} more)"
                                                          if len(run_dirs) > shown else "")
    return f"run{'s' * (len(run_dirs) > 1)} {head}"


def to_offline_html(executed: Path, out_html: Path, *, exclude_input: bool = True) -> None:
    """Export an executed notebook as standalone HTML that loads nothing from the network."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    nb = nbformat.read(executed, as_version=4)
    nb.metadata.pop("widgets", None)           # widget state would pull the widget manager from a CDN
    exporter = HTMLExporter(template_name="lab", exclude_input=exclude_input, exclude_input_prompt=True,
                            exclude_output_prompt=True,
                            extra_loaders=[jinja2.DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})])
    exporter.template_file = "offline.html.j2"
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={"jupyterlab-only", "parameters",
                                                                           "injected-parameters"}), enabled=True)
    body, _ = exporter.from_notebook_node(nb)
    body = REMOTE.sub("", body)  # e.g. plotly's per-figure MathJax CDN tag
    head, rest = body.split("<head>", 1)  # plotly.js inlined first in the head, before any figure calls it
    out_html.write_text(f'{head}<head>\n<script type="text/javascript">{plotly_js()}</script>{rest}', encoding="utf-8")


def _names(run_dirs: list[Path]) -> list[str]:
    """A short, unique, file-name-safe label per run directory (its name, suffixed on collision)."""
    names = []
    for i, d in enumerate(run_dirs):
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", d.name) or f"run{i}"
        names.append(base if base not in names else f"{base}_{i}")
    return names


@functools.cache
def plotly_js() -> str:
    """plotly.js (about 4.7 MB) from the installed plotly package, as every page inlines it."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def require_libraries() -> None:
    """ModuleNotFoundError naming the first report library this environment lacks (the CLI makes it one line).

    ``workbench demo`` calls it before it measures, so a GPU image without plotly fails in a second, not after the run.
    """
    import importlib.util

    for name in LIBRARIES:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)


def build_report(run_dirs: list[Path], out_dir: Path, *, progress: bool = True) -> Path:
    """Execute the notebooks on ``run_dirs`` into ``out_dir``; returns the path of index.html.

    Raises WorkbenchError (TraceError for a bad run directory) with one line; run directories are all checked
    before anything is executed.
    """
    from workbench import sweep_report  # a sweep directory stands for its finished runs (+ a comparison section)

    require_libraries()
    run_dirs, sweep_dirs = sweep_report.expand_dirs([Path(d).resolve() for d in run_dirs])
    if not run_dirs and sweep_dirs:
        raise WorkbenchError(f"report: sweep {sweep_dirs[0]} has no finished run yet; "
                             f"{sweep_report.resume_command(sweep_dirs[0])} runs it")
    if not run_dirs:
        raise WorkbenchError("report: give at least one run directory")
    final = Path(out_dir).resolve()
    for d in run_dirs:  # a folder that is no run is said so, before --out is checked against it
        trace.check_run_dir(d)
    _check_out(final, run_dirs, sweep_dirs)  # before anything is read: the report must not replace its own input
    atomic.check_replaceable(final, MARKER)  # and a folder that is no earlier report fails now, not after the pages
    traces = [trace.load(d) for d in run_dirs]          # TraceError with one clear line if unusable
    _check_once(run_dirs, traces, sweep_dirs)
    if all(t.requests["warmup"].astype(bool).all() for t in traces):  # stopped in its warm-ups: nothing measured
        raise WorkbenchError(f"report: {run_dirs[0]} has no finished request yet (it stopped during its warm-ups); "
                             f"finish it with `{resume_command(traces[0].meta)}`")
    paths.notebooks_dir()  # one clear error when the notebooks cannot be found
    with atomic.publish_dir(final, marker=MARKER) as tmp:  # built aside, renamed into place only when complete
        (tmp / MARKER).write_text(MARKER_TEXT, encoding="utf-8")  # what lets the next report replace this one
        names = _names(run_dirs)  # each run's page stem, unique across the report
        index = _write_pages(run_dirs, names, traces, tmp, progress)
        if sweep_dirs:
            sweep_report.add_to_index(index, sweep_dirs, dict(zip(run_dirs, names)))
        for nb in tmp.glob("*.ipynb"):  # parameters name the final paths, so the notebooks rerun as they are
            nb.write_text(nb.read_text(encoding="utf-8").replace(str(tmp), str(final)), encoding="utf-8")
    return final / "index.html"


def _check_out(final: Path, run_dirs: list[Path], sweep_dirs: list[Path]) -> None:
    """Refuse an --out that is, contains or lies inside a run directory being reported: replacing it would delete
    the run (or write pages into it). A sweep's own directory may hold its report (docs/SWEEP.md: ``--out
    SWEEP/report``), but --out may not be the sweep or contain it, nor lie in its ``runs/`` folder."""
    guarded = [(d, "the run directory", False) for d in run_dirs]  # (directory, what it is, --out may lie inside)
    guarded += [(d / "runs", "the sweep's runs folder", False) for d in sweep_dirs]
    guarded += [(d, "the sweep directory", True) for d in sweep_dirs]
    for d, what, inside_ok in guarded:
        how = atomic.overlap(final, d)
        if how and not (inside_ok and how == "lies inside"):
            raise WorkbenchError(f"report: --out {final} {how} {what} {d}: choose an --out outside the runs being "
                                 "reported (a report there would replace them or write among them)")


def _check_once(run_dirs: list[Path], traces: list[trace.Trace], sweep_dirs: list[Path]) -> None:
    """Refuse a run given twice: the same directory, a copy of it (the same run_id), or a run given both directly
    and through its sweep. The pages would count its requests twice (the tuning page's optimum, for one, moves)."""
    seen: dict[str, Path] = {}
    for d, t in zip(run_dirs, traces):
        rid = str(t.meta["run_id"])
        if rid in seen:
            first = seen[rid]
            which = (f"{d} is given twice" if first.resolve() == d.resolve() else
                     f"{first} and {d} hold the same run (a copy?)")
            via = " (a sweep directory stands for each of its finished runs)" if sweep_dirs else ""
            raise WorkbenchError(f"report: {which}: run_id {rid}{via}; give each run once")
        seen[rid] = d


def _plan(run_dirs: list[Path], names: list[str],
          traces: list[trace.Trace]) -> tuple[list[tuple[str, str, dict]], list[tuple]]:
    """The notebooks to execute, as (notebook, page stem, parameters), and the pages left out, as (page, why).

    A run with no speculative request (a sweep's target-only baseline) gets its latency page only (the target's
    own costs): it has no acceptance, and it is left out of the tuning page, which compares speculative runs. The
    speedups that divide by it are in the sweep comparison. A run without a baseline gets every page; the pages
    say which sections need a baseline (``analysis.notebook.no_baseline_note``)."""
    from workbench.analysis.notebook import has_speculative

    jobs, skipped, tuned = [], [], []
    for d, name, t in zip(run_dirs, names, traces):
        if t.requests["warmup"].astype(bool).all():
            skipped.append((f"latency_{name}", f"{name} has no finished request yet (it stopped during its "
                                               f"warm-ups): finish it with `{resume_command(t.meta)}`"))
            continue
        if has_speculative(t):
            jobs.append(("acceptance", f"acceptance_{name}", {"run_dir": str(d)}))
            tuned.append(str(d))
        else:
            skipped.append((f"acceptance_{name}", f"{name} is a target-only baseline run: nothing was drafted, so "
                                                  "it has no acceptance to show and is left out of the tuning page "
                                                  "(its latency page shows the target's own costs)"))
        jobs.append(("latency", f"latency_{name}", {"run_dir": str(d)}))
    if tuned:
        jobs.append(("tuning", "tuning", {"run_dirs": tuned}))
    else:
        skipped.append(("tuning", "no run has a speculative request: there is nothing to tune"))
    return jobs, skipped


def _write_pages(run_dirs: list[Path], names: list[str], traces: list[trace.Trace], out_dir: Path,
                 progress: bool) -> Path:
    from workbench.progress import Progress

    jobs, skipped = _plan(run_dirs, names, traces)
    pages, summary = [], []
    bar = Progress(len(jobs), "report", unit="notebook", disable=not progress)
    with _this_interpreter_kernel() as kernel:
        for nb, stem, params in jobs:
            figures_json = out_dir / f"{stem}_figures.json"
            execute(nb, out_dir / f"{stem}.ipynb", {**params, "figures_out": str(figures_json)}, kernel)
            to_offline_html(out_dir / f"{stem}.ipynb", out_dir / f"{stem}.html")
            figures = json.loads(figures_json.read_text())
            pages.append((f"{stem}.html", stem, PAGES[nb]))
            if nb == "tuning":
                summary += [report_index.flat(f"tuning {r['run_id']} {r['drafter']} T={r['temperature']:g}", r)
                            for r in figures["rows"]]
            else:
                summary.append(report_index.flat(stem, figures))
            bar.update(1)
    bar.close()
    return report_index.write_index(out_dir, pages, report_index.headline(traces, names, run_dirs), summary, skipped)
