"""The workbench's loop against Hugging Face assisted generation: speed, greedy outputs and γ per step.

Prints figures; nothing here asserts a speed. Three pairings, HF ``model.generate(assistant_model=draft)`` vs ours:

* HF ``num_assistant_tokens=G``, schedule ``constant``, no confidence stop      vs ``constant:G``
* HF ``num_assistant_tokens=G0``, schedule ``heuristic``, no confidence stop    vs ``heuristic:G0``
* HF ``num_assistant_tokens=GMAX``, ``constant``, ``assistant_confidence_threshold=P``  vs ``threshold:P:GMAX``

    python benchmarks/compare_hf.py                              # default pair, held-out prompts
    python benchmarks/compare_hf.py --per-category 1 --max-new-tokens 16
    python benchmarks/compare_hf.py --tiny                       # random tiny Llama + its first layer (seconds)

Method: one process, the same loaded models for both; requests alternate HF / ours prompt by prompt (the order
rotated from prompt to prompt) after one discarded warm-up round; tokens/s include the prefill, the same
``max_new_tokens`` and the same EOS ids; medians over requests, compared as ratios. Draft length, schedule and
threshold reach HF through ``assistant_model.generation_config`` (transformers 5.x reads them there), set afresh
before every call (HF writes the heuristic's last value back into it at the end of a call, so without the reset each
request would start where the previous one ended; our ``heuristic`` restarts at G0).

γ per step: HF's are read with a forward pre-hook on the target (input length and cache length of each call), ours
from the loop's step events. HF 5.x has no target-only prefill: its first target call runs the prompt *and* the
first draft, drafted from the prompt alone; our loop prefills the target first (step 0 emits the first token) and
drafts from prompt + first token. The two step sequences are therefore offset by one token and are printed side by
side only as information ("raw"). The step-for-step check ("aligned") reruns HF, untimed, on prompt + our first
token with ``max_new_tokens − 1``: then both loops see the same context and budget at every step, and their γ must
agree exactly.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from workbench import paths
from workbench.config import RunConfig
from workbench.decoding import Decoding, generate_speculative
from workbench.drafters import parse_drafter
from workbench.drafters.model import ModelDrafter
from workbench.errors import WorkbenchError
from workbench.pair import ModelPair, load_pair
from workbench.policies import parse_policy
from workbench.prompts import load_prompts
from workbench.recorder import StepEvent
from workbench.session import encode_prompt

TINY_PROMPTS = ["The quick brown fox", "def add(a, b):", "A speculative decoder drafts",
                "the target verifies them in one pass."]


@dataclass(frozen=True)
class Pairing:
    name: str
    ours: str  # our policy spec
    num_assistant_tokens: int
    schedule: str  # HF num_assistant_tokens_schedule
    threshold: float  # HF assistant_confidence_threshold (0 = off)
    check_gamma: bool  # assert-worthy step-for-step γ check


def pairings(gamma: int, heuristic_start: int, threshold: float, gmax: int) -> list[Pairing]:
    return [Pairing("constant", f"constant:{gamma}", gamma, "constant", 0.0, True),
            Pairing("heuristic", f"heuristic:{heuristic_start}", heuristic_start, "heuristic", 0.0, True),
            Pairing("threshold", f"threshold:{threshold:g}:{gmax}", gmax, "constant", threshold, False)]


class StepLog:
    """A recorder keeping only each step's γ and n (step 0, the prefill, excluded)."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, int]] = []

    def on_step(self, event: StepEvent) -> None:
        if event.step:
            self.steps.append((event.gamma, event.n_accepted))


class TargetCalls:
    """A forward pre-hook on the target: (input tokens, cached tokens) of every call while ``active``."""

    def __init__(self, model) -> None:
        self.calls: list[tuple[int, int]] = []
        self.active = False
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        if not self.active:
            return None
        ids = kwargs.get("input_ids")
        if ids is None:
            ids = args[0] if args else kwargs["inputs_embeds"]
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        self.calls.append((int(ids.shape[1]), cache.get_seq_length() if cache is not None else 0))
        return None

    def take(self) -> list[tuple[int, int]]:
        calls, self.calls = self.calls, []
        return calls


def hf_steps(calls: list[tuple[int, int]], prompt_len: int, final_len: int) -> list[tuple[int, int]]:
    """(γ, n) of each HF step from the target's calls; the first call is prefill + the first draft's verify.

    The context a call extends holds ``cur`` tokens (the prompt, then cache + 1: HF keeps ``cur − 1`` tokens cached
    and feeds the last accepted token again with the candidates), so γ = cache + input − cur. n is what the next
    call's context gained minus the target's own token (the last step: the final length's gain).
    """
    curs = [prompt_len] + [cached + 1 for _, cached in calls[1:]]
    gammas = [cached + length - cur for (length, cached), cur in zip(calls, curs)]
    ends = curs[1:] + [final_len]
    return [(g, end - cur - 1) for g, cur, end in zip(gammas, curs, ends)]


def assistant_config(draft_model, p: Pairing):
    cfg = copy.deepcopy(draft_model.generation_config)
    cfg.num_assistant_tokens = p.num_assistant_tokens
    cfg.num_assistant_tokens_schedule = p.schedule
    cfg.assistant_confidence_threshold = p.threshold
    return cfg


@dataclass
class Result:
    hf_tps: list[float] = field(default_factory=list)
    our_tps: list[float] = field(default_factory=list)
    identical: int = 0
    different: list[str] = field(default_factory=list)  # prompt ids whose outputs differ
    gamma_mismatch: dict = field(default_factory=dict)  # prompt id → (ours, HF aligned) γ lists
    gamma_checked: int = 0
    raw_steps: dict = field(default_factory=dict)  # prompt id → (ours, HF raw) (γ, n) lists, information only


class Comparison:
    def __init__(self, pair: ModelPair, draft_label: str, max_new_tokens: int):
        self.pair, self.max_new_tokens = pair, max_new_tokens
        self.target, self.draft = pair.target.model, pair.drafts[draft_label].model
        self.drafter = ModelDrafter(pair.drafts[draft_label], draft_label)
        self.dec = Decoding.create(pair, RunConfig().sampling, seed=0, max_new_tokens=max_new_tokens)
        self.eos = sorted(self.dec.eos_ids)
        self.calls = TargetCalls(self.target)

    def hf(self, ids: list[int], p: Pairing, max_new_tokens: int) -> tuple[list[int], float, list]:
        """One HF generate call: (new tokens, seconds, target calls)."""
        self.draft.generation_config = assistant_config(self.draft, p)  # fresh: HF writes the heuristic back
        x = torch.tensor([ids], device=self.pair.device)
        self.calls.take()
        self.calls.active = True
        start = time.perf_counter()
        if self.pair.device.type == "cuda":
            torch.cuda.synchronize()
        out = self.target.generate(x, attention_mask=torch.ones_like(x), assistant_model=self.draft,
                                   do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=self.eos or None,
                                   pad_token_id=self.eos[0] if self.eos else None)
        if self.pair.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        self.calls.active = False
        return out[0, len(ids):].tolist(), seconds, self.calls.take()

    def ours(self, ids: list[int], p: Pairing) -> tuple[list[int], float, list]:
        log = StepLog()
        start = time.perf_counter()
        gen = generate_speculative(self.dec, self.drafter, parse_policy(p.ours), ids, log)
        self.dec.clock.finish()  # resolves the clock (a CUDA sync): part of the request's cost, as in a run
        return gen.tokens, time.perf_counter() - start, log.steps

    def run(self, prompts: list[tuple[str, list[int]]], plist: list[Pairing], repeats: int,
            warmup: bool = True) -> dict[str, Result]:
        results = {p.name: Result() for p in plist}
        rounds = [True] * warmup + [False] * repeats
        for r, warm in enumerate(rounds):
            for i, (pid, ids) in enumerate(prompts):
                for p in plist:
                    res = results[p.name]
                    order = ("hf", "ours") if (i + r) % 2 == 0 else ("ours", "hf")
                    got = {}
                    for who in order:
                        got[who] = self.hf(ids, p, self.max_new_tokens) if who == "hf" else self.ours(ids, p)
                    (hf_tokens, hf_s, calls), (our_tokens, our_s, our_steps) = got["hf"], got["ours"]
                    if warm:
                        continue
                    res.hf_tps.append(len(hf_tokens) / hf_s)
                    res.our_tps.append(len(our_tokens) / our_s)
                    if r != len(rounds) - 1:
                        continue  # outputs and γ are checked once, on the last round
                    if hf_tokens == our_tokens:
                        res.identical += 1
                    else:
                        res.different.append(pid)
                    res.raw_steps[pid] = (our_steps, hf_steps(calls, len(ids), len(ids) + len(hf_tokens)))
                    self.check_gamma(res, pid, ids, p, our_tokens, our_steps)
        return results

    def check_gamma(self, res: Result, pid: str, ids: list[int], p: Pairing, our_tokens: list[int],
                    our_steps: list) -> None:
        """HF rerun on prompt + our first token (untimed): its γ per step must be ours, step for step."""
        if len(our_tokens) < 2:
            return  # one token: no speculative step at all
        head = ids + our_tokens[:1]
        tokens, _, calls = self.hf(head, p, self.max_new_tokens - 1)
        hf_gammas = [g for g, _ in hf_steps(calls, len(head), len(head) + len(tokens))]
        ours = [g for g, _ in our_steps]
        res.gamma_checked += 1
        if hf_gammas != ours:
            res.gamma_mismatch[pid] = (ours, hf_gammas)


def tiny_pair(tmp: Path, device: str) -> tuple[ModelPair, str, list[tuple[str, list[int]]]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from tiny_models import first_layers, make_model, make_tokenizer, save

    tok = make_tokenizer()
    target = make_model("llama", vocab_size=len(tok), seed=1, layers=3)
    t_dir, d_dir = save(target, tok, tmp / "target"), save(first_layers(target, 1), tok, tmp / "draft")
    spec = parse_drafter(str(d_dir))
    pair = load_pair(target=str(t_dir), drafts=[spec], device=device, dtype="float32")
    return pair, spec.label, [(f"t{i}", pair.encode(text)) for i, text in enumerate(TINY_PROMPTS)]


def describe(pair: ModelPair) -> str:
    import transformers
    from transformers.utils import is_sklearn_available

    name = torch.cuda.get_device_name() if pair.device.type == "cuda" else "cpu"
    sklearn = ("installed: HF re-tunes the confidence threshold during a call, ours stays at P"
               if is_sklearn_available() else "absent: HF's confidence threshold stays fixed, as ours")
    return (f"device: {pair.device} ({name}), {pair.dtype}; threads {torch.get_num_threads()}; "
            f"torch {torch.__version__}; transformers {transformers.__version__}; scikit-learn {sklearn}")


def report(results: dict[str, Result], plist: list[Pairing], verbose: bool) -> None:
    for p in plist:
        res = results[p.name]
        hf_name = (f"HF n={p.num_assistant_tokens} {p.schedule}"
                   + (f" thr={p.threshold:g}" if p.threshold else ""))
        hf_med, our_med = statistics.median(res.hf_tps), statistics.median(res.our_tps)
        print(f"{p.name:9s} {hf_name:28s} {hf_med:8.1f} tok/s | ours {p.ours:18s} {our_med:8.1f} tok/s | "
              f"ours/HF {our_med / hf_med:.3f}x  ({len(res.hf_tps)} requests each)")
        print(f"          greedy outputs: {res.identical} identical, {len(res.different)} different"
              + (f" ({', '.join(res.different)})" if res.different else ""))
        label = "γ per step (aligned HF rerun)" + ("" if p.check_gamma else ", information only")
        print(f"          {label}: {res.gamma_checked - len(res.gamma_mismatch)}/{res.gamma_checked} prompts "
              f"identical step for step")
        for pid, (ours, theirs) in res.gamma_mismatch.items():
            first = next((k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            print(f"            {pid}: first difference at step {first + 1}; ours {ours} vs HF {theirs}")
        raw_same = sum(1 for ours, theirs in res.raw_steps.values() if [g for g, _ in ours] == [g for g, _ in theirs])
        print(f"          γ per step, raw (HF's first step drafts from the prompt, ours after a target prefill): "
              f"{raw_same}/{len(res.raw_steps)} prompts identical")
        if verbose:
            for pid, (ours, theirs) in res.raw_steps.items():
                print(f"            {pid}: ours (γ,n) {ours}\n            {' ' * len(pid)}  HF   (γ,n) {theirs}")


def main() -> None:
    d = RunConfig()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default=d.target)
    ap.add_argument("--draft", default=d.drafts[0])
    ap.add_argument("--prompts", default=d.prompts)
    ap.add_argument("--per-category", type=int, default=2, help="prompts per category")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--gamma", type=int, default=4, help="constant pairing: HF num_assistant_tokens = our G")
    ap.add_argument("--heuristic-start", type=int, default=4, help="heuristic pairing: G0 (HF's own default is 20)")
    ap.add_argument("--threshold", type=float, default=0.4, help="threshold pairing: P")
    ap.add_argument("--gmax", type=int, default=16, help="threshold pairing: GMAX (HF num_assistant_tokens)")
    ap.add_argument("--repeats", type=int, default=1, help="rounds over the prompts (after one warm-up round)")
    ap.add_argument("--chat-template", action="store_true",
                    help="each prompt through the target tokenizer's chat template, as `workbench run --chat-template`")
    ap.add_argument("--system-prompt", default="", help="with --chat-template: a system message before every prompt")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--tiny", action="store_true", help="random tiny Llama target + its first layer as draft")
    ap.add_argument("--verbose", action="store_true", help="print every prompt's raw (γ, n) steps")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    plist = pairings(args.gamma, args.heuristic_start, args.threshold, args.gmax)
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            pair, label, prompts = tiny_pair(Path(tmp), args.device)
        else:
            spec = parse_drafter(args.draft)
            pair, label = load_pair(target=args.target, drafts=[spec], device=args.device, dtype=args.dtype), spec.label
            prompts = [(p.id, encode_prompt(pair, p, chat_template=args.chat_template,
                                            system_prompt=args.system_prompt))
                       for p in load_prompts(paths.prompts_path(args.prompts), per_category=args.per_category)]
        print(describe(pair))
        print(f"target {pair.info['target']['parameters'] / 1e6:.2f}M params, draft "
              f"{pair.info['drafts'][label]['parameters'] / 1e6:.2f}M; {len(prompts)} prompts × "
              f"{args.max_new_tokens} new tokens max, EOS ids {sorted(pair.eos_ids())}; greedy; "
              f"{args.repeats} round(s) after a warm-up round")
        results = Comparison(pair, label, args.max_new_tokens).run(prompts, plist, args.repeats)
        report(results, plist, args.verbose)
    if args.json:
        Path(args.json).write_text(json.dumps({k: vars(v) for k, v in results.items()}, indent=1, default=str))


if __name__ == "__main__":
    try:
        main()
    except WorkbenchError as exc:  # bad input (a prompt the chat template refuses…): one line, as the CLI
        sys.exit(f"error: {exc}")
