"""Segmentation of a mask into polygon regions and back (core/segment.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gigapatch.tiling.segment import Region, _closure_grid, regions_to_mask, segment_mask


def two_blobs_and_a_hole() -> np.ndarray:
    m = np.zeros((100, 120), bool)
    m[10:40, 20:60] = True  # blob A: 30 x 40 = 1200 px
    m[20:30, 30:40] = False  # its 10 x 10 hole
    m[60:80, 80:100] = True  # blob B: 20 x 20 = 400 px
    return m


def test_two_blobs_and_a_hole_exact() -> None:
    ds = 4.0
    regions = segment_mask(two_blobs_and_a_hole(), ds)
    assert [r.label for r in regions] == [0, 1]
    a, b = regions
    assert a.area == (1200 - 100) * ds**2
    assert b.area == 400 * ds**2
    assert len(a.holes) == 1 and len(b.holes) == 0
    assert a.bbox == (20 * ds, 10 * ds, 60 * ds, 40 * ds)
    assert b.bbox == (80 * ds, 60 * ds, 100 * ds, 80 * ds)
    # rectangles come back as their 4 corners (collinear vertices dropped)
    assert len(a.exterior) == 4 and len(a.holes[0]) == 4 and len(b.exterior) == 4
    hole = shapely.Polygon(a.holes[0])
    assert hole.area == 100 * ds**2 and hole.bounds == (30 * ds, 20 * ds, 40 * ds, 30 * ds)
    assert (regions_to_mask(regions, (100, 120), ds) == two_blobs_and_a_hole()).all()


def test_orientation_and_validity() -> None:
    a, b = segment_mask(two_blobs_and_a_hole())
    for r in (a, b):
        poly = r.to_shapely()
        assert poly.is_valid
        assert poly.exterior.is_ccw  # GeoJSON convention in (x, y)
        assert all(not ring.is_ccw for ring in poly.interiors)
        assert poly.area == r.area


def test_min_area_and_min_hole_area() -> None:
    m = two_blobs_and_a_hole()
    assert len(segment_mask(m, 2.0, min_area=400 * 4 + 1)) == 1  # blob B (1600 px^2) dropped
    assert len(segment_mask(m, 2.0, min_area=400 * 4)) == 2  # exactly at the limit: kept
    (a, _b) = segment_mask(m, 2.0, min_hole_area=100 * 4 + 1)
    assert a.holes == [] and a.area == 1200 * 4
    filled = m.copy()
    filled[20:30, 30:40] = True
    assert (regions_to_mask(segment_mask(m, 2.0, min_hole_area=401), m.shape, 2.0) == filled).all()


def test_diagonal_pixels_are_one_region() -> None:
    m = np.zeros((4, 4), bool)
    m[1, 1] = m[2, 2] = True
    regions = segment_mask(m)
    assert len(regions) == 1 and regions[0].area == 2.0
    assert (regions_to_mask(regions, m.shape) == m).all()
    checker = (np.indices((9, 9)).sum(axis=0) % 2 == 0)
    regions = segment_mask(checker)
    assert len(regions) == 1  # 8-connected foreground
    # every background pixel off the image border is its own (4-connected) hole
    assert len(regions[0].holes) == int((~checker[1:-1, 1:-1]).sum()) == 24
    assert (regions_to_mask(regions, checker.shape) == checker).all()


def test_island_in_a_hole() -> None:
    m = np.zeros((30, 30), bool)
    m[2:28, 2:28] = True
    m[6:24, 6:24] = False
    m[10:20, 10:20] = True  # island inside the hole
    m[12:14, 12:14] = False  # a hole in the island
    regions = segment_mask(m)
    assert [len(r.holes) for r in regions] == [1, 1]
    assert [r.area for r in regions] == [26 * 26 - 18 * 18, 100 - 4]
    assert (regions_to_mask(regions, m.shape) == m).all()
    # a thin ring around a big island: the island (larger) comes first and must survive
    ring = np.zeros((40, 40), bool)
    ring[0:40, 0:40] = True
    ring[1:39, 1:39] = False
    ring[3:37, 3:37] = True
    regions = segment_mask(ring)
    assert regions[0].area == 34 * 34 and regions[1].area == 40 * 40 - 38 * 38
    assert (regions_to_mask(regions, ring.shape) == ring).all()


def test_edge_cases() -> None:
    assert segment_mask(np.zeros((5, 5), bool)) == []
    assert segment_mask(np.zeros((0, 5), bool)) == []
    full = segment_mask(np.ones((3, 4), bool), 10.0)
    assert len(full) == 1 and full[0].bbox == (0.0, 0.0, 40.0, 30.0)
    one = segment_mask(np.array([[0, 0], [0, 1]], np.uint8), 2.0, origin=(100.0, 50.0))
    assert one[0].bbox == (102.0, 52.0, 104.0, 54.0) and one[0].area == 4.0
    with pytest.raises(ValueError):
        segment_mask(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError):
        segment_mask(np.zeros((2, 2), bool), 0.0)
    assert not regions_to_mask([], (3, 3)).any()


def test_regions_to_mask_general_polygons() -> None:
    """Pixels whose centres are inside (random polygons against shapely), overlapping regions
    unite, and polygons are clipped to the mask."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:20, 0:20] + 0.5
    centres = np.c_[xx.ravel(), yy.ravel()]
    tested = 0
    for _ in range(60):
        pts = rng.uniform(-3, 23, (int(rng.integers(3, 9)), 2))
        poly = shapely.Polygon(pts)
        if not poly.is_valid:
            continue
        inside = shapely.contains_xy(poly, centres[:, 0], centres[:, 1]).reshape(20, 20)
        assert (regions_to_mask([Region(exterior=pts)], (20, 20)) == inside).all()
        tested += 1
    assert tested > 15
    r1 = Region(exterior=np.array([[0, 0], [6, 0], [6, 6], [0, 6]], float))
    r2 = Region(exterior=np.array([[4, 4], [10, 4], [10, 10], [4, 10]], float))
    out = regions_to_mask([r1, r2], (10, 10))
    expected = np.zeros((10, 10), bool)
    expected[0:6, 0:6] = expected[4:10, 4:10] = True
    assert (out == expected).all()
    # level-0 polygons partly outside the mask are clipped
    big = Region(exterior=np.array([[-40, -40], [400, -40], [400, 20], [-40, 20]], float))
    assert (regions_to_mask([big], (10, 10), 4.0) == (np.arange(10) < 5)[:, None]).all()


@settings(max_examples=100, deadline=None)
@given(
    mask=arrays(bool, st.tuples(st.integers(1, 24), st.integers(1, 24))),
    ds=st.sampled_from([1.0, 0.5, 2.5, 16.0, 7.3]),
)
def test_round_trip_any_mask(mask: np.ndarray, ds: float) -> None:
    regions = segment_mask(mask, ds)
    assert (regions_to_mask(regions, mask.shape, ds) == mask).all()
    assert sum(r.area for r in regions) == pytest.approx(mask.sum() * ds * ds)
    areas = np.array([r.area for r in regions])
    assert np.all(np.diff(areas) <= 1e-9 * ds * ds)  # largest first
    assert [r.label for r in regions] == list(range(len(regions)))


def test_round_trip_random_dense() -> None:
    rng = np.random.default_rng(7)
    for p in (0.2, 0.5, 0.8):
        m = rng.random((120, 90)) < p
        regions = segment_mask(m, 3.0)
        assert (regions_to_mask(regions, m.shape, 3.0) == m).all()


def test_closure_grid_is_the_dilated_pixel_cells():
    rng = np.random.default_rng(1)
    for shape in [(1, 1), (1, 6), (6, 1), (9, 7), (64, 100)]:
        for p in (0.1, 0.5, 0.9):
            m = rng.random(shape) < p
            u = np.zeros((2 * shape[0] + 1, 2 * shape[1] + 1), np.uint8)
            u[1::2, 1::2] = m
            assert np.array_equal(_closure_grid(m), cv2.dilate(u, np.ones((3, 3), np.uint8)))
