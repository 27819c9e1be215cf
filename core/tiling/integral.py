"""Per-patch scores: fractions of a mask under each patch (integral image, vectorised) and
full-resolution quality measures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    pass


# --------------------------------------------------------------------------- integral images


def integral_table(mask: np.ndarray) -> np.ndarray:
    """Summed-area table in the narrowest exact dtype: int32 while the total fits, else int64
    (float64 for a float mask). Shape (h + 1, w + 1)."""
    import cv2

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"an integral image needs a 2-D mask, got shape {m.shape}")
    h, w = m.shape
    if h == 0 or w == 0:
        return np.zeros((h + 1, w + 1), np.int32)
    if m.dtype == bool:
        m, vmax = np.ascontiguousarray(m).view(np.uint8), 1
    elif m.dtype == np.uint8:
        m, vmax = np.ascontiguousarray(m), 255
    elif np.issubdtype(m.dtype, np.integer):
        if m.min() < 0 or m.max() > 255:
            return np.pad(m.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        m, vmax = np.ascontiguousarray(m, dtype=np.uint8), 255
    else:
        return cv2.integral(np.ascontiguousarray(m, dtype=np.float64), sdepth=cv2.CV_64F)
    if m.size * vmax < 2**31 - 1:
        return cv2.integral(m, sdepth=cv2.CV_32S)
    return cv2.integral(m, sdepth=cv2.CV_64F).astype(np.int64)  # exact below 2**53


def integral_image(mask: np.ndarray) -> np.ndarray:
    """Summed-area table of a 2-D mask.

    Parameters
    ----------
    mask : (h, w) bool or integer mask (a float mask gives a float64 table).

    Returns
    -------
    (h + 1, w + 1) int64 array ``I`` with ``I[y, x] = mask[:y, :x].sum()`` (zero first row and
    column), computed with :func:`cv2.integral`.
    """
    table = integral_table(mask)
    return table if table.dtype == np.float64 else table.astype(np.int64, copy=False)


def integral_at(integral: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Continuous summed area ``S(x, y)`` of the pixel mask behind ``integral``.

    Coordinates are clipped to the mask. Integer coordinates index the table directly (exact
    int64). Fractional ones interpolate it bilinearly, which is *exact* for a piecewise-constant
    pixel mask: inside one pixel cell ``S`` is bilinear in (x, y).
    """
    h1, w1 = integral.shape
    x = np.asarray(x)
    y = np.asarray(y)
    if np.issubdtype(x.dtype, np.integer) and np.issubdtype(y.dtype, np.integer):
        return integral[np.clip(y, 0, h1 - 1), np.clip(x, 0, w1 - 1)].astype(np.int64)
    x = np.clip(x.astype(np.float64), 0.0, w1 - 1)
    y = np.clip(y.astype(np.float64), 0.0, h1 - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), max(w1 - 2, 0))
    y0 = np.minimum(np.floor(y).astype(np.int64), max(h1 - 2, 0))
    x1 = np.minimum(x0 + 1, w1 - 1)
    y1 = np.minimum(y0 + 1, h1 - 1)
    fx = x - x0
    fy = y - y0
    top = integral[y0, x0] * (1.0 - fx) + integral[y0, x1] * fx
    bottom = integral[y1, x0] * (1.0 - fx) + integral[y1, x1] * fx
    return top * (1.0 - fy) + bottom * fy


def box_sums(
    integral: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    x1: np.ndarray,
    y1: np.ndarray,
) -> np.ndarray:
    """Sum of the mask over boxes ``[x0, x1) x [y0, y1)`` (mask pixel units), vectorised.

    Parameters
    ----------
    integral : (h + 1, w + 1) table from :func:`integral_image`.
    x0, y0, x1, y1 : broadcastable arrays of box edges in mask pixels; pixel (i, j) covers
        ``[j, j + 1) x [i, i + 1)``. Parts of a box outside the mask add nothing.

    Returns
    -------
    Array of the broadcast shape: int64 when every edge is an integer array (exact), else float64
    with partial pixels weighted by the covered area (also exact, see :func:`integral_at`).
    """
    x0, y0, x1, y1 = np.broadcast_arrays(*(np.asarray(a) for a in (x0, y0, x1, y1)))
    return (
        integral_at(integral, x1, y1)
        - integral_at(integral, x0, y1)
        - integral_at(integral, x1, y0)
        + integral_at(integral, x0, y0)
    )


def interp_index(pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where positions ``pos`` (clipped to [0, n - 1]) fall between the n samples of an axis:
    int64 ``i0``, ``i1`` and float64 weight ``f``, the value being ``v[i0] * (1 - f) + v[i1] * f``
    (a position on a sample gets weights 0 and 1: exact)."""
    pos = np.clip(np.asarray(pos, dtype=np.float64), 0.0, n - 1)
    i0 = np.minimum(np.floor(pos).astype(np.int64), max(n - 2, 0))
    return i0, np.minimum(i0 + 1, n - 1), pos - i0


def interp_rows(table: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of the rows of ``table`` (n, m) at positions ``pos`` (k,) -> (k, m)
    float64 (positions clipped to [0, n - 1])."""
    i0, i1, f = interp_index(pos, table.shape[0])
    return table[i0] * (1.0 - f[:, None]) + table[i1] * f[:, None]


def interp_cols(table: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of the columns of ``table`` (k, n) at ``pos`` (j,) -> (k, j)."""
    i0, i1, f = interp_index(pos, table.shape[1])
    return table[:, i0] * (1.0 - f) + table[:, i1] * f


def interp_points(table: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``table`` interpolated at the points (y, x) (k,) -> (k,) float64, rows first and then
    columns: the very operations of :func:`interp_cols` after :func:`interp_rows`, so a point
    gets the same float as the cell of :func:`grid_box_sums`' grid at it (which
    :func:`integral_at`, columns first, need not give)."""
    i0, i1, f = interp_index(y, table.shape[0])
    j0, j1, g = interp_index(x, table.shape[1])
    left = table[i0, j0] * (1.0 - f) + table[i1, j0] * f
    right = table[i0, j1] * (1.0 - f) + table[i1, j1] * f
    return left * (1.0 - g) + right * g


def grid_box_sums(
    integral: np.ndarray,
    x0: np.ndarray,
    x1: np.ndarray,
    y0: np.ndarray,
    y1: np.ndarray,
) -> np.ndarray:
    """Mask sums over every box of a Cartesian grid, separably (no per-box gathers).

    Parameters
    ----------
    integral : (h + 1, w + 1) table from :func:`integral_image`.
    x0, x1 : (nx,) left and right edges of the columns (mask px, may be fractional).
    y0, y1 : (ny,) top and bottom edges of the rows.

    Returns
    -------
    (ny, nx) float64 area-weighted sums (exact for a pixel mask).
    """
    ys = np.concatenate([np.asarray(y0, np.float64), np.asarray(y1, np.float64)])
    xs = np.concatenate([np.asarray(x0, np.float64), np.asarray(x1, np.float64)])
    ny, nx = len(ys) // 2, len(xs) // 2
    if ny == 0 or nx == 0:
        return np.zeros((ny, nx))
    rows = interp_rows(integral, ys)  # (2ny, w+1)
    t = interp_cols(rows, xs)  # (2ny, 2nx): S at every (y, x) pair
    return t[ny:, nx:] - t[ny:, :nx] - t[:ny, nx:] + t[:ny, :nx]


def mask_fraction(
    mask: np.ndarray,
    coords: np.ndarray,
    size_level0: float,
    mask_downsample: float,
    *,
    integral: np.ndarray | None = None,
) -> np.ndarray:
    """Fraction of each patch covered by ``mask``.

    The level-0 box ``[x, x + size_level0) x [y, y + size_level0)`` maps to the mask pixel box
    ``[x / ds, (x + size_level0) / ds)`` (same for y). Partial mask pixels are weighted by the
    area of them the box covers (no rounding), so the result is exact for the pixel mask; boxes
    that align with mask pixels give exact rational fractions. Parts of a box outside the mask
    count as not covered (the denominator is always the whole box).

    Parameters
    ----------
    mask : (h, w) bool mask at ``mask_downsample``.
    coords : (N, 2) level-0 top-left x, y of the patches.
    size_level0 : patch side in level-0 px.
    mask_downsample : level-0 px per mask px.
    integral : optional precomputed :func:`integral_image` of ``mask`` (reused across calls).

    Returns
    -------
    (N,) float32 in [0, 1].
    """
    if size_level0 <= 0 or mask_downsample <= 0:
        raise ValueError("size_level0 and mask_downsample must be positive")
    c = np.asarray(coords).reshape(-1, 2)
    if len(c) == 0:
        return np.zeros(0, np.float32)
    table = integral_table(mask) if integral is None else integral
    ds = float(mask_downsample)
    side = size_level0 / ds
    out = np.empty(len(c), np.float32)
    chunk = 1 << 20
    for s in range(0, len(c), chunk):
        cc = c[s : s + chunk]
        if ds == 1.0 and np.issubdtype(cc.dtype, np.integer) and float(size_level0).is_integer():
            x0, y0 = cc[:, 0].astype(np.int64), cc[:, 1].astype(np.int64)
            size = int(size_level0)
            sums = box_sums(table, x0, y0, x0 + size, y0 + size).astype(np.float64)
        else:
            fx, fy = cc[:, 0] / ds, cc[:, 1] / ds
            sums = box_sums(table, fx, fy, fx + side, fy + side)
        out[s : s + chunk] = np.clip(sums / (side * side), 0.0, 1.0)
    return out


