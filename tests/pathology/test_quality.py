"""Synthetic ground-truth slides, the truth metrics, and end-to-end patch quality with the default
pathology config on a hold-out seed (seeds 0-15 were used for tuning; see benchmarks/quality.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gigapatch import load_config
from gigapatch_pathology.synth import synthetic_slide, truth_metrics
from gigapatch_pathology.truth import usable_metrics

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


def test_usable_metrics_exact():
    """Usable tissue (tissue, not ink, not blurred) against the aligned grid at >= 50 %."""
    # 1024 x 512 level 0, truth at ds 4 (a 256 px cell = 64 x 64 truth px)
    tissue = np.zeros((128, 256), bool)
    tissue[:, :144] = True  # cells x 0 and 256 full, cells x 512 a quarter (< 50 %)
    pen = np.zeros_like(tissue)
    pen[:64, 64:128] = True  # cell (256, 0) all ink: no usable tissue
    blur = np.zeros_like(tissue)
    truth = {"tissue": tissue, "pen": pen, "blur": blur, "fold": blur, "dust": blur,
             "downsample": 4.0}
    usable_target = 3 * 64 * 64  # cells (0, 0), (0, 256), (256, 256)
    m = usable_metrics(np.array([[0, 0], [256, 256]]), 256, truth, (1024, 512))
    assert m["n_usable_grid"] == 3 and m["usable_target_px"] == usable_target
    assert m["usable_cover"] == pytest.approx(2 / 3) and m["usable_precision"] == 1.0
    assert m["overlap"] == 0.0
    # a patch shifted right by 128 px takes the usable strip the grid leaves (cell x 512 holds
    # 25 %) and half of a counted cell; a patch on the ink is imprecise; two patches overlap
    shifted = np.array([[0, 0], [0, 256], [256, 256], [384, 256], [256, 0]])
    m = usable_metrics(shifted, 256, truth, (1024, 512))
    assert m["usable_covered_px"] == usable_target + 16 * 64  # x 512-576: 16 truth px wide
    assert m["usable_cover"] > 1.0
    assert m["usable_precision"] == pytest.approx(4 / 5)
    assert m["overlap"] == pytest.approx((32 * 64) / (5 * 64 * 64 - 32 * 64))
    assert usable_metrics(np.zeros((0, 2)), 256, truth, (1024, 512))["usable_precision"] == 1.0


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
    # the first targets: coverage of the ideal grid at the config's own min_foreground, ink and
    # blur; this slide measures 1.0, 0 and 0. The kept patches' tissue fraction (0.97 at the
    # 0.8 bar of earlier releases) is 0.89 at the 0.6 bar with border placement: patches that
    # take border tissue hold less of it, by design (README, Pathology quality)
    assert m["coverage"] >= 0.99
    assert m["tissue_fraction"] >= 0.85
    assert m["pen_bad"] <= 0.005
    assert m["blur_bad"] <= 0.02
    # issue #13 item 8: usable tissue against the truth-knowing 50 % grid (measures 1.016 and
    # precision 1.0; overlap 0.09 from the shifted border patches)
    assert m["usable_cover"] >= 1.0
    assert m["usable_precision"] >= 0.97
    assert m["overlap"] <= 0.2
    # every rejection reason the slide calls for shows up
    assert {"foreground", "pen", "blur"} <= set(np.unique(ps.rejected_reason).tolist())
