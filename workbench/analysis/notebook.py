"""What the report notebooks call besides the analysis functions: showing figures, picking the request to show,
recording key figures (the way recommenders keeps ``store_metadata`` in its library, not in notebooks), and saying
what a run cannot show (``has_baseline`` / ``has_speculative``, ``no_baseline_note``, ``note``).

Figures are displayed as a bundle of plotly's JSON (JupyterLab renders it interactively) and an HTML ``<div>``
that expects ``window.Plotly``: ``workbench report`` ships plotly.js once per report directory and every page loads
it from there, so pages stay small and render with no network.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from workbench.analysis import frames
from workbench.drafters import kind_of
from workbench.sweep import manifest_row
from workbench.trace import Trace

PLOTLY_MIME = "application/vnd.plotly.v1+json"
# What a target-only baseline run (a sweep's, docs/SWEEP.md) cannot show, said once at the top of its page.
NO_SPECULATIVE = ("This run has no speculative request (a target-only baseline run): nothing was drafted, so there "
                  "is no acceptance to show.")
BASELINE_ONLY = ("This run has no speculative request (a target-only baseline run): the page shows the target's own "
                 "step costs and latency; nothing was drafted, so there is no speedup or gap to the prediction.")


def show(fig) -> None:
    """Display a plotly figure without embedding plotly.js (``workbench report`` adds it once per report)."""
    from IPython.display import display

    html = fig.to_html(include_plotlyjs=False, full_html=False, config={"displaylogo": False})
    display({PLOTLY_MIME: json.loads(fig.to_json()), "text/html": html}, raw=True)


NAN_MEANS = "not measured in this run (no such steps, or no baseline to divide by)"  # what a NaN says, by default


def show_table(frame: pd.DataFrame, rows: int = 40, nan_means: str = NAN_MEANS) -> None:
    """Display at most ``rows`` rows of a table, saying how many were left out and what a NaN in it means."""
    from IPython.display import display

    display(frames.head_rows(frame, rows))
    if len(frame) > rows:
        print(f"… {len(frame) - rows} more rows (the full table is a DataFrame in the notebook)")
    if frame.isna().to_numpy().any():
        print(f"NaN: {nan_means}.")


def shown_request(trace: Trace, request_id: str = "") -> str:
    """``request_id`` if given, else the first measured speculative request (else the first request at all)."""
    if request_id:
        if request_id not in set(trace.requests["request_id"]):
            raise ValueError(f"request {request_id!r} is not in this run")
        return request_id
    req = frames.measured_requests(trace.requests)
    spec = req[req["mode"] == "speculative"]["request_id"]
    return str(spec.iloc[0] if len(spec) else trace.requests["request_id"].iloc[0])


# What each key figure a page records means, shown beside it (the JSON keeps the bare numbers; index.html adds units).
MEANINGS = {
    "drafter": "whose costs these are: the one drafter, or pooled over several",
    "t1": "T_t(1), ms: the target's forward over one token (baseline steps)",
    "t_d": "T_d, ms: draft time per drafted token",
    "a": "verify line T_t(k) = a + b·k: a, ms",
    "b": "verify line T_t(k) = a + b·k: b, ms per token of the target's forward",
    "o_spec": "ms per speculative step outside draft and verify (sampling, acceptance, rollback, recorder)",
    "o_base": "ms per baseline step outside the target's forward",
    "prefill_spec": "mean TTFT of speculative requests, ms (both models' prefills)",
    "prefill_base": "mean TTFT of baseline requests, ms",
    "new_tokens": "mean tokens generated per measured request",
    "has_baseline": "whether the run measured a target-only baseline (every speedup divides by it)",
    "c": "c = T_d ÷ T_t(1), Leviathan's cost coefficient",
    "pace_ratio": "slowest ÷ fastest stretch of the machine's pace over the run (≥ 1.4 warns; None: too few requests)",
    "speedup": "measured: median over prompts of baseline ÷ speculative ms/token",
    "acceptance_rate": "Σn ÷ Σγ over the speculative decode steps",
    "tokens_per_step": "τ = mean of n + 1 over the speculative decode steps",
    "alpha_mle": "α of the i.i.d. model: accepted ÷ judged drafts",
    "alpha_tv": "mean Σ min(p, q) over judged drafts (greedy: how close q came to p)",
    "steps": "speculative decode steps counted",
    "greedy_identical": "share of greedy outputs identical to target-only greedy (nan: no greedy pair to compare)",
    "run_id": "the run", "temperature": "sampling temperature (0 = greedy)",
    "alpha": "α of the i.i.d. model over the constant-γ steps",
    "optimal_gamma": "the constant γ the per-position model predicts fastest (a prediction)",
    "optimal_predicted": "its predicted speedup",
    "best_measured_gamma": "the constant γ measured fastest in the run",
    "best_measured": "its measured speedup",
}


def meaning(key: str) -> str:
    """What a recorded key figure means (``MEANINGS``; a flattened key, "speedup <drafter> <policy> T=0", by its
    first word); "" for a key it does not know."""
    return MEANINGS.get(key) or MEANINGS.get(key.split(" ")[0], "")


def record(key_figures: dict, figures_out: str = "") -> None:
    """Show the key figures as a table, each with what it means (``meaning``), and, when ``figures_out`` is set,
    write them as JSON for tests and the report index."""
    from IPython.display import display

    rows = key_figures.get("rows") or [key_figures]
    table = pd.json_normalize(rows, sep=" ").T
    table.columns = [f"{i + 1}" for i in range(table.shape[1])] if len(rows) > 1 else ["key figure"]
    table["meaning"] = [meaning(str(k)) for k in table.index]
    display(table.style.format(lambda v: f"{v:.4g}" if isinstance(v, float) else v)
            .set_properties(subset=["meaning"], **{"text-align": "left"}))
    if figures_out:
        Path(figures_out).write_text(json.dumps(key_figures, indent=2, default=float) + "\n")


def speculative_drafters(trace: Trace) -> list[str]:
    """The drafters the run measured speculative requests with, in the order they first ran."""
    req = frames.measured_requests(trace.requests)
    return list(dict.fromkeys(req.loc[req["mode"] == "speculative", "drafter"]))


def drafter_count(trace: Trace) -> int:
    """How many drafters the run measured speculative requests with."""
    return len(speculative_drafters(trace))


def drafters_label(trace: Trace) -> str:
    """Whose costs a run-wide cost model holds: the one drafter, or "pooled: a, b" (empty for a baseline-only run)."""
    names = sorted(speculative_drafters(trace))
    return names[0] if len(names) == 1 else ("pooled: " + ", ".join(names) if names else "")


def main_drafter(trace: Trace) -> str:
    """The drafter the policy sections look at: the first model drafter of the run (else the first drafter)."""
    drafters = speculative_drafters(trace)
    models = [d for d in drafters if kind_of(d) == "model"]
    return (models or drafters or [""])[0]


def show_settings(rec) -> None:
    """The recommended setting (``policies.Recommendation``): the policy, its live speedup with its interval, why it
    was chosen, and one line per engine in the syntax users paste."""
    from IPython.display import HTML, display

    rows = "".join(f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(v)}</code></td></tr>"
                   for k, v in rec.settings.items())
    display(HTML(f"<p><b>Recommended: <code>{html.escape(rec.spec)}</code></b>, measured {rec.speedup:.3f}x "
                 f"(95 % interval {rec.lo:.3f}–{rec.hi:.3f}): {html.escape(rec.why)}.</p><table>{rows}</table>"))


def key_acceptance(trace: Trace) -> dict:
    """The acceptance page's key figures, pooled over the run's speculative decode steps
    (``acceptance.acceptance_by``); NaN with 0 steps when nothing was drafted (a baseline-only run); and the share
    of greedy outputs identical to target-only greedy (``acceptance.greedy_agreement``; NaN without a pair)."""
    from workbench.analysis import acceptance

    pooled = acceptance.acceptance_by(trace.steps, trace.tokens, trace.requests)  # no row without speculative steps
    keys = ("acceptance_rate", "tokens_per_step", "alpha_mle", "alpha_tv")
    same = acceptance.greedy_agreement(trace.requests)  # share of greedy outputs equal to target-only greedy
    identical = float(same["identical"].sum() / same["requests"].sum()) if len(same) else float("nan")
    if not len(pooled):
        return {**dict.fromkeys(keys, float("nan")), "steps": 0, "greedy_identical": identical}
    row = pooled.iloc[0]
    return {**{k: float(row[k]) for k in keys}, "steps": int(row["steps"]), "greedy_identical": identical}


def has_requests(trace: Trace, mode: str) -> bool:
    """Whether the run measured a request of ``mode`` (``"baseline"`` or ``"speculative"``; warm-ups never count)."""
    return bool((frames.measured_requests(trace.requests)["mode"] == mode).any())


def has_baseline(trace: Trace) -> bool:
    """Whether the run measured target-only requests: every measured speedup (and every prediction of one, which
    needs the target-only cost) divides by them. A sweep's speculative runs have none (their baseline is another
    run of the sweep); neither has a ``workbench run`` without ``--baseline``."""
    return has_requests(trace, "baseline")


def has_speculative(trace: Trace) -> bool:
    """Whether the run measured speculative requests (a sweep's baseline run has none: nothing was drafted)."""
    return has_requests(trace, "speculative")


def load_run(run_dir) -> tuple[Trace, str, str]:
    """A report page's trace of ``run_dir``, a note on what its speedups divide by and a note on its clock ("" when
    there is nothing to say).

    A sweep's speculative run has no baseline of its own: its sweep's baseline run measured the same prompts
    (``sweep_report.baseline_run``, the pairing the sweep comparison uses). Its measured baseline requests are added
    (``replay.with_baseline``), so the page measures and predicts speedups as the sweep comparison does; the note
    says these are ratios across two runs. A baseline run that cannot be used (not finished, lacking a prompt, a
    manifest that cannot be read) leaves the run as it is, and the note says why. The clock note looks at each run
    on its own (``clock.clock_note``): the run, and the baseline run it divides by."""
    (tr,), paired, clock = load_runs([run_dir])
    return tr, paired, clock


def load_runs(run_dirs: list) -> tuple[list[Trace], str, str]:
    """``load_run`` of every run, with one pairing note (a sentence per baseline run divided by, naming it as
    SWEEP/runs/NAME) and one clock note for all of them."""
    from workbench.analysis.clock import clock_note

    loaded = [_paired(d) for d in run_dirs]
    bases: dict[Path, tuple[Trace, list[str]]] = {}
    for d, (_, _, base, base_trace, _) in zip(run_dirs, loaded):
        if base is not None:
            bases.setdefault(base, (base_trace, []))[1].append(Path(d).name)
    label = lambda base: f"{base.parent.parent.name}/runs/{base.name}"  # noqa: E731
    paired = [(f"Run {names[0]} is a sweep's run: its speedups divide" if len(names) == 1 else
               f"Runs {', '.join(names)} are a sweep's runs: their speedups divide") +
              f" by the sweep's baseline run {label(base)} (the same prompts, target and settings, measured in "
              "another run on this machine, not interleaved prompt by prompt): ratios across two runs, as in the "
              "sweep comparison." for base, (_, names) in bases.items()]
    named = lambda d: "this run" if len(run_dirs) == 1 else f"run {Path(d).name}"  # noqa: E731
    clocks = [clock_note(raw.steps, raw.requests, named(d), base is None and has_baseline(raw))
              for d, (_, raw, base, _, _) in zip(run_dirs, loaded)]
    clocks += [clock_note(t.steps, t.requests, f"the sweep's baseline run {label(base)}", False)
               for base, (t, _) in bases.items()]
    return ([page for page, *_ in loaded], " ".join(paired + [why for *_, why in loaded if why]),
            " ".join(c for c in clocks if c))


def _paired(run_dir) -> tuple[Trace, Trace, Path | None, Trace | None, str]:
    """(the page's trace, the run's own, the sweep's baseline run added to it and its trace, or None and None, and
    why none could be added or "")."""
    from workbench import trace as traces
    from workbench.analysis.replay import with_baseline
    from workbench.errors import WorkbenchError
    from workbench.sweep import MANIFEST
    from workbench.sweep_report import baseline_run

    raw, where = traces.load(run_dir), Path(run_dir).resolve()
    in_sweep = where.parent.name == "runs" and (where.parent.parent / MANIFEST).is_file()
    if not has_speculative(raw) or has_baseline(raw) or not in_sweep:
        return raw, raw, None, None, ""
    try:
        base = baseline_run(run_dir)  # reads the manifest strictly: one that cannot be read is said so
        if base is None:  # the sweep ran no baseline (baseline = false): no_baseline_note says so
            return raw, raw, None, None, ""
        base_trace = traces.load(base)
        return with_baseline(raw, base_trace, str(base)), raw, base, base_trace, ""
    except WorkbenchError as exc:
        return raw, raw, None, None, (f"Run {Path(run_dir).name}: its sweep's baseline run cannot be used, so "
                                      f"nothing divides by it: {str(exc).removeprefix('replay: ')}.")


def own_requests(tr: Trace, paired: str) -> pd.DataFrame:
    """The requests of the run itself: a sweep's run's page (``paired`` says so) holds its sweep's baseline run's
    requests too (``load_run``), measured at another time, which a reading of the run's clock must leave out."""
    return tr.requests[tr.requests["mode"] == "speculative"] if paired else tr.requests


def first_run_note(traces: list[Trace], run_dirs: list, first: Trace) -> str:
    """With several runs: which one the per-run sections (ranking, policies, setting to use) look at; "" else."""
    if len(traces) < 2:
        return ""
    name = next(Path(d).name for t, d in zip(traces, run_dirs) if t is first)
    return (f"This section looks at run {name} only, the first speculative run given ({len(traces)} runs on this "
            "page); the other runs' speedups are in the tables above and, for a sweep, in the comparison on the "
            "report's index page.")


def no_baseline_note(traces: list[Trace], run_dirs: list) -> str:
    """One sentence naming the speculative runs that have no target-only baseline (so no measured speedup), with
    what to do; "" when every one has its baseline. ``run_dirs``: the directories the traces were loaded from."""
    missing = [Path(d) for t, d in zip(traces, run_dirs) if has_speculative(t) and not has_baseline(t)]
    if not missing:
        return ""
    names = [d.name for d in missing]
    if len(traces) == 1:
        who = "This run has"
    else:
        who = f"Runs {', '.join(names)} have" if len(names) > 1 else f"Run {names[0]} has"
    rows = [manifest_row(d) for d in missing]  # a sweep's run: its remedy is in the sweep (load_run says which)
    if all(rows):
        fix = ("its sweep's baseline run could not be used (the note above says why)" if any(r.get("baseline")
               for r in rows) else "set `baseline = true` (a baseline run to divide by) or "
               "`baseline = \"interleaved\"` (each run measures its own) in the sweep file and run the sweep into a "
               "new --out")
    else:
        fix = "rerun with --baseline" + (" (a sweep's run: `baseline = true` in the sweep file)" if any(rows) else "")
    return f"{who} no target-only baseline, so no speedup was measured: {fix}."


def note(text: str) -> None:
    """Show a one-paragraph note in the page (nothing when ``text`` is empty): what a section cannot show and why."""
    from IPython.display import HTML, display

    if text:
        display(HTML(f"<p class='wb-note' style='border-left:4px solid #f08c00;padding:4px 10px'>"
                     f"<b>Note:</b> {html.escape(text)}</p>"))
