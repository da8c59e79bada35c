"""Speculative decoding workbench: real speculative generation, per-step traces, analysis reports.

Notation used everywhere (Leviathan et al. 2023; HF transformers): p = target distribution, q = draft distribution,
gamma (γ) = tokens drafted per step, n = drafted tokens accepted in a step.
"""

__version__ = "0.1.0"
