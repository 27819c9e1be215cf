"""The ``gigapatch`` command line: one module per command, all on one typer app."""

import sys

from gigapatch.cli import demo, info, plugins, report, tile, train  # noqa: F401  (each adds its command)
from gigapatch.cli.app import app, main

__all__ = ["app", "console", "main"]


def console(argv: list[str] | None = None) -> None:
    """The ``gigapatch`` console script: :func:`main` on the command line."""
    main(sys.argv[1:] if argv is None else argv)
