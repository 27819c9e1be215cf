"""Texture statistics of a grey scan on a grid of cells, read band by band in its own samples.

A defect is a local departure from the steel's texture. Every ``cell`` x ``cell`` px cell of the
scan gets a few statistics of the grey residual ``r = smooth(grey) - background`` (``smooth``: a
1 px Gaussian, ``background``: a Gaussian of 2 cells over the cell means, so illumination ramps
and the overall grey level cancel) and of band-pass responses (a small filter bank):

=========  =================================================================
``mean``   mean of r (a cell darker or brighter than its surroundings)
``std``    standard deviation of r
``bright`` largest r (a bright spot or line)
``dark``   largest -r (a dark spot, pit or inclusion)
``fine``   log energy of grey - smooth (grain, fine cracks)
``mid``    log energy of a 1 px - 3 px difference of Gaussians
``gx``     log energy of the x gradient of smooth (lines across the strip)
``gy``     log energy of the y gradient of smooth (lines along the strip)
=========  =================================================================

Grey levels are put on a 0-255 scale first (samples times 255 / the image's white level), so 8-
and 16-bit scans of the same surface give the same statistics. Work is per band of whole cell
rows (a few MB of samples), never the whole image.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

#: the statistics of each cell, in order (see the module docstring)
FEATURES = ("mean", "std", "bright", "dark", "fine", "mid", "gx", "gy")
#: samples (level-0 px) per band of the pass over the scan
BAND_PIXELS = 2_000_000
_EPS = 1e-2


def _pool(a: np.ndarray, cell: int) -> np.ndarray:
    """(h, w) -> (h / cell, w / cell) cell means (h, w multiples of cell)."""
    import cv2

    h, w = a.shape
    return cv2.resize(a, (w // cell, h // cell), interpolation=cv2.INTER_AREA)


def _pool_max(a: np.ndarray, cell: int) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // cell, cell, w // cell, cell).max(axis=(1, 3))


def band_features(grey: np.ndarray, cell: int) -> np.ndarray:
    """Cell statistics of one band.

    Parameters
    ----------
    grey : (h, w) float32 grey on a 0-255 scale; h and w multiples of ``cell``.
    cell : cell side in px.

    Returns
    -------
    (h / cell, w / cell, len(FEATURES)) float32, in :data:`FEATURES` order.
    """
    import cv2

    g = np.ascontiguousarray(grey, np.float32)
    h, w = g.shape
    rows, cols = h // cell, w // cell
    out = np.empty((rows, cols, len(FEATURES)), np.float32)
    # a few band-sized arrays at a time (memory stays a small multiple of the band)
    bg_cells = cv2.GaussianBlur(_pool(g, cell), (0, 0), 2.0, borderType=cv2.BORDER_REFLECT)
    smooth = cv2.GaussianBlur(g, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    t = np.subtract(g, smooth)  # fine detail
    np.multiply(t, t, out=t)
    out[..., 4] = np.log(_pool(t, cell) + _EPS)
    cv2.GaussianBlur(g, (0, 0), 3.0, dst=t, borderType=cv2.BORDER_REFLECT)
    np.subtract(smooth, t, out=t)  # 1 px - 3 px difference of Gaussians
    np.multiply(t, t, out=t)
    out[..., 5] = np.log(_pool(t, cell) + _EPS)
    for k, (dx, dy) in ((6, (1, 0)), (7, (0, 1))):
        cv2.Sobel(smooth, cv2.CV_32F, dx, dy, dst=t, ksize=3)
        np.multiply(t, t, out=t)
        out[..., k] = np.log(_pool(t, cell) + _EPS)
    cv2.resize(bg_cells, (w, h), dst=t, interpolation=cv2.INTER_LINEAR)
    r = np.subtract(smooth, t, out=smooth)  # residual from the background
    out[..., 0] = _pool(r, cell)
    out[..., 2] = _pool_max(r, cell)
    out[..., 3] = -r.reshape(rows, cell, cols, cell).min(axis=(1, 3))
    np.multiply(r, r, out=t)
    out[..., 1] = np.sqrt(np.maximum(_pool(t, cell) - out[..., 0] ** 2, 0.0))
    return out


def grey_scale(image: Any) -> float:
    """Factor that puts ``image``'s samples on a 0-255 scale (255 / its white level)."""
    white = getattr(image, "white", None)
    if white is None:
        white = 255 if image.dtype.itemsize == 1 else 65535
    return 255.0 / float(white)


def _bands(image: Any, box: tuple[int, int, int, int], rows: int, halo: int
           ) -> Iterator[tuple[int, np.ndarray]]:
    """Grey bands of ``box`` (x0, y0, x1, y1 level-0 px) with ``halo`` px of context above and
    below: ``(y0 of the band, (rows + 2 halo, x1 - x0) float32 0-255 grey)``."""
    from gigapatch import as_grey

    x0, y0, x1, y1 = box
    scale = grey_scale(image)
    for top in range(y0, y1, rows):
        bottom = min(y1, top + rows)
        raw = image.read_region_raw((x0, top - halo), 0, (x1 - x0, bottom - top + 2 * halo))
        grey = as_grey(raw)
        grey *= scale
        yield top, grey


def feature_map(image: Any, box: tuple[int, int, int, int], cell: int) -> np.ndarray:
    """Cell statistics of ``box`` of level 0 of ``image`` (see :func:`band_features`).

    Parameters
    ----------
    image : a :class:`gigapatch.Image` (its native samples are read, band by band).
    box : (x0, y0, x1, y1) level-0 px; its sides are rounded up to whole cells.
    cell : cell side (px).

    Returns
    -------
    (rows, cols, len(FEATURES)) float32: cell (i, j) covers level-0 x in
    ``[x0 + j cell, x0 + (j + 1) cell)`` and y likewise. Pixels outside the image are padded
    by reflection.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    w0, h0 = image.dimensions
    ny, nx = -(-(y1 - y0) // cell), -(-(x1 - x0) // cell)
    x1, y1 = x0 + nx * cell, y0 + ny * cell
    halo = 2 * cell
    rows = max(cell, (BAND_PIXELS // max(1, x1 - x0 + 2 * halo)) // cell * cell)
    out = np.empty((ny, nx, len(FEATURES)), np.float32)
    for top, grey in _bands(image, (x0 - halo, y0, x1 + halo, y1), rows, halo):
        grey = _reflect_outside(grey, x0 - halo, top - halo, w0, h0)
        feats = band_features(grey, cell)
        k = halo // cell
        body = feats[k : feats.shape[0] - k, k : feats.shape[1] - k]
        i = (top - y0) // cell
        out[i : i + len(body)] = body
    return out


def _reflect_outside(grey: np.ndarray, gx: int, gy: int, w0: int, h0: int) -> np.ndarray:
    """Replace the part of ``grey`` (top-left at level-0 (gx, gy)) outside the image by a
    reflection of the inside, so that the image border is not a step."""
    import cv2

    h, w = grey.shape
    left, top = max(0, -gx), max(0, -gy)
    right, bottom = max(0, gx + w - w0), max(0, gy + h - h0)
    if not (left or top or right or bottom):
        return grey
    inner = grey[top : h - bottom, left : w - right]
    if inner.size == 0:
        return grey
    return cv2.copyMakeBorder(np.ascontiguousarray(inner), top, bottom, left, right,
                              cv2.BORDER_REFLECT)


__all__ = ["FEATURES", "band_features", "feature_map", "grey_scale"]
