"""Per-patch scores: fractions of a mask under each patch (integral image, vectorised) and
full-resolution quality measures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from gigapatch.io.patches import read_patches

if TYPE_CHECKING:
    from gigapatch.io.geometry import PatchGeometry


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


@contextmanager
def opencv_threads(n: int) -> Iterator[None]:
    """Run the block with OpenCV's own thread pool set to ``n`` threads, restored afterwards.

    The pixel pass already overlaps decoding (reader threads) with scoring (the calling
    thread), and a cohort runs one image per core; OpenCV's pool on top of that splits
    ~64 K px filters across threads that mostly wait (its workers spin before they sleep):
    more CPU for the same wall time and the same values (OpenCV's per-pixel results do not
    depend on the thread count). The setting is process-wide: images tiled concurrently in
    threads of one process share it.
    """
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


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
    :func:`gigapatch.outputs.extract.read_patches` (tile-ordered, threaded) and handed to
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

    with opencv_threads(1):  # see opencv_threads: the readers and the caller are the threads
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
