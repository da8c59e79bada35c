"""Plotly figures for the acceptance and latency reports. Each takes the DataFrame a data function returned
(acceptance.*, latency.*, speedup.*) and only draws it: no computation here beyond layout.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from workbench.analysis.frames import setting_label

# One colour per phase / origin, shared by all figures so a reader learns them once.
PHASE_COLOURS = {"draft": "#2f9e44", "verify": "#1971c2", "other": "#adb5bd"}


def _err(frame: pd.DataFrame, value: str, lo: str, hi: str) -> dict:
    """Asymmetric error bars (plotly's error_y) from lower / upper bound columns."""
    return dict(type="data", symmetric=False, array=frame[hi] - frame[value], arrayminus=frame[value] - frame[lo])


def position_acceptance_figure(pos: pd.DataFrame) -> go.Figure:
    """a_i and the conditional #(n ≥ i) / #(n ≥ i−1) per draft position (95 % Wilson bars) against the geometric
    model."""
    fig = go.Figure()
    fig.add_scatter(x=pos["position"], y=pos["a"], name="a_i (unconditional)", mode="markers+lines",
                    error_y=_err(pos, "a", "a_lo", "a_hi"))
    fig.add_scatter(x=pos["position"], y=pos["conditional"], name="conditional: #(n ≥ i) / #(n ≥ i-1)",
                    mode="markers+lines", error_y=_err(pos, "conditional", "cond_lo", "cond_hi"))
    fig.add_scatter(x=pos["position"], y=pos["geometric"], name="i.i.d. model α^i", mode="lines",
                    line=dict(dash="dash", color="black"))
    fig.add_scatter(x=pos["position"], y=pos["alpha"], name="i.i.d. conditional α", mode="lines",
                    line=dict(dash="dot", color="grey"))
    return fig.update_layout(title="Acceptance by draft position vs the geometric model",
                             xaxis_title="draft position i", yaxis_title="probability", yaxis_range=[0, 1.05])


def n_distribution_figure(dist: pd.DataFrame) -> go.Figure:
    """Observed distribution of accepted drafts per step vs the truncated geometric, one bar group per drafter × γ."""
    labels = dist["gamma"].astype(str).radd("γ=") + " n=" + dist["n"].astype(str)
    if dist["drafter"].nunique() > 1:
        labels = dist["drafter"].astype(str) + " " + labels
    fig = go.Figure()
    fig.add_bar(x=labels, y=dist["observed"], name="observed", marker_color="#1971c2")
    fig.add_bar(x=labels, y=dist["expected"], name="truncated geometric", marker_color="#ced4da")
    return fig.update_layout(title="Accepted drafts per step (n) vs the truncated geometric", barmode="group",
                             yaxis_title="fraction of steps")


def carry_over_figure(carry: pd.DataFrame) -> go.Figure:
    """P(first draft accepted) after a fully accepted step and after a rejecting one (95 % Wilson bars), per setting
    (``acceptance.carry_over``): bars of equal height mean acceptance is memoryless from step to step."""
    x = setting_label(carry)
    fig = go.Figure()
    fig.add_bar(x=x, y=carry["after_full"], name="after a fully accepted step", marker_color="#2f9e44",
                error_y=_err(carry, "after_full", "after_full_lo", "after_full_hi"))
    fig.add_bar(x=x, y=carry["after_reject"], name="after a step with a rejection", marker_color="#e8590c",
                error_y=_err(carry, "after_reject", "after_reject_lo", "after_reject_hi"))
    return fig.update_layout(title="Does acceptance carry over? First draft accepted, by the previous step's outcome",
                             barmode="group", yaxis_title="P(first draft accepted)", yaxis_range=[0, 1.05])


def along_output_figure(along: pd.DataFrame) -> go.Figure:
    """P(draft accepted | judged) per bin of output position (95 % Wilson bars), one line per setting
    (``acceptance.along_output``): a flat line means acceptance does not depend on how far into the response."""
    fig = go.Figure()
    for label, rows in along.assign(setting=setting_label(along)).groupby("setting", sort=False):
        fig.add_scatter(x=rows["positions"], y=rows["rate"], name=label, mode="markers+lines",
                        error_y=_err(rows, "rate", "rate_lo", "rate_hi"))
    order = along.sort_values("first")["positions"].unique().tolist()  # bins in order, whichever line has them
    return fig.update_layout(title="Acceptance along the response, by output position of the drafted token",
                             xaxis=dict(title="output position t (the prefill's token is t = 0)", type="category",
                                        categoryorder="array", categoryarray=order),
                             yaxis_title="P(draft accepted | judged)", yaxis_range=[0, 1.05])


def alpha_figure(by: pd.DataFrame, key: str, label: str | None = None) -> go.Figure:
    """Acceptance rate (Wilson bars), alpha_mle and mean alpha_tv per group of ``acceptance.acceptance_by``;
    ``label`` names the groups in the title (default: ``key``)."""
    x = by[key].astype(str)
    fig = go.Figure()
    fig.add_bar(x=x, y=by["acceptance_rate"], name="acceptance rate Σn/Σγ",
                error_y=_err(by, "acceptance_rate", "rate_lo", "rate_hi"))
    fig.add_bar(x=x, y=by["alpha_mle"], name="α (i.i.d. MLE: accepted/evaluated)")
    fig.add_bar(x=x, y=by["alpha_tv"], name="α from mean Σmin(p,q)")
    return fig.update_layout(title=f"Acceptance by {label or key}", barmode="group", yaxis_range=[0, 1.05],
                             yaxis_title="probability (Wilson 95 % bars on the rate)")


def rejected_figure(rej: pd.DataFrame) -> go.Figure:
    """Horizontal bars: the draft tokens rejected most often (``acceptance.most_rejected``)."""
    r = rej.iloc[::-1]
    return go.Figure(go.Bar(x=r["rejected"], y=r["token_text"].map(repr), orientation="h",
                            customdata=r[["evaluated", "reject_rate", "mean_q", "mean_p"]],
                            hovertemplate="%{y}: %{x} rejected of %{customdata[0]} judged; at its rejections mean "
                                          "q = %{customdata[2]:.2f}, mean p = %{customdata[3]:.2f}<extra></extra>")
                     ).update_layout(title="Draft tokens rejected most often", xaxis_title="rejections",
                                     yaxis_title="draft token (as text)", height=max(300, 22 * len(r) + 120))


def phase_figure(phases: pd.DataFrame, key) -> go.Figure:
    """Stacked decode ms per emitted token by phase, per group of ``latency.phase_breakdown``."""
    x = phases[key].astype(str) if isinstance(key, str) else phases[list(key)].astype(str).agg(" ".join, axis=1)
    x = x.str.strip()
    fig = go.Figure()
    for ph, colour in PHASE_COLOURS.items():
        fig.add_bar(x=x, y=phases[f"{ph}_ms_per_token"], name=ph, marker_color=colour)
    return fig.update_layout(title="Decode time per emitted token, by phase (pooled: Σ phase ms ÷ Σ tokens, "
                                   "token-weighted)", barmode="stack", yaxis_title="ms / token")


def verify_cost_figure(verify: pd.DataFrame, a: float, b: float) -> go.Figure:
    """T_t(k) vs k: mean with p10–p90 bars, and the fitted line a + b·k used by the γ model."""
    fig = go.Figure()
    fig.add_scatter(x=verify["k"], y=verify["mean"], mode="markers", name="mean verify ms",
                    error_y=dict(type="data", symmetric=False, array=verify["p90"] - verify["mean"],
                                 arrayminus=verify["mean"] - verify["p10"]))
    ks = pd.Series(range(1, int(verify["k"].max()) + 2))
    fig.add_scatter(x=ks, y=a + b * ks, mode="lines", name=f"fit {a:.2f} + {b:.2f}·k", line=dict(dash="dash"))
    return fig.update_layout(title="Verify cost T_t(k) vs tokens per target forward (k = γ+1; baseline k = 1)",
                             xaxis_title="k", yaxis_title="ms")


def pace_figure(pace: pd.DataFrame, drifted: float) -> go.Figure:
    """Each request's pace in run order (``clock.pace``: 1.0 = the run's usual speed of a target forward of the same
    size), coloured by mode, with the rolling median ``clock.drift`` reads."""
    fig = go.Figure()
    for mode, part in pace.groupby("mode"):
        fig.add_scatter(x=part["order"], y=part["pace"], mode="markers", name=f"{mode} request", opacity=0.5,
                        customdata=part[["request_id"]], hovertemplate="%{customdata[0]}: %{y:.2f}×<extra></extra>")
    fig.add_scatter(x=pace["order"], y=pace["rolling"], mode="lines", name="rolling median", line=dict(width=3))
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
    return fig.update_layout(title=f"Pace of the machine over the run (a steady clock stays flat; the note fires when "
                                   f"the rolling median moves {drifted:g}× between stretches)",
                             xaxis_title="request, in run order", yaxis_title="target forward ÷ its usual time")


def _box(frame: pd.DataFrame, value: str, name: str) -> go.Box:
    """A box per setting from precomputed quartiles (a 1M-step trace must not embed a million points)."""
    stats = frame.assign(_label=setting_label(frame)).groupby("_label")[value].quantile([0.0, 0.25, 0.5, 0.75, 1.0])
    stats = stats.unstack()
    return go.Box(x=list(stats.index), q1=stats[0.25], median=stats[0.5], q3=stats[0.75], lowerfence=stats[0.0],
                  upperfence=stats[1.0], name=name)


def token_latency_figure(lat: pd.DataFrame, ttft: pd.DataFrame) -> go.Figure:
    """Box plots (min, quartiles, max) of per-token latency of decode steps and of TTFT, per setting."""
    fig = go.Figure()
    fig.add_trace(_box(lat, "ms_per_token", "ms per token (decode steps)"))
    fig.add_trace(_box(ttft, "ttft_ms", "TTFT ms"))
    return fig.update_layout(title="Per-token latency and time to first token", boxmode="group",
                             yaxis_title="ms")


def timeline_figure(tl: pd.DataFrame, title: str) -> go.Figure:
    """Gantt of one request: each step a row, its draft / verify / other phases as bars along time."""
    fig = go.Figure()
    for ph, colour in PHASE_COLOURS.items():
        p = tl[tl["phase"] == ph]
        fig.add_bar(x=p["duration_ms"], base=p["start_ms"], y=p["step"], orientation="h", name=ph,
                    marker_color=colour, customdata=p[["n_accepted", "gamma"]],
                    hovertemplate="step %{y}: %{x:.2f} ms, n=%{customdata[0]}/%{customdata[1]}<extra></extra>")
    return fig.update_layout(title=title, barmode="overlay", xaxis_title="ms since request start",
                             yaxis=dict(title="step", autorange="reversed"), height=max(300, 14 * tl["step"].nunique()))


def waterfall_figure(gap: pd.DataFrame, drafter: str, gamma: int, temperature: float) -> go.Figure:
    """Waterfall from the ideal prediction to the measured speedup for one drafter and γ
    (``speedup.gap_attribution``)."""
    g = gap[(gap["drafter"] == drafter) & (gap["gamma"] == gamma)
            & (gap["temperature"] == temperature)].sort_values("stage_index")
    # the last bar is the measured speedup itself, drawn from 0 ("total" would draw the running sum instead)
    measures = ["absolute"] + ["relative"] * (len(g) - 2) + ["absolute"]
    return go.Figure(go.Waterfall(x=g["stage"], y=[*g["delta"].iloc[:-1], g["speedup"].iloc[-1]],
                                  measure=measures, text=g["speedup"].map("{:.2f}x".format))
                     ).update_layout(title=f"Predicted → measured speedup, {drafter}, γ={gamma}, T={temperature:g}",
                                     yaxis_title="speedup over baseline")


def speedup_figure(sweep: pd.DataFrame) -> go.Figure:
    """Measured speedup vs constant γ (bars: 95 % bootstrap interval over prompts) with both predictions beside it
    (per-position and i.i.d. acceptance), one colour per run × drafter × temperature (``speedup.sweep_table``)."""
    fig = go.Figure()
    several = sweep["run_id"].nunique() > 1
    for (run, drafter, temp), g in sweep.groupby(["run_id", "drafter", "temperature"]):
        name = f"{run + ' ' if several else ''}{drafter} T={temp:g}"
        fig.add_scatter(x=g["gamma"], y=g["measured"], mode="markers+lines", name=f"{name} measured",
                        marker=dict(size=10), error_y=_err(g, "measured", "measured_lo", "measured_hi"))
        fig.add_scatter(x=g["gamma"], y=g["predicted_position"], mode="lines", line=dict(dash="dash"),
                        name=f"{name} predicted (per-position a_i)")
        fig.add_scatter(x=g["gamma"], y=g["predicted_iid"], mode="lines", line=dict(dash="dot"),
                        name=f"{name} predicted (i.i.d. α)")
    fig.add_hline(y=1.0, line=dict(color="grey", dash="dot"))
    return fig.update_layout(title="Speedup vs γ: measured, and the two predictions beside it", xaxis_title="γ",
                             yaxis_title="speedup over baseline")


def policy_figure(table: pd.DataFrame) -> go.Figure:
    """Per policy: measured speedup (live; bars: 95 % bootstrap interval over prompts) beside the replayed
    prediction; the oracle bound is replayed only (``policies.comparison``)."""
    fig = go.Figure()
    bars = _err(table, "measured_speedup", "measured_lo", "measured_hi") if "measured_lo" in table else None
    fig.add_bar(x=table["policy"], y=table["measured_speedup"], name="measured (live)", marker_color="#1971c2",
                error_y=bars)
    fig.add_bar(x=table["policy"], y=table["predicted_speedup"], name="replayed (prediction)",
                marker_color="#a5d8ff")
    fig.add_hline(y=1.0, line=dict(color="grey", dash="dot"))
    return fig.update_layout(title="Policies: measured speedup, and the replayed prediction beside it (oracle = bound)",
                             barmode="group", yaxis_title="speedup over baseline")


def replay_slider_figure(sweep: pd.DataFrame, best_measured: float | None, oracle: float,
                         measured_by_category: pd.Series | None = None) -> go.Figure:
    """Replayed (predicted) speedup per category for each precomputed setting, one slider step per setting; the
    best measured constant γ and the oracle as reference lines (``policies.threshold_sweep``), and the best
    constant γ measured in each category as markers (``measured_by_category``: category → speedup). No line where
    ``best_measured`` is None (the run measured no constant γ)."""
    settings = list(dict.fromkeys(sweep["policy"]))
    fig = go.Figure()
    for i, spec in enumerate(settings):
        rows = sweep[sweep["policy"] == spec]
        fig.add_bar(x=rows["category"], y=rows["predicted_speedup"], name=spec, visible=i == 0,
                    customdata=rows[["tokens_per_step"]],
                    hovertemplate="%{x}: %{y:.2f}x predicted, τ=%{customdata[0]:.2f}<extra>" + spec + "</extra>")
    if best_measured is not None:
        fig.add_hline(y=best_measured, line=dict(color="#1971c2", dash="dash"),
                      annotation_text=f"best constant γ, measured {best_measured:.2f}x")
    if measured_by_category is not None and len(measured_by_category):
        fig.add_scatter(x=list(measured_by_category.index), y=list(measured_by_category.values), mode="markers",
                        name="best constant γ, measured", marker=dict(size=12, symbol="diamond", color="#1971c2"))
    fig.add_hline(y=oracle, line=dict(color="black", dash="dot"), annotation_text=f"oracle (replayed) {oracle:.2f}x")
    extra = len(fig.data) - len(settings)  # the measured markers, always shown
    steps = [dict(method="update", label=spec, args=[{"visible": [j == i for j in range(len(settings))]
                                                      + [True] * extra},
                                                     {"title": f"Replayed (predicted) speedup with {spec}"}])
             for i, spec in enumerate(settings)]
    return fig.update_layout(sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="setting: "),
                                           pad=dict(t=50))],
                             title=f"Replayed (predicted) speedup with {settings[0]}",
                             yaxis_title="predicted speedup over baseline",
                             yaxis_rangemode="tozero")


def _empty(title: str, why: str) -> go.Figure:
    """A figure that says why there is nothing to draw (a run without the drafters a section is about)."""
    return go.Figure().update_layout(title=title, annotations=[dict(text=why, showarrow=False, x=0.5, y=0.5,
                                                                     xref="paper", yref="paper")])


def position_by_drafter_figure(pos: pd.DataFrame) -> go.Figure:
    """a_i per draft position, one line per drafter (``drafters.position_by_drafter``), Wilson bars."""
    fig = go.Figure()
    for drafter, g in pos.groupby("drafter"):
        fig.add_scatter(x=g["position"], y=g["a"], name=str(drafter), mode="markers+lines",
                        error_y=_err(g, "a", "a_lo", "a_hi"))
    return fig.update_layout(title="Acceptance by draft position, per drafter (a_i = P(drafts 1..i accepted))",
                             xaxis_title="draft position i", yaxis_title="a_i", yaxis_range=[0, 1.05])


def hit_rate_figure(hits: pd.DataFrame) -> go.Figure:
    """Share of steps where the drafter proposed ≥ 1 token when asked, per category, one bar group per drafter
    (``drafters.hit_rate``; only drafters that ever missed, i.e. n-gram lookups)."""
    title = "Prompt lookup: steps with a match (proposed ≥ 1 token) per category"
    missed = hits.groupby("drafter")["hit_rate"].transform("min") < 1
    if not missed.any():
        return _empty(title, "no drafter in this run ever missed (no n-gram drafter?)")
    fig = go.Figure()
    for drafter, g in hits[missed].groupby("drafter"):
        fig.add_bar(x=g["category"], y=g["hit_rate"], name=str(drafter),
                    error_y=_err(g, "hit_rate", "hit_lo", "hit_hi"),
                    customdata=g[["asked", "mean_proposal"]],
                    hovertemplate="%{x}: %{y:.2f} of %{customdata[0]} steps, mean proposal %{customdata[1]:.2f}"
                                  "<extra></extra>")
    return fig.update_layout(title=title, barmode="group", yaxis_title="hit rate", yaxis_range=[0, 1.05])


def early_exit_figure(curve: pd.DataFrame) -> go.Figure:
    """Early-exit depth L: acceptance and c = T_d/T_t(1) (left axis) against the measured speedup (right axis),
    one set of lines per policy (``drafters.early_exit_curve``)."""
    title = "Early exit: acceptance and cost c vs depth L, and the speedup they make"
    if curve.empty:
        return _empty(title, "no early-exit:L drafter in this run")
    fig = go.Figure()
    for (policy, temp), g in curve.groupby(["policy", "temperature"]):
        name = f"{policy} T={temp:g}"
        fig.add_scatter(x=g["layers"], y=g["acceptance_rate"], name=f"acceptance Σn/Σγ, {name}", mode="markers+lines")
        fig.add_scatter(x=g["layers"], y=g["c"], name=f"c = T_d/T_t(1), {name}", mode="markers+lines",
                        line=dict(dash="dot"))
        fig.add_scatter(x=g["layers"], y=g["speedup"], name=f"measured speedup, {name}", mode="markers+lines",
                        yaxis="y2", marker=dict(size=10, symbol="diamond"))
    return fig.update_layout(title=title, xaxis_title="target layers used as the draft (L)",
                             yaxis=dict(title="acceptance, c", range=[0, 1.05]),
                             yaxis2=dict(title="speedup over baseline", overlaying="y", side="right"))


def ranking_figure(rank: pd.DataFrame) -> go.Figure:
    """Measured speedup per category (``all`` first), one bar per drafter × policy (``drafters.ranking``)."""
    fig = go.Figure()
    several_t = rank["temperature"].nunique() > 1
    for (drafter, policy, temp), g in rank.groupby(["drafter", "policy", "temperature"]):
        name = f"{drafter} · {policy}" + (f" T={temp:g}" if several_t else "")
        fig.add_bar(x=g["category"], y=g["speedup"], name=name, customdata=g[["prompts", "rank"]],
                    hovertemplate="%{x}: %{y:.2f}x (rank %{customdata[1]}, %{customdata[0]} prompts)<extra></extra>")
    fig.add_hline(y=1.0, line=dict(color="grey", dash="dot"))
    return fig.update_layout(title="Measured speedup by drafter × policy, overall and per category", barmode="group",
                             yaxis_title="speedup over baseline (median per-prompt ratio)",
                             xaxis=dict(categoryorder="array", categoryarray=list(dict.fromkeys(rank["category"]))))
