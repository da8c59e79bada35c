"""User-facing errors: one clear line, non-zero exit (the CLI prints ``error: <message>``)."""


class WorkbenchError(Exception):
    """Bad input or an unusable environment. The message is a single line meant for the user."""


class TraceError(WorkbenchError):
    """A run directory or trace file that is missing, truncated or not a workbench trace."""
