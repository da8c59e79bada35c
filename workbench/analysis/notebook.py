"""What the report notebooks call besides the analysis functions: showing figures, picking the request to show,
and recording key figures (the way recommenders keeps ``store_metadata`` in its library, not in notebooks).

Figures are displayed as a bundle of plotly's JSON (JupyterLab renders it interactively) and an HTML ``<div>``
that expects ``window.Plotly``: ``workbench report`` ships plotly.js once per report directory and every page loads
it from there, so pages stay small and render with no network.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from workbench.analysis import frames
from workbench.trace import Trace

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def show(fig) -> None:
    """Display a plotly figure without embedding plotly.js (``workbench report`` adds it once per report)."""
    from IPython.display import display

    html = fig.to_html(include_plotlyjs=False, full_html=False, config={"displaylogo": False})
    display({PLOTLY_MIME: json.loads(fig.to_json()), "text/html": html}, raw=True)


def show_table(frame: pd.DataFrame, rows: int = 40) -> None:
    """Display at most ``rows`` rows of a table, saying how many were left out."""
    from IPython.display import display

    display(frames.head_rows(frame, rows))
    if len(frame) > rows:
        print(f"… {len(frame) - rows} more rows (the full table is a DataFrame in the notebook)")


def shown_request(trace: Trace, request_id: str = "") -> str:
    """``request_id`` if given, else the first measured speculative request (else the first request at all)."""
    if request_id:
        if request_id not in set(trace.requests["request_id"]):
            raise ValueError(f"request {request_id!r} is not in this run")
        return request_id
    req = frames.measured_requests(trace.requests)
    spec = req[req["mode"] == "speculative"]["request_id"]
    return str(spec.iloc[0] if len(spec) else trace.requests["request_id"].iloc[0])


def record(key_figures: dict, figures_out: str = "") -> None:
    """Show the key figures as a table and, when ``figures_out`` is set, write them as JSON for tests and the
    report index."""
    from IPython.display import display

    rows = key_figures.get("rows") or [key_figures]
    table = pd.json_normalize(rows, sep=" ").T
    table.columns = [f"{i + 1}" for i in range(table.shape[1])] if len(rows) > 1 else ["key figure"]
    display(table.style.format(lambda v: f"{v:.4g}" if isinstance(v, float) else v))
    if figures_out:
        Path(figures_out).write_text(json.dumps(key_figures, indent=2, default=float) + "\n")


def main_drafter(trace: Trace) -> str:
    """The drafter the policy sections look at: the first model drafter of the run (else the first drafter)."""
    drafters = [d for d in dict.fromkeys(frames.measured_requests(trace.requests)["drafter"]) if d]
    models = [d for d in drafters if not d.startswith(("ngram", "early-exit"))]
    return (models or drafters or [""])[0]


def show_settings(rec) -> None:
    """The recommended setting (``policies.Recommendation``): the policy, its live speedup with its interval, why it
    was chosen, and one line per engine in the syntax users paste."""
    import html

    from IPython.display import HTML, display

    rows = "".join(f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(v)}</code></td></tr>"
                   for k, v in rec.settings.items())
    display(HTML(f"<p><b>Recommended: <code>{html.escape(rec.spec)}</code></b>, measured {rec.speedup:.3f}x "
                 f"(95 % interval {rec.lo:.3f}–{rec.hi:.3f}): {html.escape(rec.why)}.</p><table>{rows}</table>"))
