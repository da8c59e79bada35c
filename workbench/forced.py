"""The teacher-forced pass that offline replay needs (docs/REPLAY.md): the ``forced`` table of a run.

Under greedy decoding every policy and drafter emits the same tokens, and a model draft that stays on the accepted
path proposes exactly its teacher-forced argmax. So one cache-free forward of the target and of the draft over
prompt + output gives, at every output position, the draft's token, its confidence and entropy, and whether it
matches the target's token — enough to replay any draft-length policy without running a model. The pass runs once
per (prompt, drafter), after that pair's first speculative request, outside every timed phase. At T > 0 it records
the path of that one request and, at every position, one draw of the draft from q (``sample_conf``: its q, what a
policy that reads confidence sees live; ``sample_accept``: its min(1, p/q)), from a generator of its own, so the
run's draws are untouched; replay then accepts with that probability, so confidence and acceptance keep their
relation (docs/REPLAY.md).
"""

from __future__ import annotations

import torch

from workbench.lm import CausalLM, full_logits
from workbench.rejection import acceptance_probability
from workbench.sampling import SamplingConfig, choose, entropy, probabilities


@torch.inference_mode()
def output_probs(lm: CausalLM, prompt_ids: list[int], output_ids: list[int],
                 sampling: SamplingConfig) -> torch.Tensor:
    """``lm``'s distribution at every output position ([T, V]; row t predicts output token t): p for the
    target, q for a draft."""
    logits = full_logits(lm, prompt_ids + output_ids)
    return probabilities(logits[len(prompt_ids) - 1: len(prompt_ids) + len(output_ids) - 1], sampling)


@torch.inference_mode()
def forced_rows(p: torch.Tensor, draft: CausalLM, prompt_ids: list[int], output_ids: list[int],
                sampling: SamplingConfig, keys: dict, seed: int = 0) -> list[dict]:
    """One row per output position for this drafter (``keys``: run_id, request_id, drafter). ``seed``: the draws
    of the sample columns at T > 0 (under greedy decoding the draft's draw is its argmax)."""
    q = output_probs(draft, prompt_ids, output_ids, sampling)
    out = torch.tensor(output_ids, device=q.device)
    rows_at = torch.arange(len(output_ids), device=q.device)
    conf, draft_token = q.max(dim=-1)
    drawn = draft_token
    if not sampling.greedy:  # one draw per position, as the live draft would sample it there
        drawn = choose(q, sampling, torch.Generator(device=q.device).manual_seed(seed))
    q_drawn, p_drawn = q[rows_at, drawn], p[rows_at, drawn]
    accept = (p_drawn / q_drawn).clamp(max=1.0) if not sampling.greedy else (drawn == out).to(q.dtype)
    table = torch.stack([draft_token.to(q.dtype), conf, entropy(q), p[rows_at, out], acceptance_probability(p, q),
                         q_drawn, accept], dim=1).tolist()
    return [{**keys, "index": t, "token_id": output_ids[t], "draft_token": int(d), "draft_conf": c,
             "draft_entropy": h, "p_token": pt, "alpha_tv": a, "match": int(d) == output_ids[t],
             "sample_conf": sc, "sample_accept": sa}
            for t, (d, c, h, pt, a, sc, sa) in enumerate(table)]
