"""Analysis of traces: pure functions over the trace DataFrames (docs/TRACE.md) and plotly figures.

frames (what counts, request settings on steps) → acceptance, latency (CostModel) → theory, speedup, replay →
summary; figures and explore draw what those return; notebook holds the helpers the report notebooks call.
Notebooks only call these. Tested on small hand-made traces with known answers (tests/test_analysis.py,
tests/test_figures.py, tests/test_replay.py).
"""
