"""The image protocol: a small ABC in the spirit of openslide-python, plus an in-memory image.

Coordinates given to :meth:`Image.read_region` are level-0 pixels (x, y); sizes are (width,
height) at the level read. Pixels come back as (h, w, 3) uint8 RGB arrays; an image whose
samples are something else (16-bit, one channel) also serves them as stored through
:meth:`Image.read_region_raw` (``dtype``, ``channels``, ``bits`` say what they are).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from gigapatch.io.physical import PixelSize
from gigapatch.io.samples import NATIVE_DTYPES, fill_value, to_rgb8, white_level

#: source bytes per band of :meth:`Image.read_level_downsampled`, resizing (the bands set the
#: resized numbers: changing this changes views) and copying a stored level as is
RESIZE_BAND_BYTES = 32e6
COPY_BAND_BYTES = 4e6


class Image(ABC):
    """A (possibly pyramidal) image read by region. Subclasses fill in the abstract members."""

    #: short name of the reader, shown by ``gigapatch info`` and recorded in outputs
    reader_name: str = "abstract"

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None

    # ------------------------------------------------------------------ geometry
    @property
    @abstractmethod
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """(width, height) of every level, level 0 first."""

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def dimensions(self) -> tuple[int, int]:
        """(width, height) of level 0."""
        return self.level_dimensions[0]

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Level-0 pixels per level-k pixel, per level (mean of the x and y ratios)."""
        w0, h0 = self.level_dimensions[0]
        return tuple((w0 / w + h0 / h) / 2.0 for w, h in self.level_dimensions)

    @property
    def mpp(self) -> float | None:
        """Microns per level-0 pixel, or None when the file does not say."""
        return None

    @property
    def magnification(self) -> float | None:
        """Objective power of level 0 (e.g. 20 or 40), or None when unknown."""
        return None

    @property
    def vendor(self) -> str | None:
        return None

    @property
    def properties(self) -> dict[str, Any]:
        """Free-form metadata (vendor properties, tags)."""
        return {}

    @property
    def pixel_size(self) -> PixelSize | None:
        """The physical size of one level-0 pixel along x and y (anisotropic allowed), or None.

        The default reads ``properties["mpp_x"]`` / ``["mpp_y"]`` (microns), else :attr:`mpp`.
        """
        props = self.properties or {}
        x, y = props.get("mpp_x"), props.get("mpp_y")
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x > 0 and y > 0:
            return PixelSize(float(x), float(y), "um")
        m = self.mpp
        return PixelSize(m, m, "um") if m else None

    # ------------------------------------------------------------------ native samples
    @property
    def dtype(self) -> np.dtype:
        """The type of the stored samples (``read_region_raw``): uint8 unless the reader says."""
        return np.dtype(np.uint8)

    @property
    def channels(self) -> int:
        """Samples per pixel of ``read_region_raw`` (1 = grey, 3 = RGB)."""
        return 3

    @property
    def bits(self) -> int:
        """Bits per stored sample (8 or 16)."""
        return 8 * self.dtype.itemsize

    @property
    def white(self) -> int:
        """The stored sample value the 8-bit view shows as 255 (255 for 8-bit samples)."""
        return 255

    def read_region_raw(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """Read a region as stored: (height, width, ``channels``) of ``dtype``.

        Arguments as :meth:`read_region`; pixels outside the image are the type's maximum
        (white). The default is :meth:`read_region` (8-bit RGB images).
        """
        return self.read_region(location, level, size)

    @property
    def image_id(self) -> str:
        """Name used for output files: the file name without its extension(s)."""
        if self.path is None:
            return "image"
        name = self.path.name
        for suffix in (".ome.tiff", ".ome.tif"):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return self.path.stem

    # ------------------------------------------------------------------ pixels
    @abstractmethod
    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """Read a region.

        Parameters
        ----------
        location : (x, y) top-left in level-0 pixels (may lie partly outside the image).
        level : pyramid level to read from.
        size : (width, height) in pixels of that level.

        Returns
        -------
        (height, width, 3) uint8 RGB array; pixels outside the image are white (255).
        """

    def get_best_level_for_downsample(self, downsample: float) -> int:
        """The highest-resolution-lossless level: largest downsample <= ``downsample``."""
        best = 0
        for i, d in enumerate(self.level_downsamples):
            if d <= downsample * (1 + 1e-6):
                best = i if d >= self.level_downsamples[best] else best
        return best

    def read_level_downsampled(self, downsample: float) -> np.ndarray:
        """The whole image at (about) ``downsample``, read from the best level and resized.

        Reads in horizontal bands so that a big level is never held whole (bands of ~32 MB of
        source when resizing, ~4 MB when a stored level is copied as is), and resizes each band
        straight into the output. Returns an (h, w, 3) uint8 array of shape
        (ceil(H0 / downsample), ceil(W0 / downsample)).
        """
        import cv2

        w0, h0 = self.dimensions
        out_w = max(1, math.ceil(w0 / downsample))
        out_h = max(1, math.ceil(h0 / downsample))
        level = self.get_best_level_for_downsample(downsample)
        lds = self.level_downsamples[level]
        lw, lh = self.level_dimensions[level]
        out = np.empty((out_h, out_w, 3), np.uint8)
        # band of output rows whose source is at most ~32 MB (the bands of a resize set its
        # numbers: keep them); a stored level read as is (same size) goes in ~4 MB bands
        copy = (lw, lh) == (out_w, out_h)
        budget = COPY_BAND_BYTES if copy else RESIZE_BAND_BYTES
        rows_per_band = max(1, int(budget / max(1, lw * 3 * (downsample / lds))))
        for oy in range(0, out_h, rows_per_band):
            oh = min(rows_per_band, out_h - oy)
            if copy:  # the level is the output grid
                y0, y1 = oy, oy + oh
            else:
                y0 = int(round(oy * downsample / lds))
                y1 = min(lh, int(round((oy + oh) * downsample / lds)))
                y1 = max(y1, y0 + 1)
            # level-0 y whose level row (floor(y / lds), as readers take it) is y0
            band = self.read_region((0, math.ceil(y0 * lds)), level, (lw, y1 - y0))
            dst = out[oy : oy + oh]
            if band.shape[:2] == (oh, out_w):
                dst[...] = band
            else:
                cv2.resize(band, (out_w, oh), dst=dst, interpolation=cv2.INTER_AREA)
            del band
        return out

    def get_thumbnail(self, max_size: int | tuple[int, int] = 1024) -> np.ndarray:
        """An RGB thumbnail whose longer side is at most ``max_size``; (h, w, 3) uint8."""
        if isinstance(max_size, int):
            max_size = (max_size, max_size)
        w0, h0 = self.dimensions
        downsample = max(w0 / max_size[0], h0 / max_size[1], 1.0)
        return self.read_level_downsampled(downsample)

    def patch_groups(self, coords: np.ndarray, geometry: Any) -> list[list[int]] | None:
        """How :func:`~gigapatch.io.patches.read_patches` should deal the patches ``coords``
        ((N, 2) level-0 x, y; ``geometry`` a :class:`~gigapatch.PatchGeometry`) to its threads:
        a list of groups of indexes into ``coords``, each group read by one thread in its order
        (e.g. a reader that caches decoded tiles per file handle keeps neighbours together).
        None (the default): the core orders and deals the patches itself, tile row by row."""
        return None

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release file handles. Safe to call twice."""

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path) if self.path else ''!r}, "
            f"dims={self.dimensions}, levels={self.level_count}, mpp={self.mpp})"
        )


def pad_region(
    arr: np.ndarray, x: int, y: int, size: tuple[int, int], fill: int = 255
) -> np.ndarray:
    """Cut ``size`` = (w, h) at (x, y) out of ``arr`` (h, w, C), padding outside with ``fill``."""
    w, h = size
    H, W = arr.shape[:2]
    out = np.full((h, w) + arr.shape[2:], fill, dtype=arr.dtype)
    sx0, sy0 = max(0, x), max(0, y)
    sx1, sy1 = min(W, x + w), min(H, y + h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = arr[sy0:sy1, sx0:sx1]
    return out


class ArrayImage(Image):
    """An image held in memory, with a pyramid built by area averaging. For tests and small data.

    Parameters
    ----------
    array : (H, W) grey, (H, W, 1) grey or (H, W, 3) RGB (a 4th alpha channel is dropped)
        level-0 samples, uint8 or uint16. ``read_region_raw`` serves them as they are;
        ``read_region`` an 8-bit RGB view (see :mod:`gigapatch.io.samples`).
    downsamples : integer downsample of each level beyond level 0 (default: 4, 16 while large).
    mpp : microns per level-0 pixel, or None.
    pixel_size : the level-0 pixel size (anisotropic allowed); default from ``mpp``.
    """

    reader_name = "array"

    def __init__(
        self,
        array: np.ndarray,
        downsamples: tuple[int, ...] | None = None,
        mpp: float | None = None,
        path: str | Path | None = None,
        magnification: float | None = None,
        pixel_size: PixelSize | None = None,
    ) -> None:
        super().__init__(path)
        import cv2

        array = np.asarray(array)
        if array.ndim == 2:
            array = array[:, :, None]
        if (array.ndim != 3 or array.shape[2] not in (1, 3, 4)
                or array.dtype not in NATIVE_DTYPES):
            raise ValueError("ArrayImage needs an (H, W) or (H, W, 1|3|4) uint8 or uint16 array")
        array = np.ascontiguousarray(array[:, :, :3])
        h, w, c = array.shape
        if downsamples is None:
            downsamples = tuple(d for d in (4, 16, 64) if min(h, w) // d >= 64)
        self._levels = [array]
        for d in downsamples:
            size = (max(1, w // d), max(1, h // d))
            small = cv2.resize(array, size, interpolation=cv2.INTER_AREA)
            self._levels.append(small.reshape(size[1], size[0], c))
        self._mpp = mpp
        if pixel_size is None and mpp is not None:
            pixel_size = PixelSize(mpp, mpp, "um")
        self._pixel_size = pixel_size
        self._magnification = magnification
        self._white = white_level(float(array.max(initial=0)), array.dtype)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((a.shape[1], a.shape[0]) for a in self._levels)

    @property
    def mpp(self) -> float | None:
        if self._mpp is None and self._pixel_size is not None:
            return self._pixel_size.to("um").mean
        return self._mpp

    @property
    def magnification(self) -> float | None:
        return self._magnification

    @property
    def pixel_size(self) -> PixelSize | None:
        return self._pixel_size

    @property
    def dtype(self) -> np.dtype:
        return self._levels[0].dtype

    @property
    def channels(self) -> int:
        return int(self._levels[0].shape[2])

    @property
    def white(self) -> int:
        return self._white

    def read_region_raw(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        ds = self.level_downsamples[level]
        x = int(math.floor(location[0] / ds))
        y = int(math.floor(location[1] / ds))
        return pad_region(self._levels[level], x, y, size, fill=fill_value(self.dtype))

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        return to_rgb8(self.read_region_raw(location, level, size), self._white)
