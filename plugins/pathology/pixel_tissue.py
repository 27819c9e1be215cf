"""Tissue fraction of candidate patches measured on their own pixels.

The low-resolution mask (1/8 of level 0 or coarser) decides which patches are *candidates*; its
per-patch foreground fraction is off by a few percent on the tissue border (one mask pixel along
a 256-px patch side is 3 % of the patch, and the mask gets coarser as slides get larger), so a
patch just above or below ``patch.min_foreground`` is a coin toss. The pipeline reads every
candidate once at full resolution anyway (sharpness, blur); this module measures each one's
tissue on those pixels instead:

1. bin the patch to ~2 um per pixel (``WORK_UM``; 4 x 4 at 0.5 um/px), white-balance it on the
   slide's glass colour and compute the saturation ``(max - min) / max`` (0-255), like the
   low-resolution mask does;
2. tissue evidence: saturation above a threshold from a short ladder above the slide's glass
   saturation (glass + ``LADDER``); the slide's rung is the one at which the border candidates'
   mean pixel tissue matches their mean mask estimate (:func:`calibrated_tissue`): the pixels
   add precision on *where* the tissue border runs, the slide's mask says what counts as tissue
   (pale stroma does; a tinted haze on the glass next to tissue, common in frozen sections, does
   not); on a slide without eosin (IHC) also the tissue mask's optical-density rule
   (:func:`~gigapatch_pathology.view.dense_stain`), which finds a pale, greyish counterstain;
3. a morphological closing (radius ``CLOSE_UM``) fills the pale gaps *inside* tissue (lumina,
   loose stroma, nuclei-free spaces) that the truth and a pathologist count as tissue;
4. marker ink is removed: the slide's low-resolution pen mask sampled at each working pixel
   (without specks under ``MIN_INK_UM2``: dust and debris, not marker), plus black-ink-coloured
   working pixels next to it (:func:`pixel_ink`); its share of the patch is the candidate's
   ``pen`` score. With an annotation file, anything farther than
   ``NEAR`` mask pixels from the mask goes too (regions the annotations exclude). Small loose
   fragments that the mask's clean-up drops stay tissue here: inside a candidate they are
   tissue like any other.

The result per patch is a (blocks, blocks) tissue fraction: its mean is the refined
``foreground`` and the blocks replace the mask's block tissue in the blur score. Measured on
synthetic slides with ground truth, the border patches' mean absolute error is about half the
mask's (~0.009 against ~0.016 at a 1/8 mask; the mask's error grows on larger slides, whose
mask is coarser, the pixels' does not).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .components import drop_specks
from .ink import pen_evidence
from .view import DENSITY_MARGIN, dense_stain, max_min_sat, view_glass_saturation, view_stats

#: working resolution, microns per pixel (4 x 4 binning of 0.5 um/px patches)
WORK_UM = 2.0
#: working bin (output px) when the patch mpp is unknown
DEFAULT_BIN = 4
#: closing radius in microns: pale gaps narrower than ~2x this inside tissue count as tissue
CLOSE_UM = 6.0
#: stain thresholds tried, saturation (0-255) above the glass's
LADDER = (8.0, 11.0, 14.0, 18.0, 22.0, 27.0, 33.0)
#: a slide's threshold is calibrated on at least this many border candidates (else LADDER[0])
MIN_BORDER = 8
#: mask pixels the low-resolution mask is grown by to bound the pixel tissue (its border error)
NEAR = 2
#: mask pixels around the low-resolution ink where ink-coloured working pixels are ink too
INK_NEAR = 2
#: ink components smaller than this (um^2, ~45 x 45 um) are dust or debris, not marker: a
#: felt-tip stroke is hundreds of microns wide
MIN_INK_UM2 = 2000.0
#: level-0 microns per pixel assumed when the slide does not say
DEFAULT_MPP = 0.5


def working_bin(size: int, effective_mpp: float | None) -> int:
    """Output pixels per working pixel: the divisor of ``size`` nearest to ``WORK_UM`` microns
    (``DEFAULT_BIN`` px when the mpp is unknown), at most ``size // 16``."""
    target = DEFAULT_BIN if not effective_mpp else WORK_UM / float(effective_mpp)
    cap = max(1, size // 16)
    divisors = [d for d in range(1, cap + 1) if size % d == 0]
    return int(min(divisors, key=lambda d: (abs(np.log(d / max(target, 1e-6))), d)))


def balanced_bins(patches: np.ndarray, glass: np.ndarray, bin_px: int) -> np.ndarray:
    """Patches binned ``bin_px`` x ``bin_px`` and white-balanced on the glass colour.

    Parameters
    ----------
    patches : (N, s, s, 3) uint8 RGB; ``s`` a multiple of ``bin_px``.
    glass : (3,) glass colour (balanced to 255).
    bin_px : binning factor.

    Returns
    -------
    (N, s // bin_px, s // bin_px, 3) float32.
    """
    import cv2

    p = np.asarray(patches)
    n, s = p.shape[0], p.shape[1]
    k = s // bin_px
    if n == 0:
        return np.zeros((0, k, k, 3), np.float32)
    # one INTER_AREA resize of the batch as a tall image: an exact block mean at integer factors
    f = cv2.resize(np.ascontiguousarray(p[..., :3]).reshape(n * s, s, 3), (k, n * k),
                   interpolation=cv2.INTER_AREA).astype(np.float32)
    f *= 255.0 / np.maximum(np.asarray(glass, np.float32), 1.0)
    return f.reshape(n, k, k, 3)


def saturation(f: np.ndarray) -> np.ndarray:
    """``(max - min) / max`` of (..., 3) float pixels, on 0-255."""
    mx = np.maximum(np.maximum(f[..., 0], f[..., 1]), f[..., 2])
    mn = np.minimum(np.minimum(f[..., 0], f[..., 1]), f[..., 2])
    return (mx - mn) / np.maximum(mx, 1.0) * 255.0


def pixel_ink(f: np.ndarray, colors: tuple[str, ...], near_ink: np.ndarray | None,
              ink: np.ndarray | None, eosin: bool = True) -> np.ndarray:
    """Marker ink at the working pixels: the low-resolution pen mask (``ink``), plus every pixel
    with black-ink colour (strong or weak evidence of
    :func:`~gigapatch_pathology.ink.pen_mask`'s rules) within a few mask pixels of it
    (``near_ink``). Blue and green ink keep their hue over tissue at any resolution; black ink
    over dark tissue loses its neutral colour in the coarse view, so the mask misses stretches
    of a black stroke that the finer pixels still show.

    Parameters
    ----------
    f : (N, k, k, 3) float32 balanced pixels (:func:`balanced_bins`).
    colors : inks looked for.
    near_ink, ink : (N, k, k) bool, or None.
    eosin : whether the slide's tissue carries eosin (the black rules are stricter without).

    Returns
    -------
    (N, k, k) bool.
    """
    out = np.zeros(f.shape[:3], bool) if ink is None else ink.copy()
    if near_ink is None or "black" not in colors:
        return out
    near = np.flatnonzero(near_ink.reshape(len(f), -1).any(axis=1))  # patches next to ink
    if len(near):
        strong, weak = pen_evidence(f[near].reshape(-1, f.shape[2], 3), ("black",), eosin=eosin)
        out[near] |= (strong | weak).reshape(len(near), *f.shape[1:3]) & near_ink[near]
    return out


def close_stack(maps: np.ndarray, radius: int) -> np.ndarray:
    """Binary closing (elliptic, ``radius`` px) of each (h, w) map of an (N, h, w) bool stack.

    One OpenCV pass over the maps stacked into a tall image, each padded by ``2 * radius`` px
    of its own edge (replicated): beyond its border a map continues as it ends there, and no
    map's closing reaches another.
    """
    import cv2

    m = np.asarray(maps, bool)
    if radius <= 0 or m.size == 0:
        return m.copy()
    n, h, w = m.shape
    g = 2 * radius
    tall = np.pad(m.view(np.uint8), ((0, 0), (g, g), (g, g)), mode="edge")
    tall = tall.reshape(n * (h + 2 * g), w + 2 * g)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    t = cv2.erode(cv2.dilate(tall, k), k)
    return t.reshape(n, h + 2 * g, w + 2 * g)[:, g : g + h, g : g + w].astype(bool)


def sample_mask(mask: np.ndarray, mask_ds: float, coords: np.ndarray, size_level0: float,
                k: int) -> np.ndarray:
    """A low-resolution mask sampled at the centres of each patch's ``k`` x ``k`` working pixels.

    Returns
    -------
    (N, k, k) bool.
    """
    c = np.asarray(coords, np.float64).reshape(-1, 2)
    centre = (np.arange(k) + 0.5) * (size_level0 / k)
    h, w = mask.shape
    xs = np.clip(((c[:, 0, None] + centre[None]) / mask_ds).astype(np.int64), 0, w - 1)
    ys = np.clip(((c[:, 1, None] + centre[None]) / mask_ds).astype(np.int64), 0, h - 1)
    return np.asarray(mask, bool)[ys[:, :, None], xs[:, None, :]]


def tissue_blocks(
    sat: np.ndarray, threshold: float, radius: int, ink: np.ndarray | None = None,
    near: np.ndarray | None = None, blocks: int = 4, dense: np.ndarray | None = None,
) -> np.ndarray:
    """Tissue fraction of each block of each patch, from its pixels.

    Parameters
    ----------
    sat : (N, k, k) saturation (0-255) of the balanced working pixels (:func:`saturation`).
    threshold : saturation above which a working pixel is stained.
    dense : (N, k, k) bool working pixels stained by their optical density (slides without
        eosin, :func:`~gigapatch_pathology.view.dense_stain`), or None.
    radius : closing radius in working px.
    ink : (N, k, k) bool marker ink at the working pixels (removed), or None.
    near : (N, k, k) bool, where tissue may be (the slide's mask grown a little), or None.
    blocks : blocks per side.

    Returns
    -------
    (N, blocks, blocks) float32 in [0, 1].
    """
    import cv2

    n, k = sat.shape[0], sat.shape[1]
    if n == 0:
        return np.zeros((0, blocks, blocks), np.float32)
    stained = sat > threshold
    if dense is not None:
        stained |= dense
    if ink is not None:
        stained &= ~ink
    tissue = close_stack(stained, radius)
    if ink is not None:
        tissue &= ~ink
    if near is not None:
        tissue &= near
    t = tissue.reshape(n * k, k).astype(np.float32)
    return cv2.resize(t, (blocks, n * blocks), interpolation=cv2.INTER_AREA).reshape(n, blocks, blocks)


def tissue_ladder(
    sat: np.ndarray, thresholds: np.ndarray, radius: int, ink: np.ndarray | None = None,
    near: np.ndarray | None = None, blocks: int = 4, dense: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`tissue_blocks` at every threshold of an ascending ladder, with one closing.

    Equal to ``np.stack([tissue_blocks(sat, t, ...) for t in thresholds], axis=1)``: each
    working pixel gets its rung, the number of thresholds it is stained at (0 under ink, all
    of them where ``dense``), and one grey-level closing of the uint8 rungs replaces the binary
    closing at each threshold (flat dilation and erosion commute with thresholding: the closing
    of ``rung > j`` is ``closing(rung) > j``).

    Parameters
    ----------
    sat, radius, ink, near, blocks, dense : as :func:`tissue_blocks`.
    thresholds : (L,) strictly ascending saturation thresholds.

    Returns
    -------
    (N, L, blocks, blocks) float32 in [0, 1].
    """
    import cv2

    t = np.asarray(thresholds, np.float32).reshape(-1)
    n, k, n_t = sat.shape[0], sat.shape[1], len(t)
    if n == 0 or n_t == 0:
        return np.zeros((n, n_t, blocks, blocks), np.float32)
    if n_t > 254 or np.any(np.diff(t) <= 0):
        raise ValueError("thresholds must be strictly ascending (at most 254)")
    # rung = number of thresholds strictly below the saturation: stained at t_j <=> rung > j
    rung = np.searchsorted(t, np.asarray(sat, np.float32), side="left").astype(np.uint8)
    if dense is not None:
        rung[dense] = n_t
    if ink is not None:
        rung[ink] = 0
    closed = close_levels(rung, radius)
    keep = np.ones(closed.shape, bool) if ink is None else ~ink
    if near is not None:
        keep &= near
    closed[~keep] = 0
    levels = np.arange(n_t, dtype=np.uint8)[:, None, None, None]
    tall = (closed[None] > levels).reshape(n_t * n * k, k).astype(np.float32)
    b = cv2.resize(tall, (blocks, n_t * n * blocks), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(b.reshape(n_t, n, blocks, blocks).transpose(1, 0, 2, 3))


def close_levels(levels: np.ndarray, radius: int) -> np.ndarray:
    """Grey-level closing (elliptic, ``radius`` px) of each map of an (N, h, w) uint8 stack,
    as :func:`close_stack` (edge padding, one OpenCV pass); thresholded at any level it equals
    :func:`close_stack` of the thresholded maps."""
    import cv2

    m = np.asarray(levels, np.uint8)
    if radius <= 0 or m.size == 0:
        return m.copy()
    n, h, w = m.shape
    g = 2 * radius
    tall = np.pad(m, ((0, 0), (g, g), (g, g)), mode="edge").reshape(n * (h + 2 * g), w + 2 * g)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    t = cv2.erode(cv2.dilate(tall, k), k)
    return t.reshape(n, h + 2 * g, w + 2 * g)[:, g : g + h, g : g + w].copy()


def slide_reference(context: Any) -> dict[str, Any]:
    """The slide-level numbers the pixel measure needs, computed once per slide and kept in
    ``context.plugin_cache("pathology")["pixel_tissue"]``: glass colour, stain thresholds, working bin, microns per
    output pixel, the grown tissue mask (``near``, None without annotations), the pen mask
    without specks (``ink``,
    :func:`~gigapatch_pathology.components.drop_specks`) and grown (``near_ink``), None without one."""
    cache = context.plugin_cache("pathology")
    ref = cache.get("pixel_tissue")
    if ref is not None:
        return ref
    import cv2

    stats = view_stats(context)
    glass = stats.glass  # the glass colour the tissue and ink masks balance on
    geom = context.geometry
    bin_px = working_bin(int(geom.size), getattr(geom, "effective_mpp", None))
    near = None
    if getattr(getattr(context.config, "annotations", None), "path", None) is not None:
        grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * NEAR + 1, 2 * NEAR + 1))
        near = cv2.dilate(np.asarray(context.mask, np.uint8), grow).astype(bool)
    pen = (context.exclusions or {}).get("pen")
    near_ink = None
    if pen is not None:
        mpp0 = getattr(geom, "slide_mpp", None) or DEFAULT_MPP
        pen = drop_specks(pen, MIN_INK_UM2 / (context.mask_downsample * mpp0) ** 2)
        grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * INK_NEAR + 1, 2 * INK_NEAR + 1))
        near_ink = cv2.dilate(np.asarray(pen, np.uint8), grow).astype(bool)
    ref = {
        "ink": pen,
        "near": near,
        "near_ink": near_ink,
        "glass": glass,
        "thresholds": view_glass_saturation(context.rgb, glass) + np.asarray(LADDER, np.float32),
        # the tissue mask's density rule on slides without eosin (None on H&E)
        "od_t": None if stats.eosin else stats.glass_od + DENSITY_MARGIN,
        "bin": bin_px,
        "um_per_px": getattr(geom, "effective_mpp", None) or WORK_UM / DEFAULT_BIN,
    }
    cache["pixel_tissue"] = ref
    return ref


def score_batch(patches: np.ndarray, coords: np.ndarray | None, context: Any,
                colors: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Pixel measures of one batch of candidates.

    Parameters
    ----------
    patches : (B, s, s, 3) uint8 at the output geometry.
    coords : (B, 2) their level-0 x, y (None: the slide's masks cannot be used).
    context : the image's :class:`gigapatch.ImageContext`.
    colors : marker inks looked for on the pixels.

    Returns
    -------
    ``{"tissue_ladder": (B, L, 4, 4) float32, "pen": (B,) float32}``: per-block tissue at each
    threshold of the ladder (:func:`calibrated_tissue` picks one per slide) and the ink share
    (``pen`` only with coords).
    """
    ref = slide_reference(context)
    p = np.asarray(patches)
    bin_px = int(ref["bin"])
    if p.shape[1] % bin_px or p.shape[2] != p.shape[1]:
        bin_px = 1
    k = p.shape[1] // bin_px
    f = balanced_bins(p, ref["glass"], bin_px)
    out: dict[str, np.ndarray] = {}
    ink = near = None
    if coords is not None and len(coords) == len(p):
        ds, s0 = context.mask_downsample, context.geometry.size_level0
        if ref["near"] is not None:
            near = sample_mask(ref["near"], ds, coords, s0, k)
        pen = ref["ink"]
        if pen is not None:
            near_ink = sample_mask(ref["near_ink"], ds, coords, s0, k)
            ink = pixel_ink(f, colors, near_ink, sample_mask(pen, ds, coords, s0, k),
                            ref["od_t"] is None)
            out["pen"] = ink.reshape(len(p), -1).mean(axis=1, dtype=np.float32)
    radius = max(1, int(round(CLOSE_UM / (float(ref["um_per_px"]) * bin_px))))
    sat = saturation(f)
    dense = None if ref["od_t"] is None else dense_stain(f, max_min_sat(f), float(ref["od_t"]))
    out["tissue_ladder"] = tissue_ladder(sat, ref["thresholds"], radius, ink, near, dense=dense)
    return out


def calibrated_tissue(ladder: np.ndarray, mask_fg: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-block pixel tissue at the slide's calibrated threshold.

    Parameters
    ----------
    ladder : (N, L, B, B) from :func:`score_batch`, candidates of one slide.
    mask_fg : (N,) their foreground fraction on the low-resolution mask.

    Returns
    -------
    (N, B, B) float32 blocks at the rung whose mean over the border candidates (mask estimate
    below 0.98) is nearest the mask's mean over them, and that rung's index (0 when fewer than
    ``MIN_BORDER`` candidates lie on the border).
    """
    lad = np.asarray(ladder, np.float32)
    fg = np.asarray(mask_fg, np.float64)
    border = fg < 0.98
    if border.sum() < MIN_BORDER or lad.shape[1] == 1:
        return lad[:, 0], 0
    means = lad[border].mean(axis=(2, 3)).mean(axis=0)  # (L,)
    k = int(np.argmin(np.abs(means - fg[border].mean())))
    return lad[:, k], k


__all__ = [
    "balanced_bins",
    "calibrated_tissue",
    "close_levels",
    "close_stack",
    "pixel_ink",
    "sample_mask",
    "saturation",
    "score_batch",
    "slide_reference",
    "tissue_blocks",
    "tissue_ladder",
    "working_bin",
]
