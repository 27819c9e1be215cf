"""The satellite domain's own files for one image (``gigapatch_write_outputs``).

Always:

* ``<id>_raster.json``: the raster's CRS (WKT, EPSG), level-0 transform, bounds, pixel size,
  band roles and their source, no-data value and its source, reflectance scale, the display
  stretch (never applied to chips), the edge policy, the patch geometry, and the number of
  duplicate patches;
* ``<id>_duplicates.csv``: kept patches that cover the ground of a kept patch of an image
  written before into the same folder (:mod:`.duplicates`; ``plugin.satellite.duplicates``);
* ``<id>_satellite.png`` (with ``output.overlay``): footprint, water and cloud masks, chips.

On request:

* ``footprints: [native, wgs84]``: ``<id>_footprints.geojson`` in the raster's CRS,
  ``<id>_footprints_wgs84.geojson`` (RFC 7946);
* ``output.table: parquet``: ``<id>_patches.parquet``, the table (every candidate) as GeoParquet;
* ``chips: geotiff``: ``<id>_chips/<x>_<y>.tif`` (:mod:`.chips`);
* ``stac: true``: ``<id>_stac/catalog.json`` (:mod:`.stac`); ``stac_dir: DIR`` (``--stac
  DIR``): ``DIR/<id>/catalog.json`` instead, a child of ``DIR/catalog.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gigapatch import ImageContext, hookimpl, write_text_atomic

from .reader import RasterioImage
from .settings import DOMAIN, SatelliteSettings, settings

if TYPE_CHECKING:
    from gigapatch import PatchSet


def raster_record(image: RasterioImage, patchset: PatchSet, context: ImageContext,
                  n_duplicates: int) -> dict[str, Any]:
    """The content of ``<id>_raster.json``."""
    p = image.properties
    geom = context.geometry
    assert geom is not None
    keys = ("crs", "crs_wkt", "epsg", "transform", "bounds", "res", "pixel_size_m", "rotated",
            "dtype", "count", "band_roles", "nodata", "nodata_source", "reflectance", "stretch",
            "percentiles", "overviews")
    return {
        "image_id": patchset.image_id,
        "image_path": str(image.path) if image.path else None,
        **{k: p.get(k) for k in keys},
        "edge": context.config.patch.edge,
        "patch_size": geom.size, "patch_level": geom.level,
        "patch_size_level0": geom.size_level0, "stride_level0": geom.stride_level0,
        "chip_pixel_size_m": (p["pixel_size_m"] * geom.size_level0 / geom.size
                              if p.get("pixel_size_m") else None),
        "n_kept": len(patchset), "n_duplicates": n_duplicates,
    }


def _footprints(out_dir: Path, ps: PatchSet, image: RasterioImage, s: SatelliteSettings
                ) -> dict[str, Path]:
    from .geo import write_geojson

    paths: dict[str, Path] = {}
    if "native" in s.footprints:
        paths["footprints"] = write_geojson(out_dir / f"{ps.image_id}_footprints.geojson", ps,
                                            image)
    if "wgs84" in s.footprints and image.crs is not None:
        paths["footprints_wgs84"] = write_geojson(
            out_dir / f"{ps.image_id}_footprints_wgs84.geojson", ps, image, wgs84=True)
    return paths


def _picture(out_dir: Path, ps: PatchSet, context: ImageContext) -> Path:
    from .masks import context_masks, nodata_of
    from .picture import draw, write_picture

    assert context.rgb is not None
    masks = context_masks(context)
    partial = ps.columns.get("partial")
    pic = draw(context.rgb, context.mask_downsample, nodata_of(context.rgb, context.image),
               masks, ps.coords, ps.patch_size_level0, ps.rejected_coords, ps.rejected_reason,
               None if partial is None else np.asarray(partial, bool),
               tuple(settings(context.config).exclude))
    return write_picture(out_dir / f"{ps.image_id}_satellite.png", pic)


@hookimpl
def gigapatch_write_outputs(patchset: PatchSet, context: ImageContext, out_dir: Path
                            ) -> dict[str, Path] | None:
    """The files listed in the module docstring, for a georeferenced raster of the satellite
    domain."""
    image = context.image
    if context.domain != DOMAIN or not isinstance(image, RasterioImage):
        return None
    s = settings(context.config)
    ps = patchset
    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    rows: list[dict[str, Any]] = []
    if s.duplicates:
        from .duplicates import find_duplicates, write_duplicates

        rows = find_duplicates(out_dir, ps.image_id, ps.coords, ps.patch_size_level0,
                               image.transform, image.crs)
        paths["duplicates"] = write_duplicates(out_dir / f"{ps.image_id}_duplicates.csv", rows)
    paths.update(_footprints(out_dir, ps, image, s))
    if context.config.output.table == "parquet":
        from .geo import write_geoparquet

        table = ps.table(include_rejected=True)
        coords = np.stack([table["x"], table["y"]], axis=1)
        paths["geoparquet"] = write_geoparquet(out_dir / f"{ps.image_id}_patches.parquet", table,
                                               coords, ps.patch_size_level0, image.transform,
                                               image.crs)
    chips: list[Path] | None = None
    if s.chips == "geotiff":
        from .chips import write_chips

        assert context.geometry is not None
        chips = write_chips(image, ps.coords, context.geometry, out_dir / f"{ps.image_id}_chips",
                            workers=context.config.output.workers)
        paths["chips"] = out_dir / f"{ps.image_id}_chips"
    if s.stac or s.stac_dir is not None:
        from .stac import write_stac

        where = out_dir / f"{ps.image_id}_stac" if s.stac_dir is None else \
            Path(s.stac_dir) / ps.image_id
        where.parent.mkdir(parents=True, exist_ok=True)
        paths["stac"] = write_stac(where, image, ps, chips, context.config.patch.edge)
        if s.stac_dir is not None:  # DIR/catalog.json: every image's catalog as a child
            from .stac import write_root_catalog

            paths["stac_root"] = write_root_catalog(Path(s.stac_dir))
    if context.config.output.overlay and context.rgb is not None:
        paths["satellite_overlay"] = _picture(out_dir, ps, context)
    record = out_dir / f"{ps.image_id}_raster.json"  # last: the other images' registry
    write_text_atomic(record, json.dumps(raster_record(image, ps, context, len(rows)), indent=1))
    paths["raster"] = record
    return paths


__all__ = ["gigapatch_write_outputs", "raster_record"]
