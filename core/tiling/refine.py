"""Clean-up of a low-resolution foreground mask: morphology, hole filling, small-object removal,
contour smoothing, and padding so that regions touching the image edge get closed contours.

Connectivity follows :func:`cv2.findContours` (and so :func:`gigapatch.segment_mask`): foreground
components are 8-connected, holes (background components) 4-connected.
"""

from __future__ import annotations

import numpy as np


def _ellipse(radius: int) -> np.ndarray:
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _as_u8(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {m.shape}")
    return np.ascontiguousarray(m != 0).view(np.uint8)


def fill_holes(mask: np.ndarray, max_area: float) -> np.ndarray:
    """Fill the holes of ``mask`` whose area (pixels) is below ``max_area``.

    A hole is a 4-connected background component that does not touch the image border.

    Parameters
    ----------
    mask : (h, w) bool.
    max_area : holes with ``area < max_area`` are filled.

    Returns
    -------
    (h, w) bool.
    """
    import cv2

    m = _as_u8(mask)
    if max_area <= 0 or m.size == 0:
        return m.astype(bool)
    h, w = m.shape
    _n, labels, stats, _ = cv2.connectedComponentsWithStats(1 - m, connectivity=4)
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    bw, bh = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    area = stats[:, cv2.CC_STAT_AREA]
    border = (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
    fill = (~border) & (area < max_area)
    fill[0] = False  # label 0 = the foreground itself
    return m.astype(bool) | fill[labels]


def remove_small_objects(mask: np.ndarray, min_area: float) -> np.ndarray:
    """Drop 8-connected foreground components whose area (pixels) is below ``min_area``."""
    import cv2

    m = _as_u8(mask)
    if min_area <= 0 or m.size == 0:
        return m.astype(bool)
    _n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels]


def refine_mask(
    mask: np.ndarray,
    *,
    close: int = 0,
    open: int = 0,
    dilate: int = 0,
    fill_holes_below: float = 0.0,
    drop_below: float = 0.0,
    smooth: float = 0,
) -> np.ndarray:
    """Clean a foreground mask; every step is skipped when its parameter is 0.

    Order: closing (bridge gaps) -> opening (remove specks) -> smoothing -> fill small holes
    -> drop small components -> dilation (margin). Small objects are dropped before the
    dilation so that specks do not grow; smoothing comes before the area filters so that
    fragments it creates are removed too.

    Parameters
    ----------
    mask : (h, w) bool (non-zero = foreground).
    close, open, dilate : radii in mask pixels of the elliptical structuring element
        (``2 r + 1`` wide). The closing treats the outside of the image as background, so it
        never glues a region to the image border; the opening and dilation ignore the outside.
    fill_holes_below : fill holes with area < this (mask px^2); see :func:`fill_holes`.
    drop_below : drop components with area < this (mask px^2).
    smooth : Gaussian sigma (mask px) of a blur of the mask, re-thresholded at 0.5 (a
        curvature-flow-like smoothing of the contours; replicate border).

    Returns
    -------
    (h, w) bool.
    """
    import cv2

    m = _as_u8(mask).copy()
    if m.size == 0:
        return m.astype(bool)
    if close > 0:
        k = _ellipse(close)
        p = cv2.copyMakeBorder(m, close, close, close, close, cv2.BORDER_CONSTANT, value=0)
        p = cv2.morphologyEx(p, cv2.MORPH_CLOSE, k)
        m = np.ascontiguousarray(p[close:-close, close:-close])
    if open > 0:
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, _ellipse(open))
    if smooth > 0:
        blurred = cv2.GaussianBlur(
            m.astype(np.float32), (0, 0), sigmaX=float(smooth), borderType=cv2.BORDER_REPLICATE
        )
        m = (blurred > 0.5).view(np.uint8)
    if fill_holes_below > 0:
        m = fill_holes(m, fill_holes_below).view(np.uint8)
    if drop_below > 0:
        m = remove_small_objects(m, drop_below).view(np.uint8)
    if dilate > 0:
        m = cv2.dilate(m, _ellipse(dilate))
    return m.astype(bool)


def pad_mask(mask: np.ndarray, pad: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Add a ``pad``-pixel False border around ``mask``.

    Regions that touch the image edge then have closed contours away from the edge, and
    morphology near the edge sees background there.

    Returns
    -------
    padded : (h + 2 pad, w + 2 pad) bool.
    offset : (ox, oy) = (pad, pad): mask pixel (x, y) is padded pixel (x + ox, y + oy).

    Undo it with :func:`unpad_mask` (``unpad_mask(padded, offset)``), or, for coordinates
    measured on the padded mask, subtract the offset before scaling to level 0:
    ``level0 = (xy_padded - offset) * downsample``, which is what
    ``segment_mask(padded, ds, origin=(-ox * ds, -oy * ds))`` does.
    """
    if pad < 0:
        raise ValueError("pad must be >= 0")
    m = np.asarray(mask) != 0
    if pad == 0:
        return m.copy(), (0, 0)
    return np.pad(m, pad, mode="constant", constant_values=False), (pad, pad)


def unpad_mask(padded: np.ndarray, offset: tuple[int, int] | int) -> np.ndarray:
    """Inverse of :func:`pad_mask`: crop ``offset`` = (ox, oy) (or one int) from every side."""
    ox, oy = (offset, offset) if isinstance(offset, (int, np.integer)) else offset
    h, w = padded.shape[:2]
    if 2 * oy > h or 2 * ox > w or ox < 0 or oy < 0:
        raise ValueError(f"offset {offset} does not fit a padded mask of shape {padded.shape}")
    return padded[oy : h - oy, ox : w - ox]


__all__ = ["fill_holes", "pad_mask", "refine_mask", "remove_small_objects", "unpad_mask"]
