"""``gigapatch tile``: mask, segment, place and score patches of every image; write the outputs."""

from pathlib import Path
from typing import Annotated, Any

import typer

from gigapatch.cli.app import app, log, setup_logging
from gigapatch.cli.tile_options import TileCommand

Paths = Annotated[list[Path], typer.Argument(help="image files or folders of images")]
Inputs = Annotated[list[Path] | None, typer.Argument(
    help="image files, folders of images or glob patterns ('slides/*.svs'); or --manifest")]


@app.command(cls=TileCommand)  # with the plugins' own flags (gigapatch_tile_options)
def tile(
    ctx: typer.Context,
    paths: Inputs = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("gigapatch-out"),
    domain: Annotated[str | None, typer.Option(
        help="domain plugin (default: the domain that claims each image, else generic)")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")] = None,
    patch_size: Annotated[int | None, typer.Option(help="patch side in output px")] = None,
    level: Annotated[int | None, typer.Option(help="pyramid level to read")] = None,
    stride: Annotated[int | None, typer.Option(help="step between patches (default: size)")] = None,
    pixel_size_mm: Annotated[str | None, typer.Option(
        help="level-0 pixel pitch X[,Y] in mm (overrides the file's; anisotropic allowed)")] = None,
    patch_size_mm: Annotated[float | None, typer.Option(help="patch side in mm")] = None,
    stride_mm: Annotated[float | None, typer.Option(help="step between patches in mm")] = None,
    max_object_mm: Annotated[float | None, typer.Option(
        "--max-object-mm", "--max-defect-mm",
        help="objects (defects) up to this size in mm lie wholly inside some patch: the stride "
        "is capped at the patch side minus this")] = None,
    max_object: Annotated[int | None, typer.Option(
        "--max-object", "--max-defect", help="the same in level-0 px")] = None,
    mpp: Annotated[float | None, typer.Option(help="target microns per pixel")] = None,
    magnification: Annotated[float | None, typer.Option(help="target objective power")] = None,
    slide_mpp: Annotated[float | None, typer.Option(help="override the image's level-0 mpp")] = None,
    gsd: Annotated[float | None, typer.Option(
        help="target ground sample distance in metres (a satellite scene's pixel size): --mpp "
        "in metres, the overview at or below it, resized")] = None,
    edge: Annotated[str | None, typer.Option(
        help="image edge: inside (= skip: whole patches only), pad (the last row/column "
        "overhangs, flagged partial) or shift (the last row/column ends at the edge)")] = None,
    min_foreground: Annotated[float | None, typer.Option(help="minimum foreground fraction")] = None,
    placement: Annotated[str | None, typer.Option(help="grid, optimal or border")] = None,
    per_region: Annotated[bool | None, typer.Option(
        "--per-region/--no-per-region",
        help="place each region on its own: no patch holds two regions")] = None,
    keep: Annotated[str | None, typer.Option(help="keep expression, e.g. 'foreground > 0.9'")] = None,
    top_n: Annotated[int | None, typer.Option(help="keep the N best by --rank-by")] = None,
    top_percent: Annotated[float | None, typer.Option(
        help="keep the best P % by --rank-by of the patches that pass the other rules")] = None,
    rank_by: Annotated[str | None, typer.Option(help="score used by --top-n")] = None,
    sharpness: Annotated[bool | None, typer.Option(
        "--sharpness/--no-sharpness", help="the sharpness score of every candidate")] = None,
    extract: Annotated[bool | None, typer.Option("--extract/--no-extract", help="write patches")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help=(
        "extracted patches: jpeg or png (<id>/<x>_<y>.<ext>), or tar (WebDataset shards: "
        "<id>/<x>_<y>.jpg + .json with its scores and labels); a plugin's value is its "
        "domain's extraction instead"))] = None,
    contact_sheet: Annotated[bool | None, typer.Option(
        "--contact-sheet/--no-contact-sheet",
        help="<id>_contact.png: the 16 best and 16 worst kept patches by --rank-by")] = None,
    overlay: Annotated[bool | None, typer.Option("--overlay/--no-overlay")] = None,
    geojson: Annotated[bool | None, typer.Option(
        "--geojson/--no-geojson", help="QuPath export; --geojson VALUE: a plugin's GeoJSON "
        "for its domain's images, without the QuPath export")] = None,
    annotations: Annotated[Path | None, typer.Option(help="GeoJSON of regions to include/exclude")] = None,
    manifest: Annotated[Path | None, typer.Option(
        help="CSV or Parquet, one row per image: image_id, path, and optional label, split, "
        "domain, slide_mpp or any config key (README: Cohorts)")] = None,
    workers: Annotated[int | None, typer.Option(
        help="images tiled at once by local worker processes (default: the cores)")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="tile on a Dask distributed cluster: its scheduler, tcp://HOST:PORT")] = None,
    scheduler_file: Annotated[Path | None, typer.Option(
        help="tile on a Dask distributed cluster: its scheduler file")] = None,
    shard: Annotated[str | None, typer.Option(
        help="i/N: only the images of shard i of N (job arrays; same --out for all)")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="tile every image again, also those done with the same config")] = False,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="tile again only the images whose last run failed")] = False,
    timeout: Annotated[float | None, typer.Option(
        help="seconds one image may take before it is recorded as failed")] = None,
    threads: Annotated[int | None, typer.Option(help="reader threads per image")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="any config key (repeatable), e.g. --set output.table=parquet; a domain's "
        "own outputs and labels are its plugin.<domain>.* keys, e.g. --set "
        "plugin.metal_surface.voc=true; `gigapatch plugins` lists every domain's settings")] = None,
    on_bad_tile: Annotated[str | None, typer.Option(
        help="a corrupt stored tile: fail (the image fails, naming the tile) or skip (the "
        "patches over it are dropped and reported); config key read.on_bad_tile")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
) -> None:
    """Tile images: mask, segment into regions, place patches in them, score, select; write coords
    (h5), tables, overlay."""
    setup_logging(quiet)
    from gigapatch.cli.tile_cohort import run_options, run_tile_cohort
    from gigapatch.cli.tile_options import META, check_plugin_settings, plugin_overrides
    from gigapatch.cohort.inputs import collect_tasks
    from gigapatch.config import load_config
    from gigapatch.outputs.run import ConfigRecipe

    overrides: dict[str, Any] = {
        "patch.size": patch_size, "patch.level": level, "patch.stride": stride, "patch.mpp": mpp,
        "patch.magnification": magnification, "patch.slide_mpp": slide_mpp,
        "patch.min_foreground": min_foreground, "patch.placement": placement,
        "patch.per_region": per_region,
        "score.keep": keep, "score.top_n": top_n, "score.rank_by": rank_by,
        "score.sharpness": sharpness, "output.extract": extract, "output.format": fmt,
        "output.overlay": overlay, "output.geojson": geojson, "annotations.path": annotations,
        "output.contact_sheet": contact_sheet,
        "score.workers": threads, "output.workers": threads, "read.on_bad_tile": on_bad_tile,
    }
    if gsd is not None:  # metres per pixel: the same machinery as --mpp (microns per pixel)
        overrides["patch.mpp"] = gsd * 1e6
    overrides["patch.edge"] = edge
    if mpp is not None or magnification is not None or gsd is not None:
        overrides["patch.level"] = None
    overrides.update(physical_overrides(pixel_size_mm, patch_size_mm, stride_mm, max_object_mm,
                                        max_object, top_percent))
    settings = parse_settings(set_ or [])

    def extracting(d: str | None) -> bool:  # is extraction on for domain d's images?
        if extract is not None:
            return extract
        core = {**overrides, "output.format": None, **settings}
        return load_config(d or domain, config, core).output.extract

    plugin, core_format = plugin_overrides(ctx.meta.get(META), fmt, extracting)
    overrides["output.format"] = core_format  # None when --format was a plugin's value
    overrides.update(plugin.common)
    overrides.update(settings)  # --set last: it wins over every flag
    recipe = ConfigRecipe(domain=domain, file=config, overrides=overrides, domain_overrides={
        d: {k: v for k, v in over.items() if k not in settings}
        for d, over in plugin.domains.items()})
    recipe.resolve(recipe.domain or "generic")  # a bad flag or file fails before any work
    check_plugin_settings(plugin, recipe.resolve)
    for d, flag in plugin.used.items():
        if recipe.domain is not None and recipe.domain != d:
            log.warning("%s is an option of the %s domain: ignored for --domain %s", flag, d,
                        recipe.domain)
    options = run_options(workers, scheduler, scheduler_file, shard, force, retry_failed, timeout)
    tasks = collect_tasks(paths or [], manifest,
                          check=lambda d, ov: recipe.config(d or recipe.domain or "generic", ov))
    check_out_dir(out)
    run_tile_cohort(tasks, recipe, out, options, quiet)


def physical_overrides(
    pixel_size_mm: str | None, size_mm: float | None, stride_mm: float | None,
    max_object_mm: float | None, max_object: int | None, top_percent: float | None,
) -> dict[str, Any]:
    """The config keys of the sizes given in mm (and px), and of ``--top-percent``."""
    out: dict[str, Any] = {
        "patch.size_mm": size_mm, "patch.stride_mm": stride_mm,
        "patch.max_object_mm": max_object_mm, "patch.max_object": max_object,
        "score.top_percent": top_percent,
    }
    if pixel_size_mm is not None:
        from gigapatch.io.physical import parse_pixel_size

        pixel = parse_pixel_size(pixel_size_mm, "mm")
        out["patch.pixel_size"] = [pixel.x, pixel.y]
    return out


def check_out_dir(out: Path) -> None:
    """ConfigError unless ``out`` is (or can be made) a folder this process can write into."""
    import os

    from gigapatch.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create the output folder "
                          f"({e.strerror or type(e).__name__})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: the output folder is not writable")


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[x, y]"]`` -> ``{"a.b": 1, "c": ["x", "y"]}`` (values read as YAML)."""
    from gigapatch.config import safe_yaml
    from gigapatch.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. patch.size=512)")
        out[key.strip()] = safe_yaml(value, f"--set {key.strip()}")
    return out
