"""One writer per run directory: ``RunLock(run_dir)`` holds an exclusive ``flock`` on ``run_dir/.lock``.

The kernel drops a flock when its process dies (even on SIGKILL), so a crashed run never leaves a live lock: a
``.lock`` file whose flock is free is stale and simply reused. The file's content (pid, host, start time) only
serves the message shown to a second process.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from workbench.errors import WorkbenchError

LOCK_FILE = ".lock"


def _describe_holder(path: Path) -> str:
    """'pid N on HOST since T' from the lock file (best effort: the holder may be mid-write)."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('started', '?')}"


class RunLock:
    """``with RunLock(run_dir):`` — raises WorkbenchError at entry if another process writes ``run_dir``."""

    def __init__(self, run_dir: str | os.PathLike, kind: str = "run directory",
                 holder: str = "another `workbench run` is writing it"):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.kind, self.holder = kind, holder  # what the directory is and who the other process is, for the message
        self._fd: int | None = None

    def acquire(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # O_RDWR without O_TRUNC: a held lock's content must stay readable for the message below.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkbenchError(f"{self.kind} {self.run_dir} is in use by {_describe_holder(self.path)} "
                                 f"({self.holder})") from None
        # Ours now; any old content is from a dead process (stale): overwrite it.
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode() + b"\n", 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # Leave the file in place: unlinking it would let a third process lock a fresh inode while a second one
        # still holds the old one (two "exclusive" writers). Emptying it marks it free for humans.
        try:
            os.ftruncate(self._fd, 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
