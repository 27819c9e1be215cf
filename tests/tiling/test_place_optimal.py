"""Coverage-optimal placement (core/place.py optimal_coords, core/cover.py shelf layouts)."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from gigapatch.io.geometry import patches_inside
from gigapatch.tiling.coverage import coverage_report
from gigapatch.tiling.integral import box_sums, integral_image, mask_fraction
from gigapatch.tiling.place import grid_coords, optimal_coords
from gigapatch.tiling.shelves import _backtrack, _dp

DS, SIZE = 4.0, 64  # 64 px patches = 16 mask px; lattice steps of 8 px = 2 mask px (exact report)


def exact_cover(mask: np.ndarray, coords: np.ndarray, size: int = SIZE, ds: float = DS) -> float:
    """Foreground area (mask px^2) under non-overlapping patches."""
    x0, y0 = coords[:, 0] / ds, coords[:, 1] / ds
    side = size / ds
    return float(box_sums(integral_image(mask), x0, y0, x0 + side, y0 + side).sum())


def overlap_px(coords: np.ndarray, size: int, dims: tuple[int, int]) -> int:
    """Level-0 pixels under more than one patch, painted."""
    count = np.zeros((dims[1], dims[0]), np.int16)
    for x, y in coords:
        count[y : y + size, x : x + size] += 1
    return int((count > 1).sum())


def line_bound(mask: np.ndarray, side: float) -> float:
    """Fewest non-overlapping squares of ``side`` mask px covering all of ``mask``: every
    horizontal line crosses disjoint intervals of length ``side`` covering its foreground, at
    least the greedy count of them, and ``n * side`` is the integral of that count over y."""
    total = 0
    for row in mask:
        end = -np.inf
        for j in np.flatnonzero(row):
            if j + 1 > end:
                total += 1
                end = max(j, end) + side
    return total / side


def blobs(seed: int, shape=(256, 256), n: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, np.uint8)
    for _ in range(n):
        centre = (int(rng.integers(30, shape[1] - 30)), int(rng.integers(30, shape[0] - 30)))
        axes = (int(rng.integers(8, 40)), int(rng.integers(8, 40)))
        cv2.ellipse(m, centre, axes, float(rng.integers(0, 180)), 0, 360, 1, -1)
    return m.astype(bool)


def check_layout(mask, coords, dims, min_fg, size=SIZE, ds=DS) -> None:
    assert coords.dtype == np.int64 and coords.shape[1:] == (2,)
    assert patches_inside(coords, size, dims).all()
    assert overlap_px(coords, size, dims) == 0
    frac = mask_fraction(mask, coords, size, ds)
    assert (frac > 0).all() and (frac >= min_fg - 1e-6).all()
    order = np.lexsort((coords[:, 0], coords[:, 1]))
    assert (order == np.arange(len(coords))).all()  # row-major


def test_dp_matches_brute_force() -> None:
    """The 1-D DP: best sum of items at least ``steps`` apart, against every subset."""
    rng = np.random.default_rng(0)
    for _ in range(30):
        t, steps = int(rng.integers(1, 11)), int(rng.integers(1, 4))
        v = rng.normal(1.0, 1.0, (t, 2))
        v[rng.random((t, 2)) < 0.2] = -np.inf
        lams = np.array([0.0, 0.7])
        best, count, take = _dp(v, lams, steps, keep_take=True)
        for r, k in itertools.product(range(2), range(2)):
            brute = 0.0
            for n in range(1, t + 1):
                for sub in itertools.combinations(range(t), n):
                    if np.diff(sub).min(initial=steps) >= steps:
                        brute = max(brute, float(np.sum(v[list(sub), r] - lams[k])))
            assert best[r, k] == pytest.approx(brute)
            cols, slots = _backtrack(take, np.array([r]), np.array([k]), steps)
            assert (cols == r).all() and len(slots) == count[r, k]
            assert np.diff(np.sort(slots)).min(initial=steps) >= steps
            assert float(np.sum(v[slots, r] - lams[k])) == pytest.approx(brute)


def test_rectangle_known_answer() -> None:
    """A 3.5 x 2.5 patch rectangle at (100, 30) px: the grid meets 5 x 3 cells, 4 x 3 patches
    cover it all (each horizontal line needs 4 patches, each vertical one 3)."""
    dims = (640, 384)
    m = np.zeros((dims[1] // 4, dims[0] // 4), bool)
    m[30 // 4 + 0 : 30 // 4 + 40, 25 : 25 + 56] = True  # y 28..188, x 100..324 px
    for min_fg in (0.0, 0.01):
        grid = grid_coords(m, DS, SIZE, SIZE, dims, min_foreground=min_fg)
        opt = optimal_coords(m, DS, SIZE, SIZE, dims, min_foreground=min_fg)
        assert len(grid) == 15 and len(opt) == 12
        assert coverage_report(m, DS, grid, SIZE)["coverage"] == 1.0
        assert coverage_report(m, DS, opt, SIZE)["coverage"] == 1.0
        check_layout(m, opt, dims, min_fg)


def test_disc_at_full_coverage() -> None:
    """A disc of radius 5 patches: every cell touching it (the grid) against the optimal cover,
    which must reach the same (full) coverage and cannot beat the line bound."""
    dims = (1024, 1024)
    m = np.zeros((256, 256), np.uint8)
    cv2.circle(m, (131, 125), 80, 1, -1)
    m = m.astype(bool)
    grid = grid_coords(m, DS, SIZE, SIZE, dims, min_foreground=0.0)
    opt = optimal_coords(m, DS, SIZE, SIZE, dims, min_foreground=0.0)
    rg, ro = coverage_report(m, DS, grid, SIZE), coverage_report(m, DS, opt, SIZE)
    assert rg["coverage"] == ro["coverage"] == 1.0
    assert ro["overlap"] == 0.0
    bound = max(line_bound(m, 16.0), line_bound(m.T, 16.0))
    assert bound <= len(opt) < len(grid)
    assert len(opt) <= 0.95 * len(grid)  # 92 patches against 98 cells (measured)
    check_layout(m, opt, dims, 0.0)


@pytest.mark.parametrize(("min_fg", "saving"), [(0.0, 0.05), (0.01, 0.05), (0.5, 0.01), (0.9, 0.0)])
def test_never_more_patches_at_equal_or_better_coverage(min_fg, saving, record_property) -> None:
    dims = (1000, 1016)  # not a multiple of the patch: the lattice must stay inside
    savings = []
    for seed in range(8):
        m = blobs(seed)
        m[:, :12] |= blobs(seed + 100)[:, 40:52]  # foreground on the image edge
        grid = grid_coords(m, DS, SIZE, SIZE, dims, min_foreground=min_fg)
        opt = optimal_coords(m, DS, SIZE, SIZE, dims, min_foreground=min_fg)
        assert len(opt) <= len(grid)
        assert exact_cover(m, opt) >= exact_cover(m, grid) * (1 - 1e-9)
        rg, ro = coverage_report(m, DS, grid, SIZE), coverage_report(m, DS, opt, SIZE)
        assert ro["covered_px"] >= rg["covered_px"]  # lattice on mask px: same measure
        check_layout(m, opt, dims, min_fg)
        assert (optimal_coords(m, DS, SIZE, SIZE, dims, min_foreground=min_fg) == opt).all()
        savings.append(1.0 - len(opt) / len(grid))
    record_property(f"mean_saving_{min_fg}", float(np.mean(savings)))
    print(min_fg, np.round(savings, 3))
    assert np.mean(savings) >= saving, savings


def test_one_step_is_the_grid_and_gaps_stay() -> None:
    m = blobs(3)
    for min_fg in (0.0, 0.5):
        grid = grid_coords(m, DS, SIZE, SIZE, (1024, 1024), min_foreground=min_fg)
        opt = optimal_coords(m, DS, SIZE, SIZE, (1024, 1024), min_foreground=min_fg, phases=1)
        assert (opt == grid).all()  # the lattice is the grid: every kept cell is needed
        # stride > size: the grid has gaps; shelves cover at least as much, without overlap
        sparse = grid_coords(m, DS, SIZE, 80, (1024, 1024), min_foreground=min_fg)
        opt = optimal_coords(m, DS, SIZE, 80, (1024, 1024), min_foreground=min_fg)
        assert len(opt) <= len(sparse)
        assert exact_cover(m, opt) >= exact_cover(m, sparse) * (1 - 1e-9)
        check_layout(m, opt, (1024, 1024), min_fg)


def test_regions_and_empty() -> None:
    from gigapatch.tiling.segment import segment_mask

    m = blobs(5)
    regions = segment_mask(m, DS)
    big = max(regions, key=lambda r: r.area)
    opt = optimal_coords(m, DS, SIZE, SIZE, (1024, 1024), min_foreground=0.0, regions=[big])
    grid = grid_coords(m, DS, SIZE, SIZE, (1024, 1024), regions=[big])
    assert 0 < len(opt) <= len(grid)
    x0, y0, x1, y1 = big.bbox
    assert (opt[:, 0] + SIZE > x0).all() and (opt[:, 0] < x1).all()
    assert (opt[:, 1] + SIZE > y0).all() and (opt[:, 1] < y1).all()
    empty = optimal_coords(np.zeros((64, 64), bool), DS, SIZE, SIZE, (256, 256))
    assert empty.shape == (0, 2) and empty.dtype == np.int64


def test_synthetic_slide_with_real_texture(pathology_dir: Path) -> None:
    """Ragged tissue pieces cut from a real H&E slide, masked as the pipeline does."""
    from gigapatch import load_config, resolve_geometry
    from gigapatch.tiling.pipeline import compute_mask
    from gigapatch_pathology.synth import synthetic_slide

    texture = pathology_dir / "CMU-1-Small-Region.svs"
    img, _ = synthetic_slide(1, (3072, 2304), texture)
    cfg = load_config(domain="pathology")
    geom = resolve_geometry(img, cfg.patch)
    _, mask, ds, _ = compute_mask(img, cfg, geom.size_level0)
    size, dims = geom.size_level0, img.dimensions
    for min_fg in (0.01, 0.5):
        grid = grid_coords(mask, ds, size, size, dims, min_foreground=min_fg)
        opt = optimal_coords(mask, ds, size, size, dims, min_foreground=min_fg)
        assert 0 < len(opt) < len(grid)
        assert exact_cover(mask, opt, size, ds) >= exact_cover(mask, grid, size, ds) * (1 - 1e-9)
        check_layout(mask, opt, dims, min_fg, size, ds)


def test_groups_whose_layouts_overlap_are_merged() -> None:
    """Two pieces 20 mask px apart (separate groups, one merged group), each pinned to an image
    edge: covering both fully takes 4 patches each, which would overlap by 4 px; solved as one
    group the best disjoint layout covers 100 of the 104 px of each row."""
    from gigapatch.tiling.shelves import _overlapping, shelf_coords

    m = np.zeros((16, 124), bool)
    m[:, :52] = True
    m[:, 72:] = True
    dims = (496, 64)
    assert shelf_coords(m, DS, SIZE, dims, min_foreground=0.0, target=101 * 16) is None
    coords, cover = shelf_coords(m, DS, SIZE, dims, min_foreground=0.0, target=100 * 16)
    assert cover == 100 * 16 and len(coords) == 7
    check_layout(m, coords, dims, 0.0)
    assert _overlapping(np.array([[0, 0], [7, 7]]), 8)
    assert not _overlapping(np.array([[0, 0], [8, 0], [0, 8], [8, 8]]), 8)
