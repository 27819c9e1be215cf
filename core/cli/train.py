"""``gigapatch train`` and ``gigapatch predict``.

Nothing heavy is imported here: torch, timm and sklearn load only when a command runs. Training
goes through the ``gigapatch_train`` hook of the active domain (the built-in default is the
generic timm trainer), so a domain plugin brings its own recipe. Progress bars are drawn here,
from the library's log records.
"""

import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from gigapatch.cli.app import app

PROGRESS_LOGGERS = ("gigapatch",)


class _ProgressHandler(logging.Handler):
    """Turns records with ``extra={"progress": (task, done, total)}`` into rich progress bars."""

    def __init__(self, progress: Any) -> None:
        super().__init__(level=logging.DEBUG)
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def emit(self, record: logging.LogRecord) -> None:
        info = getattr(record, "progress", None)
        if info is None:
            return
        task, done, total = info
        tid = self.tasks.get(task)
        if tid is None:
            for old in list(self.tasks):  # one bar at a time per kind: hide finished ones
                self.progress.update(self.tasks.pop(old), visible=False)
            tid = self.tasks[task] = self.progress.add_task(task, total=total)
        self.progress.update(tid, completed=done, total=total)


@contextmanager
def _progress(enabled: bool):
    """Rich bars on stderr; gigapatch's log lines go through the same console, above the bars."""
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.logging import RichHandler
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    logger = logging.getLogger("gigapatch")
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    ) as progress:
        bars = _ProgressHandler(progress)
        lines = RichHandler(console=progress.console, show_time=False, show_path=False, markup=False)
        lines.setLevel(logging.INFO)
        old_level, old_propagate = logger.level, logger.propagate
        logger.addHandler(bars)
        logger.addHandler(lines)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        try:
            yield
        finally:
            logger.removeHandler(bars)
            logger.removeHandler(lines)
            logger.setLevel(old_level)
            logger.propagate = old_propagate


def _log_level(quiet: bool) -> None:
    logging.getLogger("gigapatch").setLevel(logging.WARNING if quiet else logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for h in root.handlers:
        h.setLevel(logging.WARNING if quiet else logging.INFO)


def _show_bars(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@app.command("train")
def train_command(
    data: Annotated[Path, typer.Option("--data", "-d", help="data folder (default layout: labels.csv + images/; a domain may bring its own)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder")] = Path("gigapatch-run"),
    domain: Annotated[str | None, typer.Option(help="domain plugin (e.g. pathology)")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="training YAML")] = None,
    arm: Annotated[str | None, typer.Option(help="mosaic, resize or patch")] = None,
    model: Annotated[str | None, typer.Option(help="timm model name")] = None,
    epochs: Annotated[int | None, typer.Option(
        help="epochs per fold (numbered from 0 in the log and metrics.csv)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="batch size")] = None,
    folds: Annotated[int | None, typer.Option(
        help="number of stratified folds; every fold runs (the config file's fold list is "
        "replaced) unless --fold is given too")] = None,
    fold: Annotated[list[int] | None, typer.Option(help="fold(s) to run, from 0 (repeat)")] = None,
    lr: Annotated[float | None, typer.Option(help="peak learning rate")] = None,
    workers: Annotated[int | None, typer.Option(
        help="loader worker processes (default: the CPU cores, at most 8; capped to them)")] = None,
    n_tiles: Annotated[int | None, typer.Option(help="tiles per mosaic")] = None,
    tile_size: Annotated[int | None, typer.Option(help="tile side (px)")] = None,
    limit: Annotated[int | None, typer.Option(help="use only the first N images")] = None,
    pretrained: Annotated[str | None, typer.Option(help="local weights file")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    resume: Annotated[bool | None, typer.Option("--resume/--no-resume", help="continue from last.pt")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
) -> None:
    """Train a timm model (mosaic or resize arm) with stratified K-fold and QWK.

    Precedence: defaults < the domain's defaults < --config file < flags; --folds also replaces
    the file's fold list. Epochs and folds are numbered from 0. Without a domain, DATA is a generic labelled folder (labels.csv of image_id,label beside
    images/); with --domain (or ``domain:`` in the config), that domain's plugin may put its own
    layout and defaults beneath the config.
    """
    from gigapatch.plugin.manager import get_plugin_manager
    from gigapatch.training.config import read_train_config, validate_train_config

    _log_level(quiet)
    flags = {
        "arm": arm, "model": model, "epochs": epochs, "batch_size": batch_size, "folds": folds,
        "fold": fold or None, "optim.lr": lr, "workers": workers, "mosaic.n_tiles": n_tiles,
        "mosaic.tile_size": tile_size, "data.limit": limit, "pretrained": pretrained,
        "device": device, "seed": seed, "resume": resume, "domain": domain,
    }
    given = read_train_config(config, flags)  # the user's keys: a domain's defaults go beneath
    cfg = validate_train_config(given, str(config) if config is not None else None)  # fail early
    with _progress(_show_bars(quiet)):
        summary = get_plugin_manager().hook.gigapatch_train(
            config=given, data=data, out=out, domain=cfg.domain,
        )
    if summary is None:
        from gigapatch.errors import ConfigError

        raise ConfigError(f"no plugin trains for domain {cfg.domain!r}")
    if not quiet:
        from rich.console import Console

        con = Console()
        for k, f in summary.get("folds", {}).items():
            con.print(f"fold {k}: best QWK {f['best_qwk']:.4f} at epoch {f['best_epoch']} "
                      f"-> {f['checkpoint']}", highlight=False, soft_wrap=True)
        if summary.get("mean_qwk") is not None:
            con.print(f"mean QWK {summary['mean_qwk']:.4f}; metrics: {summary.get('metrics')}",
                      highlight=False)
    else:
        typer.echo(json.dumps({"mean_qwk": summary.get("mean_qwk"), "out": summary.get("out")}))


@app.command("predict")
def predict_command(
    images: Annotated[list[Path], typer.Argument(help="image files or folders")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-m", help="best.pt or last.pt")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("gigapatch-pred"),
    coords_dir: Annotated[Path | None, typer.Option(help="folder of <image_id>.h5 PatchSets")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    batch_size: Annotated[int, typer.Option(help="pictures per forward pass")] = 8,
    slide_mpp: Annotated[float | None, typer.Option(
        help="level-0 mpp of images whose files record none")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no output but errors")] = False,
) -> None:
    """Grade images with a trained checkpoint; writes predictions.csv and the pictures used.

    Tiles are read at the physical resolution the model was trained at (recorded in the
    checkpoint): the best level at or below it, resized. An image whose file records no mpp is
    refused unless --slide-mpp gives it.
    """
    from gigapatch.training.inference import predict

    _log_level(quiet)
    results = predict(checkpoint, images, out, device=device, batch_size=batch_size,
                      coords_dir=coords_dir, slide_mpp=slide_mpp)
    if not quiet:
        for r in results:
            typer.echo(f"{r['image_id']}\t{r['label']}")
        typer.echo(f"wrote {Path(out) / 'predictions.csv'}")
