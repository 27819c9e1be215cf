"""The ``gigapatch`` command line: one module per command, all on one typer app."""

import os
import sys

from gigapatch.cli import demo, info, plugins, report, tile, train  # noqa: F401  (each adds its command)
from gigapatch.cli.app import app, main

__all__ = ["app", "console", "main"]


def console(argv: list[str] | None = None) -> None:
    """The ``gigapatch`` console script: :func:`main` on the command line.

    The command's processes run numpy's BLAS on one thread unless ``OPENBLAS_NUM_THREADS`` is
    set: gigapatch parallelises by image (one worker process per core) and by region reads
    (threads), and its BLAS calls are small products on a mask view, so an OpenBLAS pool per
    process only oversubscribes the cores and spins (Dask's workers make the same choice). The
    setting is made before numpy is first imported, so the cohort's worker processes inherit it.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main(sys.argv[1:] if argv is None else argv)
