"""One module per `workbench` subcommand: ``add_parser(subparsers)`` and ``main(args) -> int`` (heavy imports in main)."""
