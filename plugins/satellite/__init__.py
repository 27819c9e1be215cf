"""gigapatch_satellite: GeoTIFF / COG scenes through rasterio.

A worked example of a third-party plugin: it imports only ``gigapatch``'s public API and is found
through the ``gigapatch`` entry-point group. It provides

* the ``satellite`` domain and its defaults (``satellite.yaml``), its settings
  (:class:`SatelliteSettings`, ``plugin.satellite.*``);
* :class:`RasterioImage`, taken by ``gigapatch_open_image`` when ``domain == "satellite"`` or,
  with no domain, for a GeoTIFF (:func:`is_geotiff` reads the header; ``open_image(path,
  reader="rasterio")`` forces it); a RasterioImage with a CRS claims the ``satellite`` domain;
  band roles (:mod:`.bands`), no-data and the display stretch follow the settings
  (``gigapatch_prepare_image``), and ``gigapatch info`` shows them (``gigapatch_describe_image``);
* masks on the view (:mod:`.masks`): the valid-data footprint as foreground; ``cloud``,
  ``water`` (NDWI / MNDWI) and ``vegetation`` (NDVI); a per-patch ``nodata`` fraction, measured
  on finer pixels along the footprint's edge (:mod:`.footprint`), and the ``nodata`` rule;
* georeferencing: per-patch window, transform, bounds and EPSG columns (:mod:`.columns`);
  GeoJSON (native and RFC 7946), GeoParquet, GeoTIFF chips, STAC, duplicates across images
  (:mod:`.outputs`); :func:`patch_bounds`, :func:`patch_transforms`, :func:`to_geojson`...;
  :func:`read_chips` (raw bands of many patches into one array);
* ``gigapatch tile`` flags (``gigapatch_tile_options``, :mod:`.options`): ``--bands``,
  ``--sensor``, ``--nodata``, ``--crs``, ``--stac DIR``, ``--geojson native|wgs84``,
  ``--extract --format geotiff``, each a ``plugin.satellite`` setting of satellite images;
* ``gigapatch demo --domain satellite``: a synthetic 4-band GeoTIFF scene (:mod:`.synth`), tiled.
"""

from __future__ import annotations

from typing import Any

from gigapatch import __version__ as __version__  # the distribution's version: one place

from .columns import gigapatch_patch_columns  # noqa: F401
from .demo import gigapatch_demo  # noqa: F401
from .domain import (  # noqa: F401
    gigapatch_describe_image,
    gigapatch_domains,
    gigapatch_image_domain,
    gigapatch_prepare_image,
)
from .masks import (
    cloud_mask,
    gigapatch_exclusion_masks,  # noqa: F401
    gigapatch_foreground_mask,  # noqa: F401
    gigapatch_reject_patches,  # noqa: F401
    gigapatch_score_patches,  # noqa: F401
    mndwi,
    ndvi,
    ndwi,
    rgb_water,
    valid_mask,
)
from .opening import (  # noqa: F401
    READERS,
    gigapatch_open_image,
    gigapatch_readers,
    is_geotiff,
)
from .options import gigapatch_tile_options  # noqa: F401
from .outputs import gigapatch_write_outputs  # noqa: F401
from .reader import RasterioImage
from .settings import SatelliteSettings

#: helpers imported on first use (a run that tiles a slide never needs them)
_LAZY = {
    **{name: "geo" for name in ("patch_bounds", "patch_corners", "patch_polygons",
                                "patch_transforms", "to_geojson", "to_wgs84", "windows_of",
                                "write_geojson", "write_geoparquet")},
    "read_chips": "chips", "write_chips": "chips",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RasterioImage",
    "SatelliteSettings",
    "cloud_mask",
    "is_geotiff",
    "mndwi",
    "ndvi",
    "ndwi",
    "rgb_water",
    "valid_mask",
    *_LAZY,
]
