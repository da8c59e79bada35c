"""Batch reports: execute the analysis notebooks on run directories with papermill and export offline HTML.

``workbench report RUN_DIR [RUN_DIR ...] --out REPORT_DIR`` writes, per run, ``acceptance_<run>`` and
``latency_<run>`` (.ipynb executed + .html), one ``tuning`` page comparing all runs, their key figures as
``*_figures.json`` and an ``index.html`` linking everything. Every HTML page renders with no network: plotly.js is
inlined by the notebooks' renderer, and the CDN scripts nbconvert's template would add (require.js, MathJax,
mermaid, the widget manager) are left out; cells tagged ``jupyterlab-only`` (ipywidgets) are dropped from HTML.

Notebooks run in-process (papermill → nbclient) on a kernel that is *this* interpreter: a kernelspec pointing at
``sys.executable`` (with this checkout on PYTHONPATH) is written to a temporary directory that is prepended to
JUPYTER_PATH for the duration (other JUPYTER_* / IPYTHONDIR settings are honoured as they are).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from workbench import atomic, trace
from workbench.errors import WorkbenchError

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL_NAME = "workbench-report"
# Remote resources that must never reach a report page (src/href pointing at http(s)).
REMOTE = re.compile(r"""<(script|link)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//[^>]*>(\s*</script>)?""", re.I)
# nbconvert's lab template, with every CDN-loading block emptied (plotly.js comes inlined in the outputs).
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock -%}
{%- block html_head_js_mathjax -%}{%- endblock -%}
{%- block html_head_js_mermaidjs -%}{%- endblock -%}
{%- block jupyter_widgets -%}{%- endblock -%}
"""
PAGES = {"acceptance": "Acceptance: how many drafts are kept, by position, category and token",
         "latency": "Latency: phases, verify cost, TTFT, predicted vs measured speedup",
         "tuning": "Tuning: speedup vs γ and the predicted-optimal γ, with what-if explorers"}


@contextlib.contextmanager
def _this_interpreter_kernel():
    """Register a kernelspec for sys.executable in a temp dir on JUPYTER_PATH while the block runs."""
    old = os.environ.get("JUPYTER_PATH")
    with tempfile.TemporaryDirectory(prefix="workbench-kernel-") as tmp:
        spec_dir = Path(tmp) / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        # PYTHONPATH: the kernel imports the same workbench package as this process, installed or not.
        path = os.pathsep.join([str(Path(__file__).resolve().parent.parent),
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
    """Run notebooks/<notebook>.ipynb with papermill (cwd = notebooks/); failures become one-line errors."""
    import papermill as pm

    try:
        pm.execute_notebook(str(NOTEBOOKS_DIR / f"{notebook}.ipynb"), str(out_ipynb), parameters=parameters,
                            cwd=str(NOTEBOOKS_DIR), kernel_name=kernel_name, progress_bar=False, log_output=False)
    except pm.PapermillExecutionError as exc:
        raise WorkbenchError(f"{notebook} notebook failed ({out_ipynb}): {exc.ename}: {exc.evalue}") from None


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
    out_html.write_text(REMOTE.sub("", body), encoding="utf-8")  # e.g. plotly's per-figure MathJax CDN tag


def _names(run_dirs: list[Path]) -> list[str]:
    """A short, unique, file-name-safe label per run directory (its name, suffixed on collision)."""
    names = []
    for i, d in enumerate(run_dirs):
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", d.name) or f"run{i}"
        names.append(base if base not in names else f"{base}_{i}")
    return names


def _headline(traces: list[trace.Trace], names: list[str]) -> str:
    """Per run: what was measured (models, device, date) and the answer per γ (metrics.summary_table)."""
    from workbench.analysis.metrics import summary_table

    parts = []
    for t, name in zip(traces, names):
        models, env = t.meta.get("models", {}), t.meta.get("environment", {})
        size = lambda m: f"{m['parameters'] / 1e6:.1f}M" if m else "-"  # noqa: E731
        about = (f"target {size(models.get('target'))} params, draft {size(models.get('draft'))}, "
                 f"{models.get('dtype', '?')} on {env.get('device_name', env.get('device', '?'))}, "
                 f"created {t.meta.get('created', '?')}")
        table = summary_table(t.requests, t.steps).to_html(index=False, float_format=lambda v: f"{v:.3f}",
                                                            border=0, classes="wb")
        parts.append(f"<h2>{html.escape(name)} <small>run {html.escape(str(t.meta.get('run_id')))}</small></h2>"
                     f"<p>{html.escape(about)}</p>{table}")
    return "".join(parts)


def _index(out_dir: Path, pages: list[tuple[str, str, str]], headline: str, summary: list[dict]) -> Path:
    """index.html: the headline per run, links to every page, and the key figures each notebook recorded."""
    cols = sorted({k for row in summary for k in row}, key=lambda k: (k != "page", k))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))  # noqa: E731
    rows = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in summary)
    links = "".join(f'<li><a href="{html.escape(f)}">{html.escape(t)}</a> — {html.escape(d)}</li>'
                    for f, t, d in pages)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Workbench report</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1200px}td,th{border:1px solid #ccc;padding:2px 8px}"
            "table{border-collapse:collapse}small{color:#666;font-weight:normal}</style></head><body>"
            "<h1>Speculative decoding report</h1><p>Measured speedup = per-prompt median of baseline ÷ speculative "
            "ms/token, both measured in the same run; acceptance rate = Σn/Σγ; tokens per step τ = mean(n+1).</p>"
            f"{headline}<h2>Pages</h2><ul>{links}</ul><h2>Key figures recorded by each page</h2>"
            f"<div style='overflow-x:auto'><table><tr>{head}</tr>{rows}</table></div>"
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


def build_report(run_dirs: list[Path], out_dir: Path, *, progress: bool = True) -> Path:
    """Execute the notebooks on ``run_dirs`` into ``out_dir``; returns the path of index.html.

    Raises WorkbenchError (TraceError for a bad run directory) with one line; run directories are all checked
    before anything is executed.
    """
    run_dirs = [Path(d).resolve() for d in run_dirs]
    if not run_dirs:
        raise WorkbenchError("report: give at least one run directory")
    traces = [trace.load(d) for d in run_dirs]          # TraceError with one clear line if unusable
    if not (NOTEBOOKS_DIR / "tuning.ipynb").is_file():
        raise WorkbenchError(f"{NOTEBOOKS_DIR}: report notebooks not found (run from a source checkout)")
    final = Path(out_dir).resolve()
    with atomic.publish_dir(final, marker="index.html") as tmp:  # built aside, renamed into place only when complete
        _write_pages(run_dirs, traces, tmp, progress)
        for nb in tmp.glob("*.ipynb"):  # parameters name the final paths, so the notebooks rerun as they are
            nb.write_text(nb.read_text(encoding="utf-8").replace(str(tmp), str(final)), encoding="utf-8")
    return final / "index.html"


def _write_pages(run_dirs: list[Path], traces: list[trace.Trace], out_dir: Path, progress: bool) -> Path:
    from tqdm.auto import tqdm

    jobs = [(nb, f"{nb}_{name}", {"run_dir": str(d)})
            for d, name in zip(run_dirs, _names(run_dirs)) for nb in ("acceptance", "latency")]
    jobs.append(("tuning", "tuning", {"run_dirs": [str(d) for d in run_dirs]}))
    pages, summary = [], []
    with _this_interpreter_kernel() as kernel:
        for nb, stem, params in tqdm(jobs, desc="report", unit="notebook", disable=not progress):
            figures_json = out_dir / f"{stem}_figures.json"
            execute(nb, out_dir / f"{stem}.ipynb", {**params, "figures_out": str(figures_json)}, kernel)
            to_offline_html(out_dir / f"{stem}.ipynb", out_dir / f"{stem}.html")
            figures = json.loads(figures_json.read_text())
            pages.append((f"{stem}.html", stem, PAGES[nb]))
            if nb == "tuning":
                summary += [_flat(f"tuning {r['run_id']} T={r['temperature']:g}", r) for r in figures["runs"]]
            else:
                summary.append(_flat(stem, figures))
    return _index(out_dir, pages, _headline(traces, _names(run_dirs)), summary)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``report RUN_DIR [RUN_DIR ...] --out REPORT_DIR`` to the CLI's subparsers."""
    p = subparsers.add_parser("report", help="execute the analysis notebooks on runs and write offline HTML",
                              description="Execute notebooks/{acceptance,latency,tuning}.ipynb on run directories "
                                          "and write executed notebooks, standalone HTML pages and index.html.")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run directory from `workbench run`")
    p.add_argument("--out", required=True, type=Path, metavar="REPORT_DIR", help="where to write the report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """CLI entry of ``workbench report``; errors are raised as WorkbenchError for the CLI to print."""
    index = build_report(args.run_dirs, args.out, progress=not args.no_progress)
    print(f"report written: {index}")
    return 0
