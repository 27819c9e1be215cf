"""Synthetic ground-truth slides, the truth metrics, and end-to-end patch quality with the default
pathology config on a hold-out seed (seeds 0-15 were used for tuning; see benchmarks/quality.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gigapatch import load_config
from gigapatch_pathology.synth import synthetic_slide, truth_metrics

HOLD_OUT_SEED = 123


def test_synthetic_slide_is_deterministic_and_seeded():
    a, ta = synthetic_slide(7, (1024, 768))
    b, tb = synthetic_slide(7, (1024, 768))
    c, tc = synthetic_slide(8, (1024, 768))
    pa = a.read_region((0, 0), 0, (1024, 768))
    assert np.array_equal(pa, b.read_region((0, 0), 0, (1024, 768)))
    assert all(np.array_equal(ta[k], tb[k]) for k in ("tissue", "pen", "blur", "fold", "dust"))
    assert not np.array_equal(ta["tissue"], tc["tissue"])
    assert ta["tissue"].shape == (192, 256) and ta["downsample"] == 4.0
    assert a.mpp == 0.5 and a.dimensions == (1024, 768)


@pytest.mark.parametrize("texture", [None, "real"])
def test_synthetic_truth_matches_pixels(texture, request):
    tex = request.getfixturevalue("cmu_svs") if texture else None
    img, t = synthetic_slide(11, (4096, 3072), tex, truth_downsample=16)
    rgb = img.read_level_downsampled(16)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    glass = ~t["tissue"] & ~t["pen"] & ~t["dust"]
    tissue = t["tissue"] & ~t["pen"] & ~t["fold"]
    inner = cv2.erode(tissue.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert t["tissue"].mean() > 0.05 and t["pen"].any() and t["blur"].any()
    assert np.median(hsv[..., 1][glass]) < 10 and np.median(hsv[..., 2][glass]) > 225
    assert np.percentile(hsv[..., 1][inner], 10) > 20  # stained
    assert (t["blur"] <= t["tissue"]).all() and (t["fold"] <= t["tissue"]).all()
    pen = t["pen"] & ~t["tissue"]  # ink on glass: blue, green or black, never pink
    r, g, b = (rgb[..., i][pen].astype(int) for i in range(3))
    assert ((g >= r - 5) | (np.abs(r - b) < 25)).mean() > 0.95


def test_synthetic_slide_as_pyramidal_tiff(tmp_path):
    from gigapatch import open_image

    path, truth = synthetic_slide(3, (2048, 1536), path=tmp_path / "s.tiff")
    with open_image(path) as img:
        assert img.dimensions == (2048, 1536)
        assert img.level_count >= 2
        assert img.mpp == pytest.approx(0.5, rel=1e-3)
        assert img.read_region((0, 0), 0, (64, 64)).shape == (64, 64, 3)


def test_truth_metrics_exact():
    # 1024 x 512 level 0, truth at ds 4; tissue fills the left half, pen covers cell (0, 256)
    tissue = np.zeros((128, 256), bool)
    tissue[:, :128] = True
    pen = np.zeros_like(tissue)
    pen[64:128, 0:64] = True
    truth = {"tissue": tissue, "pen": pen, "blur": np.zeros_like(tissue),
             "fold": np.zeros_like(tissue), "dust": np.zeros_like(tissue), "downsample": 4.0}
    ideal = np.array([[0, 0], [256, 0], [256, 256]])
    m = truth_metrics(ideal, 256, truth, (1024, 512), 0.5)
    assert m["n_ideal"] == 3 and m["coverage"] == 1.0 and m["precision"] == 1.0
    assert m["tissue_fraction"] == 1.0 and m["pen_bad"] == 0.0
    m2 = truth_metrics(np.array([[0, 0], [0, 256], [512, 0]]), 256, truth, (1024, 512), 0.5)
    assert m2["coverage"] == pytest.approx(1 / 3)  # one of three ideal cells covered
    assert m2["pen_bad"] == pytest.approx(1 / 3) and m2["tissue_fraction"] == pytest.approx(2 / 3)
    assert m2["precision"] == pytest.approx(1 / 3)


@pytest.mark.slow
def test_default_pathology_quality_on_hold_out_slide(cmu_texture: Path | None):
    """The brief's targets on a slide the defaults were not tuned on."""
    from gigapatch import tile_image

    img, truth = synthetic_slide(HOLD_OUT_SEED, (8192, 6144), cmu_texture)
    cfg = load_config("pathology")
    ps = tile_image(img, cfg)
    m = truth_metrics(ps.coords, ps.patch_size_level0, truth, img.dimensions,
                      cfg.patch.min_foreground)
    assert m["n_ideal"] >= 40
    # the brief's targets; this slide measures coverage 1.0 and tissue 0.969 since border
    # candidates are measured on their pixels (0.982 coverage from the mask alone). Other hold-out
    # slides still miss a border cell or a thin ink stroke now and then (README, quality table).
    assert m["coverage"] >= 0.99
    assert m["tissue_fraction"] >= 0.96
    assert m["pen_bad"] <= 0.005
    assert m["blur_bad"] <= 0.02
    # every rejection reason the slide calls for shows up
    assert {"foreground", "pen", "blur"} <= set(np.unique(ps.rejected_reason).tolist())
