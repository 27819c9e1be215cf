"""gigapatch_satellite: GeoTIFF / COG scenes through rasterio.

A worked example of a third-party plugin: it imports only ``gigapatch``'s public API and is found
through the ``gigapatch`` entry-point group. It provides

* the ``satellite`` domain and its defaults (``satellite.yaml``);
* :class:`RasterioImage`, taken by ``gigapatch_open_image`` when ``domain == "satellite"`` or,
  with no domain, for a GeoTIFF (:func:`is_geotiff` reads the header; ``open_image(path,
  reader="rasterio")`` forces it); a RasterioImage with a CRS claims the ``satellite`` domain
  (``gigapatch_image_domain``);
* masks: valid data as foreground; ``cloud`` and ``water`` exclusions; a per-patch ``nodata``
  score;
* georeferencing: :func:`patch_bounds`, :func:`patch_polygons`, :func:`to_geojson`,
  :func:`write_geojson`;
* ``gigapatch demo --domain satellite``: a synthetic 4-band GeoTIFF scene (:mod:`.synth`), tiled.
"""

from __future__ import annotations

from typing import Any

from gigapatch import __version__ as __version__  # the distribution's version: one place

from .demo import gigapatch_demo  # noqa: F401
from .domain import gigapatch_domains, gigapatch_image_domain  # noqa: F401
from .masks import (
    SatelliteSettings,
    cloud_mask,
    gigapatch_exclusion_masks,  # noqa: F401
    gigapatch_foreground_mask,  # noqa: F401
    gigapatch_score_patches,  # noqa: F401
    valid_mask,
    water_mask,
)
from .reader import (  # noqa: F401
    READERS,
    RasterioImage,
    gigapatch_open_image,
    gigapatch_readers,
    is_geotiff,
)

#: georeferencing helpers, imported on first use (a run that tiles a slide never needs them)
_GEO = ("patch_bounds", "patch_corners", "patch_polygons", "to_geojson", "write_geojson")


def __getattr__(name: str) -> Any:
    if name in _GEO:
        from . import geo

        return getattr(geo, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "RasterioImage",
    "SatelliteSettings",
    "cloud_mask",
    "is_geotiff",
    "patch_bounds",
    "patch_corners",
    "patch_polygons",
    "to_geojson",
    "valid_mask",
    "water_mask",
    "write_geojson",
]
