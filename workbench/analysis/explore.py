"""Interactive "what if" views of the speedup model for the tuning report.

Two flavours of the same exploration (α, c, verify cost slope → predicted speedup vs γ):
* ``static_explorer`` / ``optimal_gamma_map``: plain plotly figures whose sliders run in the browser, so they work
  in an exported HTML report with no kernel and no network;
* ``widget_explorer``: ipywidgets sliders and a run/temperature dropdown, for a live JupyterLab kernel only
  (widgets do not render in static HTML without a CDN, so reports drop that cell).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.analysis import speedup

ALPHAS = np.round(np.arange(0.05, 0.96, 0.05), 2)      # slider positions for α
C_SCALES = (0.5, 1.0, 2.0)                              # draft-cost multipliers shown as separate curves


def _costs_with(costs: dict, c_scale: float = 1.0, slope: float | None = None) -> dict:
    """A copy of ``latency.cost_model`` costs with c scaled and optionally another verify slope b."""
    out = dict(costs, c=costs["c"] * c_scale)
    if slope is not None:
        out["b"] = slope
    return out


def static_explorer(costs: dict, alpha: float, measured: pd.DataFrame | None = None,
                    max_gamma: int = 16) -> go.Figure:
    """Predicted speedup vs γ with a slider over α (browser-side restyle, no kernel needed).

    One curve per draft-cost multiplier in C_SCALES (c×0.5, c×1, c×2); the slider starts at the α nearest the
    measured one. ``measured`` (columns gamma, measured) is overlaid as points.
    """
    gammas = np.arange(1, max_gamma + 1)
    curve = lambda a, s: speedup.model_speedup(a, gammas, _costs_with(costs, s))  # noqa: E731
    start = int(np.argmin(np.abs(ALPHAS - alpha)))
    fig = go.Figure()
    for s in C_SCALES:
        fig.add_scatter(x=gammas, y=curve(ALPHAS[start], s), mode="lines+markers", name=f"c = {costs['c'] * s:.3f}")
    if measured is not None and len(measured):
        fig.add_scatter(x=measured["gamma"], y=measured["measured"], mode="markers", name="measured",
                        marker=dict(size=11, symbol="diamond", color="black"))
    steps = [dict(method="restyle", label=f"{a:.2f}",
                  args=[{"y": [curve(a, s) for s in C_SCALES]}, list(range(len(C_SCALES)))]) for a in ALPHAS]
    fig.update_layout(sliders=[dict(active=start, steps=steps, currentvalue=dict(prefix="α = "), pad=dict(t=40))],
                      title=f"What if: predicted speedup vs γ (measured α = {alpha:.2f}; drag α)",
                      xaxis_title="γ", yaxis_title="predicted speedup", yaxis_rangemode="tozero")
    fig.add_hline(y=1.0, line=dict(color="grey", dash="dot"))
    return fig


def optimal_gamma_grid(costs: dict, max_gamma: int = 16, alphas=ALPHAS,
                       c_values=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)) -> pd.DataFrame:
    """Predicted-optimal γ and its speedup over a grid of α × c (other costs as measured). Long format:
    alpha, c, optimal_gamma, predicted (at the optimum)."""
    rows = []
    for c in c_values:
        cst = dict(costs, c=c)
        for a in alphas:
            curve = speedup.gamma_curve(float(a), cst, max_gamma)
            best = curve[curve["optimal"]].iloc[0]
            rows.append({"alpha": float(a), "c": c, "optimal_gamma": int(best["gamma"]),
                         "predicted": float(best["predicted"])})
    return pd.DataFrame(rows)


def optimal_gamma_map(grid: pd.DataFrame, alpha: float, c: float) -> go.Figure:
    """Heatmap of the predicted-optimal γ over α × c, the measured point marked (hover shows the speedup)."""
    z = grid.pivot(index="c", columns="alpha", values="optimal_gamma")
    s = grid.pivot(index="c", columns="alpha", values="predicted")
    fig = go.Figure(go.Heatmap(z=z.to_numpy(), x=z.columns, y=[str(v) for v in z.index], customdata=s.to_numpy(),
                               colorbar=dict(title="best γ"), text=z.to_numpy(), texttemplate="%{text}",
                               hovertemplate="α=%{x} c=%{y}: γ*=%{z}, %{customdata:.2f}x<extra></extra>"))
    fig.add_annotation(x=alpha, y=str(min(z.index, key=lambda v: abs(v - c))), text="this run", showarrow=True)
    return fig.update_layout(title="Predicted-optimal γ by acceptance α and draft cost c",
                             xaxis_title="α", yaxis_title="c = T_d / T_t(1)")


def widget_explorer(tuning: pd.DataFrame, max_gamma: int = 16):
    """ipywidgets explorer (JupyterLab): run/temperature dropdown, α, c, verify-slope and γ-range sliders,
    redrawing the predicted curve in an Output widget. Returns the widget box (display it)."""
    import ipywidgets as w
    from IPython.display import display

    labels = {f"{r.run_id} T={r.temperature:g}": i for i, r in enumerate(tuning.itertuples(index=False))}
    first = tuning.iloc[0]
    run = w.Dropdown(options=labels, description="run")
    alpha = w.FloatSlider(value=float(first["alpha"]), min=0.0, max=0.99, step=0.01, description="α")
    c = w.FloatSlider(value=float(first["c"]), min=0.0, max=1.0, step=0.005, description="c")
    slope = w.FloatSlider(value=float(first["b"]), min=0.0, max=float(max(first["t1"], 1.0)), step=0.1,
                          description="ms per k")
    gmax = w.IntSlider(value=max_gamma, min=1, max=32, description="max γ")
    out = w.Output()

    def redraw(*_):
        costs = dict(tuning.iloc[run.value][["t1", "a", "b", "c", "o_spec", "o_base"]], c=c.value, b=slope.value)
        curve = speedup.gamma_curve(alpha.value, costs, gmax.value)
        fig = go.Figure(go.Scatter(x=curve["gamma"], y=curve["predicted"], mode="lines+markers"))
        best = curve[curve["optimal"]].iloc[0]
        fig.update_layout(title=f"best γ = {int(best['gamma'])}: {best['predicted']:.2f}x", height=380)
        with out:
            out.clear_output(wait=True)
            display(fig)

    def pick_run(change):
        row = tuning.iloc[change["new"]]
        alpha.value, c.value, slope.value = float(row["alpha"]), float(row["c"]), float(row["b"])

    run.observe(pick_run, names="value")
    for ctl in (alpha, c, slope, gmax):
        ctl.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([run, gmax]), w.HBox([alpha, c, slope]), out])
