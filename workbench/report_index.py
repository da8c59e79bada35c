"""The report's index.html: per run, what was measured and the answer per setting; links to every page; the
pages not built (and why); the key figures each notebook recorded (``*_figures.json``), one row per page."""

from __future__ import annotations

import html
from pathlib import Path

from workbench import trace


def headline(traces: list[trace.Trace], names: list[str], run_dirs: list[Path]) -> str:
    """Per run: what was measured (models, device, date) and the answer per setting (summary.summary_table)."""
    from workbench.analysis.clock import clock_note
    from workbench.analysis.notebook import has_baseline, has_speculative
    from workbench.analysis.summary import summary_table
    from workbench.sweep import manifest_row, own_baseline

    parts = []
    for t, name, d in zip(traces, names, run_dirs):
        row = manifest_row(d)  # a sweep's run: its speedups divide by the sweep's baseline run, another run
        models, env = t.meta.get("models", {}), t.meta.get("environment", {})
        size = lambda m: f"{m['parameters'] / 1e6:.1f}M" if m else "-"  # noqa: E731
        drafts = ", ".join(f"{k} {size(v)}" for k, v in (models.get("drafts") or {}).items()) or "none"
        about = (f"target {size(models.get('target'))} params, draft models: {drafts}, "
                 f"{models.get('dtype', '?')} on {env.get('device_name', env.get('device', '?'))}, "
                 f"created {t.meta.get('created', '?')}")
        if not has_speculative(t):  # a sweep's baseline run: nothing speculative to summarise
            table = "<p>Target-only baseline run: no speculative setting to summarise.</p>"
        else:
            table = ("<div style='overflow-x:auto'>"  # a wide table scrolls in its box, not the whole page
                     + summary_table(t).to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0,
                                                classes="wb") + "</div>")
            if not has_baseline(t):
                table += ("<p>No target-only baseline in this run: its speedup divides by its sweep's baseline run "
                          f"{html.escape(str(row['baseline']))} (the sweep comparison on this page, and its pages: "
                          "ratios across two runs).</p>" if row and row.get("baseline") else
                          "<p>No target-only baseline in this run, so no speedup was measured in it.</p>")
        in_run = row is None or own_baseline(row.get("point") or {})  # a sweep's baseline run: others divide by it
        disturbed = clock_note(t.steps, t.requests, interleaved=in_run and has_baseline(t))
        if disturbed:
            table += f"<p class='wb-note'><b>Warning:</b> {html.escape(disturbed)}</p>"
        parts.append(f"<h2>{html.escape(name)} <small>run {html.escape(str(t.meta.get('run_id')))}</small></h2>"
                     f"<p>{html.escape(about)}<br>{html.escape(workload(t))}</p>{table}")
    return "".join(parts)


def workload(t: trace.Trace) -> str:
    """What the run decoded, from its recorded settings: the prompt set and how many prompts, the token budget,
    and how the prompts reached the models (as they are, or through the chat template with any system message)."""
    from workbench.runner import recorded_config

    cfg = recorded_config(t.meta.get("config") or {})
    prompts = t.requests.loc[~t.requests["warmup"], "prompt_id"].nunique() if len(t.requests) else 0
    budget = f"{cfg['max_new_tokens']} new tokens" + (" each (EOS ignored)" if cfg["ignore_eos"] else
                                                       " at most (EOS ends a request)")
    given, system = "as they are", cfg["system_prompt"]
    if cfg["chat_template"]:
        system = system if len(system) <= 80 else system[:79] + "…"  # meta.json holds it whole
        given = "through the target's chat template" + (f", after the system message {system!r}" if system else "")
    return f"prompts {Path(str(cfg['prompts'])).name}: {prompts} prompts, {budget}, given to the models {given}"


# Units of the key figures in index.html's table (the notebooks record the bare numbers).
UNITS = {**dict.fromkeys(("t1", "t_d", "a", "o_spec", "o_base", "prefill_spec", "prefill_base"), " (ms)"),
         "b": " (ms per k)"}


def _fmt(v) -> str:
    """A key figure in the index table: floats to 3 decimals, NaN (not measured, e.g. no baseline) as a dash."""
    if isinstance(v, float):
        return "–" if v != v else f"{v:.3f}"
    return html.escape(str(v))


def write_index(out_dir: Path, pages: list[tuple[str, str, str]], headline: str, summary: list[dict],
                skipped: list[tuple[str, str]] = ()) -> Path:
    """index.html: the headline per run, links to every page, the pages not built (and why), and the key figures
    each notebook recorded."""
    from workbench.analysis.notebook import meaning

    cols = sorted({k for row in summary for k in row}, key=lambda k: (k != "page", k))
    head = "".join(f"<th title='{html.escape(meaning(c))}'>{html.escape(c + UNITS.get(c, ''))}</th>" for c in cols)
    rows = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in summary)
    links = "".join(f'<li><a href="{html.escape(f)}">{html.escape(t)}</a> — {html.escape(d)}</li>'
                    for f, t, d in pages)
    links += "".join(f"<li class='skipped'>{html.escape(t)}: not built — {html.escape(why)}</li>"
                     for t, why in skipped)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Workbench report</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1200px}td,th{border:1px solid #ccc;padding:2px 8px}"
            "table{border-collapse:collapse}small{color:#666;font-weight:normal}</style></head><body>"
            "<h1>Speculative decoding report</h1><p>Measured speedup = per-prompt median of baseline ÷ speculative "
            "ms/token, both measured in the same run (for a sweep's run without its own baseline, the baseline is "
            "its sweep's baseline run: a ratio across two runs); acceptance rate = Σn/Σγ; tokens per step τ = "
            "mean(n+1); "
            "drafter · policy name a setting; spec_ms_per_token, base_ms_per_token: medians over requests (their "
            "ratio is not the speedup); greedy_identical = share of greedy outputs token for token equal to the "
            "baseline's (1 in float32, barring exact ties).</p>"
            f"{headline}<h2>Pages</h2><ul>{links}</ul><h2>Key figures recorded by each page</h2>"
            f"<div style='overflow-x:auto'><table><tr>{head}</tr>{rows}</table></div>"
            "<p>Costs (ms, means over decode steps without the stalls, docs/SPEEDUP_MODEL.md): t1 = T_t(1), a target "
            "forward over one token; t_d = draft time per drafted token; c = t_d / t1; a + b·k = the verify line "
            "T_t(k); o_spec / o_base = other time per speculative / baseline step; prefill_* = time to first token. "
            "The latency page's costs pool every drafter of its run (its <i>drafter</i> column says whose); the "
            "tuning rows are per drafter. The acceptance page's figures (acceptance_rate, tokens_per_step, alpha_mle, "
            "alpha_tv, steps) pool every drafter and policy of its run; per setting they are in the table above.</p>"
            "<p>How to read the pages: docs/REPORTS.md in the workbench repository.</p></body></html>")
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def flat(page: str, figures: dict) -> dict:
    """One summary row of scalar key figures (nested values such as per-γ speedups are flattened)."""
    row = {"page": page}
    for k, v in figures.items():
        if isinstance(v, dict):
            row.update({f"speedup {kk}": vv for kk, vv in v.items()})
        elif isinstance(v, (int, float, str)) and not isinstance(v, bool):
            row[k] = v
    return row
