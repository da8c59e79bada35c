"""benchmarks/compare_hf.py on the tiny models: HF assisted generation and our loop give the same greedy output,
and our constant / heuristic policies reproduce HF's draft length step for step."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from workbench.drafters import parse_drafter
from workbench.pair import load_pair
from workbench.prompts import load_prompts

_spec = importlib.util.spec_from_file_location(
    "compare_hf", Path(__file__).resolve().parent.parent / "benchmarks" / "compare_hf.py")
compare_hf = sys.modules["compare_hf"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_hf)


def test_hf_parity_constant_and_heuristic(model_dirs, prompts_file):
    spec = parse_drafter(str(model_dirs["draft_prefix"]))
    pair = load_pair(target=str(model_dirs["target"]), drafts=[spec], device="cpu", dtype="float32")
    prompts = [(p.id, pair.encode(p.prompt)) for p in load_prompts(prompts_file)]
    plist = [p for p in compare_hf.pairings(gamma=3, heuristic_start=2, threshold=0.4, gmax=16) if p.check_gamma]
    assert [p.name for p in plist] == ["constant", "heuristic"]
    comparison = compare_hf.Comparison(pair, spec.label, max_new_tokens=20)
    results = comparison.run(prompts, plist, repeats=1, warmup=False)
    for p in plist:
        res = results[p.name]
        assert res.identical == len(prompts) and not res.different, p.name
        assert res.gamma_checked == len(prompts), p.name
        assert res.gamma_mismatch == {}, (p.name, res.gamma_mismatch)
        # the check has something to check: several steps per prompt, and the heuristic moves away from its start
        steps = [ours for ours, _ in res.raw_steps.values()]
        assert all(len(s) >= 3 for s in steps)
        if p.name == "heuristic":
            assert {g for s in steps for g, _ in s} - {2}


def test_hf_steps_from_target_calls():
    # prompt of 5; HF's first call: prompt + 3 candidates (1 accepted), then [last, 3 candidates] (all accepted),
    # then [last, 2 candidates] (budget), ending at 5 + 2 + 4 + 2 = 13 tokens
    calls = [(8, 0), (4, 6), (3, 10)]
    assert compare_hf.hf_steps(calls, prompt_len=5, final_len=13) == [(3, 1), (3, 3), (2, 1)]
