"""The CUDA-event clock's protocol, checked on the CPU through a stand-in for ``torch.cuda``'s event API (the real
thing runs in tests/test_gpu.py when a GPU is present): every phase mark records an event, the host synchronizes
only at the request's start and finish, and the times come from the events, not from host reads."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch
from tiny_models import decoding, drafter, first_layers, make_model

from workbench.decoding import generate_baseline, generate_speculative
from workbench.policies import parse_policy
from workbench.recorder import TraceRecorder
from workbench.timing import PhaseClock

VOCAB = 64


class FakeCuda:
    """Stand-in for the parts of ``torch.cuda`` the clock uses. An event's "GPU time" is a counter that each
    ``record`` advances by 1 ms (the device's own clock), so times that came from the host's clock would show."""

    def __init__(self):
        self.syncs: list[int] = []  # how many events existed at each synchronize
        self.events: list[FakeCuda.Event] = []
        self.stream = object()
        fake = self

        class Event:
            def __init__(self, enable_timing: bool = False):
                assert enable_timing, "an event made without enable_timing cannot be timed on a real GPU"
                self.at = None
                fake.events.append(self)

            def record(self, stream=None):
                assert stream is fake.stream, "record on the stream the models run on"
                self.at = float(sum(e.at is not None for e in fake.events))  # 1 ms of "GPU time" per event

            def elapsed_time(self, other) -> float:
                assert fake.syncs and fake.syncs[-1] == len(fake.events), "read only after the finishing sync"
                return other.at - self.at

        self.Event = Event

    def synchronize(self, device=None):
        self.syncs.append(len(self.events))

    def current_stream(self, device=None):
        return self.stream


@pytest.fixture
def fake_cuda(monkeypatch) -> FakeCuda:
    fake = FakeCuda()
    for name in ("Event", "synchronize", "current_stream"):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    monkeypatch.setattr(time, "perf_counter", lambda: pytest.fail("a CUDA clock must not read the host clock"))
    return fake


@pytest.mark.parametrize("policy", ["constant:3", "threshold:0.3:5", "adaptive:5"])
def test_the_cuda_clock_syncs_only_at_request_boundaries_and_times_from_events(fake_cuda, policy):
    target = make_model("llama", vocab_size=VOCAB, seed=1, layers=2)
    dec = dataclasses.replace(decoding(target, VOCAB, max_new=20), clock=PhaseClock(torch.device("cuda")))
    rec = TraceRecorder()
    prompt = [1, 5, 9, 5, 1, 5]
    out = generate_speculative(dec, drafter("model", target, VOCAB, first_layers(target, 1)), parse_policy(policy),
                               prompt, rec)
    times = dec.clock.finish()
    # 1. one synchronize when the request starts (no event yet), one when it finishes (every event recorded)
    assert fake_cuda.syncs == [0, len(fake_cuda.events)] and len(times) == len(fake_cuda.events) >= 3
    # 2. the times are the events' own, in ms since the first mark: 0, 1, 2, ... on the fake device clock
    assert times == [float(i) for i in range(len(times))]
    steps, _ = rec.rows(times, {"run_id": "r", "request_id": "x"}, lambda ids: [str(i) for i in ids])
    assert sum(s["n_emitted"] for s in steps) == len(out.tokens) == 20
    # each phase of each step (the prefill's included: the draft reads the prompt too) is closed by exactly one mark
    assert all(s[phase] == 1.0 for s in steps for phase in ("draft_ms", "verify_ms", "other_ms")), steps
    # 3. the baseline takes the same path: two synchronizes per request, whatever the number of steps
    fake_cuda.syncs.clear()
    generate_baseline(dec, prompt, TraceRecorder())
    dec.clock.finish()
    assert len(fake_cuda.syncs) == 2
