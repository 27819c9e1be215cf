"""``plugin.satellite`` settings: one pydantic model, every key validated (unknown keys are
errors), settable from the CLI with ``--set plugin.satellite.KEY=VALUE`` and listed by
``gigapatch plugins``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gigapatch import Config, plugin_settings

from .bands import Sensor

DOMAIN = "satellite"
MaskName = Literal["cloud", "water", "vegetation"]
MASK_NAMES: tuple[MaskName, ...] = ("cloud", "water", "vegetation")
DEFAULT_EXCLUDE: tuple[MaskName, ...] = ("cloud", "water")
GeojsonCrs = Literal["native", "wgs84"]


class SatelliteSettings(BaseModel):
    """``plugin.satellite`` settings (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # schema built on first use

    # ---- bands and values
    bands: list[int] | None = Field(
        None, description="1-based R,G,B[,NIR[,SWIR1]] (e.g. 3,2,1; one band: grey); "
        "default: the file's colour interpretation / band names / product id")
    sensor: Sensor | None = Field(
        None, description="band layout, fill value and reflectance scale of landsat8, landsat7 "
        "or sentinel2 products")
    nodata: float | None = Field(
        None, description="no-data value (default: the file's nodata, alpha band or mask; never "
        "assumed 0)")
    percentiles: tuple[float, float] = Field(
        (2.0, 98.0), description="display stretch of 16-bit / float bands (never applied to chips)")
    reflectance_scale: float | None = Field(
        None, description="reflectance = value x scale + offset (default: the file's, the "
        "sensor's, else 8-bit / 255, 16-bit / 10000)")
    reflectance_offset: float | None = Field(None, description="see reflectance_scale")
    crs: str | None = Field(
        None, description="tile in this CRS (e.g. EPSG:4326) through a warped VRT; default: "
        "each file in its own CRS, no reprojection")
    # ---- masks
    exclude: list[MaskName] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDE),
        description="masks removed from the foreground (the others are only scored)")
    max_nodata: float = Field(
        0.5, ge=0, le=1, description="reject a patch with more no-data than this (reason nodata)")
    cloud_min_brightness: float = Field(
        0.3, description="cloud: mean visible reflectance at least this")
    cloud_max_whiteness: float = Field(
        0.7, ge=0, description="cloud: sum |band - mean| / mean over R, G, B at most this (Fmask)")
    cloud_hot: Literal["auto", "fixed", "scene", "none"] = Field(
        "auto", description="cloud haze test: fixed (TOA clear line B - 0.5 R - 0.08), scene (the "
        "scene's own clear line, for display values), none; auto: fixed when the values are "
        "reflectance (file, sensor or user scale), else scene")
    cloud_min_hot: float = Field(0.0, description="cloud (fixed): B - 0.5 R - 0.08 above this")
    cloud_min_scene_hot: float = Field(
        3.0, description="cloud (scene): blue above the scene's clear line by this many robust "
        "standard deviations")
    ndwi_threshold: float = Field(
        0.2, ge=-1, le=1, description="water: McFeeters NDWI (G - NIR) / (G + NIR) above this")
    mndwi_threshold: float = Field(
        0.0, ge=-1, le=1, description="water when SWIR1 exists: MNDWI (G - SWIR1) / (G + SWIR1)")
    ndvi_threshold: float = Field(
        0.3, ge=-1, le=1, description="vegetation: NDVI (NIR - R) / (NIR + R) above this")
    water_max_brightness: int = Field(
        200, ge=0, le=255, description="water without NIR: brightest shown channel below this")
    water_max_red_ratio: float = Field(
        0.6, gt=0, description="water without NIR: shown red at most this times blue")
    water_max_green_ratio: float = Field(
        1.25, gt=0, description="water without NIR: shown green at most this times blue")
    # ---- outputs
    footprints: list[GeojsonCrs] = Field(
        default_factory=list, description="kept patches' footprints as GeoJSON: native "
        "(<id>_footprints.geojson, the raster's CRS) and/or wgs84 (RFC 7946, "
        "<id>_footprints_wgs84.geojson); true = native")
    chips: Literal["none", "geotiff"] = Field(
        "none", description="geotiff: every kept patch as a tiled GeoTIFF with its transform, "
        "CRS and nodata, raw bands (<id>_chips/)")
    stac: bool = Field(False, description="a STAC catalog of the chips' Items (<id>_stac/)")
    stac_dir: Path | None = Field(
        None, description="write the STAC catalog into this folder instead, as "
        "<stac_dir>/<id>/catalog.json, each a child of <stac_dir>/catalog.json (implies stac; "
        "relative: to the working directory)")
    duplicates: bool = Field(
        True, description="flag patches that cover the same ground as a patch of an image "
        "already written to the same output folder")

    @field_validator("bands", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        """``"3,2,1"`` (as ``--set plugin.satellite.bands=3,2,1`` gives it) -> ``[3, 2, 1]``."""
        if isinstance(v, str):
            try:
                return [int(p) for p in v.replace(" ", "").split(",") if p]
            except ValueError:
                raise ValueError("bands are 1-based band numbers, e.g. 3,2,1") from None
        if isinstance(v, int):
            return [v]
        return v

    @field_validator("crs", mode="before")
    @classmethod
    def _epsg(cls, v: object) -> object:
        """``4326`` (``--crs 4326`` read as YAML) -> ``"EPSG:4326"``."""
        if isinstance(v, int) and not isinstance(v, bool):
            return f"EPSG:{v}"
        return v

    @field_validator("footprints", mode="before")
    @classmethod
    def _one(cls, v: object) -> object:
        if isinstance(v, str):
            return [p for p in v.replace(" ", "").split(",") if p]
        if v is True:
            return ["native"]
        if v is False or v is None:
            return []
        return v


def settings(config: Config) -> SatelliteSettings:
    """The validated ``plugin.satellite`` settings of ``config``; one-line ConfigError if bad."""
    return plugin_settings(config, DOMAIN, SatelliteSettings)


__all__ = ["DOMAIN", "MASK_NAMES", "SatelliteSettings", "settings"]
