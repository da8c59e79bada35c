"""A draft model (or the early-exit view of the target) with its own KV cache.

Cache invariant between steps: the draft's cache holds a prefix of the accepted sequence ``ids`` (at most
``ids[:-1]``): x_γ is never fed (its q would be unused), a target-only step (γ = 0) feeds nothing, and rollback cuts
rejected drafts. ``propose`` starts by reading every accepted token the draft has not cached — one forward.
"""

from __future__ import annotations

import torch

from workbench.drafters.base import Proposal, empty_proposal, read_signal
from workbench.lm import CausalLM
from workbench.policies import Policy
from workbench.sampling import SamplingConfig, choose, probabilities


class ModelDrafter:
    def __init__(self, lm: CausalLM, label: str):
        self.lm, self.label = lm, label

    def begin(self, prompt: torch.Tensor) -> None:
        self.lm.prefill(prompt)  # cache the prompt; its logits go unused (propose feeds on)

    def propose(self, ids: list[int], gamma: int, policy: Policy, sampling: SamplingConfig,
                generator: torch.Generator) -> Proposal:
        if gamma == 0:
            return empty_proposal(self.lm.vocab_size, self.lm.device, "cap")
        # 1. read what the draft has not cached yet (the last accepted token, more after a bonus or a γ = 0 step)
        logits = self.lm.forward(torch.tensor(ids[self.lm.length:], device=self.lm.device), last_only=True)
        xs, qs, confidences, stop = [], [], [], "cap"
        for i in range(1, gamma + 1):
            # 2. q_i from the last logits; x_i by argmax or a draw — on the device, no host sync for plain policies
            q_i = probabilities(logits[-1], sampling)
            x_i = choose(q_i, sampling, generator)
            xs.append(x_i)
            qs.append(q_i)
            # 3. a policy that reads drafts may stop here (the token just drafted is kept)
            if policy.reads_draft:
                confidence, entropy = read_signal(q_i, x_i, policy.reads_entropy)
                confidences.append(confidence)
                if i < gamma and policy.stop_after(i, confidence, entropy):
                    stop = "threshold"
                    break
            # 4. feed x_i to get q_{i+1}; the last draft is not fed
            if i < gamma:
                logits = self.lm.forward(x_i.view(1), last_only=True)
        return Proposal(x=torch.stack(xs), q=torch.stack(qs), stop=stop, confidences=tuple(confidences))

    def rollback(self, ids: list[int]) -> None:
        self.lm.crop(min(self.lm.length, len(ids) - 1))
