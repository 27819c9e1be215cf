"""Candidate tissue and ink measured on full-resolution pixels (gigapatch_pathology.pixel_tissue),
against synthetic ground truth, and its wiring through the pipeline."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gigapatch import load_config, mask_fraction, tile_image
from gigapatch_pathology import pixel_tissue as pt
from gigapatch_pathology.components import drop_specks
from gigapatch_pathology.synth import synthetic_slide


@pytest.fixture(scope="module")
def slide(cmu_texture: Path | None):
    """A 6144 x 4096 synthetic H&E slide (real texture when available) and its truth."""
    return synthetic_slide(31, (6144, 4096), cmu_texture)


@pytest.fixture(scope="module")
def tiled(slide):
    img, _truth = slide
    cfg = load_config("pathology")
    ref = load_config("pathology", overrides={"plugin.pathology.pixel_foreground": False})
    return cfg, tile_image(img, cfg), tile_image(img, ref)


def _all(ps):
    coords = np.concatenate([ps.coords, ps.rejected_coords])
    scores = {k: np.concatenate([ps.scores[k], ps.rejected_scores[k]]) for k in ps.scores}
    return coords, scores


def test_working_bin_follows_microns():
    assert pt.working_bin(256, 0.5) == 4
    assert pt.working_bin(512, 0.25) == 8
    assert pt.working_bin(256, 1.0) == 2
    assert pt.working_bin(256, None) == pt.DEFAULT_BIN
    assert 256 % pt.working_bin(256, 0.3) == 0 and 224 % pt.working_bin(224, 0.5) == 0
    assert pt.working_bin(16, 0.1) == 1  # never finer than 16 working px per side


def test_close_stack_fills_gaps_and_keeps_maps_apart():
    rng = np.random.default_rng(0)
    maps = rng.random((5, 40, 40)) > 0.3
    maps[2] = True
    maps[2, 18:21, 18:21] = False  # a pale gap inside tissue
    maps[3] = False  # empty: must stay empty next to a full neighbour
    out = pt.close_stack(maps, 2)
    assert out[2].all() and not out[3].any()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    for m, o in zip(maps, out):  # the stack equals one closing per map (edges replicated)
        pad = np.pad(m.astype(np.uint8), 4, mode="edge")
        ref = cv2.erode(cv2.dilate(pad, k), k)[4:-4, 4:-4].astype(bool)
        assert np.array_equal(o, ref)


def test_sample_mask_reads_the_right_mask_pixels():
    mask = np.zeros((10, 20), bool)
    mask[2:4, 5:7] = True  # level-0 x 40-56, y 16-32 at ds 8
    s = pt.sample_mask(mask, 8.0, np.array([[32, 0], [0, 0]]), 32, 4)  # 8 px per working px
    assert s.shape == (2, 4, 4)
    assert s[0, 2:4, 1:3].all() and s[0].sum() == 4 and not s[1].any()


def test_pixel_ink_follows_black_ink_near_the_mask_only():
    f = np.full((2, 8, 8, 3), 235.0, np.float32)
    f[:, :, 2:5] = 40.0  # a neutral dark band: black ink
    f[:, :, 6] = (40.0, 60.0, 200.0)  # a blue band: left to the coarse mask
    near = np.zeros((2, 8, 8), bool)
    near[0] = True
    ink = pt.pixel_ink(f, ("blue", "green", "black"), near, None)
    assert ink[0, :, 2:5].all() and not ink[0, :, 6].any() and not ink[1].any()
    low = np.zeros((2, 8, 8), bool)
    low[1, 0, 0] = True
    assert pt.pixel_ink(f, ("blue",), near, low).sum() == 1  # no black asked: only the mask's


def test_pixel_foreground_beats_the_mask_estimate(slide, tiled):
    """Against the truth, the candidates' pixel tissue fraction is far closer than the mask's."""
    img, truth = slide
    cfg, ps, _ = tiled
    coords, scores = _all(ps)
    cand = ~np.isnan(scores["blur"])
    assert cand.sum() > 50
    ds = truth["downsample"]
    true = mask_fraction(truth["tissue"] & ~truth["pen"], coords[cand], ps.patch_size_level0, ds)
    border = (true > 0.5) & (true < 0.98)
    assert border.sum() >= 10
    err_px = np.abs(scores["foreground"][cand] - true)[border].mean()
    err_mask = np.abs(scores["mask_foreground"][cand] - true)[border].mean()
    assert err_px < 0.7 * err_mask and err_px < 0.03
    # candidates reach min_foreground - candidate_margin on the mask; the others keep its value
    m = scores["mask_foreground"]
    assert (m[cand] >= cfg.patch.min_foreground - cfg.score.candidate_margin).all()
    assert np.array_equal(scores["foreground"][~cand], m[~cand])
    bar = cfg.patch.min_foreground - cfg.score.foreground_tolerance
    assert (ps.scores["foreground"] >= bar).all()
    assert (ps.rejected_scores["foreground"][ps.rejected_reason == "foreground"] < bar).all()


def test_pixel_refinement_off_keeps_mask_scores(tiled):
    _cfg, _ps, ref = tiled
    _coords, scores = _all(ref)
    assert "mask_foreground" not in scores
    assert "foreground" in scores and "pen" in scores and "blur" in scores


def test_batched_pixel_scores_hands_over_coords(slide):
    from gigapatch.io.geometry import resolve_geometry
    from gigapatch.tiling.score import batched_pixel_scores

    img, _ = slide
    geom = resolve_geometry(img, load_config("pathology").patch)
    coords = np.array([[0, 0], [512, 256], [1024, 2048], [256, 768], [3072, 0]])
    seen = []

    def score(batch, c):
        seen.append(c.copy())
        return {"x": c[:, 0].astype(np.float64), "mean": batch.mean(axis=(1, 2, 3))}

    out = batched_pixel_scores(img, coords, geom, score, 2, batch=2, with_coords=True)
    assert np.array_equal(out["x"], coords[:, 0])  # every batch's coords are its patches'
    assert sum(len(s) for s in seen) == len(coords)
    first = img.read_region((512, 256), 0, (256, 256))
    assert out["mean"][1] == pytest.approx(first.mean())


@pytest.mark.parametrize("radius", [1, 3])
def test_tissue_ladder_equals_tissue_blocks_at_every_threshold(slide, radius):
    """One grey-level closing of the rungs gives, bit for bit, the per-threshold binary
    closings, with ink, an annotation bound and dense stain (real slide pixels)."""
    img = np.asarray(slide[0].read_region((2048, 1536), 0, (2048, 1024)))[..., :3]
    p = img.reshape(4, 256, 8, 256, 3).transpose(0, 2, 1, 3, 4).reshape(32, 256, 256, 3)
    f = pt.balanced_bins(np.ascontiguousarray(p), np.array([236.0, 232.0, 240.0]), 4)
    sat = pt.saturation(f)
    rng = np.random.default_rng(0)
    ink, near, dense = (rng.random(sat.shape) < q for q in (0.05, 0.9, 0.03))
    ink = cv2.dilate(ink.view(np.uint8).reshape(-1, 64), np.ones((3, 3), np.uint8)).reshape(sat.shape) > 0
    thresholds = np.float32(np.median(sat)) + np.asarray(pt.LADDER, np.float32)
    for kw in ({}, {"ink": ink}, {"near": near}, {"ink": ink, "near": near, "dense": dense}):
        got = pt.tissue_ladder(sat, thresholds, radius, **kw)
        want = np.stack([pt.tissue_blocks(sat, float(t), radius, **kw) for t in thresholds], axis=1)
        assert got.shape == (32, len(thresholds), 4, 4) and got.dtype == np.float32
        assert np.array_equal(got, want), kw
        assert 0.0 < want.mean() < 1.0  # thresholds that keep some pixels and drop others
    with pytest.raises(ValueError, match="ascending"):
        pt.tissue_ladder(sat, thresholds[::-1], radius)


def test_tissue_blocks_threshold_gaps_ink_and_bounds():
    f = np.full((1, 64, 64, 3), 250.0, np.float32)  # glass
    f[0, :, :32] = (200.0, 120.0, 170.0)  # stained left half
    f[0, 30:33, 10:13] = 250.0  # a pale gap inside the tissue: closed
    f = pt.saturation(f)
    blocks = pt.tissue_blocks(f, 10.0, 2)
    assert blocks.shape == (1, 4, 4)
    assert blocks[0, :, :2].min() == 1.0 and blocks[0, :, 2:].max() == 0.0
    assert blocks.mean() == pytest.approx(0.5)
    ink = np.zeros((1, 64, 64), bool)
    ink[0, :16, :32] = True  # ink is never tissue
    assert pt.tissue_blocks(f, 10.0, 2, ink=ink).mean() == pytest.approx(0.375)
    near = np.zeros((1, 64, 64), bool)
    near[0, :, :16] = True  # outside an annotation
    assert pt.tissue_blocks(f, 10.0, 2, near=near).mean() == pytest.approx(0.25)
    assert pt.tissue_blocks(f, 120.0, 2).mean() == 0.0  # threshold above the stain


def test_calibrated_tissue_matches_the_mask_on_the_border():
    rng = np.random.default_rng(1)
    n = 40
    mask_fg = np.r_[np.ones(10), rng.uniform(0.6, 0.95, n - 10)]
    # ladder rungs: tissue shrinking as the threshold rises; rung 2 agrees with the mask
    shift = np.array([0.08, 0.04, 0.0, -0.05, -0.1])
    per_patch = np.clip(mask_fg[:, None] + shift[None] * (mask_fg[:, None] < 0.98), 0, 1)
    ladder = np.repeat(per_patch[:, :, None, None], 4, 2).repeat(4, 3).astype(np.float32)
    blocks, rung = pt.calibrated_tissue(ladder, mask_fg)
    assert rung == 2 and np.allclose(blocks.mean(axis=(1, 2)), per_patch[:, 2])
    few = mask_fg.copy()
    few[12:] = 1.0  # fewer than MIN_BORDER border candidates: the lowest threshold
    assert pt.calibrated_tissue(ladder, few)[1] == 0


def test_drop_specks_keeps_strokes_not_dust():
    m = np.zeros((60, 80), bool)
    m[10:14, 5:75] = True  # a stroke: 280 px
    m[40:45, 40:45] = True  # a speck: 25 px
    m[50, 10] = True
    out = drop_specks(m, 30)
    assert out[10:14, 5:75].all() and out.sum() == 280
    assert np.array_equal(drop_specks(m, 1), m)
