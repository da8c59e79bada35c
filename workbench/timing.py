"""Phase clocks: ``perf_counter`` on CPU, CUDA events on GPU (resolved once per request, no per-phase sync)."""

from __future__ import annotations

import time

import torch


class PhaseClock:
    """Marks instants during a request; ``finish`` turns them into milliseconds since the first mark.

    On CUDA each mark records an event on the current stream, so the host never waits inside the loop; the single
    synchronize happens at the request boundaries (``start`` and ``finish``). On other devices marks are host
    ``perf_counter`` readings, taken after the work they close has finished (CPU ops are synchronous; MPS is
    synchronized at each mark, which is the only way to time it).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._marks: list = []

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def start(self) -> int:
        """Begin a request: synchronize, forget old marks, take mark 0."""
        self._sync()
        self._marks = []
        return self.mark()

    def mark(self) -> int:
        """Record an instant; returns its index for ``finish()``'s list."""
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))  # the stream the models run on
            self._marks.append(event)
        else:
            if self.device.type == "mps":
                torch.mps.synchronize()
            self._marks.append(time.perf_counter())
        return len(self._marks) - 1

    def finish(self) -> list[float]:
        """End a request: synchronize once and return every mark in ms since mark 0."""
        self._sync()
        if self.device.type == "cuda":
            first = self._marks[0]
            return [first.elapsed_time(event) for event in self._marks]
        first = self._marks[0]
        return [(t - first) * 1000.0 for t in self._marks]
