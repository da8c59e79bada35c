"""One module per ``workbench`` subcommand: ``add_parser(subparsers)`` and ``main(args) -> int``.

Only argparse and workbench.config may be imported at module level here (``workbench --help`` must stay fast).
"""
