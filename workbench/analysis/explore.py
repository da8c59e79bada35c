"""Interactive "what if" views of the speedup model for the tuning report (predictions, labelled as such).

* ``static_explorer`` / ``optimal_gamma_map``: plain plotly figures whose sliders run in the browser, so they work in
  an exported HTML report with no kernel and no network;
* ``widget_explorer``: ipywidgets sliders for a live JupyterLab kernel (reports drop that cell; the policy replay
  widgets are ``replay_explorer``, below).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.analysis import speedup, theory
from workbench.analysis.latency import CostModel

WIDGETS = ("widget_explorer", "replay_explorer")  # need a live kernel: notebook cells calling them are jupyterlab-only
ALPHAS = np.round(np.arange(0.05, 0.96, 0.05), 2)  # slider positions for α
C_SCALES = (0.5, 1.0, 2.0)  # draft-cost multipliers shown as separate curves


def with_draft_cost(costs: CostModel, c: float | None = None, scale: float = 1.0, slope: float | None = None
                    ) -> CostModel:
    """The same costs with another c (T_d = c·T_t(1)) or T_d scaled, and optionally another verify slope b."""
    t_d = c * costs.t1 if c is not None else costs.t_d * scale
    return dataclasses.replace(costs, t_d=t_d, b=costs.b if slope is None else slope)


def iid_curve(alpha: float, gammas, costs: CostModel) -> np.ndarray:
    """Predicted whole-request speedup over γ with i.i.d. acceptance α."""
    return speedup.request_speedup(theory.expected_tokens(alpha, gammas), gammas, costs)


def static_explorer(costs: CostModel, alpha: float, measured: pd.DataFrame | None = None,
                    max_gamma: int = 16) -> go.Figure:
    """Predicted speedup vs γ with a slider over α (browser-side restyle, no kernel needed).

    One curve per draft-cost multiplier in C_SCALES; the slider holds the measured α among its ALPHAS positions and
    starts there, so the curves first drawn are the measured α's. ``measured`` (columns gamma, measured) is overlaid
    as points.
    """
    gammas = np.arange(1, max_gamma + 1)
    curve = lambda a, s: iid_curve(a, gammas, with_draft_cost(costs, scale=s))  # noqa: E731
    alphas = sorted({*ALPHAS.tolist(), round(alpha, 3)}) if 0 < alpha < 1 else ALPHAS.tolist()
    start = int(np.argmin(np.abs(np.array(alphas) - alpha))) if np.isfinite(alpha) else 0
    fig = go.Figure()
    for s in C_SCALES:
        fig.add_scatter(x=gammas, y=curve(alphas[start], s), mode="lines+markers",
                        name=f"predicted, c = {costs.c * s:.3f}")
    if measured is not None and len(measured):
        fig.add_scatter(x=measured["gamma"], y=measured["measured"], mode="markers", name="measured",
                        marker=dict(size=11, symbol="diamond", color="black"))
    steps = [dict(method="restyle", label=f"{a:.3f} (measured)" if a == round(alpha, 3) else f"{a:.2f}",
                  args=[{"y": [curve(a, s) for s in C_SCALES]}, list(range(len(C_SCALES)))]) for a in alphas]
    fig.update_layout(sliders=[dict(active=start, steps=steps, currentvalue=dict(prefix="α = "), pad=dict(t=40))],
                      title=f"What if: predicted speedup vs γ (i.i.d. α; measured α = {alpha:.3f}; drag α)",
                      xaxis_title="γ", yaxis_title="speedup over baseline", yaxis_rangemode="tozero")
    fig.add_hline(y=1.0, line=dict(color="grey", dash="dot"))
    return fig


def optimal_gamma_grid(costs: CostModel, max_gamma: int = 16, alphas=ALPHAS,
                       c_values=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)) -> pd.DataFrame:
    """Predicted-optimal γ and its speedup over a grid of α × c (other costs as measured). Long format:
    alpha, c, optimal_gamma, predicted (at the optimum)."""
    gammas = np.arange(1, max_gamma + 1)
    rows = []
    for c in c_values:
        for a in alphas:
            pred = iid_curve(float(a), gammas, with_draft_cost(costs, c=c))
            best = int(np.nanargmax(pred))
            rows.append({"alpha": float(a), "c": c, "optimal_gamma": int(gammas[best]), "predicted": float(pred[best])})
    return pd.DataFrame(rows)


def optimal_gamma_map(grid: pd.DataFrame, alpha: float, c: float) -> go.Figure:
    """Heatmap of the predicted-optimal γ over α × c, the measured point marked (hover shows the speedup)."""
    z = grid.pivot(index="c", columns="alpha", values="optimal_gamma")
    s = grid.pivot(index="c", columns="alpha", values="predicted")
    fig = go.Figure(go.Heatmap(z=z.to_numpy(), x=z.columns, y=[str(v) for v in z.index], customdata=s.to_numpy(),
                               colorbar=dict(title="best γ"), text=z.to_numpy(), texttemplate="%{text}",
                               hovertemplate="α=%{x} c=%{y}: γ*=%{z}, %{customdata:.2f}x<extra></extra>"))
    nearest = min(range(len(z.index)), key=lambda i: abs(z.index[i] - c))  # rows are categories: y is a row number
    fig.add_annotation(x=alpha, y=nearest, text=f"this run (c = {c:.2f})", showarrow=True)
    return fig.update_layout(title="Predicted-optimal γ by acceptance α and draft cost c (i.i.d. model: a prediction)",
                             xaxis_title="α", yaxis=dict(title="c = T_d / T_t(1)", type="category"))


def widget_explorer(fits: list, max_gamma: int = 16, measured: pd.DataFrame | None = None):
    """ipywidgets (JupyterLab): a run × drafter dropdown and α, c, verify-slope and γ-range sliders redrawing the
    predicted curve beside the selected fit's measured constant-γ speedups (``measured``: ``speedup.sweep_table``).
    ``fits``: ``speedup.fits``. Returns the widget box (display it)."""
    import ipywidgets as w

    from workbench.analysis.notebook import show

    labels = {f"{f.run_id} {f.drafter} T={f.temperature:g}": i for i, f in enumerate(fits)}
    first = fits[0]
    run = w.Dropdown(options=labels, description="run")
    alpha = w.FloatSlider(value=first.alpha, min=0.0, max=0.99, step=0.01, description="α")
    c = w.FloatSlider(value=first.costs.c, min=0.0, max=1.0, step=0.005, description="c")
    slope = w.FloatSlider(value=first.costs.b, min=0.0, max=max(first.costs.t1, 1.0), step=0.05, description="ms per k")
    gmax = w.IntSlider(value=max_gamma, min=1, max=32, description="max γ")
    out = w.Output()

    def redraw(*_):
        costs = with_draft_cost(fits[run.value].costs, c=c.value, slope=slope.value)
        gammas = np.arange(1, gmax.value + 1)
        pred = iid_curve(alpha.value, gammas, costs)
        fig = go.Figure(go.Scatter(x=gammas, y=pred, mode="lines+markers", name="predicted"))
        f = fits[run.value]
        if measured is not None:
            mine = measured[(measured["run_id"] == f.run_id) & (measured["drafter"] == f.drafter)
                            & (measured["temperature"] == f.temperature)]
            fig.add_scatter(x=mine["gamma"], y=mine["measured"], mode="markers", name="measured",
                            marker=dict(size=11, symbol="diamond", color="black"))
        fig.update_layout(title=f"predicted best γ = {gammas[int(np.nanargmax(pred))]}: {np.nanmax(pred):.2f}x",
                          height=380)
        with out:
            out.clear_output(wait=True)
            show(fig)

    def pick_run(change):
        f = fits[change["new"]]
        alpha.value, c.value, slope.value = f.alpha, f.costs.c, f.costs.b

    run.observe(pick_run, names="value")
    for ctl in (alpha, c, slope, gmax):
        ctl.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([run, gmax]), w.HBox([alpha, c, slope]), out])


def replay_explorer(trace, drafter: str, limit: int = 200):
    """ipywidgets (JupyterLab): threshold P, heuristic start G0, GMAX and the adaptive policy's prior weight; every
    change re-runs the replay on the loaded trace (a prediction) and redraws the policies beside the best measured
    constant γ and the oracle. Returns the widget box (display it)."""
    import ipywidgets as w

    from workbench.adaptive import PRIOR, Adaptive
    from workbench.analysis import replay
    from workbench.analysis.notebook import show
    from workbench.analysis.recorded import recorded_outputs, token_budget
    from workbench.policies import DEFAULT_GMAX, HEURISTIC_START, HF_THRESHOLD, MAX_GAMMA

    recorded = recorded_outputs(trace, drafter, limit)
    costs = replay.run_costs(trace, drafter)
    max_new = token_budget(trace)
    run = lambda spec: replay.summarize(replay.replay_policy(recorded, spec, costs, max_new=max_new))  # noqa: E731
    oracle = float(run(replay.ORACLE)["predicted_speedup"].iloc[0])
    measured = speedup.speedup_table(trace.requests)  # the live figure drawn beside every prediction
    measured = measured[measured["drafter"] == drafter]
    best = measured.loc[measured["speedup"].idxmax()] if measured["speedup"].notna().any() else None
    p_min = w.FloatSlider(value=HF_THRESHOLD, min=0.01, max=0.95, step=0.01, description="threshold P")
    start = w.IntSlider(value=HEURISTIC_START, min=1, max=16, description="heuristic G0")
    gmax = w.IntSlider(value=DEFAULT_GMAX, min=1, max=32, description="GMAX")
    prior = w.FloatSlider(value=PRIOR, min=0.5, max=50.0, step=0.5, description="adaptive prior")
    out = w.Output()

    def redraw(*_):
        rows = pd.concat([run(f"threshold:{p_min.value:g}:{gmax.value}"), run(f"heuristic:{start.value}"),
                          run(f"constant:{min(gmax.value, MAX_GAMMA)}"), run(Adaptive(gmax.value, prior.value))])
        fig = go.Figure(go.Bar(x=rows["policy"], y=rows["predicted_speedup"], name="replayed (prediction)",
                               text=rows["tokens_per_step"].map("τ={:.2f}".format)))
        fig.add_hline(y=oracle, line=dict(dash="dot"), annotation_text=f"oracle {oracle:.2f}x")
        if best is not None:
            fig.add_hline(y=best["speedup"], line=dict(dash="dash", color="#1971c2"),
                          annotation_text=f"best measured live: {best['policy']} {best['speedup']:.2f}x")
        outputs = sum(not r.warmup for r in recorded)
        fig.update_layout(title=f"Replayed on {outputs} recorded outputs of {drafter} (predictions)",
                          yaxis_title="predicted speedup", height=380)
        with out:
            out.clear_output(wait=True)
            show(fig)  # never fig.show(): with no renderer set, plotly may try to open a browser and wait

    for ctl in (p_min, start, gmax, prior):
        ctl.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([p_min, start]), w.HBox([gmax, prior]), out])
