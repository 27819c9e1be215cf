"""Defect scoring: local contrast anomaly of full-resolution patches.

A defect (inclusion, scratch, pit, scale, dark patch) is a local departure from the surface's
slowly varying background. For every patch the grey image's best-fit plane is removed (a linear
illumination ramp leaves nothing), the rest is lightly smoothed (sigma 1 px), its
background is estimated by a wide Gaussian (``defect_sigma`` patch sizes, reflected at the
patch border), and the patch's *local contrast* is a high percentile of ``|smooth - background|``.
Illumination gradients and the overall grey level cancel out. The ``defect`` score compares it
with the typical patch of the same image::

    defect = log2(local_contrast / median local_contrast of the image's candidate patches)

so 0 is an ordinary patch, 1 twice the usual contrast. Measured on the 118 NEU-DET images
(50 px patches): ROC AUC 0.72 pooled, 0.80 per image on average, for "patch overlaps an
annotated defect box" (see ``tests/metal_surface/test_metal_surface.py``).
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


def local_contrast(
    patches: np.ndarray, sigma: float, percentile: float = 99.0, smooth: float = 1.0
) -> np.ndarray:
    """Local contrast of each patch: a percentile of ``|smooth - background|``.

    Parameters
    ----------
    patches : (N, h, w, 3) uint8 RGB or (N, h, w) grey.
    sigma : background blur sigma (px).
    percentile : which percentile of the absolute residual (99 = the strongest 1 %).
    smooth : noise blur sigma (px) applied first (0 = none).

    Returns
    -------
    (N,) float32 grey levels.
    """
    p = np.asarray(patches)
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
    fine = blur_batch(grey, smooth) if smooth > 0 else grey
    residual = np.abs(fine - blur_batch(grey, sigma)).reshape(n, -1)
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
    batch: int = 64,
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
    from gigapatch import batched_pixel_scores

    c = np.asarray(coords).reshape(-1, 2)
    sigma = max(1.0, sigma_fraction * geometry.size)
    scored = batched_pixel_scores(
        image, c, geometry, lambda b: {"local_contrast": local_contrast(b, sigma, percentile)},
        workers, batch=batch,
    )
    contrast = scored.get("local_contrast", np.zeros(len(c), np.float32))
    return {"local_contrast": contrast, "defect": relative_defect(contrast)}


@hookimpl
def gigapatch_score_patches(coords: np.ndarray, context: Any) -> dict[str, np.ndarray] | None:
    """``defect`` and ``local_contrast`` columns for ``domain == "metal_surface"``."""
    if context.domain != DOMAIN or len(coords) == 0:
        return None
    s = settings(context.config)
    return defect_scores(
        context.image, coords, context.geometry, sigma_fraction=s.defect_sigma,
        percentile=s.defect_percentile, workers=context.config.score.workers,
    )
