"""One module per ``workbench`` subcommand: ``add_parser(subparsers)`` and ``main(args) -> int``.

Only argparse and workbench.config may be imported at module level here; heavy imports (torch, pandas, ray) happen
inside ``main``, so ``workbench --help`` stays fast.
"""
