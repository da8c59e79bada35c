"""SIGTERM takes the same path as Ctrl-C, and the message says exactly how to resume.

``kill``, ``timeout``, Slurm/Kubernetes pre-emption and ``docker stop`` send SIGTERM; Python's default is to die on
the spot with no message. ``install_sigterm_handler`` raises ``Terminated`` (a KeyboardInterrupt) in the main thread
instead, so the run unwinds like a Ctrl-C: every completed request is already on disk, the CLI prints one line with
the resume command and exits 128 + signal number (130 for SIGINT, 143 for SIGTERM), as shells do.
"""

from __future__ import annotations

import shlex
import signal
import threading
from types import FrameType

EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread happens to be (like KeyboardInterrupt for SIGINT)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signum}")


def install_sigterm_handler() -> bool:
    """Make SIGTERM raise ``Terminated``; returns False (nothing done) outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return False  # signal.signal would raise ValueError; e.g. main() called from a worker thread
    signal.signal(signal.SIGTERM, _raise_terminated)
    return True


def exit_code(exc: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (check the subclass first)."""
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT


def resume_hint(argv: list[str], prog: str = "workbench") -> str:
    """The command that continues this run: the same arguments plus ``--resume`` (once).

    ``workbench demo`` always resumes, so its hint is the same command; other commands have nothing to resume and
    get the command unchanged too.
    """
    args = list(argv)
    if args and args[0] == "run" and "--resume" not in args:
        args.append("--resume")
    return shlex.join([prog, *args])


def interrupted_message(argv: list[str], out: str | None) -> str:
    """The one line printed on Ctrl-C / SIGTERM."""
    if argv and argv[0] == "sweep":
        return f"interrupted: finished runs and completed requests are kept; continue with: {resume_hint(argv)}"
    if argv and argv[0] not in ("run", "demo"):  # report, train: nothing resumable; report leaves nothing behind
        return f"interrupted; rerun with: {resume_hint(argv)}"
    where = f" in {out}" if out else ""
    return f"interrupted: completed requests are saved{where}; resume with: {resume_hint(argv)}"


def resume_command(meta: dict) -> str:
    """The command that finishes a recorded run, from the command line its meta.json holds (``sys.argv``: the
    program, then the subcommand): ``workbench run … --resume``, or for a run ``workbench demo`` made, that demo
    command again (it always resumes)."""
    argv = list(meta.get("command") or [])
    sub = next((i for i, a in enumerate(argv[1:], 1) if a in ("run", "demo")), None)
    return resume_hint(argv[sub:]) if sub is not None else "workbench run … --resume"
