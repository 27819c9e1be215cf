"""Per-pixel passes over a slide's low-resolution view, shared by the tissue and ink masks.

The passes look at the 3 x 3 median-filtered view white-balanced on its glass colour
(:func:`view_glass`, :func:`view_bands`): its saturation and grey planes (:func:`sat_grey`),
the glass's own saturation (:func:`glass_saturation`), the median stain density of its tissue
(:func:`tissue_density`) and the white / dark / grey classes the score hook reports
(:func:`glass_dark_grey`). Every pass keeps its temporaries to a band of :data:`BAND_PIXELS`
pixels.

What the tissue, ink and score hooks of one image share (the glass colour, the tissue density,
the ink masks) is a :class:`ViewStats`, kept per image in the hooks' context
(:func:`view_stats`); the functions also work on a bare array, computing what they need.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

import numpy as np

#: pixels per band of the per-pixel passes: their float32 temporaries stay a few MB whatever the
#: size of the view (the outputs are the only full-size arrays)
BAND_PIXELS = 1 << 15
#: luma weights of R, G, B (the grey plane)
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
#: pixels sampled (on a regular grid) for the glass colour and saturation: a quarter million
#: fix a median of the brightest tenth to well under one grey level
GLASS_SAMPLES = 2.5e5
#: pixels sampled (on a regular grid) for the tissue density
DENSITY_SAMPLES = 6.5e4
#: fewest tissue pixels (of the :data:`DENSITY_SAMPLES` sampled) for a tissue density
MIN_REF_PIXELS = 300
#: eosin's part of a pixel's stain amounts above which it counts as eosin-stained
#: (:func:`eosin_share`)
EOSIN_PART = 0.25
#: a view whose stained pixels are less than this share eosin-stained is IHC-like (no eosin:
#: H&E slides measure 0.13-0.99, IHC slides 0)
MIN_EOSIN_SHARE = 0.05
#: bin width and range of the densities :func:`glass_density` takes the mode of
GLASS_OD_BIN = 0.01
GLASS_OD_MAX = 0.3
#: optical density (sum of R, G, B) above the glass's that is stain on slides without eosin
#: (:func:`dense_stain`)
DENSITY_MARGIN = 0.10
#: ... when its max - min channel density is above this share of the sum (not grey)
DENSITY_CHROMA = 0.04
#: :func:`grey_classes` codes
WHITE, DARK, GREYISH = 1, 2, 3


def bands(h: int, w: int, multiple: int = 1) -> Iterator[tuple[int, int]]:
    """Row ranges ``(y0, y1)`` of about :data:`BAND_PIXELS` pixels (``y0`` a multiple of ``multiple``)."""
    rows = max(1, BAND_PIXELS // max(w, 1))
    rows = max(multiple, rows // multiple * multiple)
    for y0 in range(0, h, rows):
        yield y0, min(h, y0 + rows)


def median_band(a: np.ndarray, y0: int, y1: int) -> np.ndarray:
    """Rows ``y0:y1`` of the 3 x 3 median of ``a`` (h, w, 3) uint8, computed from those rows and one
    on each side: the same pixels as filtering the whole view (no median below 3 x 3 views)."""
    import cv2

    h, w = a.shape[:2]
    if min(h, w) < 3:
        return a[y0:y1]
    s0, s1 = max(0, y0 - 1), min(h, y1 + 1)
    return cv2.medianBlur(np.ascontiguousarray(a[s0:s1]), 3)[y0 - s0 : y1 - s0]


def glass_step(h: int, w: int) -> int:
    """Grid step of the :data:`GLASS_SAMPLES` pixels sampled from an (h, w) plane."""
    return max(1, int(np.sqrt(h * w / GLASS_SAMPLES)))


def glass_rgb(rgb: np.ndarray) -> np.ndarray:
    """(3,) float32 colour of the glass: per-channel median of the brightest 10 % of pixels,
    at least 200 (a slide filled with tissue then falls back to near white)."""
    a = np.asarray(rgb)[:, :, :3]
    step = glass_step(a.shape[0], a.shape[1])
    a = a[::step, ::step]
    h, w = a.shape[:2]
    if h * w == 0:
        return np.full(3, 255.0, np.float32)
    # grey as one (n, 3) @ (3,) float32 product per band: no (n, 3) float copy of the view
    grey = np.empty(h * w, np.float32)
    for y0, y1 in bands(h, w):
        grey[y0 * w : y1 * w] = a[y0:y1].reshape(-1, 3).astype(np.float32) @ GREY_WEIGHTS
    bright = grey >= np.percentile(grey, 90)
    del grey
    px = np.ascontiguousarray(a).reshape(-1, 3)[bright]
    return np.clip(np.median(px, axis=0), 200.0, 255.0).astype(np.float32)


def view_glass(rgb: np.ndarray) -> np.ndarray:
    """:func:`glass_rgb` of the 3 x 3 median-filtered view (the colour the passes balance on)."""
    import cv2

    a = np.ascontiguousarray(np.asarray(rgb)[:, :, :3])
    if min(a.shape[:2]) >= 3:
        a = cv2.medianBlur(a, 3)
    return glass_rgb(a)


def view_bands(rgb: np.ndarray, glass: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
    """Band by band, ``(y0, y1, f)``: ``f`` (y1 - y0, w, 3) float32 pixels of the 3 x 3
    median-filtered view, white-balanced on the glass colour ``glass`` (3,) (:func:`view_glass`)."""
    a = np.asarray(rgb)[:, :, :3]
    h, w = a.shape[:2]
    scale = 255.0 / np.asarray(glass)
    for y0, y1 in bands(h, w):
        f = median_band(a, y0, y1).astype(np.float32)
        f *= scale
        yield y0, y1, f


def max_min_sat(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Max and min channel and saturation ``(max - min) / max(max, 1)`` of (..., 3) float32."""
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    mx = np.maximum(r, g)  # element-wise beats a reduction over a length-3 last axis
    np.maximum(mx, b, out=mx)
    mn = np.minimum(r, g)
    np.minimum(mn, b, out=mn)
    sat = mx - mn
    np.divide(sat, np.maximum(mx, 1.0), out=sat)
    return mx, mn, sat


def sat_grey(rgb: np.ndarray, glass: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Saturation ``(max - min) / max(max, 1)`` (0-1) and grey (luma) (h, w) float32 planes of the
    3 x 3 median-filtered view, white-balanced on its glass colour (``glass``, or
    :func:`view_glass`) so a tinted background reads as white; computed band by band."""
    a = np.asarray(rgb)
    h, w = a.shape[:2]
    if glass is None:
        glass = view_glass(a)
    sat = np.empty((h, w), np.float32)
    grey = np.empty((h, w), np.float32)
    for y0, y1, f in view_bands(a, glass):
        sat[y0:y1] = max_min_sat(f)[2]
        grey[y0:y1] = f @ GREY_WEIGHTS
    return sat, grey


def glass_saturation(sat: np.ndarray, grey: np.ndarray) -> float:
    """Saturation level (0-255) of the glass: :func:`glass_level` of the :data:`GLASS_SAMPLES`
    pixels sampled on a regular grid.

    Parameters
    ----------
    sat : (h, w) saturation on 0-255.
    grey : (h, w) grey level.
    """
    step = glass_step(*sat.shape[:2])
    return glass_level(sat[::step, ::step], grey[::step, ::step])


def glass_level(sat: np.ndarray, grey: np.ndarray) -> float:
    """Median saturation (0-255) of the brightest 10 % of pixels (``grey`` at or above its 90th
    percentile), clamped to 0-40 so a slide filled with tissue does not raise it past tissue;
    0 without pixels."""
    if sat.size == 0:
        return 0.0
    bright = grey >= np.percentile(grey, 90)
    return float(np.clip(np.median(sat[bright]), 0, 40))


def view_glass_saturation(rgb: np.ndarray, glass: np.ndarray) -> float:
    """:func:`glass_saturation` of the balanced view's planes (:func:`sat_grey`, saturation x
    255), computed band by band at the sampled pixels only."""
    a = np.asarray(rgb)
    h, w = a.shape[:2]
    step = glass_step(h, w)
    sat_sub = np.empty((-(-h // step), -(-w // step)), np.float32)
    grey_sub = np.empty_like(sat_sub)
    for y0, y1, f in view_bands(a, glass):
        r0 = (-y0) % step  # first row of the band on the sample grid
        rows = slice((y0 + r0) // step, -(-y1 // step))
        f = f[r0::step, ::step]
        sat_sub[rows] = max_min_sat(f)[2] * np.float32(255.0)
        grey_sub[rows] = f @ GREY_WEIGHTS
    return glass_level(sat_sub, grey_sub)


def tissue_samples(rgb: np.ndarray, glass: np.ndarray) -> np.ndarray | None:
    """Optical densities (n, 3) float32 of the stained pixels among :data:`DENSITY_SAMPLES`
    sampled on a regular grid of a view white-balanced on its glass colour ``glass`` (saturation
    above 0.15, brightest channel 120-235), or None when fewer than :data:`MIN_REF_PIXELS`."""
    a = np.asarray(rgb)[:, :, :3]
    h, w = a.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / DENSITY_SAMPLES))))
    f = a[::step, ::step].reshape(-1, 3).astype(np.float32) * (255.0 / glass)
    cmax, _cmin, sat = max_min_sat(f)
    t = (sat > 0.15) & (cmax > 120.0) & (cmax < 235.0)
    if t.sum() < MIN_REF_PIXELS:
        return None
    return np.log(256.0 / (np.maximum(f[t], 0.0) + 1.0)).astype(np.float32)


def tissue_density(rgb: np.ndarray, glass: np.ndarray) -> np.ndarray | None:
    """Median optical density (3,) float32 of the stained tissue of a view white-balanced on its
    glass colour ``glass`` (:func:`tissue_samples`), or None when it has too little tissue.

    Black ink over tissue adds a *neutral* density to the stain's: the pixel's density above
    this reference is grey (:func:`gigapatch_pathology.ink.pen_evidence`), where a denser stain
    (a fold, a nuclei cluster) adds density along the stain's own colour.
    """
    od = tissue_samples(rgb, glass)
    return None if od is None else np.median(od, axis=0).astype(np.float32)


def eosin_share(od: np.ndarray) -> float:
    """Share of optical densities ``od`` (n, 3) whose colour deconvolution into haematoxylin,
    eosin and DAB (:mod:`gigapatch_pathology.stains`) gives eosin more than :data:`EOSIN_PART`
    of the three amounts: most of an H&E slide's stained pixels, none of an IHC slide's (nor
    of marker ink)."""
    from .stains import DAB, EOSIN, HAEMATOXYLIN, unit

    m = np.stack([unit(HAEMATOXYLIN), unit(EOSIN), unit(DAB)])
    hed = np.asarray(od, np.float32) @ np.linalg.inv(m).astype(np.float32)
    part = hed[:, 1] / (np.abs(hed).sum(axis=1) + 1e-6)
    return float((part > EOSIN_PART).mean()) if len(part) else 0.0


def glass_density(rgb: np.ndarray, glass: np.ndarray) -> float:
    """The most common optical density (sum of R, G, B; bins of :data:`GLASS_OD_BIN`, up to
    :data:`GLASS_OD_MAX`) of the :data:`GLASS_SAMPLES` pixels sampled on a regular grid of a
    view balanced on ``glass`` (3,): the glass's own density, 0 for clean glass. The glass
    colour is the brightest pixels', which on a slide scanned with white padding around a
    tinted glass is the padding's: the tinted glass, most of the rest, is the mode. 0 without
    pixels."""
    a = np.asarray(rgb)[:, :, :3]
    step = glass_step(a.shape[0], a.shape[1])
    f = a[::step, ::step].reshape(-1, 3).astype(np.float32) * (255.0 / np.asarray(glass))
    if len(f) == 0:
        return 0.0
    od = np.log(256.0 / (np.maximum(f, 0.0) + 1.0)).sum(axis=1)
    bins = int(round(GLASS_OD_MAX / GLASS_OD_BIN))
    hist = np.bincount(np.clip(np.floor(od / GLASS_OD_BIN), 0, bins).astype(np.int64),
                       minlength=bins + 1)[:bins]
    return float((np.argmax(hist) + 0.5) * GLASS_OD_BIN) if hist.any() else 0.0


def dense_stain(f: np.ndarray, mms: tuple[np.ndarray, np.ndarray, np.ndarray], od_t: float
                ) -> np.ndarray:
    """Balanced pixels ``f`` (..., 3) whose optical density (sum of R, G, B) is above ``od_t``
    and not neutral (max - min channel density above :data:`DENSITY_CHROMA` x the sum: dust,
    smudges and shading are grey); ``mms`` their :func:`max_min_sat`. Returns (...) bool."""
    cmax, cmin, _ = mms
    total = np.log(256.0 / (np.maximum(f, 0.0) + 1.0)).sum(axis=-1)
    chroma = np.log((np.maximum(cmax, 0.0) + 1.0) / (np.maximum(cmin, 0.0) + 1.0))
    return (total > od_t) & (chroma > DENSITY_CHROMA * total)


def classify_grey(sat: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """:func:`glass_dark_grey`'s classes of saturation (0-1) and grey planes as one uint8 plane
    (0 = none of them, :data:`WHITE`, :data:`DARK`, :data:`GREYISH`; they exclude each other)."""
    low = sat < 0.08
    cls = np.where(low, np.uint8(GREYISH), np.uint8(0))
    cls[(grey > 215) & low] = WHITE
    cls[grey < 60] = DARK
    return cls


def grey_classes(rgb: np.ndarray, glass: np.ndarray) -> np.ndarray:
    """(h, w) uint8 :func:`classify_grey` of the view balanced on ``glass``, band by band: one byte
    per pixel where the planes of :func:`sat_grey` take eight."""
    a = np.asarray(rgb)
    out = np.empty(a.shape[:2], np.uint8)
    for y0, y1, f in view_bands(a, glass):
        out[y0:y1] = classify_grey(max_min_sat(f)[2], f @ GREY_WEIGHTS)
    return out


def glass_dark_grey(rgb: np.ndarray, glass: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-pixel classes of a low-resolution view that are not stained tissue.

    ``white``: bright and unsaturated (glass); ``dark``: grey < 60 (debris, thick folds, black
    ink); ``grey``: unsaturated mid-grey (dust, shadows, out-of-coverslip areas). ``glass``: the
    view's glass colour when known (:func:`view_glass`).
    """
    cls = grey_classes(rgb, view_glass(rgb) if glass is None else glass)
    return {"white": cls == WHITE, "dark": cls == DARK, "grey": cls == GREYISH}


class ViewStats:
    """What the tissue, ink and score passes over one low-resolution view share.

    Each figure is computed on first use; the ink masks are filled by whoever finds them first
    (:func:`gigapatch_pathology.ink.pen_mask`, or :func:`gigapatch_pathology.tissue.tissue_mask`
    on its way), keyed by ``(colors, min_area, grow)``, and are read-only.

    Parameters
    ----------
    rgb : (h, w, 3) uint8 view (not copied: it must not change while the stats are used).
    """

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb
        self.inks: dict[tuple[tuple[str, ...], int, int], np.ndarray] = {}

    @cached_property
    def glass(self) -> np.ndarray:
        """(3,) float32 glass colour of the median-filtered view (:func:`view_glass`)."""
        return view_glass(self.rgb)

    @cached_property
    def samples(self) -> np.ndarray | None:
        """(n, 3) float32 densities of the view's sampled tissue, or None (:func:`tissue_samples`)."""
        return tissue_samples(self.rgb, self.glass)

    @cached_property
    def tissue_od(self) -> np.ndarray | None:
        """(3,) float32 median density of the view's tissue, or None (:func:`tissue_density`)."""
        return None if self.samples is None else np.median(self.samples, axis=0).astype(np.float32)

    @cached_property
    def glass_od(self) -> float:
        """Optical density (sum of R, G, B) of the view's glass (:func:`glass_density`)."""
        return glass_density(self.rgb, self.glass)

    @cached_property
    def eosin(self) -> bool:
        """Whether the view's tissue carries eosin (H&E; True when it has too little tissue to
        say): False for IHC, whose bare haematoxylin is as blue as a marker
        (:func:`gigapatch_pathology.ink.not_haematoxylin`)."""
        return self.samples is None or eosin_share(self.samples) >= MIN_EOSIN_SHARE


def view_stats(context: Any, rgb: np.ndarray | None = None) -> ViewStats:
    """The :class:`ViewStats` of ``rgb`` (default ``context.rgb``), kept for the image in
    ``context.plugin_cache("pathology")["view"]`` (replaced when asked about another array)."""
    a = context.rgb if rgb is None else rgb
    cache = context.plugin_cache("pathology")
    stats = cache.get("view")
    if stats is None or stats.rgb is not a:
        stats = cache["view"] = ViewStats(a)
    return stats
