"""The command line: ``gigapatch tile | info | plugins | demo | train | predict``.

Bad input never shows a traceback: a :class:`GigapatchError` becomes one line on stderr and exit code
2; anything unexpected becomes one line and exit code 1 (``GIGAPATCH_DEBUG=1`` shows the traceback).
Progress bars appear only on a terminal and never with ``--quiet``.

Start-up is most of a run's time on one slide (the mask and coordinates of a 40k px slide take
~0.1 s once the modules are loaded): commands import what they use inside their bodies, and this
module keeps ``from __future__ import annotations`` out, since typer would evaluate every string
annotation of every command on each run.
"""

import atexit
import gc
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="gigapatch",
    help="Turn gigapixel images into the few thousand patches that matter.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

log = logging.getLogger("gigapatch")


def _console(stderr: bool = True):
    from rich.console import Console

    return Console(stderr=stderr)


def _setup_logging(quiet: bool) -> None:
    """Warnings always reach stderr; rich formats them on a terminal (plain text otherwise, which
    also keeps ``--quiet`` runs from importing rich at all)."""
    if quiet or not sys.stderr.isatty():
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    else:
        from rich.logging import RichHandler

        handler = RichHandler(console=_console(), show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    # a library's own chatter about a broken file would be a second line: our error names it
    for noisy in ("tifffile", "rasterio", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logging.getLogger("gigapatch").setLevel(logging.WARNING)


def _show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def _import_numpy_lean() -> None:
    """Import numpy with one OpenBLAS thread, unless the caller chose a number.

    On import, OpenBLAS starts a pool of worker threads that spin while they wait for work:
    ~55 ms of CPU and ~60 ms of wall time on a 2-core machine, a seventh of a whole ``tile``
    run. The pipeline's BLAS calls are (n, 3) @ (3,) products on the mask view (no faster
    threaded), and the pixel scorers (metal_surface's matrix products among them) already run
    in ``score.workers`` threads. Outputs are the same either way. OpenBLAS reads the variable
    once, when it loads: it is removed again right after, so the processes this one starts see
    the caller's environment.
    """
    if "numpy" in sys.modules or "OPENBLAS_NUM_THREADS" in os.environ:
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401
    finally:
        del os.environ["OPENBLAS_NUM_THREADS"]


Paths = Annotated[list[Path], typer.Argument(help="image files or folders of images")]


@app.command()
def tile(
    paths: Paths,
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("gigapatch-out"),
    domain: Annotated[str | None, typer.Option(help="domain plugin: pathology, generic, ...")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")] = None,
    patch_size: Annotated[int | None, typer.Option(help="patch side in output px")] = None,
    level: Annotated[int | None, typer.Option(help="pyramid level to read")] = None,
    stride: Annotated[int | None, typer.Option(help="step between patches (default: size)")] = None,
    mpp: Annotated[float | None, typer.Option(help="target microns per pixel")] = None,
    magnification: Annotated[float | None, typer.Option(help="target objective power")] = None,
    slide_mpp: Annotated[float | None, typer.Option(help="override the image's level-0 mpp")] = None,
    min_foreground: Annotated[float | None, typer.Option(help="minimum foreground fraction")] = None,
    placement: Annotated[str | None, typer.Option(help="grid or optimal")] = None,
    keep: Annotated[str | None, typer.Option(help="keep expression, e.g. 'pen < 0.05'")] = None,
    top_n: Annotated[int | None, typer.Option(help="keep the N best by --rank-by")] = None,
    rank_by: Annotated[str | None, typer.Option(help="score used by --top-n")] = None,
    sharpness: Annotated[bool | None, typer.Option("--sharpness/--no-sharpness")] = None,
    extract: Annotated[bool | None, typer.Option("--extract/--no-extract", help="write patches")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="jpeg or png")] = None,
    overlay: Annotated[bool | None, typer.Option("--overlay/--no-overlay")] = None,
    geojson: Annotated[bool | None, typer.Option("--geojson/--no-geojson", help="QuPath export")] = None,
    annotations: Annotated[Path | None, typer.Option(help="GeoJSON of regions to include/exclude")] = None,
    manifest: Annotated[Path | None, typer.Option(help="CSV: path[,slide_mpp] per image")] = None,
    workers: Annotated[int | None, typer.Option(help="reader threads")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
) -> None:
    """Tile images: mask, segment, place and score patches; write coords (h5), table, overlay."""
    _setup_logging(quiet)
    _import_numpy_lean()
    from .config import load_config
    from .pipeline import tile_many
    from .readers import find_images

    overrides: dict[str, Any] = {
        "patch.size": patch_size, "patch.level": level, "patch.stride": stride, "patch.mpp": mpp,
        "patch.magnification": magnification, "patch.slide_mpp": slide_mpp,
        "patch.min_foreground": min_foreground, "patch.placement": placement,
        "score.keep": keep, "score.top_n": top_n, "score.rank_by": rank_by,
        "score.sharpness": sharpness, "output.extract": extract, "output.format": fmt,
        "output.overlay": overlay, "output.geojson": geojson, "annotations.path": annotations,
        "score.workers": workers, "output.workers": workers,
    }
    if mpp is not None or magnification is not None:
        overrides["patch.level"] = None
    cfg = load_config(domain=domain, file=config, overrides=overrides)
    per_image = _read_manifest(manifest) if manifest else None
    images = find_images(paths)
    out.mkdir(parents=True, exist_ok=True)
    progress_on = _show_progress(quiet)

    def report(res) -> None:
        if res.status == "error":
            print(f"error: {res.message}", file=sys.stderr)
        elif res.status == "empty":
            print(f"warning: {res.path}: {res.message}", file=sys.stderr)

    if progress_on:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=_console(), transient=False) as prog:
            task = prog.add_task("tiling", total=len(images))

            def on_done(res) -> None:
                report(res)
                prog.update(task, advance=1, description=f"tiling {res.path.name}")

            summary = tile_many(images, cfg, out, overrides_per_image=per_image, on_done=on_done)
    else:
        summary = tile_many(images, cfg, out, overrides_per_image=per_image, on_done=report)
    n_ok = sum(r.status != "error" for r in summary.results)
    n_patches = sum(r.n_patches for r in summary.results)
    if not quiet:
        empty = [r for r in summary.results if r.status == "empty"]
        note = f", {len(empty)} with almost no foreground" if empty else ""
        print(f"{n_ok}/{len(summary.results)} images tiled, {n_patches} patches kept{note}; "
              f"outputs in {out} (summary.csv)")
    if summary.n_errors:
        raise typer.Exit(2 if summary.n_errors == len(summary.results) else 1)


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    import csv

    from .errors import ConfigError

    try:
        rows = list(csv.DictReader(path.open()))
    except FileNotFoundError:
        raise ConfigError(f"{path}: manifest not found") from None
    if not rows or "path" not in rows[0]:
        raise ConfigError(f"{path}: a manifest needs a 'path' column")
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        ov: dict[str, Any] = {}
        for key in ("slide_mpp", "mpp", "level"):
            val = (row.get(key) or "").strip()
            if val:
                try:
                    ov[f"patch.{key}"] = float(val) if key != "level" else int(val)
                except ValueError:
                    raise ConfigError(f"{path}: bad {key} {val!r} for {row['path']}") from None
        if ov:
            out[row["path"]] = ov
    return out


@app.command()
def info(
    paths: Paths,
    domain: Annotated[str | None, typer.Option(help="domain plugin")] = None,
) -> None:
    """Show levels, downsamples, mpp, vendor and the reader used."""
    from rich.table import Table

    from .readers import find_images, open_image
    from .resolution import check_mpp

    console = _console(stderr=False)
    for path in find_images(paths):
        with open_image(path, domain=domain) as img:
            mpp, warnings = check_mpp(img)
            t = Table(title=f"{path}", title_justify="left")
            for col in ("level", "width", "height", "downsample", "mpp"):
                t.add_column(col, justify="right")
            for i, ((w, h), d) in enumerate(zip(img.level_dimensions, img.level_downsamples)):
                t.add_row(str(i), str(w), str(h), f"{d:.3f}", f"{img.mpp * d:.4f}" if img.mpp else "-")
            console.print(t)
            console.print(
                f"reader: {img.reader_name}  vendor: {img.vendor or '-'}  "
                f"mpp: {img.mpp if img.mpp is not None else 'unknown'}  "
                f"magnification: {img.magnification or '-'}", highlight=False,
            )
            for w in warnings:
                console.print(f"[yellow]warning[/yellow] {w}", highlight=False)


@app.command()
def plugins() -> None:
    """List installed plugins, their versions, hooks and domains."""
    from rich.table import Table

    from .plugins import list_domains, list_plugins

    t = Table(title="plugins (entry-point group 'gigapatch')", title_justify="left")
    for col in ("name", "module", "version", "hooks"):
        t.add_column(col)
    for p in list_plugins():
        t.add_row(p["name"], p["module"], p["version"],
                  ", ".join(h.removeprefix("gigapatch_") for h in p["hooks"]) or "-")
    console = _console(stderr=False)
    console.print(t)
    d = Table(title="domains", title_justify="left")
    d.add_column("domain")
    d.add_column("description")
    for name, info_ in sorted(list_domains().items()):
        d.add_row(name, info_.get("description", ""))
    console.print(d)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("gigapatch-demo"),
    size: Annotated[int, typer.Option(help="side of the generated slide in px")] = 6144,
    seed: Annotated[int, typer.Option(help="random seed of the generated slide")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run the whole pipeline on a generated sample slide and say where the outputs are."""
    _setup_logging(quiet)
    from .demo import run_demo

    paths = run_demo(out, size=size, seed=seed)
    console = _console(stderr=False)
    console.print(f"demo slide: {paths['slide']}", highlight=False)
    for key in ("h5", "table", "overlay", "geojson", "patches", "config"):
        if key in paths:
            console.print(f"{key:>8}: {paths[key]}", highlight=False)
    console.print(f"{paths['n_patches']} patches kept", highlight=False)


_CORE_COMMANDS = frozenset({"tile", "info", "plugins", "demo"})
_training_registered = False


def _command(args: list[str]) -> str | None:
    """The command a command line names (its first argument that is not an option)."""
    return next((a for a in args if not a.startswith("-")), None)


def _register_training(args: list[str]) -> None:
    """Add ``train`` and ``predict`` unless the command line names a core command (their module
    costs a few ms of every ``tile``); ``--help`` and the training commands get them."""
    global _training_registered
    if _training_registered or _command(args) in _CORE_COMMANDS:
        return
    try:
        from .training.cli import register
    except ImportError:  # training commands arrive with the training package
        return
    register(app)
    _training_registered = True


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app and turns errors into one line."""
    # Start-up creates a few hundred thousand long-lived objects (the typer, pydantic, numpy,
    # OpenCV and h5py modules); at the default threshold (700 allocations) the cycle collector
    # walks them ~100 times, ~50 ms of a 0.5 s run. The pipeline makes few reference cycles, so
    # collecting every 10k allocations costs nothing in memory.
    thresholds = gc.get_threshold()
    gc.set_threshold(10_000, 10, 10)
    # and at exit, the interpreter's own collections over all of them (~20 ms) free nothing the
    # operating system does not free anyway: move them out of the collector's sight first
    atexit.register(gc.freeze)
    # pydantic looks for its own plugins (observability hooks) by reading the entry points of
    # every installed distribution when it builds the first model (~7 ms); pluggy then reads
    # them all again for ours. Typer already builds its models with pydantic's plugins off; the
    # config models are ours to build the same way (a caller's own setting is kept)
    plugins_env = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
    if plugins_env is None:
        os.environ["PYDANTIC_DISABLE_PLUGINS"] = "1"
    try:
        _run(argv)
    finally:
        gc.set_threshold(*thresholds)
        if plugins_env is None:
            os.environ.pop("PYDANTIC_DISABLE_PLUGINS", None)


def _run(argv: list[str] | None) -> None:
    from .errors import GigapatchError

    _register_training(sys.argv[1:] if argv is None else list(argv))
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except GigapatchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _console().print("interrupted")
        sys.exit(130)
    except Exception as e:
        # usage errors (unknown option, bad value): click's ClickException, which typer >= 0.29
        # bundles as its own copy, so recognise it by what it offers rather than by its class
        if callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, typer.Abort) or type(e).__name__ == "Abort":
            sys.exit(1)
        if os.environ.get("GIGAPATCH_DEBUG"):
            raise
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


def console(argv: list[str] | None = None) -> None:
    """The ``gigapatch`` command: :func:`main`, then, after a core command (``tile``, ``info``,
    ``plugins``, ``demo``), an immediate exit with its status.

    Everything such a command writes is closed (and renamed into place) before it returns; what
    is left is the interpreter tearing down the ~500 modules a run imports (numpy, OpenCV, h5py,
    pydantic...), ~30 ms of a 0.4 s run that frees nothing the operating system does not. The
    ``atexit`` handlers (a plugin's included) still run first. The training commands exit
    normally (their data-loader workers are shut down by the interpreter's exit handlers).
    Library callers use :func:`main`.
    """
    first = _command(sys.argv[1:] if argv is None else list(argv))
    code: int | str | None = 0
    try:
        main(argv)
    except SystemExit as e:
        code = e.code
        if first not in _CORE_COMMANDS:
            raise
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's
    if first not in _CORE_COMMANDS or run_exit_handlers is None:
        if code:
            sys.exit(code)
        return
    if isinstance(code, str):  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        code = 1
    run_exit_handlers()  # what a normal exit would run (plugins' included), logging's flush too
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to say
            pass
    os._exit(int(code or 0))


if __name__ == "__main__":  # pragma: no cover
    console()
