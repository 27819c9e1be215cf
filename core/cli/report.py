"""``gigapatch report OUT``: rebuild the cohort report ``OUT/report.html`` of a tile run."""

from pathlib import Path
from typing import Annotated

import typer

from gigapatch.cli.app import app, setup_logging


@app.command()
def report(
    out: Annotated[Path, typer.Argument(help="the output folder of a `gigapatch tile` run")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print nothing")] = False,
) -> None:
    """Rebuild OUT/report.html: one self-contained page (no server, no internet) with each image's
    status, reason, patches, regions, foreground, coverage, seconds, warnings and overlay
    thumbnail, in a table sorted by clicking a column header."""
    setup_logging(quiet)
    from gigapatch.cohort.report import read_rows, write_report

    rows = read_rows(out)
    path = write_report(out, rows)
    if not quiet:
        failed = sum(r.status == "error" for r in rows)
        note = f", {failed} failed" if failed else ""
        print(f"{len(rows)} images{note}; report: {path}")
