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
