"""Analysis of traces: pure functions over the trace DataFrames (docs/TRACE.md) and plotly figures.

Notebooks only call these; everything here is unit-tested on small hand-made traces with known answers.
"""
