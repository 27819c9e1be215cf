"""The classical defect score: local contrast anomaly of full-resolution patches.

A defect (inclusion, scratch, pit, scale, dark patch) is a local departure from the surface's
slowly varying background. For every patch the grey image's best-fit plane is removed (a linear
illumination ramp leaves nothing), the rest is lightly smoothed (sigma 1 px), its
background is estimated by a wide Gaussian (``defect_sigma`` patch sizes, reflected at the
patch border, computed on a 4x smaller copy: the background is smooth), and the patch's *local
contrast* is a high percentile of ``|smooth - background|``. Illumination gradients and the
overall grey level cancel out. Patches are read in their own samples (8- or 16-bit, one
channel) and put on a 0-255 grey scale (times 255 / the image's white level), so an 8- and a
16-bit scan of the same surface score alike. The ``defect`` score compares the contrast with
the typical patch of the same image::

    defect = log2(local_contrast / median local_contrast of the image's candidate patches)

so 0 is an ordinary patch, 1 twice the usual contrast. It is relative to each image: compare
``local_contrast`` (grey levels) across images. Measured on the 118 NEU-DET images (50 px
patches): ROC AUC about 0.7 pooled, 0.8 per image on average, for "patch overlaps an annotated
defect box" (see ``tests/metal_surface/test_metal_surface.py``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from gigapatch import hookimpl

from .settings import DOMAIN, settings


@lru_cache(maxsize=32)
def gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) float32 matrix ``K`` with ``K @ x`` = Gaussian blur of a length-n signal ``x``.

    Truncated at 4 sigma, with symmetric (``dcb|abcd|dcb``, OpenCV's BORDER_REFLECT_101)
    reflection at both ends; each row sums to 1.
    """
    radius = max(1, int(np.ceil(4.0 * sigma)))
    taps = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (taps / sigma) ** 2)
    w /= w.sum()
    idx = np.arange(n)[:, None] + taps[None, :]  # (n, taps) source indexes
    if n > 1:
        period = 2 * (n - 1)
        idx = np.mod(idx, period)
        idx = np.where(idx >= n, period - idx, idx)
    else:
        idx = np.zeros_like(idx)
    k = np.zeros((n, n), np.float64)
    np.add.at(k, (np.repeat(np.arange(n), len(taps)), idx.ravel()), np.tile(w, n))
    return k.astype(np.float32)


def blur_batch(grey: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of every (h, w) image of an (N, h, w) float32 batch (separable, by matmul)."""
    h, w = grey.shape[1:]
    kh, kw = gaussian_matrix(h, float(sigma)), gaussian_matrix(w, float(sigma))
    return kh @ grey @ kw.T


def detrend(grey: np.ndarray) -> np.ndarray:
    """Subtract each (h, w) image's least-squares plane ``a + b x + c y`` from an (N, h, w)
    float32 batch, so that a linear illumination ramp leaves no residual (not even at the
    reflected border of the background blur)."""
    h, w = grey.shape[1:]
    y = (np.arange(h, dtype=np.float32) - (h - 1) / 2.0)[:, None]
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2.0)[None, :]
    mean = grey.mean(axis=(1, 2), keepdims=True)
    sx = float((x * x).sum()) * h
    sy = float((y * y).sum()) * w
    bx = (grey * x).sum(axis=(1, 2), keepdims=True) / sx if sx > 0 else 0.0
    by = (grey * y).sum(axis=(1, 2), keepdims=True) / sy if sy > 0 else 0.0
    return grey - mean - bx * x - by * y


def _blur_fine(grey: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each (h, w) image of an (N, h, w) float32 batch, reflected (101) at
    each image's border: one OpenCV pass over the batch stacked with reflected margins."""
    import cv2

    n, h, w = grey.shape
    r = max(1, int(np.ceil(4.0 * sigma)))
    if r >= min(h, w):
        return blur_batch(grey, sigma)
    padded = np.pad(grey, ((0, 0), (r, r), (0, 0)), mode="reflect").reshape(n * (h + 2 * r), w)
    out = cv2.GaussianBlur(padded, (1, 2 * r + 1), 0, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    out = cv2.GaussianBlur(out, (2 * r + 1, 1), sigma, sigmaY=0, borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(n, h + 2 * r, w)[:, r : r + h]


def background(grey: np.ndarray, sigma: float, shrink: int = 4) -> np.ndarray:
    """The wide Gaussian background (sigma px, reflected at the border) of every image of an
    (N, h, w) float32 batch, computed ``shrink`` times smaller and brought back bilinearly."""
    import cv2

    n, h, w = grey.shape
    f = shrink if sigma >= 4 * shrink and h % shrink == 0 and w % shrink == 0 else 1
    if f == 1:
        return blur_batch(grey, sigma)
    tall = np.ascontiguousarray(grey).reshape(n * h, w)
    small = cv2.resize(tall, (w // f, n * h // f), interpolation=cv2.INTER_AREA)
    small = blur_batch(small.reshape(n, h // f, w // f), sigma / f)
    big = cv2.resize(small.reshape(n * h // f, w // f), (w, n * h), interpolation=cv2.INTER_LINEAR)
    return big.reshape(n, h, w)


def local_contrast(
    patches: np.ndarray, sigma: float, percentile: float = 99.0, smooth: float = 1.0
) -> np.ndarray:
    """Local contrast of each patch: a percentile of ``|smooth - background|``.

    Parameters
    ----------
    patches : (N, h, w, 3) uint8 RGB, (N, h, w, 1) or (N, h, w) grey (any numeric type; put
        16-bit samples on a 0-255 scale first to compare with 8-bit scans).
    sigma : background blur sigma (px).
    percentile : which percentile of the absolute residual (99 = the strongest 1 %).
    smooth : noise blur sigma (px) applied first (0 = none).

    Returns
    -------
    (N,) float32 grey levels.
    """
    p = np.asarray(patches)
    if p.ndim == 4 and p.shape[-1] == 1:
        p = p[..., 0]
    if p.ndim == 4:
        grey = p[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    elif p.ndim == 3:
        grey = p.astype(np.float32)
    else:
        raise ValueError(f"patches must be (N, h, w, 3) or (N, h, w), got {p.shape}")
    n = len(grey)
    if n == 0:
        return np.zeros(0, np.float32)
    grey = detrend(grey)
    fine = _blur_fine(grey, smooth) if smooth > 0 else grey
    residual = np.abs(fine - background(grey, sigma)).reshape(n, -1)
    return np.percentile(residual, percentile, axis=1).astype(np.float32)


def relative_defect(contrast: np.ndarray) -> np.ndarray:
    """``log2(contrast / median(contrast))`` of one image's patches; (N,) float32 (0 when N < 2
    or the median is 0)."""
    c = np.asarray(contrast, np.float64)
    if len(c) < 2:
        return np.zeros(len(c), np.float32)
    med = float(np.median(c))
    if med <= 0:
        return np.zeros(len(c), np.float32)
    return np.log2(np.maximum(c, 1e-6) / med).astype(np.float32)


def defect_scores(
    image: Any,
    coords: np.ndarray,
    geometry: Any,
    *,
    sigma_fraction: float = 0.25,
    percentile: float = 99.0,
    workers: int = 4,
    batch: int = 16,
) -> dict[str, np.ndarray]:
    """Defect scores of the patches of one image, read at full resolution.

    Parameters
    ----------
    image : a :class:`gigapatch.Image`.
    coords : (N, 2) level-0 top-left x, y.
    geometry : the :class:`gigapatch.PatchGeometry` the patches are read at.
    sigma_fraction : background blur sigma as a fraction of the patch size.
    percentile : see :func:`local_contrast`.
    workers : reader threads; batch : patches scored per vectorised call.

    Returns
    -------
    ``{"local_contrast": (N,) float32 grey levels, "defect": (N,) float32}`` in ``coords``
    order (see the module docstring).
    """
    from gigapatch import as_grey, read_patches

    from .features import grey_scale

    c = np.asarray(coords).reshape(-1, 2)
    sigma = max(1.0, sigma_fraction * geometry.size)
    scale = grey_scale(image)
    contrast = np.zeros(len(c), np.float32)
    idx: list[int] = []
    buf: list[np.ndarray] = []

    def flush() -> None:
        if buf:
            grey = as_grey(np.stack(buf)) * np.float32(scale)
            contrast[np.asarray(idx)] = local_contrast(grey, sigma, percentile)
            idx.clear()
            buf.clear()

    for i, patch in read_patches(image, c, geometry, workers=workers, native=True):
        idx.append(i)
        buf.append(patch)
        if len(buf) >= batch:
            flush()
    flush()
    return {"local_contrast": contrast, "defect": relative_defect(contrast)}


@hookimpl
def gigapatch_score_patches(coords: np.ndarray, context: Any) -> dict[str, np.ndarray] | None:
    """The metal_surface scores of the candidates, by ``plugin.metal_surface.scorers``:
    ``defect`` and ``local_contrast`` (classical), ``normal`` and ``review`` (learned normal
    texture, see :mod:`.scoring`)."""
    if context.domain != DOMAIN or len(coords) == 0:
        return None
    s = settings(context.config)
    out: dict[str, np.ndarray] = {}
    if "defect" in s.scorers:
        out.update(defect_scores(
            context.image, coords, context.geometry, sigma_fraction=s.defect_sigma,
            percentile=s.defect_percentile, workers=context.config.score.workers,
        ))
    if "normal" in s.scorers:
        from .scoring import normal_scores

        out.update(normal_scores(context, coords, s))
    return out
