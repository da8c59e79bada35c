"""Progress that suits where it is shown, and quiet third-party libraries.

``Progress`` is a tqdm bar on a terminal. When the stream is not a terminal (CI logs, ``nohup``, papermill, a pipe)
a bar's carriage returns turn into one huge line or thousands of lines, so it prints one plain line every
``interval`` seconds instead (and a final one): ``desc: done/total (pct) rate/s, elapsed, key=value …``.
It has tqdm's ``update(n)``, ``set_postfix(**kw)`` and ``close()`` and is a context manager, so callers can swap it in.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from typing import IO, Any

# Library warnings that say nothing actionable to a workbench user (matched against the message start).
NOISY_WARNINGS = (
    r".*`torch_dtype` is deprecated",
    r".*generation flags are not valid",
    r".*TypedStorage is deprecated",
    r".*does not have many workers",
    r".*Jupyter is migrating its paths",
)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


class Progress:
    """tqdm on a TTY, periodic plain lines otherwise. ``disable=True`` prints nothing at all."""

    def __init__(self, total: int, desc: str = "", file: IO[str] | None = None, *, unit: str = "it",
                 interval: float = 5.0, disable: bool = False, clock: Callable[[], float] = time.monotonic,
                 initial: int = 0):
        """``initial``: units already done before this bar started (a resumed job): counted, but not in the rate."""
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.file = file if file is not None else sys.stderr
        self.n = self.initial = initial
        self.postfix: dict[str, Any] = {}
        self.disable = disable
        self._clock = clock
        self._start = self._last = clock()
        self._closed = False
        self._shown = ""  # the last plain line printed: close() does not print the same line twice
        self._bar = None
        if not disable and _isatty(self.file):
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.file, dynamic_ncols=True, initial=initial)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif not self.disable and self._clock() - self._last >= self.interval:
            self._emit()

    def set_postfix(self, refresh: bool = True, **kw: Any) -> None:
        self.postfix = dict(kw)
        if self._bar is not None:
            self._bar.set_postfix(refresh=refresh, **kw)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif not self.disable and self.line(rate=False) != self._shown:
            self._emit()

    def line(self, rate: bool = True) -> str:
        """The plain progress line (what a non-terminal stream gets); ``rate=False``: without rate and time (what
        tells two lines apart)."""
        elapsed = max(self._clock() - self._start, 1e-9)
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        speed = (self.n - self.initial) / elapsed  # this bar's own work: not what an earlier run had done
        timing = f" {speed:.2f} {self.unit}/s, {elapsed:.0f}s" if rate else ""
        return f"{self.desc}: {self.n}/{self.total}{pct}{timing}{extra}"

    def _emit(self) -> None:
        self._last = self._clock()
        self._shown = self.line(rate=False)
        print(self.line(), file=self.file, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quiet_libraries() -> None:
    """No transformers progress bars ("Loading weights"), only its errors, and no known-noisy warnings — without
    importing transformers (0.6 s) for commands that load no model: transformers reads the environment when it is
    first imported; only if it already was are its switches flipped directly."""
    import os
    import sys

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' own bars follow this switch
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the fork warning after a tokenizer was used
    for pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
