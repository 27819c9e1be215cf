"""Patch placement (core/place.py): global grid, optimal phase search, coverage report."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gigapatch.io.geometry import patches_inside
from gigapatch.tiling.coverage import coverage_report
from gigapatch.tiling.integral import mask_fraction
from gigapatch.tiling.place import axis_positions, grid_coords, optimal_coords
from gigapatch.tiling.segment import segment_mask


def two_blobs_and_a_hole() -> np.ndarray:
    m = np.zeros((100, 120), bool)
    m[10:40, 20:60] = True  # blob A (30 x 40 mask px)
    m[20:30, 30:40] = False  # its 10 x 10 hole
    m[60:80, 80:100] = True  # blob B (20 x 20)
    return m


def brute_grid(mask, ds: int, size: int, stride: int, dims, min_fg: float, edge: str):
    """Reference: paint the mask at level 0 and count every cell with a Python loop."""
    up = np.repeat(np.repeat(mask, ds, axis=0), ds, axis=1)
    out = []
    for y in axis_positions(dims[1], size, stride, edge):
        for x in axis_positions(dims[0], size, stride, edge):
            s = int(up[y : y + size, x : x + size].sum())
            if s > 0 and s >= min_fg * size * size:
                out.append((x, y))
    return np.array(out, np.int64).reshape(-1, 2)


def blobs(seed: int, shape=(256, 256), n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, np.uint8)
    for _ in range(n):
        centre = (int(rng.integers(30, shape[1] - 30)), int(rng.integers(30, shape[0] - 30)))
        axes = (int(rng.integers(8, 30)), int(rng.integers(8, 30)))
        cv2.ellipse(m, centre, axes, float(rng.integers(0, 180)), 0, 360, 1, -1)
    return m.astype(bool)


def test_grid_known_answer() -> None:
    """ds 4, 64 px patches = 16 x 16 mask px cells, min_foreground 0.5 (128 of 256 px).

    Blob A (x 20..60, y 10..40, hole x 30..40, y 20..30) meets cells (1..3, 0..2):
    row 1: 192 - 20 = 172, 256 - 80 = 176 and 192 px -> kept; row 2 middle: 8 x 16 = 128 ->
    kept (exactly half); row 0 (6 rows high) and the other row-2 cells (96 px) -> dropped.
    Blob B (x 80..100, y 60..80) fills cell (5, 4) (256 px); its other cells hold 64 or 16 px.
    """
    m = two_blobs_and_a_hole()
    coords = grid_coords(m, 4.0, 64, 64, (480, 400), min_foreground=0.5)
    expected = [(64, 64), (128, 64), (192, 64), (128, 128), (320, 256)]
    assert coords.dtype == np.int64
    assert coords.tolist() == [list(p) for p in expected]
    frac = mask_fraction(m, coords, 64, 4.0)
    assert frac.tolist() == [172 / 256, 176 / 256, 192 / 256, 0.5, 1.0]
    # every cell that touches foreground at min_foreground 0
    touching = grid_coords(m, 4.0, 64, 64, (480, 400))
    assert len(touching) == 3 * 3 + 2 * 2
    # the segments of the same mask, for the record
    regions = segment_mask(m, 4.0)
    assert [r.area for r in regions] == [1100 * 16, 400 * 16]
    assert [len(r.holes) for r in regions] == [1, 0]


def test_grid_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        ds = int(rng.integers(1, 5))
        h, w = (int(v) for v in rng.integers(4, 30, 2))
        m = rng.random((h, w)) < rng.uniform(0.05, 0.6)
        dims = (w * ds - int(rng.integers(0, ds)), h * ds - int(rng.integers(0, ds)))
        size, stride = int(rng.integers(1, 24)), int(rng.integers(1, 24))
        min_fg = float(rng.choice([0.0, 0.25, 0.5, rng.random()]))
        for edge in ("inside", "skip", "pad", "shift"):
            got = grid_coords(m, ds, size, stride, dims, min_foreground=min_fg, edge=edge)
            exp = brute_grid(m, ds, size, stride, dims, min_fg, edge)
            assert got.shape == exp.shape and (got == exp).all()


def test_grid_edge_modes() -> None:
    m = np.ones((25, 33), bool)  # foreground everywhere, ds 4 -> level 0 is 132 x 100
    dims = (130, 97)
    inside = grid_coords(m, 4.0, 32, 24, dims, edge="inside")
    assert patches_inside(inside, 32, dims).all()
    assert len(inside) == ((130 - 32) // 24 + 1) * ((97 - 32) // 24 + 1)
    pad = grid_coords(m, 4.0, 32, 24, dims, edge="pad")
    assert (pad[:, 0] < 130).all() and (pad[:, 1] < 97).all()
    assert pad[:, 0].max() + 32 >= 130 and pad[:, 1].max() + 32 >= 97  # image covered
    assert pad[:, 0].max() - 24 + 32 < 130  # ...by the first column that reaches the edge
    small = grid_coords(m, 4.0, 200, 200, (130, 97), edge="pad")
    assert small.tolist() == [[0, 0]]  # one overhanging patch for an image smaller than it
    assert len(grid_coords(m, 4.0, 200, 200, (130, 97), edge="inside")) == 0
    with pytest.raises(ValueError):
        grid_coords(m, 4.0, 32, 32, dims, edge="mirror")


def test_axis_positions_edge_policies() -> None:
    """Known answers on one axis of 300 px, patches of 128: skip (= inside) drops the last 44 px,
    pad overhangs by 84, shift ends the last patch at the edge (overlapping its neighbour by 84)."""
    assert axis_positions(300, 128, 128, "inside").tolist() == [0, 128]
    assert axis_positions(300, 128, 128, "skip").tolist() == [0, 128]
    assert axis_positions(300, 128, 128, "pad").tolist() == [0, 128, 256]
    assert axis_positions(300, 128, 128, "shift").tolist() == [0, 128, 172]
    assert axis_positions(256, 128, 128, "shift").tolist() == [0, 128]  # aligned: no extra one
    assert axis_positions(300, 128, 64, "shift").tolist() == [0, 64, 128, 172]
    # an axis shorter than a patch: one overhanging patch (pad, shift), none (skip)
    assert axis_positions(100, 128, 128, "shift").tolist() == [0]
    assert axis_positions(100, 128, 128, "pad").tolist() == [0]
    assert axis_positions(100, 128, 128, "skip").tolist() == []
    rng = np.random.default_rng(3)
    for _ in range(300):  # shift: inside the axis, reaches its end, steps never above the stride
        length, size, stride = (int(v) for v in rng.integers(1, 400, 3))
        p = axis_positions(length, size, stride, "shift")
        inside = axis_positions(length, size, stride, "inside")
        assert p[0] == 0 and set(inside.tolist()) <= set(p.tolist())
        if length >= size:
            assert p[-1] + size == length and (p + size <= length).all()
            assert (np.diff(p) <= stride).all() and (np.diff(p) > 0).all()
        else:
            assert p.tolist() == [0]


def test_edge_policies_cover_the_image_and_flag_partial_patches() -> None:
    """End to end on a 500 x 300 image of uniform foreground, 128 px patches: skip covers 384 x
    256 px, pad and shift all of it; only pad's (and a too-small image's) patches are partial."""
    from gigapatch import ArrayImage, load_config, tile_image

    img = ArrayImage(np.full((300, 500, 3), (200, 80, 150), np.uint8))

    def run(edge: str, image: ArrayImage = img, min_fg: float = 0.0):
        cfg = load_config(overrides={"patch.size": 128, "patch.edge": edge, "score.sharpness": False,
                                     "patch.min_foreground": min_fg})
        return tile_image(image, cfg)

    def covered(ps) -> float:
        paint = np.zeros((300, 500), bool)
        for x, y in ps.coords:
            paint[y : y + 128, x : x + 128] = True
        return float(paint.mean())

    skip = run("skip")
    assert "partial" not in skip.columns and covered(skip) == pytest.approx(384 * 256 / 150000)
    pad, shift = run("pad"), run("shift")
    assert covered(pad) == 1.0 and covered(shift) == 1.0
    assert pad.columns["partial"].tolist() == [
        bool(x + 128 > 500 or y + 128 > 300) for x, y in pad.coords]
    assert pad.columns["partial"].sum() == 3 + 4 - 1  # the right column and the bottom row
    assert not shift.columns["partial"].any() and patches_inside(shift.coords, 128, (500, 300)).all()
    assert sorted({int(x) for x in shift.coords[:, 0]}) == [0, 128, 256, 372]
    assert sorted({int(y) for y in shift.coords[:, 1]}) == [0, 128, 172]
    # an image smaller than a patch: one padded patch, kept and flagged (skip keeps nothing)
    tiny = ArrayImage(np.full((100, 90, 3), (200, 80, 150), np.uint8), downsamples=())
    small = run("shift", tiny)
    assert small.coords.tolist() == [[0, 0]] and small.columns["partial"].tolist() == [True]
    assert len(run("skip", tiny)) == 0


def test_grid_restricted_to_regions() -> None:
    m = two_blobs_and_a_hole()
    regions = segment_mask(m, 4.0)
    only_b = grid_coords(m, 4.0, 64, 64, (480, 400), regions=regions[1:])
    # blob B (x 80..100, y 60..80 mask px) touches cells x 5..6, y 3..4 of 16 mask px
    assert only_b.tolist() == [[320, 192], [384, 192], [320, 256], [384, 256]]
    both = grid_coords(m, 4.0, 64, 64, (480, 400), regions=regions)
    assert (both == grid_coords(m, 4.0, 64, 64, (480, 400))).all()


def test_grid_empty_and_errors() -> None:
    e = grid_coords(np.zeros((10, 10), bool), 4.0, 16, 16, (40, 40))
    assert e.shape == (0, 2) and e.dtype == np.int64
    with pytest.raises(ValueError):
        grid_coords(np.ones((4, 4), bool), 0.0, 16, 16, (40, 40))
    with pytest.raises(ValueError):
        grid_coords(np.ones((4, 4), bool), 1.0, 0, 16, (40, 40))


def test_optimal_with_one_phase_is_the_grid() -> None:
    for seed in range(4):
        m = blobs(seed)
        for min_fg in (0.0, 0.5):
            grid = grid_coords(m, 4.0, 64, 64, (1024, 1024), min_foreground=min_fg)
            opt = optimal_coords(
                m, 4.0, 64, 64, (1024, 1024), min_foreground=min_fg, phases=1, shift_edges=False
            )
            assert (opt == grid).all()


@pytest.mark.parametrize("min_fg", [0.0, 0.25, 0.5])
def test_optimal_fewer_patches_at_equal_or_better_coverage(min_fg: float, record_property):
    """Random blobs, 64 px patches on a ds-4 mask (phase steps of 8 px = 2 mask px, so the
    mask-grid coverage report is exact)."""
    savings = []
    for seed in range(10):
        m = blobs(seed)
        args = (m, 4.0, 64, 64, (1024, 1024))
        grid = grid_coords(*args, min_foreground=min_fg)
        opt = optimal_coords(*args, min_foreground=min_fg, shift_edges=False)
        rg, ro = coverage_report(m, 4.0, grid, 64), coverage_report(m, 4.0, opt, 64)
        assert ro["covered_px"] >= rg["covered_px"]
        assert len(opt) <= len(grid)
        assert patches_inside(opt, 64, (1024, 1024)).all()
        assert len(np.unique(opt, axis=0)) == len(opt)
        frac = mask_fraction(m, opt, 64, 4.0)
        assert (frac >= min_fg).all() and (frac > 0).all()
        savings.append(1.0 - len(opt) / len(grid))
    mean = float(np.mean(savings))
    record_property(f"mean_saving_min_fg_{min_fg}", mean)
    assert mean >= 0.05, savings


def test_optimal_overlapping_stride_and_edges() -> None:
    m = blobs(11)
    m[:, :20] |= blobs(12)[:, 100:120]  # foreground touching the left image edge
    dims = (1000, 1000)  # not a multiple of the stride: shifted grids overhang the edges
    for min_fg in (0.0, 0.5):
        grid = grid_coords(m, 4.0, 64, 32, dims, min_foreground=min_fg)
        for shift in (False, True):
            opt = optimal_coords(m, 4.0, 64, 32, dims, min_foreground=min_fg, shift_edges=shift)
            assert patches_inside(opt, 64, dims).all()
            rg, ro = coverage_report(m, 4.0, grid, 64), coverage_report(m, 4.0, opt, 64)
            assert ro["covered_px"] >= rg["covered_px"]
            if not shift:
                assert len(opt) <= len(grid)
            order = np.lexsort((opt[:, 0], opt[:, 1]))
            assert (order == np.arange(len(opt))).all()  # row-major


def test_optimal_empty_and_small_image() -> None:
    assert optimal_coords(np.zeros((8, 8), bool), 4.0, 16, 16, (32, 32)).shape == (0, 2)
    assert optimal_coords(np.ones((8, 8), bool), 4.0, 64, 64, (32, 32)).shape == (0, 2)
    with pytest.raises(ValueError):
        optimal_coords(np.ones((8, 8), bool), 4.0, 16, 16, (32, 32), phases=0)


def test_coverage_report_known_boxes() -> None:
    m = np.ones((20, 20), bool)
    rep = coverage_report(m, 1.0, np.array([[0, 0], [5, 0]]), 10)
    # union 15 x 10 = 150 px, of which 5 x 10 = 50 px under both boxes
    assert rep == {
        "coverage": 150 / 400,
        "overlap": 50 / 150,
        "n_patches": 2,
        "foreground_px": 400,
        "covered_px": 150,
    }
    # boxes partly outside the mask are clipped; ds scales the boxes
    rep = coverage_report(m, 2.0, np.array([[-10, -10], [30, 30]]), 20)
    assert rep["covered_px"] == 25 + 25 and rep["overlap"] == 0.0
    empty = coverage_report(np.zeros((5, 5), bool), 1.0, np.zeros((0, 2)), 4)
    assert empty["coverage"] == 0.0 and empty["n_patches"] == 0


def test_coverage_report_matches_painting() -> None:
    rng = np.random.default_rng(5)
    for _ in range(10):
        ds = int(rng.integers(1, 4))
        m = rng.random((40, 50)) < 0.4
        coords = rng.integers(-20, 160, (30, 2)) * ds
        size = int(rng.integers(1, 12)) * ds
        count = np.zeros(m.shape, int)
        for x, y in coords // ds:
            s = size // ds
            count[max(y, 0) : max(y + s, 0), max(x, 0) : max(x + s, 0)] += 1
        rep = coverage_report(m, ds, coords, size)
        assert rep["covered_px"] == int((m & (count > 0)).sum())
        assert rep["coverage"] == pytest.approx((m & (count > 0)).sum() / m.sum())
        n_any = (count > 0).sum()
        assert rep["overlap"] == pytest.approx((count > 1).sum() / n_any if n_any else 0.0)
