"""The display stretch: shown bands (3, h, w) of any data type -> (h, w, 3) uint8 RGB.

The stretch maps each band linearly from its (low, high) percentiles to 0..255 (float32
arithmetic, rounded half up, clipped). For 8- and 16-bit unsigned bands it is one lookup table
per band, built once per image with the very same arithmetic, so a patch costs a gather
instead of float passes over its pixels. No-data pixels are black and a valid pixel is never
all zero (the RGB view alone tells valid from no-data).
"""

from __future__ import annotations

import numpy as np


def _linear(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(...) values -> (...) uint8: ``clip((v - lo) * 255 / (hi - lo) + 0.5, 0, 255)``."""
    f = (values.astype(np.float32, copy=False) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    if f.dtype.kind == "f":  # NaN is never valid: any value will do there
        f = np.nan_to_num(f, nan=0.0, copy=False)
    return np.clip(f + np.float32(0.5), 0, 255).astype(np.uint8)


def stretch_lut(stretch: np.ndarray | None, dtype: np.dtype) -> np.ndarray | None:
    """(3, 2 ** bits) uint8 lookup table of ``stretch`` ((3, 2) low, high per shown band) for
    8- / 16-bit unsigned bands; None for any other type or no stretch."""
    if stretch is None or dtype.kind != "u" or dtype.itemsize > 2:
        return None
    values = np.arange(2 ** (8 * dtype.itemsize), dtype=np.float32)
    return np.stack([_linear(values, float(lo), float(hi)) for lo, hi in stretch])


def to_rgb8(raw3: np.ndarray, valid: np.ndarray, stretch: np.ndarray | None,
            lut: np.ndarray | None = None) -> np.ndarray:
    """Shown bands -> RGB.

    Parameters
    ----------
    raw3 : (3, h, w) band values (any dtype); valid : (h, w) bool.
    stretch : (3, 2) low, high per band, or None (8-bit shown as is, others clipped).
    lut : :func:`stretch_lut` of ``stretch`` for ``raw3.dtype``, or None.

    Returns
    -------
    (h, w, 3) uint8, black where not valid, never (0, 0, 0) where valid.
    """
    import cv2

    if raw3.shape[1] == 0 or raw3.shape[2] == 0:
        return np.zeros((*raw3.shape[1:], 3), np.uint8)
    planes: list[np.ndarray]  # three (h, w) uint8
    if lut is not None and raw3.dtype.kind == "u" and lut.shape[1] == 2 ** (8 * raw3.dtype.itemsize):
        if raw3.dtype == np.uint8:  # OpenCV's table lookup: ~15x numpy's gather
            planes = [cv2.LUT(np.ascontiguousarray(raw3[i]), lut[i]) for i in range(3)]
        else:  # np.take: ~3x fancy indexing, ~1.5x the float arithmetic on 16-bit bands
            # mode="clip": no bounds check (every value of the type indexes the table)
            planes = [np.take(lut[i], raw3[i], mode="clip") for i in range(3)]
    elif stretch is not None:
        planes = [_linear(raw3[i], float(stretch[i, 0]), float(stretch[i, 1])) for i in range(3)]
    elif raw3.dtype == np.uint8:
        planes = [np.ascontiguousarray(raw3[i]) for i in range(3)]
    else:
        planes = [_linear(raw3[i], 0.0, 255.0) for i in range(3)]
    rgb = cv2.merge(planes).reshape(*raw3.shape[1:], 3)
    if not valid.all():
        rgb[~valid] = 0
    black = (np.bitwise_or(np.bitwise_or(planes[0], planes[1]), planes[2]) == 0) & valid
    if black.any():
        rgb[black] = 1
    return rgb


__all__ = ["stretch_lut", "to_rgb8"]
