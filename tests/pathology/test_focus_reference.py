"""Pathology's OpenCV ``block_focus`` gives the values of the plain numpy version it replaced,
frozen below as ``_reference_block_focus``, on real H&E texture, blurred and flat patches, odd and
tiny sizes, grey input and empty batches, and is no further from the float64 truth (its speed is
measured by benchmarks/pixel_scores.py, not here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_scores import assert_close, he_patches, variants

from gigapatch_pathology.focus import block_focus


# ----------------------------------------------------------- frozen reference (test-only)
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


# ------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def he(cmu_svs: Path) -> np.ndarray:
    """(64, 256, 256, 3) uint8 patches of real H&E (tissue and glass) from CMU-1-Small-Region."""
    return he_patches(cmu_svs)


# ------------------------------------------------------------------------------ equality
@pytest.mark.parametrize("blocks", [4, 2, 8])
def test_block_focus_matches_reference(he: np.ndarray, blocks: int) -> None:
    for name, batch in variants(he).items():
        new = block_focus(batch, blocks)
        ref = _reference_block_focus(batch, blocks)
        assert_close(new, ref, name)
        if len(batch) and min(batch.shape[1:3]) >= 8 * blocks:
            # the differences are rounding: the new values are no further from the float64 truth
            truth = _float64_block_focus(batch, blocks)
            err_new = np.abs(new - truth) / np.maximum(truth, 1e-3)
            err_ref = np.abs(ref - truth) / np.maximum(truth, 1e-3)
            assert err_new.max() <= 1.5 * err_ref.max() + 1e-5, name
    # and they still tell blurred copies from the textured originals
    f = block_focus(he[:16]).reshape(16, -1).mean(1)
    fb = block_focus(variants(he)["blurred"]).reshape(16, -1).mean(1)
    textured = f > 0.5
    assert textured.sum() >= 8 and (fb < f)[textured].all()
