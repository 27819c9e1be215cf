"""The OpenCV full-resolution scorers (core ``sharpness_batch``, pathology ``block_focus``) give
the values of the plain numpy versions they replaced, frozen below as ``_reference_*``, on real H&E
texture, blurred and flat patches, odd and tiny sizes, grey input and empty batches (their speed is
measured by benchmarks/pixel_scores.py, not here)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gigapatch.config import PatchConfig
from gigapatch.io.geometry import resolve_geometry
from gigapatch.io.image import ArrayImage
from gigapatch.tiling.score import _bin2, _to_gray_batch, batched_pixel_scores, sharpness_batch
from gigapatch_pathology.focus import block_focus

CMU = Path(__file__).resolve().parents[1].parent / "shared/data/pathology/CMU-1-Small-Region.svs"


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


def _reference_block_focus(patches: np.ndarray, blocks: int = 4) -> np.ndarray:
    p = np.asarray(patches)
    g = p[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) if p.ndim == 4 \
        else p.astype(np.float32)
    n = len(g)
    s = min(g.shape[1], g.shape[2]) // (8 * blocks) * (8 * blocks)
    if n == 0 or s == 0:
        return np.zeros((n, blocks, blocks), np.float32)
    g = g[:, :s, :s]
    h2 = s // 2
    g2 = g.reshape(n, h2, 2, h2, 2).mean(axis=(2, 4))
    c = g2[:, 1:-1, 1:-1]
    lap = (g2[:, :-2, 1:-1] + g2[:, 2:, 1:-1] + g2[:, 1:-1, :-2] + g2[:, 1:-1, 2:] - 4.0 * c) ** 2
    lap = np.pad(lap, ((0, 0), (1, 1), (1, 1)), mode="edge")
    b2 = h2 // blocks
    fine = lap.reshape(n, blocks, b2, blocks, b2).mean(axis=(2, 4))
    h8 = s // 8
    g8 = g.reshape(n, h8, 8, h8, 8).mean(axis=(2, 4))
    gx = np.diff(g8, axis=2)[:, :-1, :]
    gy = np.diff(g8, axis=1)[:, :, :-1]
    grad = np.pad(gx**2 + gy**2, ((0, 0), (0, 1), (0, 1)), mode="edge")
    b8 = h8 // blocks
    coarse = grad.reshape(n, blocks, b8, blocks, b8).mean(axis=(2, 4))
    return (fine / (coarse + 1.0)).astype(np.float32)


# ------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def he() -> np.ndarray:
    """(64, 256, 256, 3) uint8 patches of real H&E (tissue and glass) from CMU-1-Small-Region."""
    if not CMU.exists():
        pytest.skip(f"{CMU} not found")
    tifffile = pytest.importorskip("tifffile")
    a = tifffile.imread(CMU, key=0)
    tiles = [a[y : y + 256, x : x + 256] for y in range(0, a.shape[0] - 255, 256)
             for x in range(0, a.shape[1] - 255, 256)]
    return np.stack(tiles[:64])


def _variants(he: np.ndarray) -> dict[str, np.ndarray]:
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


def _close(new: np.ndarray, ref: np.ndarray, name: str, rtol: float = 1e-4, atol: float = 1e-5
           ) -> None:
    """Equal up to float32 rounding: the filters and reductions add in another order."""
    assert new.dtype == ref.dtype and new.shape == ref.shape, name
    np.testing.assert_allclose(new, ref, rtol=rtol, atol=atol, err_msg=name)


def _float64_block_focus(patches: np.ndarray, blocks: int) -> np.ndarray:
    """The reference's arithmetic in float64: the truth both float32 versions round."""
    p = np.asarray(patches)
    g = p.astype(np.float64)
    if p.ndim == 4:
        g = g[..., :3] @ np.array([0.299, 0.587, 0.114])
    n, s = len(g), min(g.shape[1], g.shape[2]) // (8 * blocks) * (8 * blocks)
    h2, h8 = s // 2, s // 8
    g2 = g[:, :s, :s].reshape(n, h2, 2, h2, 2).mean(axis=(2, 4))
    c = g2[:, 1:-1, 1:-1]
    lap = (g2[:, :-2, 1:-1] + g2[:, 2:, 1:-1] + g2[:, 1:-1, :-2] + g2[:, 1:-1, 2:] - 4.0 * c) ** 2
    lap = np.pad(lap, ((0, 0), (1, 1), (1, 1)), mode="edge")
    fine = lap.reshape(n, blocks, h2 // blocks, blocks, h2 // blocks).mean(axis=(2, 4))
    g8 = g[:, :s, :s].reshape(n, h8, 8, h8, 8).mean(axis=(2, 4))
    grad = np.diff(g8, axis=2)[:, :-1, :] ** 2 + np.diff(g8, axis=1)[:, :, :-1] ** 2
    grad = np.pad(grad, ((0, 0), (0, 1), (0, 1)), mode="edge")
    coarse = grad.reshape(n, blocks, h8 // blocks, blocks, h8 // blocks).mean(axis=(2, 4))
    return fine / (coarse + 1.0)


# ------------------------------------------------------------------------------ equality
def test_gray_and_bin2_match_reference(he: np.ndarray) -> None:
    for name, batch in _variants(he).items():
        g = _to_gray_batch(batch)
        _close(g, _reference_to_gray_batch(batch), name, rtol=1e-6, atol=1e-4)  # 1 ulp at 255
        _close(_bin2(g), _reference_bin2(g), name, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("downsample", [1, 2])
def test_sharpness_batch_matches_reference(he: np.ndarray, downsample: int) -> None:
    variants = _variants(he)
    for name, batch in variants.items():
        new = sharpness_batch(batch, downsample=downsample)
        ref = _reference_sharpness_batch(batch, downsample)
        assert set(new) == set(ref), name
        for key in ref:
            _close(new[key], ref[key], f"{name} {key}")
    flat = sharpness_batch(variants["flat"], downsample=downsample)
    assert not flat["sharpness"].any() and not flat["tenengrad"].any()  # exactly 0, not ~1e-9
    with pytest.raises(ValueError):
        sharpness_batch(he[:2, :, :, :2], downsample=downsample)


@pytest.mark.parametrize("blocks", [4, 2, 8])
def test_block_focus_matches_reference(he: np.ndarray, blocks: int) -> None:
    for name, batch in _variants(he).items():
        new = block_focus(batch, blocks)
        ref = _reference_block_focus(batch, blocks)
        _close(new, ref, name)
        if len(batch) and min(batch.shape[1:3]) >= 8 * blocks:
            # the differences are rounding: the new values are no further from the float64 truth
            truth = _float64_block_focus(batch, blocks)
            err_new = np.abs(new - truth) / np.maximum(truth, 1e-3)
            err_ref = np.abs(ref - truth) / np.maximum(truth, 1e-3)
            assert err_new.max() <= 1.5 * err_ref.max() + 1e-5, name
    # and they still tell blurred copies from the textured originals
    f = block_focus(he[:16]).reshape(16, -1).mean(1)
    fb = block_focus(_variants(he)["blurred"]).reshape(16, -1).mean(1)
    textured = f > 0.5
    assert textured.sum() >= 8 and (fb < f)[textured].all()


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
        _close(out[key], ref[key], key)
