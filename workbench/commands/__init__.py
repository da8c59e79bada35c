"""One module per ``workbench`` subcommand: ``add_parser(subparsers)`` and ``main(args) -> int``.

Only argparse and workbench.config may be imported at module level here; heavy imports (torch, pandas, ray) happen
inside ``main``, so ``workbench --help`` stays fast.
"""


def description(doc: str) -> str:
    """A subcommand's ``--help`` description: its module docstring's first paragraph, as plain text."""
    return " ".join(doc.split("\n\n")[0].split()).replace("``", "")


def out_path(text: str) -> str:
    """An argparse type for ``--out``: an empty string would silently mean the current directory."""
    import argparse

    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (give the directory to write)")
    return text


def check_dir_path(flag: str, path, directory=None) -> None:
    """Refuse ``path`` (given as ``flag``) when ``directory`` (the folder it names or goes in; default: the path
    itself), or the nearest existing folder above it, is a file: ``--out X: [Y ]exists and is not a directory``."""
    from pathlib import Path

    from workbench.errors import WorkbenchError

    d = Path(directory if directory is not None else path).absolute()
    existing = next(p for p in (d, *d.parents) if p.exists())
    if not existing.is_dir():
        where = "" if existing == Path(path).absolute() else f"{existing} "  # the path itself, or a folder above it
        raise WorkbenchError(f"{flag} {path}: {where}exists and is not a directory")
