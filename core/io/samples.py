"""Native samples (8- or 16-bit, one or three channels) and their 8-bit RGB view.

Every :class:`gigapatch.Image` serves an 8-bit RGB view (``read_region``: masks, overlays,
thumbnails) and, through ``read_region_raw``, the samples as stored: (h, w, C) of the image's
``dtype`` with C = ``channels``. The view of wider samples maps ``0 .. white`` linearly onto
``0 .. 255``, where ``white`` is ``2**b - 1`` for the smallest ``b >= 8`` that holds the
brightest sample (a 12-bit camera's data in 16-bit words gives 4095, not 65535), so dark stays
dark and a 12-bit scan is not squashed into the bottom 16 grey levels.
"""

from __future__ import annotations

import numpy as np

#: sample types the core reads natively
NATIVE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


def white_level(max_value: float, dtype: np.dtype) -> int:
    """The sample value shown as white (255) in the 8-bit view of ``dtype`` samples whose
    brightest value is ``max_value``: 255 for 8-bit samples, else ``2**b - 1`` with ``b`` the
    bits that value needs (at least 8, at most the type's)."""
    dt = np.dtype(dtype)
    if dt.itemsize == 1:
        return 255
    bits = max(8, int(max(0.0, float(max_value))).bit_length())
    return int(2 ** min(bits, 8 * dt.itemsize) - 1)


def to_rgb8(samples: np.ndarray, white: int = 255, invert: bool = False) -> np.ndarray:
    """The 8-bit RGB view of native samples.

    Parameters
    ----------
    samples : (h, w) or (h, w, C) uint8 / uint16, C = 1 (grey) or >= 3 (RGB first).
    white : the sample value shown as 255 (see :func:`white_level`); 255 for 8-bit samples
        leaves them as they are.
    invert : min-is-white samples (shown inverted).

    Returns
    -------
    (h, w, 3) uint8 (the input itself when it is already (h, w, 3) uint8 shown as is).
    """
    import cv2

    a = np.asarray(samples)
    if a.ndim == 2:
        a = a[:, :, None]
    a = a[:, :, :3] if a.shape[2] >= 3 else a[:, :, :1]
    if a.dtype == np.uint8 and white == 255:
        v = a
    else:
        h, w, c = a.shape
        flat = np.ascontiguousarray(a).reshape(h, w * c)
        v = cv2.convertScaleAbs(flat, alpha=255.0 / max(1, white)).reshape(h, w, c)
    if invert:
        v = 255 - v
    if v.shape[2] == 1:
        return np.repeat(v, 3, axis=2)
    return v


def fill_value(dtype: np.dtype) -> int:
    """The value of pixels outside an image in native reads: the type's white (its maximum),
    so that the 8-bit view pads with white as the RGB readers do."""
    return int(np.iinfo(np.dtype(dtype)).max)


def as_grey(samples: np.ndarray) -> np.ndarray:
    """(..., h, w, C) native samples -> (..., h, w) float32 grey: the channel itself for C = 1,
    ITU-R BT.601 luma of the first three for RGB."""
    a = np.asarray(samples)
    if a.shape[-1] == 1:
        return a[..., 0].astype(np.float32)
    return a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


__all__ = ["NATIVE_DTYPES", "as_grey", "fill_value", "to_rgb8", "white_level"]
