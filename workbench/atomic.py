"""``publish_dir(final)``: build a directory under a temporary name and rename it into place only on success;
``write_text``: the same for one file; ``overlap``: whether an output path meets a directory the command reads.

A failed or interrupted ``workbench report`` then never leaves a half-written report where the old one was: readers
see the old directory or the new one, never a mix. The temp dir is a sibling (same filesystem, so ``rename`` is
atomic). Replacing an existing directory takes two renames (old aside, new in) — a crash between them leaves the old
one at ``.<name>.old-<pid>``, never a partial new one at ``final``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from workbench.errors import WorkbenchError


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a sibling temp file renamed into place: readers see the old file or the
    new one, never half of it; on failure the temp file is removed and the error re-raised. A symlink is written
    through (the link stays, its target is replaced); a directory, device, pipe or socket is refused, never replaced."""
    path = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)
    check_regular(path)
    tmp = None
    try:
        tmp = new_temp(path)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def check_regular(path: Path) -> None:
    """Refuse, in one line, to replace what is not a regular file (``/dev/null`` would become one)."""
    if path.exists() and not path.is_file():
        raise WorkbenchError(f"{path}: exists and is not a regular file (a directory, device, pipe or socket); "
                             "give the path of a file to write")


def new_temp(path: Path) -> Path:
    """Create an empty sibling temp file for an atomic write of ``path`` and return it. The name is new each time
    and the file is created exclusively, so a file or a symlink someone left at a fixed name is never written
    through; it starts with ``path``'s name and ".tmp" (``is_temp``), which no reader takes for a part."""
    for _ in range(100):
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0o666: the umask applies
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "cannot create a temporary file", str(path))


def is_temp(name: str, final_name: str) -> bool:
    """Whether ``name`` is the temp file of an atomic write of ``final_name`` (``new_temp``; an older workbench
    wrote ``final_name + ".tmp"``), which a killed writer may leave behind."""
    return name == final_name + ".tmp" or name.startswith(final_name + ".tmp-")


def temp_path(final: Path, tag: str = "tmp") -> Path:
    return final.parent / f".{final.name}.{tag}-{os.getpid()}"


@contextlib.contextmanager
def publish_dir(final: str | os.PathLike, marker: str | None = None) -> Iterator[Path]:
    """Yield an empty temp dir next to ``final``; on success it becomes ``final``, on any exception it is removed.

    An existing ``final`` is replaced only when it is empty or holds ``marker``, a file only the caller writes into
    what it publishes (``workbench report``: ``report.MARKER``), so that ``--out ~/Documents`` or a website folder
    that happens to hold an index.html is never deleted. A marker must name the caller, not a file anyone's
    directory may hold: only the caller's own earlier output may be replaced.
    """
    final = Path(final)
    check_replaceable(final, marker)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(final)
        shutil.rmtree(tmp, ignore_errors=True)  # left by a killed process that had our pid (pid reuse)
        tmp.mkdir()
    except OSError as exc:
        why = f"{exc.filename} is a file" if isinstance(exc, FileExistsError) else exc.strerror
        raise WorkbenchError(f"cannot create the output directory next to {final}: {why}") from None
    try:
        yield tmp
    except BaseException:  # KeyboardInterrupt too: nothing half-written stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_in(tmp, final)


def check_replaceable(final: str | os.PathLike, marker: str | None = None) -> None:
    """Refuse, in one line, an output directory ``publish_dir`` would not replace: a file, or a non-empty directory
    without ``marker``. Callers may call it early, before any work, so a bad --out fails at once."""
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise WorkbenchError(f"--out {final} exists and is a file")
    if final.is_dir() and any(final.iterdir()) and not (marker and (final / marker).is_file()):
        # One line that says what to do. A report from before the marker existed lands here too: it has none.
        raise WorkbenchError(f"--out {final} is a non-empty directory that holds no {marker or 'marker of ours'}, "
                             "so it is not an earlier output of this command (a report from an older workbench has "
                             "none either): choose another --out, or remove the directory first (it would be "
                             "replaced whole)")


def _swap_in(tmp: Path, final: Path) -> None:
    old = temp_path(final, "old") if final.exists() else None
    try:
        if old is not None:
            os.replace(final, old)
        os.replace(tmp, final)
    except OSError as exc:
        if old is not None and old.exists() and not final.exists():
            os.replace(old, final)  # put the previous report back
        shutil.rmtree(tmp, ignore_errors=True)
        raise WorkbenchError(f"cannot move the new report into {final}: {exc.strerror}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def overlap(out: Path, other: Path) -> str | None:
    """How an output path ``out`` meets a directory ``other`` the command reads: "is", "lies inside" or "contains"
    (both resolved, so a symlink or ``..`` cannot hide it); None when they are apart. An output that meets an input
    could overwrite or delete what it is made from."""
    out, other = Path(out).resolve(), Path(other).resolve()
    if out == other:
        return "is"
    return "lies inside" if other in out.parents else "contains" if out in other.parents else None
