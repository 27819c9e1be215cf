"""H&E / IHC tissue mask on a low-resolution view of a slide.

Starts from gigapatch's Otsu-on-saturation idea and fixes what goes wrong on real slides:

- glass: tinted or unevenly lit glass is measured (its own saturation level) and the thresholds
  sit above it, so a yellowish or bluish background is never tissue;
- faint tissue (thin edges, pale or weakly stained pieces): hysteresis, i.e. weakly saturated
  pixels count when they are connected to clearly stained ones, and whole pale pieces are found
  because the strong threshold is capped a fixed margin above the glass, not left at Otsu's
  split between glass and the darkest tissue;
- grey dust and dark debris: never tissue (unsaturated, or darker than stained tissue gets);
- marker ink: removed (see :func:`gigapatch_pathology.ink.pen_mask`);
- IHC: a slide without eosin (colour deconvolution of its stained pixels,
  :attr:`gigapatch_pathology.view.ViewStats.eosin`) may carry only a pale, greyish
  haematoxylin counterstain and DAB; there a pixel is weak stain also by its optical density
  above the glass's, when it is not neutral (:func:`gigapatch_pathology.view.dense_stain`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gigapatch import hookimpl

from . import view
from .components import hysteresis
from .ink import (
    DEFAULT_MIN_AREA,
    DEFAULT_PEN_COLORS,
    DEFAULT_PEN_GROW,
    ink_key,
    pen_evidence,
    pen_from_evidence,
    remember_ink,
)
from .settings import settings
from .view import (
    DENSITY_MARGIN,
    GREY_WEIGHTS,
    ViewStats,
    bands,
    dense_stain,
    glass_saturation,
    glass_step,
    max_min_sat,
    view_bands,
    view_stats,
)

DOMAINS = ("pathology",)


def tissue_mask(
    rgb: np.ndarray,
    *,
    min_threshold: float = 15.0,
    max_brightness: int = 235,
    strong_margin: float = 22.0,
    weak_margin: float = 8.0,
    dark_grey: float = 45.0,
    edge_ratio: float = 0.5,
    density_margin: float = DENSITY_MARGIN,
    pen_colors: tuple[str, ...] = DEFAULT_PEN_COLORS,
    stats: ViewStats | None = None,
) -> np.ndarray:
    """Tissue mask of a low-resolution RGB view of an H&E or IHC slide.

    Steps (saturation ``S`` on 0-255, grey = luma, after a 3 x 3 median):

    1. ``g`` = glass saturation (:func:`~gigapatch_pathology.view.glass_saturation`); ``t`` = Otsu's threshold of ``S``
       over non-ink pixels, clipped to ``[min_threshold, g + strong_margin]``;
    2. strong pixels: ``S > t``; weak pixels: ``S > max(g + weak_margin, t / 2)``; both with
       ``grey <= max_brightness``, not ink, and not dark debris (``grey < dark_grey`` with
       ``S < 0.3 * 255``: dense stain stays saturated however dark, debris does not);
    3. on a slide without eosin (IHC, :attr:`~gigapatch_pathology.view.ViewStats.eosin`),
       whose counterstain can be pale and nearly grey, a pixel is weak too when its optical
       density (sum of R, G, B) is ``density_margin`` above the glass's
       (:func:`~gigapatch_pathology.view.glass_density`) and not neutral
       (:func:`~gigapatch_pathology.view.dense_stain`: dust, smudges and shading are grey),
       however bright;
    4. tissue = weak components that contain a strong pixel (hysteresis);
    5. edge pixels less saturated than ``edge_ratio`` x the tissue next to them are mostly glass
       and are dropped (:func:`trim_edges`).

    Parameters
    ----------
    rgb : (h, w, 3) uint8 RGB.
    min_threshold : lowest strong threshold.
    max_brightness : grey level above which nothing is tissue (glass).
    strong_margin, weak_margin : thresholds above the glass saturation level.
    dark_grey : grey level below which unsaturated pixels are debris, not tissue.
    edge_ratio : see step 5 (0 = keep every edge pixel).
    density_margin : see step 3 (0 = saturation alone, as on H&E).
    pen_colors : inks removed (see :func:`~gigapatch_pathology.ink.pen_mask`).
    stats : the view's shared figures (:func:`~gigapatch_pathology.view.view_stats`): its
        glass colour and tissue density, and the ink, which is looked up there or, when found
        on the way, remembered; computed afresh when None.

    Returns
    -------
    (h, w) bool.
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] < 3 or a.dtype != np.uint8:
        raise ValueError(f"tissue_mask needs (h, w, 3) uint8 RGB, got {a.shape} {a.dtype}")
    h, w = a.shape[:2]
    if h == 0 or w == 0:
        return np.zeros((h, w), bool)
    s = ViewStats(a) if stats is None else stats
    colors = tuple(pen_colors)
    key = ink_key(colors, DEFAULT_MIN_AREA, DEFAULT_PEN_GROW)
    ink = s.inks.get(key) if colors else None  # the ink when pen_mask found it already
    od_t = s.glass_od + density_margin if density_margin > 0 and not s.eosin else None
    sat, ok, dense, g, evidence = _tissue_planes(a, s, colors if ink is None else (),
                                                 max_brightness, dark_grey, od_t)
    if evidence is not None:  # found on the way, with pen_mask's defaults: kept for the pen hook
        ink = remember_ink(s, key, pen_from_evidence(*evidence, DEFAULT_MIN_AREA, DEFAULT_PEN_GROW))
        del evidence
    if ink is not None and not ink.any():
        ink = None
    # not ink; Otsu's histogram of the saturation of everything else
    hist = np.zeros(256, np.int64)
    for y0, y1 in bands(h, w):
        sb = sat[y0:y1]
        if ink is not None:
            clean = ~ink[y0:y1]
            ok[y0:y1] &= clean
            if dense is not None:
                dense[y0:y1] &= clean
            sb = sb[clean]
        hist += np.bincount(np.round(sb).astype(np.uint8).ravel(), minlength=256)
    t = float(np.clip(otsu_from_histogram(hist), min_threshold, max(min_threshold, g + strong_margin)))
    mask = _hysteresis_mask(sat, ok, t, max(g + weak_margin, t / 2.0), dense)
    if mask is not None and edge_ratio > 0:
        mask = trim_edges(mask, sat, edge_ratio)
    return np.zeros((h, w), bool) if mask is None else mask


def _tissue_planes(
    a: np.ndarray, stats: ViewStats, ink_colors: tuple[str, ...], max_brightness: float,
    dark_grey: float, od_t: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float,
           tuple[np.ndarray, np.ndarray] | None]:
    """One banded pass over the balanced view ``a`` (h, w, 3) uint8 for :func:`tissue_mask`.

    Returns
    -------
    sat : (h, w) float32 saturation on 0-255.
    ok : (h, w) bool, not glass (``grey <= max_brightness``) and not dark debris.
    dense : (h, w) bool, optical density above ``od_t`` and not neutral, and not dark debris
        (None when ``od_t`` is None).
    g : the glass saturation (:func:`~gigapatch_pathology.view.glass_saturation`), from the
        subsample it looks at (no full-size grey plane).
    evidence : strong and weak (h, w) bool ink evidence of ``ink_colors``, None without colours.
    """
    glass = stats.glass  # before the planes below: its temporaries are the larger ones
    h, w = a.shape[:2]
    step = glass_step(h, w)  # glass_saturation's subsample
    sat = np.empty((h, w), np.float32)
    ok = np.empty((h, w), bool)
    grey_sub = np.empty((-(-h // step), -(-w // step)), np.float32)
    evidence = ref = None
    dense = None if od_t is None else np.empty((h, w), bool)
    eosin = True
    if ink_colors:
        evidence = np.empty((h, w), bool), np.empty((h, w), bool)
        if "black" in ink_colors:  # as pen_mask does
            ref = stats.tissue_od
        if "blue" in ink_colors or "black" in ink_colors:
            eosin = stats.eosin
    for y0, y1, f in view_bands(a, glass):
        mms = max_min_sat(f)
        if evidence is not None:
            evidence[0][y0:y1], evidence[1][y0:y1] = pen_evidence(f, ink_colors, mms, ref, eosin)
        s = mms[2]
        grey = f @ GREY_WEIGHTS
        s *= 255.0
        debris = (grey < dark_grey) & (s < 0.3 * 255)  # black and unsaturated: not stain
        if dense is not None and od_t is not None:
            dense[y0:y1] = dense_stain(f, mms, od_t) & ~debris
        del f, mms
        sat[y0:y1] = s
        o = ok[y0:y1]
        np.less_equal(grey, max_brightness, out=o)
        o &= ~debris
        r0 = (-y0) % step  # first row of the band on the subsample grid
        grey_sub[(y0 + r0) // step : -(-y1 // step)] = grey[r0::step, ::step]
    return sat, ok, dense, glass_saturation(sat[::step, ::step], grey_sub), evidence


def _hysteresis_mask(sat: np.ndarray, ok: np.ndarray, strong_t: float, weak_t: float,
                     dense: np.ndarray | None = None) -> np.ndarray | None:
    """The components of ``(ok & (sat > weak_t)) | dense`` that hold a pixel with ``sat >
    strong_t`` (written into ``ok``), or None when ``ok`` has no such pixel."""
    h, w = sat.shape
    # weak = ok & (sat > weak_t), in place; strong = ok & (sat > t) seeds the hysteresis
    # (strong pixels outside weak have no component: seeding from weak & (sat > t) is the same)
    any_strong = False
    for y0, y1 in bands(h, w):
        s, o = sat[y0:y1], ok[y0:y1]
        any_strong = any_strong or bool((o & (s > strong_t)).any())
        o &= s > weak_t
        if dense is not None:
            o |= dense[y0:y1]
    if not any_strong:
        return None
    return hysteresis(ok, ((y0, y1, ok[y0:y1] & (sat[y0:y1] > strong_t)) for y0, y1 in bands(h, w)))


def trim_edges(mask: np.ndarray, sat: np.ndarray, ratio: float, sigma: float = 4.0) -> np.ndarray:
    """Drop boundary pixels that are mostly glass.

    A low-resolution pixel on the tissue edge is a mix of tissue and glass; its saturation is
    about (tissue share) x (saturation of the tissue nearby). Boundary pixels whose saturation
    is below ``ratio`` x the local interior saturation (Gaussian-weighted mean of the eroded mask,
    ``sigma`` px) are removed, so that the mask follows the half-tissue line like the truth does.

    The Gaussian sums are taken band by band, and only over the columns near the band's
    boundary pixels (with the kernel's radius around them): the same numbers at those pixels,
    without full-size float planes.

    Parameters
    ----------
    mask : (h, w) bool.
    sat : (h, w) saturation (0-255).
    ratio, sigma : see above.

    Returns
    -------
    (h, w) bool (``mask`` itself when nothing is dropped).
    """
    import cv2

    m = np.ascontiguousarray(mask, dtype=bool)
    u8 = m.view(np.uint8)
    interior = cv2.erode(u8, np.ones((3, 3), np.uint8))
    n_interior = cv2.countNonZero(interior)
    if n_interior == 0 or n_interior == cv2.countNonZero(u8):  # no interior, or no edge
        return mask
    # OpenCV's Gaussian kernel for float images: 2 * round(4 sigma) + 1 taps
    radius = (int(round(sigma * 4 * 2 + 1)) | 1) // 2
    h, w = m.shape
    out = m.copy()
    band = max(4 * radius, view.BAND_PIXELS // max(w, 1))  # the halo costs 2 radius rows a band
    for y0 in range(0, h, band):
        y1 = min(h, y0 + band)
        edge = u8[y0:y1] > interior[y0:y1]
        cols = np.flatnonzero(edge.any(axis=0))
        if len(cols) == 0:
            continue
        x0, x1 = max(0, int(cols[0]) - radius), min(w, int(cols[-1]) + radius + 1)
        s0, s1 = max(0, y0 - radius), min(h, y1 + radius)
        inter = interior[s0:s1, x0:x1].astype(np.float32)
        wsum = cv2.GaussianBlur(inter, (0, 0), sigma)
        inter *= sat[s0:s1, x0:x1]
        ssum = cv2.GaussianBlur(inter, (0, 0), sigma)
        del inter
        rows = slice(y0 - s0, y1 - s0)
        wsum, ssum = wsum[rows], ssum[rows]
        known = wsum > 1e-3
        local = ssum / np.maximum(wsum, 1e-6)
        e = edge[:, x0:x1]
        drop = e & known & (sat[y0:y1, x0:x1] < ratio * local)
        out[y0:y1, x0:x1] &= ~drop
    return out


def otsu_from_histogram(hist: np.ndarray) -> float:
    """:func:`otsu_threshold` of the uint8 values counted in ``hist`` (256,); 0 when there are none."""
    nz = np.flatnonzero(hist)
    if len(nz) == 0:
        return 0.0
    if len(nz) == 1:
        return float(nz[0])
    # Otsu depends on the histogram only: give OpenCV the sorted values
    return otsu_threshold(np.repeat(np.arange(256, dtype=np.uint8), hist))


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of uint8 values (the value itself when they are all equal)."""
    import cv2

    v = values.reshape(1, -1)
    if v.min() == v.max():
        return float(v.min())
    t, _ = cv2.threshold(v, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return float(t)


@hookimpl
def gigapatch_foreground_mask(rgb: np.ndarray, context: Any) -> np.ndarray | None:
    """The pathology tissue mask (None for other domains; ``mask.threshold`` set -> leave it to
    the built-in fixed-threshold mask)."""
    if context.domain not in DOMAINS:
        return None
    m = context.config.mask
    if m.threshold is not None:
        return None
    s = settings(context.config)
    return tissue_mask(
        rgb,
        min_threshold=m.min_threshold,
        max_brightness=m.max_brightness,
        dark_grey=max(float(m.min_brightness), s.dark_grey),
        pen_colors=tuple(s.pen_colors),
        stats=view_stats(context, rgb),
    )
