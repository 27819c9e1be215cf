"""Per-patch scores: fractions of a mask under each patch (integral image, vectorised) and
full-resolution quality measures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .config import Config
    from .geometry import PatchGeometry


@dataclass
class ScoreContext:
    """Everything a scorer may need about the image being tiled.

    Attributes
    ----------
    config : the resolved run config.
    domain : the ``--domain`` name.
    geometry : patch geometry (level, sizes, mpp).
    rgb : (h, w, 3) uint8 low-resolution view the mask was computed on.
    mask : (h, w) bool refined foreground mask at the same scale.
    mask_downsample : level-0 px per mask px.
    exclusions : named (h, w) bool artefact masks (e.g. ``"pen"``).
    extra : free-form data plugins can share.
    """

    config: Config
    domain: str
    geometry: PatchGeometry
    rgb: np.ndarray
    mask: np.ndarray
    mask_downsample: float
    exclusions: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- integral images


def _integral_table(mask: np.ndarray) -> np.ndarray:
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
    table = _integral_table(mask)
    return table if table.dtype == np.float64 else table.astype(np.int64, copy=False)


def _integral_at(integral: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
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
    with partial pixels weighted by the covered area (also exact, see :func:`_integral_at`).
    """
    x0, y0, x1, y1 = np.broadcast_arrays(*(np.asarray(a) for a in (x0, y0, x1, y1)))
    return (
        _integral_at(integral, x1, y1)
        - _integral_at(integral, x0, y1)
        - _integral_at(integral, x1, y0)
        + _integral_at(integral, x0, y0)
    )


def _interp_axis0(table: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of the rows of ``table`` (n, m) at positions ``pos`` (k,) -> (k, m)
    float64 (positions clipped to [0, n - 1])."""
    n = table.shape[0]
    pos = np.clip(np.asarray(pos, dtype=np.float64), 0.0, n - 1)
    i0 = np.minimum(np.floor(pos).astype(np.int64), max(n - 2, 0))
    i1 = np.minimum(i0 + 1, n - 1)
    f = (pos - i0)[:, None]
    return table[i0] * (1.0 - f) + table[i1] * f


def _interp_axis1(table: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of the columns of ``table`` (k, n) at ``pos`` (j,) -> (k, j)."""
    n = table.shape[1]
    pos = np.clip(np.asarray(pos, dtype=np.float64), 0.0, n - 1)
    i0 = np.minimum(np.floor(pos).astype(np.int64), max(n - 2, 0))
    i1 = np.minimum(i0 + 1, n - 1)
    f = pos - i0
    return table[:, i0] * (1.0 - f) + table[:, i1] * f


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
    rows = _interp_axis0(integral, ys)  # (2ny, w+1)
    t = _interp_axis1(rows, xs)  # (2ny, 2nx): S at every (y, x) pair
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
    table = _integral_table(mask) if integral is None else integral
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
            x0 = cc[:, 0] / ds
            y0 = cc[:, 1] / ds
            sums = box_sums(table, x0, y0, x0 + side, y0 + side)
        out[s : s + chunk] = np.clip(sums / (side * side), 0.0, 1.0)
    return out


# --------------------------------------------------------------------------- sharpness


def _to_gray_batch(patches: np.ndarray) -> np.ndarray:
    """(N, h, w, 3|4) or (N, h, w) -> (N, h, w) float32 luma: ITU-R BT.601 weights 0.299, 0.587,
    0.114 in float32 (OpenCV's float ``cvtColor`` of the batch as one tall image; alpha ignored)."""
    import cv2

    p = np.asarray(patches)
    if p.ndim == 3:
        return p.astype(np.float32)
    if p.ndim != 4 or p.shape[-1] not in (3, 4):
        raise ValueError(f"patches must be (N, h, w, 3) or (N, h, w), got {p.shape}")
    n, h, w = p.shape[:3]
    if n * h * w == 0:
        return np.zeros((n, h, w), np.float32)
    rgb = np.empty((n * h, w, 3), np.float32)
    np.copyto(rgb.reshape(n, h, w, 3), p[..., :3])
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).reshape(n, h, w)


def _bin2(gray: np.ndarray) -> np.ndarray:
    """2 x 2 mean binning of (N, h, w) -> (N, h // 2, w // 2) float32 (an odd last row or column
    is dropped): one ``cv2.resize(INTER_AREA)`` of the batch as a tall image, an exact block mean
    for a factor of 2."""
    import cv2

    n, h, w = gray.shape
    h2, w2 = h // 2, w // 2
    if n * h2 * w2 == 0:
        return np.zeros((n, h2, w2), np.float32)
    g = np.asarray(gray, np.float32)[:, : 2 * h2, : 2 * w2]
    if g.strides[2] != 4:
        g = np.ascontiguousarray(g)
    tall = g.reshape(n * 2 * h2, 2 * w2)  # a view of strided rows when it can be, else a copy
    return cv2.resize(tall, (w2, n * h2), interpolation=cv2.INTER_AREA).reshape(n, h2, w2)


def _sharpness_gray(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variance of the Laplacian and Tenengrad of (N, h, w) float32 grey patches.

    Both use the *valid* interior only (no border padding): the 4-neighbour Laplacian
    ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` (as ``cv2.Laplacian(ksize=1)``) and the 3 x 3 Sobel
    gradients (as ``cv2.Sobel(ksize=3)``); Tenengrad is the mean of ``gx**2 + gy**2``.

    Each filter is one OpenCV pass over the batch stacked into a tall float32 image (the rows
    where two patches meet are the first and last row of each patch, which the valid interior
    drops); per-patch sums are sums of float64 row sums (``cv2.reduce``) of the interior.
    """
    import cv2

    n, h, w = gray.shape
    if h < 3 or w < 3 or n == 0:
        return np.zeros(n, np.float32), np.zeros(n, np.float32)
    tall = np.ascontiguousarray(gray, np.float32).reshape(n * h, w)
    # float64 row sums of the interior columns: Laplacian, its square, gx**2 + gy**2
    rows = np.empty((3, n * h, 1))
    a = cv2.Laplacian(tall, cv2.CV_32F, ksize=1)
    cv2.reduce(a[:, 1:-1], 1, cv2.REDUCE_SUM, dst=rows[0], dtype=cv2.CV_64F)
    cv2.multiply(a, a, dst=a)
    cv2.reduce(a[:, 1:-1], 1, cv2.REDUCE_SUM, dst=rows[1], dtype=cv2.CV_64F)
    cv2.Sobel(tall, cv2.CV_32F, 1, 0, dst=a, ksize=3)
    b = cv2.Sobel(tall, cv2.CV_32F, 0, 1, ksize=3)
    cv2.multiply(a, a, dst=a)
    cv2.accumulateSquare(b, a)  # a += gy**2
    cv2.reduce(a[:, 1:-1], 1, cv2.REDUCE_SUM, dst=rows[2], dtype=cv2.CV_64F)
    mean, sq, ten = rows.reshape(3, n, h)[:, :, 1:-1].sum(axis=2) / ((h - 2) * (w - 2))
    var = sq - mean * mean
    return np.maximum(var, 0.0).astype(np.float32), ten.astype(np.float32)


def sharpness_batch(patches: np.ndarray, *, downsample: int = 1) -> dict[str, np.ndarray]:
    """Focus measures of a batch of patches, computed on the whole patch (tissue and glass).

    Whole patches are used (not only tissue pixels) so that the values need no mask and stay
    comparable between patches; blank glass is flat and lowers the score, which is wanted for
    ranking. Values depend on the pixel scale: compare them only between patches of the same
    mpp and the same ``downsample``.

    Parameters
    ----------
    patches : (N, h, w, 3) uint8 RGB (or (N, h, w) grey).
    downsample : 1 (full resolution) or 2 (2 x 2 mean binning first: 4x less work, less
        sensitive to the finest blur).

    Returns
    -------
    ``{"sharpness": (N,) float32 variance of the Laplacian of grey,
    "tenengrad": (N,) float32 mean squared Sobel gradient magnitude}``.
    """
    if downsample not in (1, 2):
        raise ValueError("downsample must be 1 or 2")
    p = np.asarray(patches)
    if p.ndim not in (3, 4):
        raise ValueError(f"patches must be (N, h, w, 3) or (N, h, w), got {p.shape}")
    # a few patches at a time (~64 K px) so that every float32 plane stays in the CPU cache:
    # ~2x faster than whole batches, which go through main memory once per filter
    step = max(1, (1 << 16) // max(1, p.shape[1] * p.shape[2]))
    var, ten = [], []
    for i in range(0, max(len(p), 1), step):  # one pass for an empty batch: shape checks
        gray = _to_gray_batch(p[i : i + step])
        if downsample == 2:
            gray = _bin2(gray)
        v, t = _sharpness_gray(gray)
        var.append(v)
        ten.append(t)
    return {"sharpness": np.concatenate(var), "tenengrad": np.concatenate(ten)}


def laplacian_variance(patch_gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of one (h, w) grey (or (h, w, 3) RGB) patch.

    Computed on the valid interior; equals ``cv2.Laplacian(g, cv2.CV_64F, ksize=1)[1:-1, 1:-1]
    .var()``. Higher is sharper; 0 for a flat patch.
    """
    p = np.asarray(patch_gray)
    return float(sharpness_batch(p[None])["sharpness"][0])


def tenengrad(patch_gray: np.ndarray) -> float:
    """Tenengrad focus measure: mean of ``gx**2 + gy**2`` (3 x 3 Sobel) over the valid interior
    of one (h, w) grey (or (h, w, 3) RGB) patch. Higher is sharper; 0 for a flat patch."""
    p = np.asarray(patch_gray)
    return float(sharpness_batch(p[None])["tenengrad"][0])


def batched_pixel_scores(
    image: Any,
    coords: np.ndarray,
    geometry: PatchGeometry,
    score_batch: Callable[..., dict[str, np.ndarray]],
    workers: int = 4,
    *,
    batch: int = 64,
    with_coords: bool = False,
) -> dict[str, np.ndarray]:
    """Read every candidate once at full resolution and score it in batches.

    Patches are read at the output geometry (``geometry.size`` px at the target mpp) by
    :func:`gigapatch.extract.read_patches` (tile-ordered, threaded) and handed to
    ``score_batch`` in (B, size, size, 3) uint8 batches, so values are on the same pixel scale for
    every image tiled at the same mpp.

    Parameters
    ----------
    image : an :class:`gigapatch.Image`.
    coords : (N, 2) level-0 top-left x, y.
    geometry : the patch geometry.
    score_batch : (B, s, s, 3) uint8 -> dict of (B, ...) arrays.
    workers : reader threads.
    batch : patches scored per vectorised call (memory bound).
    with_coords : call ``score_batch(patches, coords)`` with the batch's (B, 2) level-0 coords
        (for scorers that relate pixels to the slide's masks).

    Returns
    -------
    name -> (N, ...) array in the order of ``coords`` (empty dict when N == 0).
    """
    from .extract import read_patches

    c = np.asarray(coords).reshape(-1, 2)
    n = len(c)
    out: dict[str, np.ndarray] = {}
    idx: list[int] = []
    buf: list[np.ndarray] = []

    def flush() -> None:
        if not buf:
            return
        where = np.asarray(idx, np.int64)
        scores = score_batch(np.stack(buf), c[where]) if with_coords else score_batch(np.stack(buf))
        for key, values in scores.items():
            values = np.asarray(values)
            if key not in out:
                out[key] = np.zeros((n, *values.shape[1:]), values.dtype)
            out[key][where] = values
        idx.clear()
        buf.clear()

    for i, patch in read_patches(image, c, geometry, workers=workers):
        idx.append(int(i))
        buf.append(patch)
        if len(buf) >= batch:
            flush()
    flush()
    return out


def sharpness_scores(
    image: Any,
    coords: np.ndarray,
    geometry: PatchGeometry,
    workers: int = 4,
    *,
    batch: int = 64,
    downsample: int = 1,
) -> dict[str, np.ndarray]:
    """Full-resolution focus measures of every candidate patch (see :func:`sharpness_batch`).

    Returns
    -------
    ``{"sharpness": (N,) float32, "tenengrad": (N,) float32}`` in the order of ``coords``.
    """
    n = len(np.asarray(coords).reshape(-1, 2))
    out = batched_pixel_scores(
        image, coords, geometry, lambda b: sharpness_batch(b, downsample=downsample),
        workers, batch=batch,
    )
    return out or {"sharpness": np.zeros(n, np.float32), "tenengrad": np.zeros(n, np.float32)}
