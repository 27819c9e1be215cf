"""Physical pixel size: the pitch of one level-0 pixel along x and y, with a unit.

Microscopes record microns per pixel (mpp); line-scan cameras, flatbed and industrial scanners
record a pitch in millimetres that often differs along the two axes (the pitch along the scan
follows the encoder and the line rate, the pitch across it the optics). :class:`PixelSize` holds
both axes and converts between units; :func:`image_pixel_size` reads it from an image (or an
override), and :func:`physical_to_px` turns a length into whole pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gigapatch.errors import ConfigError

if TYPE_CHECKING:
    from gigapatch.config import PatchConfig
    from gigapatch.io.geometry import PatchGeometry
    from gigapatch.io.image import Image

#: length units and their size in microns
UNITS_UM: dict[str, float] = {"nm": 1e-3, "um": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}


@dataclass(frozen=True)
class PixelSize:
    """The size of one level-0 pixel: ``x`` across columns, ``y`` down rows, in ``unit``.

    Parameters
    ----------
    x, y : positive lengths.
    unit : one of :data:`UNITS_UM` (``"um"``, ``"mm"``...).
    """

    x: float
    y: float
    unit: str = "um"

    def __post_init__(self) -> None:
        if self.unit not in UNITS_UM:
            raise ConfigError(f"unknown length unit {self.unit!r} (known: {', '.join(UNITS_UM)})")
        for v in (self.x, self.y):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"a pixel size must be positive and finite, got {v!r}")

    def to(self, unit: str) -> PixelSize:
        """The same size in ``unit``."""
        if unit not in UNITS_UM:
            raise ConfigError(f"unknown length unit {unit!r} (known: {', '.join(UNITS_UM)})")
        f = UNITS_UM[self.unit] / UNITS_UM[unit]
        return PixelSize(self.x * f, self.y * f, unit)

    @property
    def mean(self) -> float:
        """The mean of the two axes, in ``unit``."""
        return (self.x + self.y) / 2.0

    @property
    def isotropic(self) -> bool:
        """True when the two axes agree within 0.1 %."""
        return abs(self.x - self.y) <= 1e-3 * max(self.x, self.y)

    def __str__(self) -> str:
        if self.isotropic:
            return f"{self.x:.6g} {self.unit}"
        return f"{self.x:.6g} x {self.y:.6g} {self.unit}"


def parse_pixel_size(text: str | float | tuple[float, ...] | list[float], unit: str) -> PixelSize:
    """``"0.1"`` or ``"0.1,0.12"`` (x, y) or a number or a pair, in ``unit``, as a PixelSize.

    Raises
    ------
    ConfigError : not one or two positive numbers (one line).
    """
    if isinstance(text, str):
        parts: list[Any] = [p for p in text.replace(";", ",").split(",") if p.strip()]
    elif isinstance(text, (tuple, list)):
        parts = list(text)
    else:
        parts = [text]
    try:
        values = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise ConfigError(f"pixel size {text!r}: expected X or X,Y in {unit}") from None
    if len(values) not in (1, 2):
        raise ConfigError(f"pixel size {text!r}: expected X or X,Y in {unit}")
    return PixelSize(values[0], values[-1], unit)


def image_pixel_size(image: Image, override: tuple[float, float] | None = None,
                     unit: str = "mm") -> PixelSize | None:
    """The level-0 pixel size of ``image`` in ``unit``: ``override`` (x, y in ``unit``) when
    given, else what the image records (``image.pixel_size``), else None."""
    if override is not None:
        return PixelSize(float(override[0]), float(override[1]), unit)
    own = image.pixel_size
    return own.to(unit) if own is not None else None


def physical_to_px(length: float, pixel: PixelSize, unit: str = "mm") -> int:
    """Whole level-0 pixels that span ``length`` (in ``unit``) along the axis with the finer
    pitch (so a square patch of that many pixels spans at least ``length`` along both axes)."""
    p = pixel.to(unit)
    return max(1, math.ceil(length / min(p.x, p.y) - 1e-9))


def physical_patch(image: Image, patch: PatchConfig) -> tuple[PatchConfig, int | None]:
    """Resolve the physical keys of ``patch`` for ``image``.

    ``size_mm`` / ``stride_mm`` become ``size`` / ``stride`` in px of ``patch.level`` (level-0
    px that span them at the finer pitch, divided by the level's downsample); ``pixel_size``
    sets ``slide_mpp`` when that is not given; ``max_object`` / ``max_object_mm`` come back as
    level-0 px.

    Returns
    -------
    patch : a copy with ``size``, ``stride`` (and ``slide_mpp``) filled in.
    max_object : level-0 px of the largest object that must lie wholly inside a patch, or None.

    Raises
    ------
    ResolutionError : a key in mm on an image without a pixel size (and no ``pixel_size``).
    """
    from gigapatch.errors import ResolutionError

    wants_mm = any(v is not None for v in (patch.size_mm, patch.stride_mm, patch.max_object_mm))
    if patch.pixel_size is None and not wants_mm and patch.max_object is None:
        return patch, None
    pixel = image_pixel_size(image, patch.pixel_size, "mm")
    if wants_mm and pixel is None:
        where = str(image.path) if image.path else "image"
        raise ResolutionError(f"{where}: the file records no pixel size, so sizes in mm cannot "
                              "be resolved; pass --pixel-size-mm X[,Y] (or give sizes in px)")
    update: dict[str, Any] = {}
    if patch.pixel_size is not None and patch.slide_mpp is None:
        assert pixel is not None
        update["slide_mpp"] = pixel.to("um").mean
    level = min(patch.level or 0, image.level_count - 1)
    ds = image.level_downsamples[level]
    if patch.size_mm is not None:
        assert pixel is not None
        update["size"] = max(1, round(physical_to_px(patch.size_mm, pixel) / ds))
    if patch.stride_mm is not None:
        assert pixel is not None
        update["stride"] = max(1, round(physical_to_px(patch.stride_mm, pixel) / ds))
    largest = patch.max_object
    if patch.max_object_mm is not None:
        assert pixel is not None
        largest = max(largest or 0, physical_to_px(patch.max_object_mm, pixel))
    return (patch.model_copy(update=update) if update else patch), largest


def cap_stride(geometry: PatchGeometry, max_object: int | None, where: str) -> PatchGeometry:
    """``geometry`` with its stride capped so that every object up to ``max_object`` level-0
    px across lies wholly inside at least one patch: ``stride_level0 <= size_level0 -
    max_object``.

    Raises
    ------
    ResolutionError : the object does not fit in a patch at all.
    """
    from dataclasses import replace

    from gigapatch.errors import ResolutionError

    if max_object is None:
        return geometry
    room = geometry.size_level0 - int(max_object)
    if room < 1:
        raise ResolutionError(f"{where}: objects of {max_object} px do not fit in a patch of "
                              f"{geometry.size_level0} level-0 px; use a larger patch")
    if geometry.stride_level0 <= room:
        return geometry
    scale = geometry.size / geometry.size_level0  # output px per level-0 px
    stride = max(1, int(room * scale))
    return replace(geometry, stride=stride, stride_level0=min(room, round(stride / scale)))


__all__ = ["UNITS_UM", "PixelSize", "cap_stride", "image_pixel_size", "parse_pixel_size",
           "physical_patch", "physical_to_px"]
