"""``gigapatch demo --domain satellite``: a synthetic 4-band GeoTIFF scene, tiled.

The scene (:func:`gigapatch_satellite.synth.synthetic_scene`: fields, a forest, a lake, clouds,
a rotated footprint in no-data) is written as a tiled uint16 GeoTIFF in UTM zone 33N, tiled with
the ``satellite`` defaults (no-data, water and clouds are not foreground) and the kept patches'
footprints are written as a georeferenced GeoJSON in the scene's CRS.
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
    satellite defaults and return the paths of every output.

    Raises
    ------
    ConfigError : ``size`` below :data:`MIN_SIZE`.
    """
    from gigapatch import load_config, open_image, tile_image

    from .geo import write_geojson
    from .synth import synthetic_scene, write_geotiff

    if size < MIN_SIZE:
        raise ConfigError(f"the satellite demo needs --size of at least {MIN_SIZE} px (got {size})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bands, _ = synthetic_scene(seed, size)
    image = write_geotiff(out / f"demo-scene-{seed}.tif", bands)
    cfg = load_config(DOMAIN, overrides={"output.extract": True})
    tiles_dir = out / "tiles"
    with open_image(image, domain=DOMAIN) as img:
        ps = tile_image(img, cfg, out_dir=tiles_dir)
        stem = f"{tiles_dir / ps.image_id}"
        footprints = write_geojson(stem + "_footprints.geojson", ps, img)
    return {
        "image": image,
        "h5": Path(stem + ".h5"),
        "table": Path(stem + ".csv"),
        "overlay": Path(stem + "_overlay.png"),
        "footprints": footprints,
        "patches": Path(stem),
        "config": Path(stem + ".yaml"),
        "n_patches": len(ps),
    }


@hookimpl
def gigapatch_demo(out: Path, domain: str | None, size: int | None, seed: int) -> dict[str, Any] | None:
    """The satellite demo (``gigapatch demo --domain satellite``)."""
    if domain != DOMAIN:
        return None
    return run_demo(out, size=size or DEFAULT_SIZE, seed=seed)
