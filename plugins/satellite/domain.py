"""Declares the ``satellite`` domain and its default config, and claims georeferenced rasters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gigapatch import hookimpl

DEFAULTS = Path(__file__).with_name("satellite.yaml")


@hookimpl
def gigapatch_domains() -> list[dict[str, Any]]:
    from .masks import SatelliteSettings

    return [
        {
            "name": "satellite",
            "description": "GeoTIFF / COG scenes (rasterio): data vs no-data, clouds, water",
            "config": DEFAULTS,
            "settings": SatelliteSettings,
            "region_class": "Land",
        }
    ]


@hookimpl(tryfirst=True)
def gigapatch_image_domain(image: Any) -> str | None:
    """A raster rasterio opened (a :class:`RasterioImage`) that has a CRS is a satellite scene.

    First among the claims: a georeferenced raster is unambiguous, whereas other domains' signals
    (a file vendor, a resolution) may also fit it.
    """
    from .reader import RasterioImage

    if isinstance(image, RasterioImage) and image.crs is not None:
        return "satellite"
    return None
