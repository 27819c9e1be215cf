"""Tile mosaics: placement, padding, group selection, flips (numpy only, no torch)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from gigapatch import ArrayImage, make_mosaic
from gigapatch.training.stitch import (
    flip_mosaic,
    flip_tiles,
    grid_side,
    mosaic_positions,
    rank_order,
    read_tiles,
    select_tiles,
    split_mosaic,
    tile_groups,
)


def _numbered(n: int, s: int) -> np.ndarray:
    """(n, s, s, 3) patches whose pixels all equal their index (distinct, none white)."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, s, s, 3)).copy()


@pytest.mark.parametrize("n_tiles", [1, 2, 4, 5, 9, 16, 36, 37])
def test_grid_side_is_ceil_sqrt(n_tiles: int) -> None:
    assert grid_side(n_tiles) == math.ceil(math.sqrt(n_tiles))


@pytest.mark.parametrize(("n", "n_tiles"), [(36, 36), (30, 36), (5, 9), (1, 4), (7, 7)])
def test_tile_i_lands_in_its_cell(n: int, n_tiles: int) -> None:
    s = 8
    m = make_mosaic(_numbered(n, s), n_tiles)
    g = math.ceil(math.sqrt(n_tiles))
    assert m.shape == (g * s, g * s, 3) and m.dtype == np.uint8
    for i in range(g * g):
        cell = m[(i // g) * s : (i // g + 1) * s, (i % g) * s : (i % g + 1) * s]
        expected = i if i < n else 255  # missing tiles are white
        assert (cell == expected).all(), f"cell {i}"


def test_positions_match_the_mosaic() -> None:
    s, n = 6, 10
    m = make_mosaic(_numbered(n, s), n)
    for i, (x, y) in enumerate(mosaic_positions(n, s)):
        assert (m[y : y + s, x : x + s] == i).all()


def test_split_inverts_make() -> None:
    rng = np.random.default_rng(0)
    p = rng.integers(0, 256, (9, 5, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(split_mosaic(make_mosaic(p), 5), p)


def test_fill_value_and_errors() -> None:
    m = make_mosaic(_numbered(2, 4), 4, fill=7)
    assert (m[4:, :] == 7).all() and (m[:4, :4] == 0).all()
    with pytest.raises(ValueError):
        make_mosaic(_numbered(5, 4), 4)  # more patches than cells
    with pytest.raises(ValueError):
        make_mosaic(np.zeros((2, 4, 5, 3), np.uint8), 4)  # not square


def test_rank_order_descending_stable_nan_last() -> None:
    s = np.array([0.5, 0.9, np.nan, 0.9, 0.1])
    np.testing.assert_array_equal(rank_order(s), [1, 3, 0, 4, 2])
    np.testing.assert_array_equal(rank_order(s, descending=False), [4, 0, 1, 3, 2])


@pytest.mark.parametrize(("m", "n"), [(100, 36), (72, 36), (10, 36), (37, 36), (1, 1)])
def test_groups_are_full_and_cover_every_rank(m: int, n: int) -> None:
    groups = tile_groups(m, n)
    covered = np.zeros(m, bool)
    for start, stop in groups:
        assert stop - start == min(n, m)
        covered[start:stop] = True
    assert covered.all()
    assert len(groups) == max(1, math.ceil(m / n))


def test_select_groups() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(100)
    order = np.argsort(-scores)
    first = select_tiles(scores, 36, group="first")
    np.testing.assert_array_equal(first, order[:36])  # the 36 best
    np.testing.assert_array_equal(select_tiles(scores, 36, group="middle"), order[36:72])
    np.testing.assert_array_equal(select_tiles(scores, 36, group="last"), order[64:100])
    # few patches: all of them, best first
    np.testing.assert_array_equal(select_tiles(scores[:5], 36), np.argsort(-scores[:5]))


def test_cycle_and_random_groups_see_every_patch() -> None:
    scores = np.random.default_rng(2).random(50)
    seen_cycle = set()
    for epoch in range(len(tile_groups(50, 16))):
        seen_cycle |= set(select_tiles(scores, 16, group="cycle", epoch=epoch).tolist())
    assert seen_cycle == set(range(50))
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(40):
        idx = select_tiles(scores, 16, group="random", rng=rng)
        assert len(idx) == 16 and len(set(idx.tolist())) == 16
        seen |= set(idx.tolist())
    assert seen == set(range(50))
    with pytest.raises(ValueError):
        select_tiles(scores, 16, group="best")  # type: ignore[arg-type]


def test_flip_tiles_flips_each_tile_independently() -> None:
    p = np.random.default_rng(4).integers(0, 256, (64, 4, 4, 3), dtype=np.uint8)
    out = flip_tiles(p, np.random.default_rng(5))
    kinds = set()
    for a, b in zip(p, out):
        options = {
            "none": a, "h": a[:, ::-1], "v": a[::-1], "hv": a[::-1, ::-1],
        }
        match = [k for k, v in options.items() if np.array_equal(v, b)]
        assert match, "each output tile is a flip of its input tile"
        kinds.add(match[0])
    assert kinds == {"none", "h", "v", "hv"}
    assert not np.shares_memory(out, p)


def test_flip_mosaic() -> None:
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    got = {flip_mosaic(img, seed).tobytes() for seed in range(32)}
    want = {img.tobytes(), img[:, ::-1].tobytes(), img[::-1].tobytes(), img[::-1, ::-1].tobytes()}
    assert got == want


def test_read_tiles_from_level0_coords() -> None:
    rng = np.random.default_rng(6)
    arr = rng.integers(0, 256, (256, 320, 3), dtype=np.uint8)
    img = ArrayImage(arr, downsamples=(4,))
    coords = np.array([[0, 0], [64, 32], [300, 200]])  # the last one overhangs: white padding
    t = read_tiles(img, coords, level=0, read_size=32)
    np.testing.assert_array_equal(t[1], arr[32:64, 64:96])
    assert (t[2][:, 20:] == 255).all() and np.array_equal(t[2][:, :20], arr[200:232, 300:320])
    # level 1 (downsample 4): a 16 px read covers 64 level-0 px, resized up to 32
    t1 = read_tiles(img, coords[:2], level=1, read_size=16, size=32)
    assert t1.shape == (2, 32, 32, 3)
    small = img.read_region((64, 32), 1, (16, 16))
    np.testing.assert_allclose(t1[1][::2, ::2].astype(float).mean(), small.astype(float).mean(), atol=3)


def test_stitch_imports_without_torch() -> None:
    code = (
        "import sys, gigapatch, gigapatch.training.stitch, gigapatch.training, gigapatch.cli.train;"
        "import gigapatch_pathology.training, gigapatch_pathology.panda;"  # the domain's hook
        "gigapatch.make_mosaic; gigapatch.training.TrainConfig;"
        "assert 'torch' not in sys.modules, 'torch imported';"
        "assert 'timm' not in sys.modules and 'sklearn' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
