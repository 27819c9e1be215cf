"""``gigapatch tile``: mask, segment, place and score patches of every image; write the outputs."""

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gigapatch.cli.app import app, rich_console, setup_logging, show_progress

Paths = Annotated[list[Path], typer.Argument(help="image files or folders of images")]


@app.command()
def tile(
    paths: Paths,
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("gigapatch-out"),
    domain: Annotated[str | None, typer.Option(
        help="domain plugin (default: the domain that claims each image, else generic)")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")] = None,
    patch_size: Annotated[int | None, typer.Option(help="patch side in output px")] = None,
    level: Annotated[int | None, typer.Option(help="pyramid level to read")] = None,
    stride: Annotated[int | None, typer.Option(help="step between patches (default: size)")] = None,
    mpp: Annotated[float | None, typer.Option(help="target microns per pixel")] = None,
    magnification: Annotated[float | None, typer.Option(help="target objective power")] = None,
    slide_mpp: Annotated[float | None, typer.Option(help="override the image's level-0 mpp")] = None,
    min_foreground: Annotated[float | None, typer.Option(help="minimum foreground fraction")] = None,
    placement: Annotated[str | None, typer.Option(help="grid or optimal")] = None,
    per_region: Annotated[bool | None, typer.Option(
        "--per-region/--no-per-region",
        help="place each region on its own: no patch holds two regions")] = None,
    keep: Annotated[str | None, typer.Option(help="keep expression, e.g. 'foreground > 0.9'")] = None,
    top_n: Annotated[int | None, typer.Option(help="keep the N best by --rank-by")] = None,
    rank_by: Annotated[str | None, typer.Option(help="score used by --top-n")] = None,
    sharpness: Annotated[bool | None, typer.Option(
        "--sharpness/--no-sharpness", help="the sharpness score of every candidate")] = None,
    extract: Annotated[bool | None, typer.Option("--extract/--no-extract", help="write patches")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="jpeg or png")] = None,
    overlay: Annotated[bool | None, typer.Option("--overlay/--no-overlay")] = None,
    geojson: Annotated[bool | None, typer.Option("--geojson/--no-geojson", help="QuPath export")] = None,
    annotations: Annotated[Path | None, typer.Option(help="GeoJSON of regions to include/exclude")] = None,
    manifest: Annotated[Path | None, typer.Option(help="CSV: path[,slide_mpp] per image")] = None,
    workers: Annotated[int | None, typer.Option(help="reader threads")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="any config key, e.g. --set plugin.metal_surface.voc=true (repeatable; "
        "`gigapatch plugins` lists each domain's settings)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
) -> None:
    """Tile images: mask, segment into regions, place patches in them, score, select; write coords
    (h5), tables, overlay."""
    setup_logging(quiet)
    from gigapatch.io.readers import find_images
    from gigapatch.outputs.run import ConfigRecipe, tile_many

    overrides: dict[str, Any] = {
        "patch.size": patch_size, "patch.level": level, "patch.stride": stride, "patch.mpp": mpp,
        "patch.magnification": magnification, "patch.slide_mpp": slide_mpp,
        "patch.min_foreground": min_foreground, "patch.placement": placement,
        "patch.per_region": per_region,
        "score.keep": keep, "score.top_n": top_n, "score.rank_by": rank_by,
        "score.sharpness": sharpness, "output.extract": extract, "output.format": fmt,
        "output.overlay": overlay, "output.geojson": geojson, "annotations.path": annotations,
        "score.workers": workers, "output.workers": workers,
    }
    if mpp is not None or magnification is not None:
        overrides["patch.level"] = None
    overrides.update(parse_settings(set_ or []))
    recipe = ConfigRecipe(domain=domain, file=config, overrides=overrides)
    recipe.resolve(recipe.domain or "generic")  # a bad flag or file fails before any work
    per_image = read_manifest(manifest) if manifest else None
    images = find_images(paths)
    out.mkdir(parents=True, exist_ok=True)

    def report(res: Any) -> None:  # an empty image: tile_image's warning is already logged
        if res.status == "error":
            print(f"error: {res.message}", file=sys.stderr)

    if show_progress(quiet):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=rich_console(), transient=False) as prog:
            task = prog.add_task("tiling", total=len(images))

            def on_done(res: Any) -> None:
                report(res)
                prog.update(task, advance=1, description=f"tiling {res.path.name}")

            summary = tile_many(images, recipe, out, overrides_per_image=per_image, on_done=on_done)
    else:
        summary = tile_many(images, recipe, out, overrides_per_image=per_image, on_done=report)
    n_ok = sum(r.status != "error" for r in summary.results)
    n_patches = sum(r.n_patches for r in summary.results)
    if not quiet:
        empty = [r for r in summary.results if r.status == "empty"]
        note = f", {len(empty)} with almost no foreground" if empty else ""
        print(f"{n_ok}/{len(summary.results)} images tiled, {n_patches} patches kept{note}; "
              f"outputs in {out} (summary.csv)")
    if summary.n_errors:
        raise typer.Exit(2 if summary.n_errors == len(summary.results) else 1)


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[x, y]"]`` -> ``{"a.b": 1, "c": ["x", "y"]}`` (values read as YAML)."""
    import yaml

    from gigapatch.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. patch.size=512)")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
    return out


def read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """Per-image overrides from a CSV manifest: a ``path`` column, and ``slide_mpp``, ``mpp`` or
    ``level`` columns (empty cells: no override)."""
    import csv

    from gigapatch.errors import ConfigError

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
