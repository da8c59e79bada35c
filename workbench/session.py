"""The loaded state of a run session: models, drafters, one policy per drafter × policy, and the decode settings.

``Session.run(spec)`` decodes one request and returns its rows for every trace table; it is the only place that
turns a request into rows, for ``workbench run``, the demo, sweeps and the benchmarks alike.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from dataclasses import dataclass

from workbench.config import RunConfig
from workbench.decoding import Decoding, generate_baseline, generate_speculative
from workbench.drafters import parse_drafters
from workbench.drafters.build import build_drafter
from workbench.errors import WorkbenchError
from workbench.forced import forced_rows, output_probs
from workbench.lm import check_can_draft
from workbench.pair import ModelPair, check_fits, load_pair
from workbench.policies import Policy, parse_policy
from workbench.prompts import Prompt
from workbench.recorder import TraceRecorder


@dataclass
class Session:
    cfg: RunConfig
    pair: ModelPair
    dec: Decoding
    drafters: dict  # label → Drafter
    policies: dict  # (drafter label, policy spec) → Policy
    _forced_done: set = dataclasses.field(default_factory=set)  # (prompt_id, drafter) pairs already forced
    _p_cache: tuple = ((), None)  # (prompt and output ids, target p over the output): shared by the drafters

    @classmethod
    def open(cls, cfg: RunConfig) -> Session:
        specs = parse_drafters(cfg.drafts)
        pair = load_pair(target=cfg.target, drafts=specs, device=cfg.device, dtype=cfg.dtype,
                         trust_remote_code=cfg.trust_remote_code)
        if cfg.chat_template and not getattr(pair.tokenizer, "chat_template", None):
            raise WorkbenchError(f"--chat-template: the target's tokenizer ({cfg.target}) has no chat template; "
                                 "run without --chat-template ([settings] chat_template in a sweep file), and "
                                 "the prompts are given as they are")
        drafters = {s.label: build_drafter(s, pair) for s in specs}
        policies = {(d, p.spec): p for d in drafters for p in (parse_policy(s) for s in cfg.policies)} if specs else {}
        dec = Decoding.create(pair, cfg.sampling, seed=cfg.seed, max_new_tokens=cfg.max_new_tokens,
                              ignore_eos=cfg.ignore_eos)
        return cls(cfg=cfg, pair=pair, dec=dec, drafters=drafters, policies=policies)

    def reseed(self, seed: int) -> None:
        self.dec.generator.manual_seed(seed)

    def encode(self, prompt: Prompt) -> list[int]:
        """The prompt's token ids as this run gives it to the models (``encode_prompt``)."""
        return encode_prompt(self.pair, prompt, chat_template=self.cfg.chat_template,
                             system_prompt=self.cfg.system_prompt)

    def check_fits(self, prompt: Prompt) -> None:
        """The request fits the context window, and every model drafter can run it (lm.check_can_draft)."""
        prompt_len = len(self.encode(prompt))
        check_fits(self.pair, prompt.id, prompt_len, self.cfg.max_new_tokens)
        for drafter in self.drafters.values():
            if hasattr(drafter, "lm"):  # a model or early-exit drafter, with a KV cache of its own
                check_can_draft(drafter.lm, drafter.label, prompt_len + self.cfg.max_new_tokens, prompt.id)

    def run(self, spec, run_id: str, max_new_tokens: int) -> dict[str, list[dict]]:
        """Decode one request (a ``runner.RequestSpec``) and return its rows for the four tables."""
        prompt_ids = self.encode(spec.prompt)
        dec = dataclasses.replace(self.dec, max_new_tokens=max_new_tokens)
        recorder, started = TraceRecorder(), time.time()
        if spec.mode == "baseline":
            gen = generate_baseline(dec, prompt_ids, recorder)
        else:
            policy = self.policies[(spec.drafter, spec.policy)]
            gen = generate_speculative(dec, self.drafters[spec.drafter], policy, prompt_ids, recorder)
        times = dec.clock.finish()
        keys = {"run_id": run_id, "request_id": spec.request_id}
        steps, tokens = recorder.rows(times, keys, self.pair.decode_each)
        if spec.mode == "speculative":  # every policy of this drafter learns what its steps cost
            _teach_times([p for (d, _), p in self.policies.items() if d == spec.drafter], steps)
        total, prefill = times[-1], steps[0]["draft_ms"] + steps[0]["verify_ms"] + steps[0]["other_ms"]
        request = {**keys, "prompt_id": spec.prompt.id, "category": spec.prompt.category, "mode": spec.mode,
                   "drafter": spec.drafter, "policy": spec.policy, "temperature": dec.sampling.temperature,
                   "prompt_tokens": len(prompt_ids), "new_tokens": len(gen.tokens), "prefill_ms": prefill,
                   "ttft_ms": prefill, "total_ms": total, "tokens_per_s": len(gen.tokens) / total * 1000.0,
                   "ms_per_token": total / len(gen.tokens),
                   "output_text": self.pair.tokenizer.decode(gen.tokens, skip_special_tokens=True),
                   "stop_reason": gen.stop_reason, "warmup": spec.warmup, "started_at": started,
                   "prompt_token_ids": prompt_ids, "output_token_ids": gen.tokens}
        forced = self._forced(spec, keys, prompt_ids, gen.tokens)
        return {"requests": [request], "steps": steps, "tokens": tokens, "forced": forced}

    def _forced(self, spec, keys: dict, prompt_ids: list[int], output: list[int]) -> list[dict]:
        """The teacher-forced rows of (prompt, drafter), once, for model-backed drafters (workbench.forced)."""
        drafter = self.drafters.get(spec.drafter)
        key = (spec.prompt.id, spec.drafter)
        if (not self.cfg.replay_data or spec.warmup or spec.mode != "speculative" or key in self._forced_done
                or not hasattr(drafter, "lm")):
            return []
        self._forced_done.add(key)
        sequence = (*prompt_ids, -1, *output)
        if self._p_cache[0] != sequence:
            self._p_cache = (sequence, output_probs(self.pair.target, prompt_ids, output, self.dec.sampling))
        seed = (self.cfg.seed + zlib.crc32(f"{spec.prompt.id}\0{spec.drafter}".encode())) % 2**63  # not the run's
        return forced_rows(self._p_cache[1], drafter.lm, prompt_ids, output, self.dec.sampling,
                           {**keys, "drafter": spec.drafter}, seed=seed)


def _teach_times(policies: list[Policy], steps: list[dict]) -> None:
    """Measured phase times reach the policies once per request (when the clock is resolved)."""
    for policy in policies:
        for s in steps[1:]:
            policy.observe_times(s["gamma"], s["draft_ms"], s["verify_ms"], s["other_ms"])


def encode_prompt(pair, prompt: Prompt, *, chat_template: bool = False, system_prompt: str = "") -> list[int]:
    """A prompt's token ids: its text as is, or (``chat_template``) the conversation (a prompt text is one user
    message), after any system prompt, through the target's chat template (ModelPair.encode / encode_chat).
    One-line WorkbenchError for what cannot be encoded so (the benchmarks encode through here too)."""
    if not chat_template:
        if prompt.messages:  # its last message alone would be a silent, different prompt
            raise WorkbenchError(f"prompt {prompt.id!r} is a conversation (messages), which goes to the models "
                                 "through their chat template: add --chat-template ([settings] chat_template = "
                                 "true in a sweep file)")
        return pair.encode(prompt.prompt)
    from jinja2 import TemplateError  # transformers renders chat templates with jinja2 (needed only here)

    turns = prompt.messages or (("user", prompt.prompt),)  # a conversation, or the prompt as one user message
    system = (("system", system_prompt),) if system_prompt else ()
    if system and turns[0][0] == "system":
        raise WorkbenchError(f"--system-prompt: prompt {prompt.id!r} is a conversation with a system message of "
                             "its own; give one or the other")
    try:
        return pair.encode_chat([{"role": r, "content": c} for r, c in system + turns])
    except (TemplateError, TypeError, ValueError) as exc:  # a template that refuses, or is broken
        with_system = " (some templates take no system message)" if "system" in {r for r, _ in system + turns} \
            else ""
        raise WorkbenchError(f"--chat-template: the target tokenizer's chat template failed on prompt "
                             f"{prompt.id!r}{with_system}: {type(exc).__name__}: {exc}") from None
