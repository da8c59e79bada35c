"""Run settings: one typed dataclass, every field commented. No torch import here (the CLI builds it cheaply).

Models and prompt sets are stored as given — ``"default"`` and ``"heldout"`` name the bundled ones (workbench.paths) —
so meta.json never pins an absolute path of this checkout.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from workbench.errors import WorkbenchError

DEVICES = ("auto", "cpu", "cuda", "mps")  # auto: cuda, else mps, else cpu
DTYPES = ("auto", "float32", "bfloat16", "float16")  # auto: float32 on CPU, bfloat16 on CUDA, float16 on MPS
MIN_TEMPERATURE = 1e-5  # below it (but > 0) logits / T overflows float32 → NaN; vLLM treats T < 1e-5 as greedy too
MAX_SEED = 2**63 - 1  # torch.Generator takes < 2**64; session k of a resumed run seeds with seed + k (train: + 1)


# What a valid value of a scalar setting is: field → (test, its wording). RunConfig.validate names the CLI flag,
# the sweep file (workbench.sweep_file) its key and line; the rules live here once.
RULES = {
    "temperature": (lambda v: v == 0 or MIN_TEMPERATURE <= v < math.inf,  # NaN fails too
                    f"expected 0 (greedy) or a finite number ≥ {MIN_TEMPERATURE:g}"),
    "seed": (lambda v: 0 <= v <= MAX_SEED, f"expected an integer in 0 … {MAX_SEED}"),
    "top_k": (lambda v: v >= 0, "expected ≥ 0"),
    "top_p": (lambda v: 0 < v <= 1, "expected a number in (0, 1]"),
    "max_new_tokens": (lambda v: v >= 1, "expected ≥ 1"),
    "limit": (lambda v: v is None or v >= 1, "expected ≥ 1"),
    "per_category": (lambda v: v is None or v >= 1, "expected ≥ 1"),
    "device": (lambda v: v in DEVICES, f"expected {', '.join(DEVICES)}"),
    "dtype": (lambda v: v in DTYPES, f"expected {', '.join(DTYPES)}"),
}


def setting_problem(name: str, value) -> str | None:
    """What is wrong with ``value`` for the setting ``name`` (None: nothing, or no rule for that setting)."""
    rule = RULES.get(name)
    return None if rule is None or rule[0](value) else rule[1]


@dataclass
class RunConfig:
    target: str = "default"  # target model (p): local HF dir, cached hub id, or "default" (the embedded target)
    drafts: tuple[str, ...] = ("default",)  # drafters (q): model dir / hub id / "default", "ngram[:N[:M]]",
    #                                         "early-exit:L"; several = compared in one run; () = baseline only
    policies: tuple[str, ...] = ("constant:4",)  # draft-length policies (workbench.policies), swept within the run
    prompts: str = "heldout"  # JSONL prompts file, or a bundled set: heldout | general | chat
    temperature: float = 0.0  # 0 = greedy; > 0 samples (applied to p and q alike)
    top_k: int = 0  # keep the k most likely tokens before sampling; 0 = off
    top_p: float = 1.0  # nucleus filter; 1.0 = off
    max_new_tokens: int = 64  # per request
    seed: int = 0  # seeds the run's single torch.Generator (session k of a resumed run uses seed + k)
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: str = "auto"  # auto (float32 on CPU, bfloat16 on CUDA) | float32 | bfloat16 | float16
    baseline: bool = False  # also run target-only decoding on every prompt, interleaved prompt by prompt
    limit: int | None = None  # only the first N prompts (after per_category)
    per_category: int | None = None  # only the first N prompts of each category
    warmup: bool = True  # run (and flag) one short warm-up request per mode, drafter and policy first
    ignore_eos: bool = False  # always generate max_new_tokens (fixed-length benchmarks)
    chat_template: bool = False  # give each prompt as one user message through the target tokenizer's chat template
    #                              (with the assistant's turn opened), as a chat/instruct model is served; off = as is
    system_prompt: str = ""  # with chat_template: a system message put before every prompt's user message; "" = none
    replay_data: bool = True  # record the teacher-forced `forced` table that offline replay needs (docs/REPLAY.md)
    trust_remote_code: bool = False  # let transformers run code shipped with a model (off unless asked)

    def validate(self) -> None:
        """Check every setting (one-line WorkbenchError); parses the drafter and policy specs."""
        from workbench.drafters import parse_drafters
        from workbench.policies import parse_policies

        if not self.drafts and not self.baseline:
            raise WorkbenchError("nothing to run: give --draft or --baseline")
        parse_drafters(self.drafts)
        if self.drafts:
            parse_policies(self.policies)
        if self.system_prompt and not self.chat_template:
            raise WorkbenchError("--system-prompt needs --chat-template ([settings] chat_template = true in a sweep "
                                 "file): the system message goes in through the target's chat template")
        for name in RULES:  # whether a device exists is checked where the models load (workbench.loading)
            problem = setting_problem(name, getattr(self, name))
            if problem:
                raise WorkbenchError(f"--{name.replace('_', '-')} {getattr(self, name)!r}: {problem}")

    @property
    def sampling(self):
        from workbench.sampling import SamplingConfig

        return SamplingConfig(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)

    def as_dict(self) -> dict:
        """JSON-ready settings (tuples as lists), as meta.json records them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
