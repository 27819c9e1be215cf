"""Options of the synthetic slide generator (gigapatch_pathology.synth): felt-tip marker widths, folds
without doubled JPEG chroma noise, and texture cut from the other real slides."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers_paths import need

from gigapatch_pathology.synth import REALISTIC, synthetic_slide, texture_tiles

SIZE = (3072, 2048)


def test_felt_tip_strokes_are_wider_on_the_same_layout():
    fine_img, fine = synthetic_slide(4, SIZE, blur=False, folds=False, dust=False)
    wide_img, wide = synthetic_slide(4, SIZE, blur=False, folds=False, dust=False,
                                     pen_width_um=REALISTIC["pen_width_um"])
    assert np.array_equal(fine["tissue"], wide["tissue"])  # same seed, same layout
    assert fine["pen"].any() and wide["pen"].sum() > 4 * fine["pen"].sum()
    assert (fine["pen"] <= wide["pen"]).mean() > 0.99  # the same strokes, wider
    # the narrowest part of a stroke (twice the largest inscribed radius, at truth ds 4) >= 500 um
    dist = cv2.distanceTransform(wide["pen"].astype(np.uint8), cv2.DIST_L2, 5)
    assert 2 * dist.max() * wide["downsample"] * 0.5 >= 500
    fine_dist = cv2.distanceTransform(fine["pen"].astype(np.uint8), cv2.DIST_L2, 5)
    assert fine_dist.max() < dist.max() / 3


def test_smooth_fold_keeps_density_without_doubling_chroma_noise(cmu_svs):
    tex = cmu_svs
    kw = dict(pen=False, blur=False, dust=False, truth_downsample=1, noise_sigma=0.0)
    a_img, t = synthetic_slide(0, SIZE, tex, **kw)
    b_img, t2 = synthetic_slide(0, SIZE, tex, fold_blur_um=REALISTIC["fold_blur_um"], **kw)
    a = a_img.read_region((0, 0), 0, SIZE).astype(np.float32)
    b = b_img.read_region((0, 0), 0, SIZE).astype(np.float32)
    fold = cv2.erode(t["fold"].astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    near = cv2.dilate(t["fold"].astype(np.uint8), np.ones((61, 61), np.uint8)).astype(bool)
    plain = cv2.erode(t["tissue"].astype(np.uint8), np.ones((15, 15))).astype(bool) & ~near
    assert np.array_equal(t["fold"], t2["fold"]) and fold.sum() > 10_000
    assert np.array_equal(a[plain], b[plain])  # only the folds change

    def od(x):
        return -np.log((x + 1) / 256)

    # a fold stays a darker double layer: its density ~1.7-2.3x the single layer's
    ratio = od(b)[fold].mean() / od(b)[plain].mean()
    assert 1.5 < ratio < 2.5

    def chroma_hf(x):  # fine-scale red-green OD difference (JPEG chroma noise lives there)
        c = od(x)[..., 0] - od(x)[..., 1]
        return np.abs(c - cv2.GaussianBlur(c, (0, 0), 4))[fold].mean()

    assert chroma_hf(b) < 0.8 * chroma_hf(a)


def test_texture_from_the_frozen_tcga_slide(pathology_dir):
    p = need(pathology_dir / "tcga-cr-7395-01a-01-ts1.svs", "the TCGA slide")
    pytest.importorskip("imagecodecs")
    tiles = texture_tiles(p, np.random.default_rng(0), max_tiles=8)
    assert tiles.shape == (8, 256, 256, 3)
    mean = tiles.mean(axis=(0, 1, 2))  # eosin-dominated pink: green absorbed most
    assert mean[1] < mean[0] - 0.2 and mean[1] < mean[2]
    assert (tiles < 0.9).any(axis=-1).mean() > 0.5  # tissue-dense windows, not glass


def test_sparse_slide_is_refused_as_texture(pathology_dir):
    p = need(pathology_dir / "kidney-48-5.tif", "the kidney slide")  # ~2 % tissue, one fragment
    with pytest.raises(ValueError, match="tissue-dense"):
        texture_tiles(p, np.random.default_rng(0))
