"""User-facing errors: one clear line, non-zero exit (the CLI prints ``error: <message>``)."""

import errno

# Errors that are the given path's fault (bad input, exit 2); any other I/O failure, such as a full disk, exits 1.
PATH_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST,
               errno.ENAMETOOLONG}


class WorkbenchError(Exception):
    """Bad input or an unusable environment. The message is a single line meant for the user."""

    exit_code = 2  # bad input


class IOFailure(WorkbenchError):
    """A write that failed for a reason that is not the input's fault (a full disk, an I/O error)."""

    exit_code = 1


class TraceError(WorkbenchError):
    """A run directory or trace file that is missing, truncated or not a workbench trace."""
