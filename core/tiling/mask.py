"""Low-resolution foreground masks: Otsu on HSV saturation with a brightness guard.

Works on any RGB image whose background is unsaturated (white or grey glass, paper, sky haze):
stained tissue, ink and most coloured objects are saturated, glass is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gigapatch.config import MaskConfig


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of ``values``: foreground is ``values > threshold``.

    Parameters
    ----------
    values : array of any shape; uint8 goes through :func:`cv2.threshold` (exact 256-bin
        histogram), other dtypes through :func:`skimage.filters.threshold_otsu`.

    Returns
    -------
    The threshold. With fewer than two distinct values there is nothing to split and the (single)
    value itself is returned, so that ``values > threshold`` is empty. NaN for an empty input.
    """
    v = np.asarray(values)
    if v.size == 0:
        return float("nan")
    lo, hi = v.min(), v.max()
    if lo == hi:
        return float(lo)
    if v.dtype == np.uint8:
        import cv2

        t, _ = cv2.threshold(v.reshape(1, -1), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        return float(t)
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(v.astype(np.float64)))


def otsu_saturation_mask(
    rgb: np.ndarray,
    *,
    median_ksize: int = 7,
    threshold: float | None = None,
    min_threshold: float = 15.0,
    max_brightness: int = 235,
    min_brightness: int = 0,
) -> np.ndarray:
    """Foreground mask of a low-resolution RGB view: saturated and not too bright nor too dark.

    Steps: median blur of the RGB image (``median_ksize``, removes dust and JPEG noise);
    saturation ``S`` of the HSV transform (0-255, OpenCV); threshold ``t`` = Otsu on all pixels'
    ``S`` unless ``threshold`` is given, never below ``min_threshold``; grey level
    ``G`` = 0.299 R + 0.587 G + 0.114 B of the blurred image. A pixel is foreground when
    ``S > t`` and ``min_brightness <= G <= max_brightness``. The grey level (not HSV V = max
    channel) is used for the guard so that pale pink tissue, whose red channel is near 255,
    stays foreground, while glass (G about 240 or more) never is.

    Edge cases: a uniform image has no Otsu split, then ``t = min_threshold`` (all-glass images
    give an empty mask, an image filled with stained tissue a full one); any size down to 1 x 1
    works.

    Parameters
    ----------
    rgb : (h, w, 3) uint8 RGB (an alpha channel is ignored).
    median_ksize : median kernel side in pixels (even values are rounded up; 1 = no blur).
    threshold : fixed saturation threshold (0-255) instead of Otsu.
    min_threshold : lower clamp of the Otsu threshold (guards nearly empty slides, where Otsu
        would split the glass noise).
    max_brightness : grey level above which a pixel is never foreground (glass).
    min_brightness : grey level below which a pixel is never foreground (black borders).

    Returns
    -------
    (h, w) bool mask.
    """
    import cv2

    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"otsu_saturation_mask needs an (h, w, 3) RGB array, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ValueError(f"otsu_saturation_mask needs uint8 RGB, got {a.dtype}")
    a = np.ascontiguousarray(a[:, :, :3])
    h, w = a.shape[:2]
    if h == 0 or w == 0:
        return np.zeros((h, w), bool)
    k = max(1, int(median_ksize))
    if k % 2 == 0:
        k += 1
    if k > 1:
        a = cv2.medianBlur(a, k)
    sat = cv2.cvtColor(a, cv2.COLOR_RGB2HSV)[:, :, 1]
    grey = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    if threshold is None:
        t = otsu_threshold(sat)
        t = min_threshold if sat.min() == sat.max() else max(t, min_threshold)
    else:
        t = float(threshold)
    return (sat > t) & (grey <= max_brightness) & (grey >= min_brightness)


def otsu_mask_for(rgb: np.ndarray, mask_config: MaskConfig) -> np.ndarray:
    """:func:`otsu_saturation_mask` of ``rgb`` with the settings of a run's ``mask`` section."""
    m = mask_config
    return otsu_saturation_mask(
        rgb,
        median_ksize=m.median_ksize,
        threshold=m.threshold,
        min_threshold=m.min_threshold,
        max_brightness=m.max_brightness,
        min_brightness=m.min_brightness,
    )


def foreground_fraction(mask: np.ndarray) -> float:
    """Fraction of True pixels in a mask (0.0 for an empty array)."""
    m = np.asarray(mask)
    return float(np.count_nonzero(m)) / m.size if m.size else 0.0


__all__ = ["foreground_fraction", "otsu_mask_for", "otsu_saturation_mask", "otsu_threshold"]
