"""Metal vs background: Otsu on blurred grey, accepted only when the grey levels really split.

A metal surface scan is either metal on a scanner background (a dark belt or a bright light
box) or all metal (a crop such as a NEU-DET image). Otsu always finds *some* threshold, so the
split is kept only when it separates two well-separated classes (between-class variance at
least ``min_separability`` of the total) and the background side is really dark (or bright);
otherwise the whole view is metal, so dark defects are never mistaken for background.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gigapatch import ImageContext, hookimpl

from .settings import DOMAIN, settings


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 RGB (or (h, w) grey) -> (h, w) uint8 grey (ITU-R BT.601 luma)."""
    import cv2

    a = np.asarray(rgb)
    if a.ndim == 2:
        return a.astype(np.uint8, copy=False)
    return cv2.cvtColor(np.ascontiguousarray(a[..., :3]), cv2.COLOR_RGB2GRAY)


def otsu_split(grey: np.ndarray) -> tuple[float, float, float, float]:
    """Otsu threshold of a uint8 image and how well it separates.

    Returns
    -------
    threshold : pixels ``<= threshold`` are the dark class.
    separability : between-class variance / total variance, in [0, 1] (0 for a flat image).
    dark_mean, bright_mean : mean grey of each class (NaN for an empty class).
    """
    import cv2

    g = np.ascontiguousarray(grey, np.uint8)
    t, _ = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    hist = np.bincount(g.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256, dtype=np.float64)
    n = hist.sum()
    k = int(t) + 1
    w0, w1 = hist[:k].sum() / n, hist[k:].sum() / n
    m0 = float((hist[:k] * levels[:k]).sum() / max(hist[:k].sum(), 1)) if w0 else float("nan")
    m1 = float((hist[k:] * levels[k:]).sum() / max(hist[k:].sum(), 1)) if w1 else float("nan")
    var = float(g.var())
    sep = w0 * w1 * (m1 - m0) ** 2 / var if var > 0 and w0 and w1 else 0.0
    return float(t), float(sep), m0, m1


def metal_mask(
    rgb: np.ndarray,
    *,
    background: str = "dark",
    blur_ksize: int = 5,
    min_separability: float = 0.85,
    dark_background_max: float = 60,
    bright_background_min: float = 195,
) -> np.ndarray:
    """(h, w) bool metal mask of a low-resolution view.

    Parameters
    ----------
    rgb : (h, w, 3) uint8 RGB or (h, w) grey.
    background : ``"dark"`` (metal brighter than the background), ``"bright"`` or ``"none"``
        (all metal).
    blur_ksize : median blur (px, odd) before Otsu, so texture and small defects do not split.
    min_separability : the Otsu split is used only when its between-class variance is at least
        this fraction of the total.
    dark_background_max, bright_background_min : ...and only when the background class's mean
        grey is below (dark) / above (bright) this.

    Returns
    -------
    (h, w) bool, True on metal; all True when no background is found.
    """
    import cv2

    grey = to_grey(rgb)
    everything = np.ones(grey.shape, bool)
    if background == "none" or grey.size == 0:
        return everything
    k = max(1, int(blur_ksize) | 1)
    g = cv2.medianBlur(grey, k) if k > 1 and min(grey.shape) >= k else grey
    t, sep, dark_mean, bright_mean = otsu_split(g)
    if sep < min_separability:
        return everything
    if background == "dark":
        return g > t if dark_mean <= dark_background_max else everything
    return g <= t if bright_mean >= bright_background_min else everything


@hookimpl
def gigapatch_foreground_mask(rgb: np.ndarray, context: ImageContext) -> Any:
    """Metal-surface foreground: :func:`metal_mask` with the ``plugin.metal_surface`` settings."""
    if context.domain != DOMAIN:
        return None
    config = context.config
    s = settings(config)
    return metal_mask(
        rgb,
        background=s.background,
        blur_ksize=config.mask.median_ksize,
        min_separability=s.min_separability,
        dark_background_max=s.dark_background_max,
        bright_background_min=s.bright_background_min,
    )
