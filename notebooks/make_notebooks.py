"""Regenerate the report notebooks: ``python notebooks/make_notebooks.py``.

The notebooks are thin: a ``parameters`` cell (papermill), a derived-values cell, then calls into
``workbench.analysis``. Edit this file, not the .ipynb files, and re-run it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# Shared by every notebook, right after the parameters: plotly renderer for offline HTML + JupyterLab, helpers.
# (papermill reads each parameter's help from its comment, which must not contain "=".)
SETUP = '''\
import json
from pathlib import Path

import pandas as pd
import plotly.io as pio
from IPython.display import HTML, display

from workbench import trace
from workbench.analysis import acceptance, explore, figures, latency, metrics, speedup

# Inline plotly.js once (offline HTML) and keep the figure data for JupyterLab's interactive renderer.
pio.renderers.default = "plotly_mimetype+notebook"


def record(key_figures: dict) -> None:
    """Show the key figures as a table and write them as JSON to figures_out (if set) for tests and the index."""
    rows = key_figures.get("runs") or [key_figures]
    table = pd.json_normalize(rows, sep=" ").T
    table.columns = [f"run {i + 1}" for i in range(table.shape[1])] if len(rows) > 1 else ["key figure"]
    display(table.style.format(lambda v: f"{v:.4g}" if isinstance(v, float) else v))
    if figures_out:
        Path(figures_out).write_text(json.dumps(key_figures, indent=2, default=float) + "\\n")
'''


def notebook(title: str, intro: str, params: str, derived: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """Title + parameters cell (tagged) + setup/derived cell + (markdown, code) pairs."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells.append(new_markdown_cell(f"# {title}\n\n{intro}"))
    nb.cells.append(new_code_cell(params, metadata={"tags": ["parameters"]}))
    nb.cells.append(new_code_cell(SETUP + "\n" + derived))
    for md, code in cells:
        if md:
            nb.cells.append(new_markdown_cell(md))
        tags = ["jupyterlab-only"] if "widget_explorer" in code else []
        nb.cells.append(new_code_cell(code, metadata={"tags": tags} if tags else {}))
    return nb


ACCEPTANCE = notebook(
    "Acceptance", "How many drafted tokens the target keeps, where in the draft they stop, and which fail. "
    "See docs/REPORTS.md for how to read each figure.",
    '''\
run_dir: str = "../data/sample_run"  # run directory written by `workbench run` (relative to notebooks/)
request_id: str = ""  # request shown in the text view; empty: the first speculative request
top_tokens: int = 20  # how many of the most-rejected draft tokens to list
figures_out: str = ""  # write the key figures as JSON to this path; empty: do not write
''',
    '''\
tr = trace.load(run_dir)
spec_ids = metrics.measured_requests(tr.requests).query("mode == 'speculative'")["request_id"]
shown = request_id or (spec_ids.iloc[0] if len(spec_ids) else "")
overall = acceptance.acceptance_by(tr.steps, tr.tokens, tr.requests).iloc[0]
record({"acceptance_rate": overall["acceptance_rate"], "tokens_per_step": overall["tokens_per_step"],
        "alpha_mle": overall["alpha_mle"], "alpha_tv": overall["alpha_tv"], "steps": int(overall["steps"])})
''',
    [("## Per position: the geometric-model check",
      "pos = acceptance.position_acceptance(tr.steps, tr.requests)\n"
      "figures.position_acceptance_figure(pos).show()\npos"),
     ("## Accepted drafts per step vs the truncated geometric",
      "dist = acceptance.n_distribution(tr.steps, tr.requests)\nfigures.n_distribution_figure(dist).show()"),
     ("## By γ, by category and by request",
      "by_gamma = acceptance.acceptance_by(tr.steps, tr.tokens, tr.requests, 'gamma')\n"
      "figures.alpha_figure(by_gamma, 'gamma').show()\n"
      "by_cat = acceptance.acceptance_by(tr.steps, tr.tokens, tr.requests, 'category')\n"
      "figures.alpha_figure(by_cat, 'category').show()\nby_cat"),
     ("", "acceptance.acceptance_by(tr.steps, tr.tokens, tr.requests, 'request_id')"),
     ("## Draft tokens rejected most often",
      "rej = acceptance.most_rejected(tr.tokens, tr.requests, top_tokens)\nfigures.rejected_figure(rej).show()"),
     ("## Output text: where each token came from",
      "display(HTML(acceptance.output_html(tr.tokens, shown))) if shown else print('no speculative request')")])

LATENCY = notebook(
    "Latency", "Where the time of a step goes, what verification costs as a function of k, and why the measured "
    "speedup differs from the prediction. See docs/REPORTS.md.",
    '''\
run_dir: str = "../data/sample_run"  # run directory written by `workbench run` (relative to notebooks/)
request_id: str = ""  # request drawn as a timeline; empty: the first speculative request
figures_out: str = ""  # write the key figures as JSON to this path; empty: do not write
''',
    '''\
tr = trace.load(run_dir)
spec_ids = metrics.measured_requests(tr.requests).query("mode == 'speculative'")["request_id"]
shown = request_id or (spec_ids.iloc[0] if len(spec_ids) else tr.requests["request_id"].iloc[0])
costs = latency.cost_model(tr.steps, tr.requests)
table = metrics.speedup_table(tr.requests)
record({**costs, "speedup": {f"g{r.gamma} T={r.temperature:g}": r.speedup for r in table.itertuples()}})
''',
    [("## Time per token by phase",
      "phases = latency.phase_breakdown(tr.steps, tr.requests)\n"
      "figures.phase_figure(phases, ('mode', 'gamma')).show()\nphases"),
     ("", "latency.phase_breakdown(tr.steps, tr.requests, by='request_id')"),
     ("## Verify cost T_t(k)",
      "verify = latency.verify_cost(tr.steps, tr.requests)\n"
      "figures.verify_cost_figure(verify, costs['a'], costs['b']).show()\nverify"),
     ("## Per-token latency and TTFT",
      "figures.token_latency_figure(latency.token_latency(tr.steps, tr.requests), latency.ttft(tr.requests)).show()"),
     ("## Timeline of one request",
      "figures.timeline_figure(latency.timeline(tr.steps, shown), f'Timeline of {shown}').show()"),
     ("## Measured speedup, and the gap to the prediction term by term",
      "gap = speedup.gap_attribution(tr.steps, tr.requests)\n"
      "for (g, t), _ in gap.groupby(['gamma', 'temperature']):\n"
      "    figures.waterfall_figure(gap, g, t).show()\n"
      "gap.pivot_table(index=['gamma', 'temperature'], columns='stage_index', values='speedup')"),
     ("", "table")])

TUNING = notebook(
    "Tuning", "Which γ to use: measured and predicted speedup over a γ sweep, the predicted-optimal γ from the "
    "measured α and costs, and what-if explorers. See docs/REPORTS.md.",
    '''\
run_dirs: list = ["../data/sample_run"]  # run directories to compare (e.g. one per temperature), relative to notebooks/
max_gamma: int = 16  # the predicted-optimal γ is searched over 1..max_gamma
figures_out: str = ""  # write the key figures as JSON to this path; empty: do not write
''',
    '''\
combined = speedup.combine([trace.load(d) for d in run_dirs])
sweep = speedup.sweep_table(combined)
tuning = speedup.tuning_table(combined, max_gamma)
record({"runs": tuning[["run_id", "temperature", "alpha", "c", "a", "b", "optimal_gamma", "optimal_predicted",
                        "best_measured_gamma", "best_measured"]].to_dict("records")})
''',
    [("## Speedup vs γ, measured and predicted", "figures.speedup_figure(sweep).show()\nsweep"),
     ("## Predicted-optimal γ", "tuning"),
     ("## What if (works in the HTML report: drag the slider)",
      "first = tuning.iloc[0]\n"
      "costs = first[['t1', 't_d', 'c', 'a', 'b', 'o_spec', 'o_base']].to_dict()\n"
      "mine = sweep[(sweep['run_id'] == first['run_id']) & (sweep['temperature'] == first['temperature'])]\n"
      "explore.static_explorer(costs, first['alpha'], mine, max_gamma).show()\n"
      "explore.optimal_gamma_map(explore.optimal_gamma_grid(costs, max_gamma), first['alpha'], first['c']).show()"),
     ("## Live explorer (JupyterLab only: needs a running kernel)",
      "try:  # widgets are optional: the plotly explorer above is the one that works in the HTML report\n"
      "    display(explore.widget_explorer(tuning, max_gamma))\n"
      "except Exception as exc:  # noqa: BLE001\n"
      "    print(f'ipywidgets explorer unavailable: {exc}')")])


def main() -> None:
    for name, nb in {"acceptance": ACCEPTANCE, "latency": LATENCY, "tuning": TUNING}.items():
        for i, cell in enumerate(nb.cells):  # stable ids: regenerating gives a clean diff
            cell.id = f"{name}-{i:02d}"
        nbformat.validate(nb)
        nbformat.write(nb, HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()
