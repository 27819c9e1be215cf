"""Satellite masks on the low-resolution RGB view: valid data, clouds and water.

All three are plain functions on (h, w, 3) uint8 arrays (the view the pipeline computes masks
on); the hooks below wire them in for ``domain == "satellite"``. Settings live under
``plugin.satellite`` in the config (validated by :class:`SatelliteSettings`)::

    plugin:
      satellite:
        exclude: [cloud, water]   # masks removed from the foreground ([] keeps water and clouds)
        cloud_min_brightness: 180

Every mask is also a per-patch score column of its name (a fraction in [0, 1]), plus
``nodata``, the fraction of each patch that is no-data.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gigapatch import Config, ImageContext, hookimpl, mask_fraction, plugin_settings

from .reader import RasterioImage

DOMAIN = "satellite"
MaskName = Literal["cloud", "water"]
MASK_NAMES: tuple[MaskName, ...] = ("cloud", "water")


class SatelliteSettings(BaseModel):
    """``plugin.satellite`` settings (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # schema built on first use

    exclude: list[MaskName] = Field(
        default_factory=lambda: list(MASK_NAMES),
        description="masks removed from the foreground (the others are only scored)",
    )
    cloud_min_brightness: int = Field(
        180, ge=0, le=255, description="darkest channel at least this"
    )
    cloud_max_saturation: float = Field(0.15, ge=0, le=1, description="HSV saturation at most this")
    water_max_brightness: int = Field(200, ge=0, le=255, description="brightest channel below this")
    water_blue_margin: int = Field(4, ge=0, le=255, description="blue exceeds red by at least this")
    water_max_green_ratio: float = Field(1.25, gt=0, description="green at most this times blue")
    ndwi_threshold: float = Field(0.3, ge=-1, le=1, description="(G - NIR) / (G + NIR) above this")


def settings(config: Config) -> SatelliteSettings:
    """The validated ``plugin.satellite`` settings of ``config``; one-line ConfigError if bad."""
    return plugin_settings(config, DOMAIN, SatelliteSettings)


# --------------------------------------------------------------------------- mask functions


def valid_mask(rgb: np.ndarray) -> np.ndarray:
    """(h, w) bool: True where the pixel holds data, i.e. is not all-zero (no-data is black).

    :class:`RasterioImage` renders no-data as ``(0, 0, 0)`` and never renders a valid pixel all
    zero, so this is exact for its views; for other images it treats pure black as no-data.
    """
    return np.asarray(rgb)[..., :3].max(axis=-1) > 0


def cloud_mask(
    rgb: np.ndarray, min_brightness: int = 180, max_saturation: float = 0.15
) -> np.ndarray:
    """(h, w) bool clouds: bright (darkest channel >= ``min_brightness``) and grey (HSV
    saturation ``(max - min) / max <= max_saturation``). Bright bare ground, snow and white
    roofs look the same in RGB; tighten the thresholds where that matters."""
    f = np.asarray(rgb)[..., :3].astype(np.int16)
    hi, lo = f.max(axis=-1), f.min(axis=-1)
    return (lo >= min_brightness) & ((hi - lo) <= max_saturation * hi)


def water_mask(
    rgb: np.ndarray,
    green: np.ndarray | None = None,
    nir: np.ndarray | None = None,
    *,
    max_brightness: int = 200,
    blue_margin: int = 4,
    max_green_ratio: float = 1.25,
    ndwi_threshold: float = 0.3,
) -> np.ndarray:
    """(h, w) bool open water.

    With a near-infrared band: McFeeters' NDWI ``(G - NIR) / (G + NIR) > ndwi_threshold`` on the
    raw ``green`` and ``nir`` values ((h, w) arrays). From RGB alone: blue above red by
    ``blue_margin``, green at most ``max_green_ratio`` times blue (not vegetation) and darker
    than ``max_brightness`` (not cloud). No-data (black) is never water.
    """
    a = np.asarray(rgb)[..., :3]
    valid = valid_mask(a)
    if green is not None and nir is not None:
        gf = np.asarray(green, np.float32)
        nf = np.asarray(nir, np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            ndwi = (gf - nf) / (gf + nf)
        return valid & (np.nan_to_num(ndwi, nan=-1.0) > ndwi_threshold)
    f = a.astype(np.int16)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    return (
        valid
        & (b >= r + blue_margin)
        & (g <= max_green_ratio * b)
        & (f.max(axis=-1) < max_brightness)
    )


def view_extras(rgb: np.ndarray, image: Any) -> dict[str, np.ndarray] | None:
    """The no-data mask and extra bands the image's reader knows for this view, or None."""
    return image.view_extras(rgb) if isinstance(image, RasterioImage) else None


def satellite_masks(rgb: np.ndarray, config: Config, image: Any = None) -> dict[str, np.ndarray]:
    """``{"cloud": ..., "water": ...}`` (h, w) bool masks of a low-resolution view (a pixel is
    never both: cloud wins), using the NIR band when ``image`` is the
    :class:`RasterioImage` the view came from and has one."""
    s = settings(config)
    extras = view_extras(rgb, image) or {}
    cloud = cloud_mask(rgb, s.cloud_min_brightness, s.cloud_max_saturation)
    water = water_mask(
        rgb, extras.get("green"), extras.get("nir"),
        max_brightness=s.water_max_brightness, blue_margin=s.water_blue_margin,
        max_green_ratio=s.water_max_green_ratio, ndwi_threshold=s.ndwi_threshold,
    )
    return {"cloud": cloud, "water": water & ~cloud}


def nodata_of(rgb: np.ndarray, image: Any = None) -> np.ndarray:
    """(h, w) bool no-data of a view: the reader's exact mask when known, else all-zero pixels."""
    extras = view_extras(rgb, image)
    if extras is not None and "nodata" in extras:
        return extras["nodata"]
    return ~valid_mask(rgb)


# --------------------------------------------------------------------------- hooks


@hookimpl
def gigapatch_foreground_mask(rgb: np.ndarray, context: ImageContext) -> np.ndarray | None:
    """Satellite foreground: every pixel that holds data (not no-data, not all-zero)."""
    if context.domain != DOMAIN:
        return None
    return ~nodata_of(rgb, context.image) & valid_mask(rgb)


@hookimpl
def gigapatch_exclusion_masks(
    rgb: np.ndarray, context: ImageContext
) -> dict[str, np.ndarray] | None:
    """The masks named in ``plugin.satellite.exclude`` (default: clouds and water)."""
    if context.domain != DOMAIN:
        return None
    wanted = settings(context.config).exclude
    if not wanted:
        return None
    masks = satellite_masks(rgb, context.config, context.image)
    return {name: masks[name] for name in wanted}


@hookimpl
def gigapatch_score_patches(coords: np.ndarray, context: ImageContext) -> dict[str, np.ndarray] | None:
    """Per patch: ``nodata`` fraction, and the fraction of every mask that is not excluded (the
    excluded ones are scored by the pipeline already)."""
    if context.domain != DOMAIN:
        return None
    assert context.geometry is not None and context.rgb is not None  # set before the scores
    c = np.asarray(coords).reshape(-1, 2)
    size0 = context.geometry.size_level0
    ds = context.mask_downsample
    out = {"nodata": mask_fraction(nodata_of(context.rgb, context.image), c, size0, ds)}
    excluded = set(settings(context.config).exclude)
    if len(excluded) < len(MASK_NAMES):
        masks = satellite_masks(context.rgb, context.config, context.image)
        for name in MASK_NAMES:
            if name not in excluded:
                out[name] = mask_fraction(masks[name], c, size0, ds)
    return out
