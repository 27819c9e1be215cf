"""Declares the ``satellite`` domain and its default config, claims georeferenced rasters, applies
the ``plugin.satellite`` reading settings to the open raster, and describes it for
``gigapatch info``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gigapatch import ImageContext, hookimpl

DEFAULTS = Path(__file__).with_name("satellite.yaml")


@hookimpl
def gigapatch_domains() -> list[dict[str, Any]]:
    from .settings import SatelliteSettings

    return [
        {
            "name": "satellite",
            "description": "GeoTIFF / COG scenes (rasterio): band roles, no-data footprint, "
            "clouds, water, vegetation; georeferenced patches, chips, STAC",
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


@hookimpl
def gigapatch_prepare_image(context: ImageContext) -> None:
    """Read the raster as ``plugin.satellite`` says: band roles (``bands`` / ``sensor``), the
    ``nodata`` value, the display ``percentiles``, the reflectance scale and a target ``crs``."""
    from .reader import RasterioImage
    from .settings import DOMAIN, settings

    if context.domain != DOMAIN or not isinstance(context.image, RasterioImage):
        return
    s = settings(context.config)
    context.image.configure(
        bands=s.bands, sensor=s.sensor, nodata=s.nodata, percentiles=s.percentiles, crs=s.crs,
        reflectance=(s.reflectance_scale, s.reflectance_offset),
    )


def _band_lines(p: dict[str, Any]) -> str:
    roles = p["band_roles"]
    by_band: dict[int, list[str]] = {}
    for role in ("red", "green", "blue", "nir", "swir1"):
        b = roles.get(role)
        if b:
            by_band.setdefault(int(b), []).append(role)
    parts = []
    for i in range(1, int(p["count"]) + 1):
        ci = p["colorinterp"][i - 1]
        desc = p["descriptions"][i - 1]
        label = "/".join(by_band.get(i, [])) or "-"
        extra = f" '{desc}'" if desc else ""
        parts.append(f"{i}={label} ({ci}{extra})")
    return ", ".join(parts)


@hookimpl
def gigapatch_describe_image(image: Any) -> dict[str, str] | None:
    """CRS, pixel size in metres, every band with its role, data type, no-data and overviews."""
    from .reader import RasterioImage

    if not isinstance(image, RasterioImage):
        return None
    p = image.properties
    res = p["res"]
    size = (f"{p['pixel_size_m']:.6g} m" if p["pixel_size_m"] is not None
            else f"{res[0]:.6g} x {res[1]:.6g} (CRS units)")
    stretch = ("none (8-bit shown as stored)" if p["stretch"] is None else
               "; ".join(f"{lo:.6g}-{hi:.6g}" for lo, hi in p["stretch"])
               + f" (percentiles {p['percentiles'][0]:g}-{p['percentiles'][1]:g})")
    ovr = ", ".join(f"{d:g}" for d in p["overviews"]) or "none"
    return {
        "crs": f"{p['crs'] or 'none'}" + (" (rotated grid)" if p["rotated"] else ""),
        "pixel size": size,
        "bounds": ", ".join(f"{v:.6f}" for v in p["bounds"]),
        "bands": f"{p['count']} x {p['dtype']}: {_band_lines(p)}",
        "band roles from": p["band_roles"]["source"],
        "nodata": f"{p['nodata'] if p['nodata'] is not None else '-'} "
                  f"({p['nodata_source']})",
        "reflectance": f"value x {p['reflectance']['scale']:.6g} + "
                       f"{p['reflectance']['offset']:.6g} ({p['reflectance']['source']})",
        "display stretch": stretch,
        "overviews": ovr,
    }
