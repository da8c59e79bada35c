"""One module per `workbench` subcommand: ``add_parser(subparsers)`` and ``main(args) -> int``.

Heavy imports (torch, pandas, ray) happen inside ``main``, so ``workbench --help`` stays fast.
"""
