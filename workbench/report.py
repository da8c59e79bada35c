"""Batch reports: execute the analysis notebooks on run directories with papermill and export offline HTML.

``workbench report RUN_DIR [RUN_DIR ...] --out REPORT_DIR`` writes, per run, ``acceptance_<run>`` and
``latency_<run>`` (.ipynb executed + .html), one ``tuning`` page comparing all runs, their key figures as
``*_figures.json`` and an ``index.html`` linking everything. Every HTML page renders with no network: plotly.js is
written once into the report directory (``plotly.min.js``) and each page loads it from there, and the CDN scripts
nbconvert's template would add (require.js, MathJax, mermaid, the widget manager) are left out; cells tagged
``jupyterlab-only`` (ipywidgets) are dropped from HTML.

Notebooks run in-process (papermill → nbclient) on a kernel that is *this* interpreter: a kernelspec pointing at
``sys.executable`` (with this checkout on PYTHONPATH) is written to a temporary directory that is prepended to
JUPYTER_PATH for the duration (other JUPYTER_* / IPYTHONDIR settings are honoured as they are).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from workbench import atomic, paths, trace
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
PAGES = {"acceptance": "Acceptance: how many drafts are kept, by position, drafter, policy, category and token",
         "latency": "Latency: phases, verify cost, TTFT, predicted vs measured speedup",
         "tuning": "Tuning: speedup vs γ, policies measured and replayed against the oracle, the setting to use"}
PLOTLY_JS = "plotly.min.js"  # written once per report directory; every page loads it with a relative src


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
    body = body.replace("<head>", f'<head>\n<script src="{PLOTLY_JS}"></script>', 1)
    out_html.write_text(body, encoding="utf-8")


def _names(run_dirs: list[Path]) -> list[str]:
    """A short, unique, file-name-safe label per run directory (its name, suffixed on collision)."""
    names = []
    for i, d in enumerate(run_dirs):
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", d.name) or f"run{i}"
        names.append(base if base not in names else f"{base}_{i}")
    return names


def _headline(traces: list[trace.Trace], names: list[str]) -> str:
    """Per run: what was measured (models, device, date) and the answer per setting (summary.summary_table)."""
    from workbench.analysis.latency import clock_note
    from workbench.analysis.notebook import has_baseline, has_speculative
    from workbench.analysis.summary import summary_table

    parts = []
    for t, name in zip(traces, names):
        models, env = t.meta.get("models", {}), t.meta.get("environment", {})
        size = lambda m: f"{m['parameters'] / 1e6:.1f}M" if m else "-"  # noqa: E731
        drafts = ", ".join(f"{k} {size(v)}" for k, v in (models.get("drafts") or {}).items()) or "none"
        about = (f"target {size(models.get('target'))} params, draft models: {drafts}, "
                 f"{models.get('dtype', '?')} on {env.get('device_name', env.get('device', '?'))}, "
                 f"created {t.meta.get('created', '?')}")
        if not has_speculative(t):  # a sweep's baseline run: nothing speculative to summarise
            table = "<p>Target-only baseline run: no speculative setting to summarise.</p>"
        else:
            table = summary_table(t).to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0,
                                             classes="wb")
            if not has_baseline(t):
                table += "<p>No target-only baseline in this run, so no speedup was measured in it.</p>"
        disturbed = clock_note(t.steps, t.requests)
        if disturbed:
            table += f"<p class='wb-note'><b>Warning:</b> {html.escape(disturbed)}</p>"
        parts.append(f"<h2>{html.escape(name)} <small>run {html.escape(str(t.meta.get('run_id')))}</small></h2>"
                     f"<p>{html.escape(about)}</p>{table}")
    return "".join(parts)


# Units of the key figures in index.html's table (the notebooks record the bare numbers).
UNITS = {**dict.fromkeys(("t1", "t_d", "a", "o_spec", "o_base", "prefill_spec", "prefill_base"), " (ms)"),
         "b": " (ms per k)"}


def _fmt(v) -> str:
    """A key figure in the index table: floats to 3 decimals, NaN (not measured, e.g. no baseline) as a dash."""
    if isinstance(v, float):
        return "–" if v != v else f"{v:.3f}"
    return html.escape(str(v))


def _index(out_dir: Path, pages: list[tuple[str, str, str]], headline: str, summary: list[dict],
           skipped: list[tuple[str, str]] = ()) -> Path:
    """index.html: the headline per run, links to every page, the pages not built (and why), and the key figures
    each notebook recorded."""
    cols = sorted({k for row in summary for k in row}, key=lambda k: (k != "page", k))
    head = "".join(f"<th>{html.escape(c + UNITS.get(c, ''))}</th>" for c in cols)
    rows = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in summary)
    links = "".join(f'<li><a href="{html.escape(f)}">{html.escape(t)}</a> — {html.escape(d)}</li>'
                    for f, t, d in pages)
    links += "".join(f"<li class='skipped'>{html.escape(t)}: not built — {html.escape(why)}</li>"
                     for t, why in skipped)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Workbench report</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1200px}td,th{border:1px solid #ccc;padding:2px 8px}"
            "table{border-collapse:collapse}small{color:#666;font-weight:normal}</style></head><body>"
            "<h1>Speculative decoding report</h1><p>Measured speedup = per-prompt median of baseline ÷ speculative "
            "ms/token, both measured in the same run; acceptance rate = Σn/Σγ; tokens per step τ = mean(n+1); "
            "drafter · policy name a setting; spec_ms_per_token, base_ms_per_token: medians over requests (their "
            "ratio is not the speedup); greedy_identical = share of greedy outputs token for token equal to the "
            "baseline's (1 in float32, barring exact ties).</p>"
            f"{headline}<h2>Pages</h2><ul>{links}</ul><h2>Key figures recorded by each page</h2>"
            f"<div style='overflow-x:auto'><table><tr>{head}</tr>{rows}</table></div>"
            "<p>Costs (ms, means over decode steps without the stalls, docs/SPEEDUP_MODEL.md): t1 = T_t(1), a target "
            "forward over one token; t_d = draft time per drafted token; c = t_d / t1; a + b·k = the verify line "
            "T_t(k); o_spec / o_base = other time per speculative / baseline step; prefill_* = time to first token. "
            "The latency page's costs pool every drafter of its run (its <i>drafter</i> column says whose); the "
            "tuning rows are per drafter.</p>"
            "<p>How to read the pages: docs/REPORTS.md in the workbench repository.</p></body></html>")
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _flat(page: str, figures: dict) -> dict:
    """One summary row of scalar key figures (nested values such as per-γ speedups are flattened)."""
    row = {"page": page}
    for k, v in figures.items():
        if isinstance(v, dict):
            row.update({f"speedup {kk}": vv for kk, vv in v.items()})
        elif isinstance(v, (int, float, str)) and not isinstance(v, bool):
            row[k] = v
    return row


def write_plotly_js(out_dir: Path) -> None:
    """plotly.js, once per report directory (about 4.6 MB), from the installed plotly package."""
    from plotly.offline import get_plotlyjs

    (out_dir / PLOTLY_JS).write_text(get_plotlyjs(), encoding="utf-8")


def build_report(run_dirs: list[Path], out_dir: Path, *, progress: bool = True) -> Path:
    """Execute the notebooks on ``run_dirs`` into ``out_dir``; returns the path of index.html.

    Raises WorkbenchError (TraceError for a bad run directory) with one line; run directories are all checked
    before anything is executed.
    """
    from workbench import sweep_report  # a sweep directory stands for its finished runs (+ a comparison section)

    run_dirs, sweep_dirs = sweep_report.expand_dirs([Path(d).resolve() for d in run_dirs])
    if not run_dirs and sweep_dirs:
        raise WorkbenchError(f"report: sweep {sweep_dirs[0]} has no finished run yet; "
                             f"{sweep_report.resume_command(sweep_dirs[0])} runs it")
    if not run_dirs:
        raise WorkbenchError("report: give at least one run directory")
    traces = [trace.load(d) for d in run_dirs]          # TraceError with one clear line if unusable
    if all(t.requests["warmup"].astype(bool).all() for t in traces):  # stopped in its warm-ups: nothing measured
        raise WorkbenchError(f"report: {run_dirs[0]} has no finished request yet (it stopped during its warm-ups); "
                             f"finish it with `{resume_command(traces[0].meta)}`")
    paths.notebooks_dir()  # one clear error when the notebooks cannot be found
    final = Path(out_dir).resolve()
    with atomic.publish_dir(final, marker="index.html") as tmp:  # built aside, renamed into place only when complete
        write_plotly_js(tmp)
        names = _names(run_dirs)  # each run's page stem, unique across the report
        index = _write_pages(run_dirs, names, traces, tmp, progress)
        if sweep_dirs:
            sweep_report.add_to_index(index, sweep_dirs, dict(zip(run_dirs, names)))
        for nb in tmp.glob("*.ipynb"):  # parameters name the final paths, so the notebooks rerun as they are
            nb.write_text(nb.read_text(encoding="utf-8").replace(str(tmp), str(final)), encoding="utf-8")
    return final / "index.html"


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
                summary += [_flat(f"tuning {r['run_id']} {r['drafter']} T={r['temperature']:g}", r)
                            for r in figures["rows"]]
            else:
                summary.append(_flat(stem, figures))
            bar.update(1)
    bar.close()
    return _index(out_dir, pages, _headline(traces, names), summary, skipped)
