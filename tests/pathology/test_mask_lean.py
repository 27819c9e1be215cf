"""The lean pathology mask path: banded passes give the numbers of whole-image ones, memory stays
a few bytes per mask pixel, and what the hooks of one image share stays with that image."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from gigapatch import ArrayImage, ImageContext, load_config
from gigapatch_pathology import ink, tissue
from gigapatch_pathology import view as viewmod
from gigapatch_pathology.synth import synthetic_slide


@pytest.fixture(scope="module")
def view(cmu_texture: Path | None) -> np.ndarray:
    """(768, 1024, 3) view of a synthetic H&E slide with pen marks, folds and faint tissue."""
    img, _truth = synthetic_slide(3, (8192, 6144), cmu_texture)
    return img.read_level_downsampled(8)


def test_banding_does_not_change_the_masks(view, monkeypatch):
    """Bands of a few rows (medians, Gaussian sums, hysteresis across band seams) give the
    masks of one band covering the whole view."""
    whole_band = 1 << 30
    monkeypatch.setattr(viewmod, "BAND_PIXELS", whole_band)
    t1, p1 = tissue.tissue_mask(view), ink.pen_mask(view)
    ch1 = viewmod.sat_grey(view)
    monkeypatch.setattr(viewmod, "BAND_PIXELS", 3000)  # ~3 rows per band
    t2, p2 = tissue.tissue_mask(view), ink.pen_mask(view)
    ch2 = viewmod.sat_grey(view)
    assert p1.any() and t1.mean() > 0.05  # the slide has ink and tissue
    assert np.array_equal(t1, t2)
    assert np.array_equal(p1, p2)
    for a, b in zip(ch1, ch2):
        assert np.array_equal(a, b)


def test_sat_grey_match_the_whole_view_formulas(view):
    """sat_grey: balanced median-filtered planes, computed here on the whole view at once."""
    sat, grey = viewmod.sat_grey(view)
    a = cv2.medianBlur(view, 3)
    f = a.astype(np.float32) * (255.0 / viewmod.glass_rgb(a))
    mx, mn = f.max(axis=2), f.min(axis=2)
    assert np.array_equal(sat, (mx - mn) / np.maximum(mx, 1.0))
    assert np.array_equal(grey, f @ np.array([0.299, 0.587, 0.114], np.float32))


@pytest.mark.parametrize("samples, band", [(2.5e5, 1 << 15), (1e4, 3000)])
def test_glass_saturation_from_samples_is_that_of_the_whole_planes(view, monkeypatch, samples, band):
    """The banded pass over the sampled pixels only (the pixel-tissue thresholds) gives the glass
    saturation of the whole planes, also when the sample grid straddles the band seams."""
    monkeypatch.setattr(viewmod, "GLASS_SAMPLES", samples)
    monkeypatch.setattr(viewmod, "BAND_PIXELS", band)
    glass = viewmod.view_glass(view)
    sat, grey = viewmod.sat_grey(view, glass)
    assert viewmod.glass_step(*sat.shape) == (1 if samples > 1e5 else 8)
    whole = viewmod.glass_saturation(sat * 255.0, grey)
    assert 0 < whole < 40
    assert viewmod.view_glass_saturation(view, glass) == whole


def test_trim_edges_matches_whole_image_gaussians(view):
    """The banded, column-cropped Gaussian sums drop the pixels the whole-image ones do."""
    mask = tissue.tissue_mask(view, edge_ratio=0)
    sat = viewmod.sat_grey(view)[0] * 255.0
    interior = cv2.erode(mask.view(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
    edge = mask & (interior == 0)
    wsum = cv2.GaussianBlur(interior, (0, 0), 4.0)
    ssum = cv2.GaussianBlur(sat * interior, (0, 0), 4.0)
    known = wsum > 1e-3
    local = np.where(known, ssum / np.maximum(wsum, 1e-6), 0.0)
    expected = mask & ~(edge & known & (sat < 0.5 * local))
    got = tissue.trim_edges(mask, sat, 0.5)
    assert (mask & ~expected).sum() > 100  # the rule does drop edge pixels here
    assert np.array_equal(got, expected)


def test_otsu_from_histogram_equals_otsu_of_values():
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = np.concatenate([rng.normal(rng.uniform(0, 80), 8, 500), rng.normal(rng.uniform(90, 200), 20, 300)])
        v = np.clip(v, 0, 255).astype(np.uint8)
        assert tissue.otsu_from_histogram(np.bincount(v, minlength=256)) == tissue.otsu_threshold(v)
    assert tissue.otsu_from_histogram(np.bincount(np.full(7, 42, np.uint8), minlength=256)) == 42.0
    assert tissue.otsu_from_histogram(np.zeros(256, np.int64)) == 0.0


def test_tissue_mask_memory_is_a_few_bytes_per_pixel(view):
    """Peak of tissue + pen masks beyond the view: ~11-15 bytes per pixel (float32 saturation and
    grey subsample, int32 labels, bool planes), not the ~60 of whole-image float temporaries."""
    rgb = view
    tissue.tissue_mask(rgb[:8])  # imports and first-call allocations out of the measurement
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        m = tissue.tissue_mask(rgb)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert m.any()
    assert peak / m.size < 16, f"{peak / m.size:.1f} bytes per pixel"


def test_view_stats_are_per_image_and_shared_by_the_hooks(view):
    """The tissue hook finds the ink on its way and the pen hook of the same image takes it from
    the context; another image (another context) finds its own, and a bare call looks at the
    pixels it is given."""
    cfg = load_config("pathology")
    rgb = view.copy()
    rgb.setflags(write=False)
    ctx = ImageContext(image=ArrayImage(rgb), config=cfg, rgb=rgb)
    tissue.gigapatch_foreground_mask(rgb=rgb, context=ctx)
    (found,) = ctx.plugin_cache("pathology")["view"].inks.values()
    assert found.any() and not found.flags.writeable
    assert ink.gigapatch_exclusion_masks(rgb=rgb, context=ctx)["pen"] is found  # not found again
    assert np.array_equal(found, ink.pen_mask(view))  # the ink a bare call finds
    painted = view.copy()
    painted[found] = 235  # the ink painted over with glass
    other = ImageContext(image=ArrayImage(painted), config=cfg, rgb=painted)
    assert not ink.gigapatch_exclusion_masks(rgb=painted, context=other)["pen"].any()
    assert not ink.pen_mask(painted).any()
    assert ink.gigapatch_exclusion_masks(rgb=rgb, context=ctx)["pen"] is found
