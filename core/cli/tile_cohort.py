"""How ``gigapatch tile`` runs its cohort: options, the cohort progress bar, what it prints, and
its exit code (0: every image ok or empty; 1: some failed; 2: all failed or bad input; 130 / 143:
interrupted by Ctrl-C / SIGTERM, after the summary was rebuilt from the records)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gigapatch.cli.app import rich_console, show_progress
from gigapatch.errors import ConfigError

if TYPE_CHECKING:
    from gigapatch.cohort.inputs import ImageTask
    from gigapatch.cohort.runner import CohortRun, RunOptions
    from gigapatch.cohort.worker import Outcome
    from gigapatch.outputs.run import ConfigRecipe

log = logging.getLogger("gigapatch")


def run_options(
    workers: int | None, scheduler: str | None, scheduler_file: Path | None, shard: str | None,
    force: bool, retry_failed: bool, timeout: float | None,
) -> RunOptions:
    """The run's options from the flags; ConfigError for a bad combination or value."""
    from gigapatch.cohort.runner import RunOptions, parse_shard

    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: give at least 1")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout {timeout:g}: give a number of seconds > 0")
    if force and retry_failed:
        raise ConfigError("--force redoes every image, --retry-failed only the failed: give one")
    if scheduler and scheduler_file:
        raise ConfigError("give --scheduler or --scheduler-file, not both")
    if scheduler_file is not None and not scheduler_file.is_file():
        raise ConfigError(f"--scheduler-file {scheduler_file}: no such file")
    return RunOptions(workers=workers, scheduler=scheduler, scheduler_file=scheduler_file,
                      shard=parse_shard(shard) if shard else None, force=force,
                      retry_failed=retry_failed, timeout=timeout)


def print_outcome(outcome: Outcome) -> None:
    """An image's error (one line), the warnings a worker collected, a busy image."""
    rec = outcome.record
    if outcome.kind == "busy":
        h = outcome.holder
        who = f"pid {h['pid']} on {h['host']}" if "pid" in h and "host" in h else "another run"
        print(f"skipped {outcome.image_id}: {who} is tiling it", file=sys.stderr)
    elif outcome.kind == "done" and rec is not None:
        if not outcome.in_driver:  # tiled in another process: its warnings come with its record
            for line in rec.warnings:
                log.warning("%s", line)
        if rec.status == "error":
            print(f"error: {rec.reason}", file=sys.stderr)


def run_tile_cohort(
    tasks: list[ImageTask], recipe: ConfigRecipe, out: Path, options: RunOptions, quiet: bool
) -> None:
    """Run the cohort with a progress bar on a terminal; print its summary line; exit with
    its code."""
    from gigapatch.cohort.runner import Interrupted, run_cohort

    try:
        if show_progress(quiet):
            result = _with_progress(tasks, recipe, out, options)
        else:
            result = run_cohort(tasks, recipe, out, options, on_event=print_outcome)
    except Interrupted as e:
        print(f"interrupted ({e}): the images not finished have no record and are tiled by the "
              f"next run; summary in {out / 'summary.csv'}", file=sys.stderr)
        raise typer.Exit(128 + e.signum) from None
    if not quiet:
        print(summary_line(result, out))
    if result.n_errors:
        raise typer.Exit(result.exit_code)


def _with_progress(
    tasks: list[ImageTask], recipe: ConfigRecipe, out: Path, options: RunOptions
) -> CohortRun:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from gigapatch.cohort.runner import run_cohort

    failed = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=rich_console(),
                  transient=False) as prog:
        bar = prog.add_task("images", total=len(tasks))

        def on_event(outcome: Outcome) -> None:
            nonlocal failed
            print_outcome(outcome)
            rec = outcome.record
            failed += rec is not None and rec.status == "error"
            note = f" ({failed} failed)" if failed else ""
            prog.update(bar, advance=1, description=f"images{note}: {outcome.image_id}")

        result = run_cohort(tasks, recipe, out, options, on_event=on_event)
        prog.update(bar, total=result.n_tasks, completed=result.n_tasks)
    return result


def summary_line(result: CohortRun, out: Path) -> str:
    """``"5/6 images tiled (4 now, 2 already done), 812 patches kept; 1 failed ...``"."""
    recs = result.records
    n_ok = sum(r.status != "error" for r in recs)
    parts = [f"{n_ok}/{len(recs)} images tiled"]
    if result.skipped:
        parts[0] += f" ({len(result.tiled)} now, {len(result.skipped)} already done)"
    parts[0] += f", {sum(r.n_patches for r in recs)} patches kept"
    empty = sum(r.status == "empty" for r in recs)
    if empty:
        parts.append(f"{empty} without patches (almost no foreground, or pieces smaller than a "
                     "patch: the warning and summary.csv say which)")
    if result.n_errors:
        parts.append(f"{result.n_errors} failed (--retry-failed tiles them again)")
    if result.busy:
        parts.append(f"{len(result.busy)} being tiled by another run")
    if result.not_started:
        parts.append(f"{len(result.not_started)} never tiled left alone (--retry-failed; "
                     "run without it to tile them)")
    return "; ".join(parts) + f"; outputs in {out} (summary.csv)"


__all__ = ["print_outcome", "run_options", "run_tile_cohort", "summary_line"]
