"""H&E / IHC tissue mask on a low-resolution view of a slide.

Starts from gigapatch's Otsu-on-saturation idea and fixes what goes wrong on real slides:

- glass: tinted or unevenly lit glass is measured (its own saturation level) and the thresholds
  sit above it, so a yellowish or bluish background is never tissue;
- faint tissue (thin edges, pale or weakly stained pieces): hysteresis, i.e. weakly saturated
  pixels count when they are connected to clearly stained ones, and whole pale pieces are found
  because the strong threshold is capped a fixed margin above the glass, not left at Otsu's
  split between glass and the darkest tissue;
- grey dust and dark debris: never tissue (unsaturated, or darker than stained tissue gets);
- marker ink: removed (see :func:`gigapatch_pathology.artefacts.pen_mask`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gigapatch import hookimpl

from .artefacts import DEFAULT_PEN_COLORS, _channels, pen_mask, percentile

DOMAINS = ("pathology",)


def glass_saturation(sat: np.ndarray, grey: np.ndarray) -> float:
    """Saturation level (0-255) of the glass: median over the brightest 10 % of pixels
    (clamped to 0-40, so a slide filled with tissue does not raise it past tissue)."""
    if sat.size == 0:
        return 0.0
    step = max(1, int(np.sqrt(sat.size / 1e6)))  # ~1 M samples are plenty
    sat, grey = sat[::step, ::step], grey[::step, ::step]
    bright = grey >= percentile(grey, 90)
    return float(np.clip(np.median(sat[bright]), 0, 40))


def tissue_mask(
    rgb: np.ndarray,
    *,
    min_threshold: float = 15.0,
    max_brightness: int = 235,
    strong_margin: float = 22.0,
    weak_margin: float = 8.0,
    dark_grey: float = 45.0,
    edge_ratio: float = 0.5,
    pen_colors: tuple[str, ...] = DEFAULT_PEN_COLORS,
) -> np.ndarray:
    """Tissue mask of a low-resolution RGB view of an H&E or IHC slide.

    Steps (saturation ``S`` on 0-255, grey = luma, after a 3 x 3 median):

    1. ``g`` = glass saturation (:func:`glass_saturation`); ``t`` = Otsu's threshold of ``S``
       over non-ink pixels, clipped to ``[min_threshold, g + strong_margin]``;
    2. strong pixels: ``S > t``; weak pixels: ``S > max(g + weak_margin, t / 2)``; both with
       ``grey <= max_brightness``, not ink, and not dark debris (``grey < dark_grey`` with
       ``S < 0.3 * 255``: dense stain stays saturated however dark, debris does not);
    3. tissue = weak components that contain a strong pixel (hysteresis);
    4. edge pixels less saturated than ``edge_ratio`` x the tissue next to them are mostly glass
       and are dropped (:func:`trim_edges`).

    Parameters
    ----------
    rgb : (h, w, 3) uint8 RGB.
    min_threshold : lowest strong threshold.
    max_brightness : grey level above which nothing is tissue (glass).
    strong_margin, weak_margin : thresholds above the glass saturation level.
    dark_grey : grey level below which unsaturated pixels are debris, not tissue.
    edge_ratio : see step 4 (0 = keep every edge pixel).
    pen_colors : inks removed (see :func:`~gigapatch_pathology.artefacts.pen_mask`).

    Returns
    -------
    (h, w) bool.
    """
    import cv2

    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] < 3 or a.dtype != np.uint8:
        raise ValueError(f"tissue_mask needs (h, w, 3) uint8 RGB, got {a.shape} {a.dtype}")
    h, w = a.shape[:2]
    if h == 0 or w == 0:
        return np.zeros((h, w), bool)
    _r, _g, _b, sat, grey = _channels(a)
    sat = sat * 255.0
    ink = pen_mask(a, tuple(pen_colors)) if pen_colors else np.zeros((h, w), bool)
    g = glass_saturation(sat, grey)
    vals = np.round(sat[~ink]).astype(np.uint8) if (~ink).any() else np.zeros(1, np.uint8)
    otsu = _otsu(vals)
    t = float(np.clip(otsu, min_threshold, max(min_threshold, g + strong_margin)))
    weak_t = max(g + weak_margin, t / 2.0)
    dark_debris = (grey < dark_grey) & (sat < 0.3 * 255)  # black and unsaturated: not stain
    ok = (grey <= max_brightness) & ~dark_debris & ~ink
    strong = ok & (sat > t)
    weak = ok & (sat > weak_t)
    if not strong.any():
        return strong
    n, labels = cv2.connectedComponents(weak.view(np.uint8), connectivity=8)
    seeded = np.zeros(n, bool)
    seeded[labels[strong]] = True
    seeded[0] = False
    mask = seeded[labels]
    if edge_ratio > 0:
        mask = trim_edges(mask, sat, edge_ratio)
    return mask


def trim_edges(mask: np.ndarray, sat: np.ndarray, ratio: float, sigma: float = 4.0) -> np.ndarray:
    """Drop boundary pixels that are mostly glass.

    A low-resolution pixel on the tissue edge is a mix of tissue and glass; its saturation is
    about (tissue share) x (saturation of the tissue nearby). Boundary pixels whose saturation
    is below ``ratio`` x the local interior saturation (Gaussian-weighted mean of the eroded mask,
    ``sigma`` px) are removed, so that the mask follows the half-tissue line like the truth does.
    """
    import cv2

    u8 = mask.view(np.uint8)
    interior = cv2.erode(u8, np.ones((3, 3), np.uint8)).astype(np.float32)
    edge = mask & (interior == 0)
    if not edge.any() or not interior.any():
        return mask
    wsum = cv2.GaussianBlur(interior, (0, 0), sigma)
    ssum = cv2.GaussianBlur(sat.astype(np.float32) * interior, (0, 0), sigma)
    known = wsum > 1e-3
    local = np.where(known, ssum / np.maximum(wsum, 1e-6), 0.0)
    drop = edge & known & (sat < ratio * local)
    return mask & ~drop


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of uint8 values (the value itself when they are all equal)."""
    import cv2

    v = values.reshape(1, -1)
    if v.min() == v.max():
        return float(v.min())
    t, _ = cv2.threshold(v, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return float(t)


@hookimpl
def gigapatch_foreground_mask(rgb: np.ndarray, domain: str | None, config: Any) -> np.ndarray | None:
    """The pathology tissue mask (None for other domains; ``mask.threshold`` set -> leave it to
    the built-in fixed-threshold mask)."""
    if domain not in DOMAINS:
        return None
    m = config.mask
    if m.threshold is not None:
        return None
    plugin = getattr(config, "plugin", None) or {}
    return tissue_mask(
        rgb,
        min_threshold=m.min_threshold,
        max_brightness=m.max_brightness,
        dark_grey=max(float(m.min_brightness), float(plugin.get("dark_grey", 45.0))),
        pen_colors=tuple(plugin.get("pen_colors", DEFAULT_PEN_COLORS)),
    )
