"""Regions drive placement: labels, the region of each patch, per-region placement and figures,
checked against brute-force counts at level 0 and against the ground-truth mask of the image."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from gigapatch import ArrayImage, PatchSet, Region, load_config, tile_image
from gigapatch.io.tiff_write import write_pyramidal_tiff
from gigapatch.tiling.coverage import coverage_report
from gigapatch.tiling.integral import mask_fraction
from gigapatch.tiling.place import grid_coords
from gigapatch.tiling.regions import (
    own_fraction,
    patch_regions,
    place_per_region,
    region_boxes,
    region_extents,
    region_labels,
    region_summary,
)
from gigapatch.tiling.segment import regions_to_mask, segment_mask

# ----------------------------------------------------------------------------- fixtures


def blobs(shape: tuple[int, int], seed: int, n: int = 14) -> np.ndarray:
    """A mask of random discs, squares and rings: holes, islands in holes, blobs on the edges."""
    rng = np.random.default_rng(seed)
    h, w = shape
    m = np.zeros(shape, np.uint8)
    for _ in range(n):
        cx, cy, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(3, 25))
        if rng.random() < 0.5:
            cv2.circle(m, (cx, cy), r, 1, -1)
        else:
            m[max(cy - r, 0) : cy + r, max(cx - r, 0) : cx + r] = 1
    m[h // 3 : h // 3 + 30, w // 3 : w // 3 + 30] = 1  # a ring with an island in its hole
    m[h // 3 + 8 : h // 3 + 22, w // 3 + 8 : w // 3 + 22] = 0
    m[h // 3 + 13 : h // 3 + 17, w // 3 + 13 : w // 3 + 17] = 1
    m[:, -3:] = 0
    m[h // 2 : h // 2 + 20, -3:] = 1  # touches the right edge
    return m.astype(bool)


def upsample(labels: np.ndarray, ds: int) -> np.ndarray:
    """Level-0 labels of a mask grid of integer downsample ``ds`` (ground truth for counting)."""
    return np.repeat(np.repeat(labels, ds, axis=0), ds, axis=1)


def counts_in(level0: np.ndarray, coords: np.ndarray, size: int, n: int) -> np.ndarray:
    """(N, n + 1) level-0 pixels of each label (0 = none) inside each patch, by brute force."""
    out = np.zeros((len(coords), n + 1), np.int64)
    for i, (x, y) in enumerate(np.asarray(coords).tolist()):
        win = level0[max(y, 0) : y + size, max(x, 0) : x + size]
        out[i] = np.bincount(win.ravel(), minlength=n + 1)
    return out


def he_like(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """Pink textured 'tissue' where mask is True, near-white glass elsewhere."""
    rng = np.random.default_rng(seed)
    img = np.full(mask.shape + (3,), 242, np.float32) + rng.normal(0, 2, mask.shape + (1,))
    tissue = np.array([215, 140, 190], np.float32) + rng.normal(0, 12, mask.shape + (1,)) * [
        0.5, 1, 0.6]
    img[mask] = tissue[mask]
    return np.clip(img, 0, 255).astype(np.uint8)


def two_close_cores() -> np.ndarray:
    """2048 x 1536 level-0 truth: two cores 96 px apart (under one 256 px patch), both cut by
    the global grid's column at x = 768."""
    truth = np.zeros((1536, 2048), bool)
    truth[256:1280, 256:896] = True
    truth[256:1280, 992:1792] = True
    return truth


def config(**overrides: object):
    base = {"patch.size": 256, "patch.min_foreground": 0.5, "score.sharpness": False,
            "mask.downsample": 8, "refine.fill_holes_below": 0.1, "refine.drop_below": 0.1}
    return load_config("generic", overrides={**base, **overrides})


def truth_ids(truth: np.ndarray) -> np.ndarray:
    return cv2.connectedComponents(truth.view(np.uint8), connectivity=8)[1]


# ----------------------------------------------------------------------------- labels and boxes


@pytest.mark.parametrize("seed, ds", [(0, 4.0), (1, 3.7), (2, 16.0)])
def test_labels_are_the_regions_rasterised(seed: int, ds: float) -> None:
    m = blobs((180, 240), seed)
    regions = segment_mask(m, ds)
    assert len(regions) > 5
    labels = region_labels(regions, m.shape, ds)
    np.testing.assert_array_equal(labels > 0, m)
    np.testing.assert_array_equal(labels > 0, regions_to_mask(regions, m.shape, ds))
    for k, r in enumerate(regions):  # disjoint: each label is its own region's raster
        np.testing.assert_array_equal(labels == k + 1, regions_to_mask([r], m.shape, ds))


def test_overlapping_regions_later_wins_and_the_mask_bounds_the_labels() -> None:
    sq = lambda x0, y0, x1, y1: Region(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float))  # noqa: E731
    regions = [sq(0, 0, 40, 40), sq(20, 20, 60, 60), sq(100, 100, 120, 120)]  # level-0, ds 2
    labels = region_labels(regions, (40, 40), 2.0)
    np.testing.assert_array_equal(labels > 0, regions_to_mask(regions, (40, 40), 2.0))
    assert (labels[10:20, 10:20] == 2).all() and (labels[:10, :10] == 1).all()
    assert (labels == 3).sum() == 0  # off the grid
    mask = np.zeros((40, 40), bool)
    mask[:, :15] = True
    kept = region_labels(regions, (40, 40), 2.0, mask=mask)
    assert not kept[~mask].any() and (kept[mask] == labels[mask]).all()
    np.testing.assert_array_equal(region_boxes(kept, 3), [[0, 0, 15, 20], [10, 10, 15, 30],
                                                          [0, 0, 0, 0]])


def test_region_boxes_are_tight() -> None:
    m = blobs((150, 200), 3)
    labels = region_labels(segment_mask(m, 1.0), m.shape, 1.0)
    n = int(labels.max()) + 1  # one region more, with no pixel
    boxes = region_boxes(labels, n)
    for k in range(n - 1):
        ys, xs = np.nonzero(labels == k + 1)
        assert boxes[k].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert boxes[-1].tolist() == [0, 0, 0, 0]
    assert region_boxes(np.zeros((0, 0), np.int32), 2).shape == (2, 4)
    with pytest.raises(ValueError):
        region_boxes(labels, n - 2)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_region_extents_areas_are_the_label_counts(seed: int) -> None:
    # overlapping regions (a later one hides part of an earlier), a region with no pixel left,
    # runs that touch the row ends and runs of two labels side by side
    m = blobs((120, 170), seed, n=20)
    regions = segment_mask(m, 1.0)
    regions.append(Region(np.array([[0, 0], [170, 0], [170, 30], [0, 30]], float)))
    labels = region_labels(regions, m.shape, 1.0, mask=m > 0)
    n = len(regions) + 1
    boxes, areas = region_extents(labels, n)
    for k in range(n):  # boxes against the labels' own pixels (all zero for a label with none)
        ys, xs = np.nonzero(labels == k + 1)
        want = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 0, 0]
        assert boxes[k].tolist() == want
    np.testing.assert_array_equal(areas, np.bincount(labels.ravel(), minlength=n + 1)[1:])
    assert areas.dtype == np.int64 and areas[-1] == 0
    none = region_extents(np.zeros((0, 0), np.int32), 2)
    assert none[0].shape == (2, 4) and none[1].tolist() == [0, 0]


# ----------------------------------------------------------------------------- patch regions


@pytest.mark.parametrize("seed", [0, 1])
def test_each_patch_gets_the_region_of_most_pixels(seed: int) -> None:
    ds, size = 4, 48
    m = blobs((120, 160), seed, n=25)
    regions = segment_mask(m, ds)
    labels = region_labels(regions, m.shape, ds)
    rng = np.random.default_rng(seed)
    coords = rng.integers(-20, 640, (400, 2))  # off-grid, some past the edges
    got = patch_regions(labels, len(regions), coords, size, ds)
    counts = counts_in(upsample(labels, ds), coords, size, len(regions))[:, 1:]
    want = np.where(counts.max(1) > 0, counts.argmax(1), -1)  # ties: the lower index
    np.testing.assert_array_equal(got, want)
    assert (got == -1).any() and (got >= 0).any()
    frac = own_fraction(labels, len(regions), coords, got, size, ds)
    best = np.where(want >= 0, counts.max(1), 0) / size**2
    np.testing.assert_allclose(frac, best, atol=1e-6)


def test_no_regions() -> None:
    labels = np.zeros((50, 50), np.int32)
    coords = np.array([[0, 0], [64, 64]])
    assert patch_regions(labels, 0, coords, 64, 4.0).tolist() == [-1, -1]
    c, r = place_per_region(labels, 0, 4.0, 64, 64, (200, 200))
    assert c.shape == (0, 2) and r.shape == (0,)
    assert region_summary(labels, 0, 4.0, coords, np.array([-1, -1]), 64) == []
    assert own_fraction(labels, 0, coords, np.array([-1, -1]), 64, 4.0).tolist() == [0.0, 0.0]


# ----------------------------------------------------------------------------- per-region placement


@pytest.mark.parametrize(
    "placement, stride, edge",
    [("grid", 48, "inside"), ("grid", 32, "pad"), ("grid", 64, "inside"), ("optimal", 48, "inside"),
     ("optimal", 32, "inside")],
)
def test_per_region_patches_hold_one_region_only(placement: str, stride: int, edge: str) -> None:
    ds, size = 4, 48
    m = blobs((120, 160), 5, n=30)
    regions = segment_mask(m, ds)
    labels = region_labels(regions, m.shape, ds)
    dims = (m.shape[1] * ds, m.shape[0] * ds)
    coords, region = place_per_region(labels, len(regions), ds, size, stride, dims,
                                      placement=placement, min_foreground=0.25, edge=edge)
    assert len(coords) > 20
    assert len(np.unique(coords, axis=0)) == len(coords)  # no patch placed twice
    assert (np.lexsort((coords[:, 0], coords[:, 1])) == np.arange(len(coords))).all()
    counts = counts_in(upsample(labels, ds), coords, size, len(regions))[:, 1:]
    held = counts > 0
    assert (held.sum(1) == 1).all()  # exactly one region in every patch...
    assert (held.argmax(1) == region).all()  # ...its own
    assert (counts.max(1) >= 0.25 * size * size).all()
    np.testing.assert_array_equal(patch_regions(labels, len(regions), coords, size, ds), region)
    assert (coords >= 0).all()
    if edge == "inside":
        assert (coords + size <= np.array(dims)).all()


@pytest.mark.parametrize("placement", ["grid", "optimal"])
def test_per_region_at_a_fractional_downsample(placement: str) -> None:
    """ds = 3.7: mask pixels do not fall on level-0 pixels; measured with mask_fraction."""
    ds, size = 3.7, 48
    m = blobs((120, 160), 6, n=30)
    regions = segment_mask(m, ds)
    labels = region_labels(regions, m.shape, ds)
    dims = (int(m.shape[1] * ds), int(m.shape[0] * ds))
    coords, region = place_per_region(labels, len(regions), ds, size, size, dims,
                                      placement=placement, min_foreground=0.3)
    assert len(coords) > 20 and (coords + size <= np.array(dims)).all()
    for k in np.unique(region):
        c = coords[region == k]
        own = mask_fraction(labels == k + 1, c, size, ds)
        other = mask_fraction((labels != 0) & (labels != k + 1), c, size, ds)
        assert (own >= 0.3 - 1e-6).all() and (other == 0).all()
    np.testing.assert_array_equal(patch_regions(labels, len(regions), coords, size, ds), region)


def test_a_region_at_the_image_edge_narrower_than_a_patch_gets_one() -> None:
    ds, size = 4, 64
    labels = np.zeros((40, 40), np.int32)
    labels[10:30, 33:40] = 1  # the last 28 level-0 px of a 160 x 200 px image
    coords, region = place_per_region(labels, 1, ds, size, size, (160, 200))
    assert coords.tolist() == [[96, 40], [96, 104]] and region.tolist() == [0, 0]  # flush right
    assert (coords[:, 0] + size <= 160).all()
    s = region_summary(labels, 1, ds, coords, region, size)
    assert s[0]["coverage"] == 1.0 and s[0]["n_patches"] == 2


def test_the_grid_anchors_at_the_corner_that_avoids_the_neighbour() -> None:
    """Core A (level-0 x 64..224) lies 24 px from core B: anchored at A's left edge the third
    column would hold B and go, anchored at its right edge every column stays in the gap."""
    ds, size = 4, 64
    labels = np.zeros((64, 120), np.int32)
    labels[8:56, 16:56] = 1  # A: level-0 x 64..224, y 32..224
    labels[8:56, 62:110] = 2  # B: level-0 x 248..440
    coords, region = place_per_region(labels, 2, ds, size, size, (480, 256))
    a = coords[region == 0]
    assert sorted(set(a[:, 0].tolist())) == [32, 96, 160]  # ends at 224, A's right edge
    s = region_summary(labels, 2, ds, coords, region, size)
    assert s[0]["coverage"] == 1.0 and s[1]["coverage"] == 1.0


# ----------------------------------------------------------------------------- the pipeline


@pytest.fixture(scope="module")
def cores_image(tmp_path_factory) -> ArrayImage:
    path = tmp_path_factory.mktemp("cores") / "cores.tif"
    return ArrayImage(he_like(two_close_cores()), mpp=0.5, path=path)


@pytest.mark.parametrize("placement", ["grid", "optimal"])
def test_two_cores_closer_than_a_patch_share_none_per_region(cores_image, placement: str) -> None:
    truth = two_close_cores()
    ids = truth_ids(truth)
    size = 256

    def cores_held(ps: PatchSet) -> np.ndarray:
        counts = counts_in(ids, ps.coords, size, 2)[:, 1:]
        return (counts > 0).sum(1)

    shared = tile_image(cores_image, config(**{"patch.placement": placement}))
    assert (cores_held(shared) == 2).any()  # the global placement does share: the check bites
    ps = tile_image(cores_image, config(**{"patch.placement": placement,
                                           "patch.per_region": True}))
    assert (cores_held(ps) == 1).all()
    assert (ps.scores["foreground"] >= 0.5).all()
    rows = {r["region"]: r for r in ps.region_summary}
    assert len(rows) == 2
    for k, row in rows.items():
        assert row["n_patches"] > 0 and row["coverage"] >= 0.85, row
        held = counts_in(ids, ps.coords[ps.region == k], size, 2)[:, 1:].argmax(1)
        assert len(set(held.tolist())) == 1  # a region's patches hold one core


def test_the_default_grid_is_unchanged(cores_image) -> None:
    cfg = config()
    ps = tile_image(cores_image, cfg)
    every = np.concatenate([ps.coords, ps.rejected_coords])
    grid = grid_coords(ps.mask, ps.mask_downsample, 256, 256, (2048, 1536), min_foreground=0.0)
    assert sorted(map(tuple, every.tolist())) == sorted(map(tuple, grid.tolist()))
    assert sorted(set(ps.coords[:, 0].tolist())) == [256, 512, 768, 1024, 1280, 1536]
    assert len(ps) == 24 and ps.attrs["n_regions"] == 2 and not ps.attrs["per_region"]
    # the column on both cores goes to the one holding most of it (A: 128 px of its 256)
    a = ps.region[ps.coords[:, 0] == 256][0]
    assert (ps.region[ps.coords[:, 0] == 768] == a).all()


def test_region_ids_and_figures_round_trip(cores_image, tmp_path: Path) -> None:
    ps = tile_image(cores_image, config(**{"patch.per_region": True}), out_dir=tmp_path)
    back = PatchSet.read(tmp_path / "cores.h5")
    np.testing.assert_array_equal(back.region, ps.region)
    np.testing.assert_array_equal(back.rejected_region, ps.rejected_region)
    assert back.region_summary == ps.region_summary
    with open(tmp_path / "cores.csv") as f:
        table = list(csv.DictReader(f))
    kept = [r for r in table if r["kept"] == "True"]
    assert [int(r["region"]) for r in kept] == ps.region.tolist()
    assert [int(r["region"]) for r in table if r["kept"] != "True"] == ps.rejected_region.tolist()
    with open(tmp_path / "cores_regions.csv") as f:
        per_region = list(csv.DictReader(f))
    assert [int(r["region"]) for r in per_region] == [0, 1]
    assert sum(int(r["n_patches"]) for r in per_region) == len(ps)
    labels = region_labels(ps.regions, ps.mask.shape, ps.mask_downsample, mask=ps.mask)
    covered = 0
    for r in per_region:
        k = int(r["region"])
        cov = coverage_report(labels == k + 1, ps.mask_downsample, ps.coords, 256)
        assert float(r["coverage"]) == pytest.approx(cov["coverage"], abs=1e-6)
        assert float(r["area_level0"]) == pytest.approx(cov["foreground_px"] * 64)
        assert float(r["x0"]) == pytest.approx(ps.regions[k].bbox[0])
        covered += cov["covered_px"]
    # the regions partition the mask: their covered pixels add up to the whole image's
    whole = coverage_report(ps.mask, ps.mask_downsample, ps.coords, 256)
    assert covered == whole["covered_px"]
    assert ps.attrs["coverage"] == pytest.approx(whole["coverage"])


def test_cli_per_region_end_to_end(tmp_path: Path) -> None:
    truth = two_close_cores()
    slide = write_pyramidal_tiff(tmp_path / "cores.tiff", he_like(truth), downsamples=(4, 16),
                                 mpp=0.5, compression=None)
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "gigapatch", "tile", str(slide), "--out", str(out), "--domain",
         "generic", "--per-region", "--patch-size", "256", "--no-sharpness", "--quiet"],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr
    ps = PatchSet.read(out / "cores.h5")
    assert ps.attrs["per_region"] and len(ps) > 0
    counts = counts_in(truth_ids(truth), ps.coords, ps.patch_size_level0, 2)[:, 1:]
    assert ((counts > 0).sum(1) == 1).all()
    assert sorted(set(ps.region.tolist())) == [0, 1]
    with open(out / "summary.csv") as f:
        row = next(csv.DictReader(f))
    assert row["n_regions"] == "2" and int(row["n_patches"]) == len(ps)
    assert {"coverage", "overlap", "foreground_fraction", "seconds", "message"} <= set(row)
    with open(out / "cores_regions.csv") as f:
        assert sum(int(r["n_patches"]) for r in csv.DictReader(f)) == len(ps)
