"""Real H&E patches and the batches that exercise every path of the full-resolution scorers
(shared by the core's sharpness tests and the pathology focus tests)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def he_patches(slide: Path) -> np.ndarray:
    """(64, 256, 256, 3) uint8 patches of real H&E (tissue and glass): the first 64 whole 256 px
    cells of level 0 of ``slide``, in raster order."""
    import tifffile

    a = tifffile.imread(slide, key=0)
    tiles = [a[y : y + 256, x : x + 256] for y in range(0, a.shape[0] - 255, 256)
             for x in range(0, a.shape[1] - 255, 256)]
    return np.stack(tiles[:64])


def variants(he: np.ndarray) -> dict[str, np.ndarray]:
    """Batches that exercise every path: sharp, blurred, flat, mixed, odd and tiny sizes."""
    rng = np.random.default_rng(5)
    sigmas = np.linspace(0.7, 6, 16)
    blurred = np.stack([cv2.GaussianBlur(p, (0, 0), s) for p, s in zip(he[:16], sigmas)])
    glass = np.clip(rng.normal(236, 2.0, (8, 256, 256, 3)), 0, 255).astype(np.uint8)
    flat = np.full((4, 256, 256, 3), 241, np.uint8)
    flat[1] = 0
    flat[2] = 255
    mixed = he[16:24].copy()
    right = mixed[:, :, 128:].reshape(8 * 256, 128, 3)
    mixed[:, :, 128:] = cv2.GaussianBlur(right, (0, 0), 3).reshape(8, 256, 128, 3)
    return {
        "he": he,
        "blurred": blurred,
        "glass": glass,
        "flat": flat,
        "mixed": mixed,
        "odd": he[24:31, 5:204, 11:242],  # 199 x 231, a non-contiguous view
        "rgba": np.concatenate([he[31:35, :72, :72], np.full((4, 72, 72, 1), 255, np.uint8)], 3),
        "small": he[35:40, :40, :36],  # smaller than one 8 * blocks cell on a side for blocks=8
        "grey": cv2.cvtColor(he[40:46].reshape(-1, 256, 3), cv2.COLOR_RGB2GRAY).reshape(6, 256, 256),
        "tiny2": he[46:49, :2, :5],
        "tiny1": he[49:51, :7, :1],
        "one": he[51:52],
        "empty": he[:0],
        "empty_grey": np.zeros((0, 16, 16), np.uint8),
    }


def assert_close(new: np.ndarray, ref: np.ndarray, name: str, rtol: float = 1e-4, atol: float = 1e-5
           ) -> None:
    """Equal up to float32 rounding: the filters and reductions add in another order."""
    assert new.dtype == ref.dtype and new.shape == ref.shape, name
    np.testing.assert_allclose(new, ref, rtol=rtol, atol=atol, err_msg=name)
