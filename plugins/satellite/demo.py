"""``gigapatch demo --domain satellite``: a synthetic 4-band GeoTIFF scene, tiled.

The scene (:func:`gigapatch_satellite.synth.synthetic_scene`: fields, a forest, a lake, clouds,
a rotated footprint in no-data) is written as a tiled uint16 GeoTIFF in UTM zone 33N and tiled
with the ``satellite`` defaults (no-data, water and clouds are not foreground). Besides the core's
files it writes ``<id>_satellite.png`` (the footprint, the water and cloud masks and the chips),
the kept patches' footprints in the scene's CRS and in WGS 84, the chips as GeoTIFFs (raw 16-bit
bands, their own transform) and a STAC catalog of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gigapatch import ConfigError, hookimpl

DOMAIN = "satellite"
DEFAULT_SIZE = 2048
MIN_SIZE = 512


def run_demo(out: str | Path, size: int = DEFAULT_SIZE, seed: int = 0) -> dict[str, Any]:
    """Draw a ``size`` x ``size`` scene, write it into ``out`` as a GeoTIFF, tile it with the
    satellite defaults (plus GeoJSON footprints in the scene's CRS and in WGS 84, GeoTIFF chips
    and their STAC catalog) and return the paths of every output.

    Raises
    ------
    ConfigError : ``size`` below :data:`MIN_SIZE`.
    """
    from gigapatch import load_config, open_image, tile_image

    from .synth import synthetic_scene, write_geotiff

    if size < MIN_SIZE:
        raise ConfigError(f"the satellite demo needs --size of at least {MIN_SIZE} px (got {size})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bands, _ = synthetic_scene(seed, size)
    image = write_geotiff(out / f"demo-scene-{seed}.tif", bands)
    cfg = load_config(DOMAIN, overrides={
        "plugin.satellite.footprints": ["native", "wgs84"], "plugin.satellite.chips": "geotiff",
        "plugin.satellite.stac": True,
    })
    tiles_dir = out / "tiles"
    with open_image(image, domain=DOMAIN) as img:
        ps = tile_image(img, cfg, out_dir=tiles_dir)
    stem = f"{tiles_dir / ps.image_id}"
    return {
        "image": image,
        "h5": Path(stem + ".h5"),
        "table": Path(stem + ".csv"),
        "picture": Path(stem + "_satellite.png"),
        "overlay": Path(stem + "_overlay.png"),
        "footprints": Path(stem + "_footprints.geojson"),
        "wgs84": Path(stem + "_footprints_wgs84.geojson"),
        "chips": Path(stem + "_chips"),
        "stac": Path(stem + "_stac") / "catalog.json",
        "raster": Path(stem + "_raster.json"),
        "config": Path(stem + ".yaml"),
        "n_patches": len(ps),
    }


@hookimpl
def gigapatch_demo(out: Path, domain: str | None, size: int | None, seed: int) -> dict[str, Any] | None:
    """The satellite demo (``gigapatch demo --domain satellite``)."""
    if domain != DOMAIN:
        return None
    return run_demo(out, size=size or DEFAULT_SIZE, seed=seed)
