"""The OpenCV full-resolution scorers of the core (``sharpness_batch`` and its helpers) give the
values of the plain numpy versions they replaced, frozen below as ``_reference_*``, on real H&E
texture, blurred and flat patches, odd and tiny sizes, grey input and empty batches (their speed is
measured by benchmarks/pixel_scores.py, not here; pathology's ``block_focus`` is checked the same
way in tests/pathology/test_focus_reference.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers_scores import assert_close, he_patches, variants

from gigapatch.config import PatchConfig
from gigapatch.io.geometry import resolve_geometry
from gigapatch.io.image import ArrayImage
from gigapatch.tiling.score import _bin2, _to_gray_batch, batched_pixel_scores, sharpness_batch


# ----------------------------------------------------------- frozen references (test-only)
def _reference_to_gray_batch(patches: np.ndarray) -> np.ndarray:
    p = np.asarray(patches)
    if p.ndim == 3:
        return p.astype(np.float32)
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    return p[..., :3].astype(np.float32) @ weights


def _reference_bin2(gray: np.ndarray) -> np.ndarray:
    n, h, w = gray.shape
    g = gray[:, : h // 2 * 2, : w // 2 * 2]
    return g.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def _reference_sharpness_gray(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, h, w = gray.shape
    if h < 3 or w < 3 or n == 0:
        return np.zeros(n, np.float32), np.zeros(n, np.float32)
    tall = np.ascontiguousarray(gray, np.float32).reshape(n * h, w)
    lap = cv2.Laplacian(tall, cv2.CV_32F, ksize=1).reshape(n, h, w)[:, 1:-1, 1:-1]
    var = lap.reshape(n, -1).astype(np.float64).var(axis=1)
    gx = cv2.Sobel(tall, cv2.CV_32F, 1, 0, ksize=3).reshape(n, h, w)[:, 1:-1, 1:-1]
    gy = cv2.Sobel(tall, cv2.CV_32F, 0, 1, ksize=3).reshape(n, h, w)[:, 1:-1, 1:-1]
    ten = (np.square(gx, dtype=np.float64) + np.square(gy, dtype=np.float64)).reshape(n, -1).mean(axis=1)
    return var.astype(np.float32), ten.astype(np.float32)


def _reference_sharpness_batch(patches: np.ndarray, downsample: int = 1) -> dict[str, np.ndarray]:
    gray = _reference_to_gray_batch(patches)
    if downsample == 2:
        gray = _reference_bin2(gray)
    var, ten = _reference_sharpness_gray(gray)
    return {"sharpness": var, "tenengrad": ten}


# ------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def he(cmu_svs: Path) -> np.ndarray:
    """(64, 256, 256, 3) uint8 patches of real H&E (tissue and glass) from CMU-1-Small-Region."""
    return he_patches(cmu_svs)


# ------------------------------------------------------------------------------ equality
def test_gray_and_bin2_match_reference(he: np.ndarray) -> None:
    for name, batch in variants(he).items():
        g = _to_gray_batch(batch)
        assert_close(g, _reference_to_gray_batch(batch), name, rtol=1e-6, atol=1e-4)  # 1 ulp at 255
        assert_close(_bin2(g), _reference_bin2(g), name, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("downsample", [1, 2])
def test_sharpness_batch_matches_reference(he: np.ndarray, downsample: int) -> None:
    batches = variants(he)
    for name, batch in batches.items():
        new = sharpness_batch(batch, downsample=downsample)
        ref = _reference_sharpness_batch(batch, downsample)
        assert set(new) == set(ref), name
        for key in ref:
            assert_close(new[key], ref[key], f"{name} {key}")
    flat = sharpness_batch(batches["flat"], downsample=downsample)
    assert not flat["sharpness"].any() and not flat["tenengrad"].any()  # exactly 0, not ~1e-9
    with pytest.raises(ValueError):
        sharpness_batch(he[:2, :, :, :2], downsample=downsample)


def test_batched_pixel_scores_match_direct_scoring(he: np.ndarray) -> None:
    grid = he[:12].reshape(3, 4, 256, 256, 3).transpose(0, 2, 1, 3, 4)
    arr = np.ascontiguousarray(grid).reshape(768, 1024, 3)
    image = ArrayImage(arr)
    geom = resolve_geometry(image, PatchConfig(size=256, level=0))
    coords = np.array([(x, y) for y in range(0, 768, 256) for x in range(0, 1024, 256)])[::-1]
    out = batched_pixel_scores(image, coords, geom, sharpness_batch, workers=2, batch=5)
    direct = np.stack([arr[y : y + 256, x : x + 256] for x, y in coords])
    ref = _reference_sharpness_batch(direct)
    for key in ref:
        assert_close(out[key], ref[key], key)


def test_pixel_pass_scores_on_one_opencv_thread_and_restores_the_pool(he: np.ndarray) -> None:
    """The pixel pass runs OpenCV single-threaded (its reader threads are the parallelism) and
    gives back the caller's thread count, also when a scorer fails."""
    arr = np.ascontiguousarray(he[:4].transpose(1, 0, 2, 3).reshape(256, 1024, 3))
    image = ArrayImage(arr)
    geom = resolve_geometry(image, PatchConfig(size=256, level=0))
    coords = np.array([(x, 0) for x in range(0, 1024, 256)])
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        seen: list[int] = []

        def scorer(b: np.ndarray) -> dict[str, np.ndarray]:
            seen.append(cv2.getNumThreads())
            return sharpness_batch(b)

        out = batched_pixel_scores(image, coords, geom, scorer, workers=2, batch=3)
        assert seen == [1, 1] and cv2.getNumThreads() == 2
        assert_close(out["sharpness"], _reference_sharpness_batch(arr.reshape(256, 4, 256, 3)
                                                                  .transpose(1, 0, 2, 3))["sharpness"], "sharpness")

        def failing(b: np.ndarray) -> dict[str, np.ndarray]:
            raise RuntimeError("scorer failed")

        with pytest.raises(RuntimeError, match="scorer failed"):
            batched_pixel_scores(image, coords, geom, failing, workers=2)
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)
