"""The report notebooks: they execute (in-process papermill) on the sample run, the key figures they record equal
what workbench.analysis computes, the HTML pages contain plots and nothing remote, and a headless browser shows
coloured plot pixels. One report build (~20 s on 2 CPU cores) is shared by all tests of this module.

Uses the committed real run ``data/sample_run`` when present, else a synthetic run written into a temp dir.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import papermill as pm
import pytest
from trace_fixtures import write_synthetic_run

from workbench import report, trace
from workbench.analysis import acceptance, clock, explore, frames, latency, notebook, speedup
from workbench.errors import TraceError, WorkbenchError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample_run"
NOTEBOOKS = ("acceptance", "latency", "tuning")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    if (SAMPLE / "meta.json").is_file():
        return SAMPLE
    return write_synthetic_run(tmp_path_factory.mktemp("run") / "synthetic_run")


@pytest.fixture(scope="module")
def built(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    report.build_report([run_dir], out, progress=False)
    return out


def _figures(out: Path, run_dir: Path, notebook: str) -> dict:
    stem = notebook if notebook == "tuning" else f"{notebook}_{run_dir.name}"
    return json.loads((out / f"{stem}_figures.json").read_text())


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_exactly_one_parameters_cell_with_run_parameter(name):
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    params = pm.inspect_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"))
    assert any("run" in p for p in params) and "figures_out" in params
    assert all(p["help"] for p in params.values()), "every parameter needs a comment"


def test_acceptance_figures_match_analysis(built, run_dir):
    fig = _figures(built, run_dir, "acceptance")
    tr = trace.load(run_dir)
    overall = acceptance.acceptance_by(tr.steps, tr.tokens, tr.requests).iloc[0]
    for key in ("acceptance_rate", "tokens_per_step", "alpha_mle", "alpha_tv"):
        assert fig[key] == pytest.approx(overall[key])
    assert fig["steps"] == overall["steps"] > 0
    same = acceptance.greedy_agreement(tr.requests)
    assert fig["greedy_identical"] == pytest.approx(same["identical"].sum() / same["requests"].sum())
    assert run_dir != SAMPLE or fig["greedy_identical"] == 1.0  # the real float32 sample run: every output


def test_latency_figures_match_analysis(built, run_dir):
    fig = _figures(built, run_dir, "latency")
    tr = trace.load(run_dir)
    costs = latency.cost_model(tr.steps, tr.requests).as_dict()
    for key in ("t1", "t_d", "c", "a", "b"):
        assert fig[key] == pytest.approx(costs[key])
    table = speedup.speedup_table(tr.requests)
    assert sorted(fig["speedup"].values()) == pytest.approx(sorted(table["speedup"]))
    drifted = clock.drift(clock.pace(tr.steps, tr.requests))  # None under clock.PACE_MIN requests (synthetic run)
    assert fig["pace_ratio"] == (pytest.approx(drifted["ratio"]) if drifted else None)
    assert run_dir != SAMPLE or fig["pace_ratio"] < clock.DRIFTED  # the sample run's clock was steady


def test_tuning_figures_match_analysis(built, run_dir):
    fig = _figures(built, run_dir, "tuning")["rows"][0]
    tun = speedup.tuning_table(trace.combine([trace.load(run_dir)])).iloc[0]
    assert fig["optimal_gamma"] == tun["optimal_gamma"]
    assert fig["alpha"] == pytest.approx(tun["alpha"])
    assert fig["best_measured"] == pytest.approx(tun["best_measured"])


REMOTE = re.compile(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.I)


def test_html_pages_have_plots_and_nothing_remote(built):
    pages = sorted(built.glob("*.html"))
    assert {p.name for p in pages} >= {"index.html", "tuning.html"} and len(pages) == 4
    index = (built / "index.html").read_text()
    js = report.plotly_js()
    assert len(js) > 1_000_000 and not any(built.glob("*.js"))  # no script file beside the pages: each is whole
    for p in pages:
        text = p.read_text(encoding="utf-8")
        assert not REMOTE.search(text), f"{p.name} loads a remote resource"
        assert not re.search(r"<script\b[^>]*\bsrc\s*=", text, re.I), f"{p.name} loads a script file"
        if p.name != "index.html":
            assert p.name in index
            assert text.count('class="plotly-graph-div"') >= 3, p.name
            # plotly.js inlined once, before the first figure calls it
            assert text.count(js) == 1 and text.index(js) < text.index("Plotly.newPlot"), p.name
    tuning = (built / "tuning.html").read_text(encoding="utf-8")
    assert '"sliders"' in tuning and "application/vnd.jupyter.widget-view" not in tuning
    assert "Live explorer" not in tuning  # JupyterLab-only sections (widgets), headings included, are left out
    assert "t1 (ms)" in index and "b (ms per k)" in index
    # one model drafter: the per-drafter, n-gram and early-exit sections say so instead of drawing empty figures
    acc = next(p for p in pages if p.name.startswith("acceptance_")).read_text(encoding="utf-8")
    for said in ("One drafter in this run", "No n-gram drafter in this run", "No early-exit drafter in this run"):
        assert said in acc, said
    assert "Prompt lookup: steps with a match" not in acc and "Measured speedup by drafter" not in acc
    assert "Acceptance along the response, by output position" in acc  # acceptance.along_output's figure is drawn


def _png_pixels(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) into an (h, w, channels) array."""
    data, pos, idat = path.read_bytes(), 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", data[pos + 8:pos + 18])
        elif kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    bpp = {2: 3, 6: 4}[ctype]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, w * bpp + 1)
    out, prev = np.zeros((h, w * bpp), np.uint8), np.zeros(w * bpp, np.uint8)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 1:                                   # Sub: running sum per channel
            line = np.cumsum(line.reshape(w, bpp), axis=0).reshape(-1)
        elif f == 2:                                 # Up
            line = line + prev
        elif f in (3, 4):                            # Average / Paeth: sequential, plain Python
            cur, up = [0] * (w * bpp), prev.tolist()
            for i, v in enumerate(line.tolist()):
                left = cur[i - bpp] if i >= bpp else 0
                if f == 3:
                    cur[i] = (v + (left + up[i]) // 2) & 255
                else:
                    ul = up[i - bpp] if i >= bpp else 0
                    p = left + up[i] - ul
                    pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - ul)
                    cur[i] = (v + (left if pa <= pb and pa <= pc else up[i] if pb <= pc else ul)) & 255
            line = np.array(cur)
        prev = (line & 255).astype(np.uint8)
        out[y] = prev
    return out.reshape(h, w, bpp)[:, :, :3]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed: browser check skipped")
@pytest.mark.parametrize("page", ["acceptance", "latency", "tuning"])
def test_browser_renders_plots_offline(built, run_dir, page, tmp_path):
    """Each page on its own (copied alone into an empty folder, as a mailed page would be) draws its plots."""
    name = page if page == "tuning" else f"{page}_{run_dir.name}"
    alone = tmp_path / "alone" / f"{name}.html"
    alone.parent.mkdir()
    shutil.copyfile(built / f"{name}.html", alone)
    shot = tmp_path / "shot.png"
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,1600",
           "--virtual-time-budget=5000", alone.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    rgb = _png_pixels(shot).astype(int)
    # Coloured (non-grey) pixels: plotly's tinted plot area and traces; text, tables and a page whose plots failed
    # to draw are black / grey / white (checked: such a page has none).
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 12
    assert coloured.sum() > 50_000, f"{name}.html shows no plot in a browser ({coloured.sum()} coloured pixels)"


def test_bad_inputs_raise_one_line_errors(tmp_path):
    with pytest.raises(TraceError, match="no such run directory"):
        report.build_report([tmp_path / "missing"], tmp_path / "out", progress=False)
    broken = write_synthetic_run(tmp_path / "broken", gammas=(1,), prompts=1, steps=2)
    next(broken.glob("steps-*.parquet")).write_bytes(b"not parquet")
    with pytest.raises(TraceError, match="not a readable Parquet file"):
        report.build_report([broken], tmp_path / "out", progress=False)
    with pytest.raises(WorkbenchError):
        report.build_report([], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_parser():
    import argparse

    from workbench.commands import report as report_command

    parser = argparse.ArgumentParser()
    report_command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "a", "b", "--out", "rep"])
    assert args.run_dirs == [Path("a"), Path("b")] and args.func is report_command.main
    assert Path(args.out) == Path("rep")  # a Path or a checked str, as the parser's type gives it


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebooks_are_clean_sources(name):
    """The .ipynb files are the single source: no outputs, no execution counts, widgets tagged explicitly."""
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: committed with outputs"
            uses_widgets = any(f"explore.{name}(" in cell.source for name in explore.WIDGETS)
            assert uses_widgets == ("jupyterlab-only" in cell.metadata.get("tags", [])), cell.source[:60]


# ----------------------------------------------------------------------------------------- runs without a baseline
# A `workbench run` without --baseline and a sweep's speculative runs have no target-only requests; a sweep's baseline
# run has no speculative ones. Reports on them must render and say what they cannot show, never make a number up.
def _without(tr: trace.Trace, mode: str) -> trace.Trace:
    """The run with every request of ``mode`` (and its steps and tokens) removed."""
    keep = tr.requests[tr.requests["mode"] != mode]
    ids = set(keep["request_id"])
    return trace.Trace(meta=tr.meta, requests=keep.reset_index(drop=True),
                       steps=tr.steps[tr.steps["request_id"].isin(ids)].reset_index(drop=True),
                       tokens=tr.tokens[tr.tokens["request_id"].isin(ids)].reset_index(drop=True))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return trace.load(write_synthetic_run(tmp_path_factory.mktemp("syn") / "syn", prompts=2, steps=6))


def test_run_kind_helpers_and_notes(synthetic):

    spec_only, base_only = _without(synthetic, "baseline"), _without(synthetic, "speculative")
    assert notebook.has_baseline(synthetic) and notebook.has_speculative(synthetic)
    assert not notebook.has_baseline(spec_only) and notebook.has_speculative(spec_only)
    assert notebook.has_baseline(base_only) and not notebook.has_speculative(base_only)
    assert notebook.no_baseline_note([synthetic], ["/x/full"]) == ""
    assert notebook.no_baseline_note([base_only], ["/x/base"]) == ""  # nothing speculative: no speedup to miss
    assert notebook.no_baseline_note([spec_only], ["/x/mine"]) == (
        "This run has no target-only baseline, so no speedup was measured: rerun with --baseline.")
    several = notebook.no_baseline_note([synthetic, spec_only, spec_only], ["/x/full", "/x/a", "/x/b"])
    assert several.startswith("Runs a, b have no target-only baseline") and "sweep" not in several
    figures = notebook.key_acceptance(base_only)
    assert figures["steps"] == 0 and all(np.isnan(figures[k]) for k in ("acceptance_rate", "alpha_mle"))
    overall = acceptance.acceptance_by(synthetic.steps, synthetic.tokens, synthetic.requests).iloc[0]
    assert notebook.key_acceptance(synthetic)["alpha_mle"] == pytest.approx(overall["alpha_mle"])


def test_tuning_without_a_baseline_predicts_and_measures_nothing(synthetic):
    spec_only = trace.combine([_without(synthetic, "baseline")])
    fitted = speedup.fits(spec_only)
    assert fitted and speedup.with_baseline(fitted) == []
    curve = speedup.gamma_curve(fitted[0])  # was: ValueError: All-NaN slice encountered
    assert not curve["optimal"].any() and curve["predicted_position"].isna().all()
    table = speedup.tuning_table(spec_only)
    assert len(table) == len(fitted) and list(table.columns) == speedup.TUNING_COLUMNS
    assert table[["optimal_gamma", "optimal_predicted", "best_measured_gamma", "best_measured"]].isna().all().all()
    assert (table["alpha"] > 0).all()  # what needs no baseline is still there
    full = speedup.tuning_table(trace.combine([synthetic]))
    assert full["optimal_gamma"].notna().all() and full["best_measured"].notna().all()
    assert speedup.tuning_table(trace.combine([_without(synthetic, "speculative")])).empty


def test_report_plan_skips_what_a_baseline_only_run_cannot_show(synthetic, tmp_path):
    runs = [tmp_path / "baseline", tmp_path / "spec"]
    traces = [_without(synthetic, "speculative"), _without(synthetic, "baseline")]
    jobs, skipped = report._plan(runs, ["baseline", "spec"], traces)
    assert [(nb, stem) for nb, stem, _ in jobs] == [("latency", "latency_baseline"), ("acceptance", "acceptance_spec"),
                                                   ("latency", "latency_spec"), ("tuning", "tuning")]
    assert jobs[-1][2] == {"run_dirs": [str(runs[1])]}  # the tuning page compares speculative runs only
    assert [page for page, _ in skipped] == ["acceptance_baseline"] and "target-only" in skipped[0][1]
    _, skipped = report._plan(runs[:1], ["baseline"], [_without(synthetic, "speculative")])
    assert [page for page, _ in skipped] == ["acceptance_baseline", "tuning"]


def test_a_failing_notebook_names_itself_and_the_run_not_a_temp_dir(run_dir, tmp_path):
    out = tmp_path / ".rep.tmp-1" / "acceptance_x.ipynb"
    out.parent.mkdir()
    with report._this_interpreter_kernel() as kernel, pytest.raises(WorkbenchError) as err:
        report.execute("acceptance", out, {"run_dir": str(run_dir), "request_id": "no-such-request"}, kernel)
    msg = str(err.value)
    assert msg.startswith(f"acceptance notebook (notebooks/acceptance.ipynb) failed on run {run_dir}: ValueError")
    assert ".tmp-" not in msg and "no-such-request" in msg and "\n" not in msg


@pytest.fixture(scope="module")
def sweep_report(model_dirs, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny real sweep (the target, one draft, γ = 2, a baseline run) and `workbench report` on it: the sweep's
    baseline run has no speculative request and its speculative run no baseline, the two cases that failed."""
    from test_sweep import write_sweep

    from workbench.cli import main

    root = tmp_path_factory.mktemp("sweep")
    prompts = root / "prompts.jsonl"
    prompts.write_text('{"id": "a", "category": "prose", "prompt": "The quick brown fox"}\n'
                       '{"id": "b", "category": "code", "prompt": "def add(a, b):"}\n')
    grid = {"target": str(model_dirs["target"]), "draft": str(model_dirs["draft_prefix"]), "gamma": [2],
            "prompts": str(prompts), "max_new_tokens": 6, "device": "cpu"}
    path = write_sweep(root / "s.toml", grid, {"warmup": False})
    assert main(["sweep", str(path), "--out", str(root / "sw"), "--no-progress"]) == 0
    assert main(["report", str(root / "sw"), "--out", str(root / "report"), "--no-progress"]) == 0
    return root / "sw", root / "report"


def test_sweep_report_renders_every_page_and_says_what_it_skipped(sweep_report):

    sw, out = sweep_report
    assert {p.name for p in out.glob("*.html")} == {"index.html", "latency_baseline.html", "acceptance_spec.html",
                                                    "latency_spec.html", "tuning.html"}
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "acceptance_baseline: not built" in index and "target-only baseline run" in index
    assert "1 speculative runs compared" in index and "href='acceptance_spec.html'" in index
    cross = "Run spec is a sweep's run: its speedups divide by the sweep's baseline run sw/runs/baseline"
    for page in ("acceptance_spec", "latency_spec", "tuning"):  # each says what it divides by, none lacks it
        text = html.unescape((out / f"{page}.html").read_text(encoding="utf-8"))
        assert cross in text and "ratios across two runs" in text and "no target-only baseline" not in text, page
        assert text.count('class="plotly-graph-div"') >= 3, page
    assert notebook.BASELINE_ONLY in (out / "latency_baseline.html").read_text(encoding="utf-8")


def test_sweep_report_pages_measure_what_the_sweep_comparison_measures(sweep_report):
    """A sweep's speculative run is paired with the sweep's baseline run on its pages as in the comparison: the same
    speedup, from real requests of both runs; and its greedy outputs are the baseline run's, token for token."""
    from workbench import sweep_report as sweep_pages

    sw, out = sweep_report
    spec = trace.load(sw / "runs" / "spec")
    compared = sweep_pages.comparison(sw)[0].set_index("run").loc["spec", "speedup"]
    assert np.isfinite(compared) and compared > 0
    fig = json.loads((out / "acceptance_spec_figures.json").read_text())
    overall = acceptance.acceptance_by(spec.steps, spec.tokens, spec.requests).iloc[0]
    assert fig["steps"] == overall["steps"] > 0 and fig["alpha_mle"] == pytest.approx(overall["alpha_mle"])
    assert fig["greedy_identical"] == 1.0  # float32 greedy: identical to the baseline run's outputs
    (row,) = json.loads((out / "tuning_figures.json").read_text())["rows"]
    assert row["alpha"] == pytest.approx(overall["alpha_mle"])  # one constant γ: the fit's α is the run's
    assert row["best_measured_gamma"] == 2 and row["best_measured"] == pytest.approx(compared)
    assert np.isfinite(row["optimal_predicted"]) and 1 <= row["optimal_gamma"] <= 16
    speed = json.loads((out / "latency_spec_figures.json").read_text())["speedup"]
    assert list(speed.values()) == pytest.approx([compared])


@pytest.mark.parametrize("case", ["baseline-running", "no-baseline-planned", "manifest-corrupt"])
def test_a_sweep_run_without_a_usable_baseline_run_says_why(sweep_report, tmp_path, case):
    sw = tmp_path / "sw"
    shutil.copytree(sweep_report[0], sw)
    manifest = json.loads((sw / "manifest.json").read_text())
    for row in manifest["runs"]:
        if case == "baseline-running" and row["kind"] == "baseline":
            row["state"] = "running"
        if case == "no-baseline-planned":
            row["baseline"] = None
    (sw / "manifest.json").write_text("{not json" if case == "manifest-corrupt" else json.dumps(manifest))
    tr, said, _ = notebook.load_run(sw / "runs" / "spec")
    assert not notebook.has_baseline(tr)  # nothing divides by a run that cannot be used
    missing = notebook.no_baseline_note([tr], [sw / "runs" / "spec"])
    if case == "baseline-running":
        assert said == (f"Run spec: its sweep's baseline run cannot be used, so nothing divides by it: "
                        f"{sw / 'runs' / 'baseline'}: the sweep's baseline run of spec is not finished (running); "
                        f"`workbench sweep {sweep_report[0].parent / 's.toml'} --out {sw}` finishes it.")
        assert missing.endswith("no speedup was measured: its sweep's baseline run could not be used (the note "
                                "above says why).")
    elif case == "manifest-corrupt":  # said as `replay` says it, not taken for an ordinary run
        assert said.startswith(f"Run spec: its sweep's baseline run cannot be used, so nothing divides by it: "
                               f"{sw / 'manifest.json'}: not a sweep manifest"), said
    else:
        assert said == ""
        assert missing == (
            "This run has no target-only baseline, so no speedup was measured: set `baseline = true` (a baseline run "
            "to divide by) or `baseline = \"interleaved\"` (each run measures its own) in the sweep file and run the "
            "sweep into a new --out.")
    assert notebook.load_run(sw / "runs" / "baseline")[1] == ""  # a baseline run is itself: nothing added


def test_the_clock_of_a_sweep_s_run_and_of_its_baseline_run_are_read_apart(sweep_report, monkeypatch):
    """Each run's clock on its own steps: the baseline run's many one-token steps must not dilute the run's share
    of stalled draft times (nor its stalls the baseline run's), and the wording says the ratios are cross-run."""
    monkeypatch.setattr(clock, "DISTURBED", 0.0)  # every clock "disturbed": the note says whose
    _, _, said = notebook.load_run(sweep_report[0] / "runs" / "spec")
    own, base = said.split(" The clock of the sweep's baseline run sw/runs/baseline was disturbed")
    assert own.startswith("The clock of this run was disturbed") and "run next to it" not in said
    assert "measured in another run (a sweep's) move with a disturbance of either run" in own and base
    spec = trace.load(sweep_report[0] / "runs" / "spec")
    worst = clock.spikes(spec.steps, spec.requests).set_index("phase")["share"]  # the run's own steps only
    assert f"{worst.max():.0%} of its {worst.idxmax()} times" in own
    # the pace figure reads the run's own requests too, not those of the baseline run the page divides by
    paired_trace, paired, _ = notebook.load_run(sweep_report[0] / "runs" / "spec")
    assert (frames.measured_requests(paired_trace.requests)["mode"] == "baseline").any() and paired
    own = frames.measured_requests(notebook.own_requests(paired_trace, paired))
    assert set(own["request_id"]) == set(frames.measured_requests(spec.requests)["request_id"])


def test_runs_paired_with_one_sweep_baseline_run_share_one_note(sweep_report, tmp_path):
    sw = tmp_path / "sw"
    shutil.copytree(sweep_report[0], sw)
    shutil.copytree(sw / "runs" / "spec", sw / "runs" / "spec2")  # a second run of the same settings
    manifest = json.loads((sw / "manifest.json").read_text())
    manifest["runs"].append({**next(r for r in manifest["runs"] if r["name"] == "spec"), "name": "spec2"})
    (sw / "manifest.json").write_text(json.dumps(manifest))
    traces, said, _ = notebook.load_runs([sw / "runs" / "spec", sw / "runs" / "spec2"])
    assert said.startswith("Runs spec, spec2 are a sweep's runs: their speedups divide by the sweep's baseline run "
                           "sw/runs/baseline (") and said.count("baseline run sw/runs/baseline") == 1, said
    assert all(notebook.has_baseline(t) for t in traces)


def test_the_per_run_sections_of_a_page_over_several_runs_name_the_run_they_show(synthetic):
    spec_only = _without(synthetic, "baseline")
    assert notebook.first_run_note([synthetic], ["/x/a"], synthetic) == ""
    note = notebook.first_run_note([spec_only, synthetic], ["/x/a", "/x/b"], synthetic)
    assert note.startswith("This section looks at run b only, the first speculative run given (2 runs on this page)")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_key_figure_a_page_records_says_what_it_means(built, run_dir, name):
    """A newcomer reads "o_spec 0.45" on the page: each recorded figure is shown with its meaning, and a figure
    added to a page without one fails here."""
    import pandas as pd

    fig = _figures(built, run_dir, name)
    keys = pd.json_normalize(fig.get("rows") or [fig], sep=" ").columns
    assert len(keys) and [k for k in keys if not notebook.meaning(k)] == []
    page = (built / (f"{name}.html" if name == "tuning" else f"{name}_{run_dir.name}.html")).read_text()
    assert all(html.escape(notebook.meaning(k), quote=False) in page for k in keys)
    index = (built / "index.html").read_text(encoding="utf-8")  # its table's headings say it on hover
    assert name != "latency" or all(f"<th title='{html.escape(notebook.meaning(k))}'>{html.escape(k)}" in index
                                    for k in ("t1", "c", "pace_ratio"))
