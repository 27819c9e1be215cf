"""Border placement (gigapatch.tiling.border): the grid, plus shifted patches that take the
foreground the grid's passing cells leave, checked against brute force on the lattice."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gigapatch.tiling.border import border_coords, lattice_positions
from gigapatch.tiling.integral import mask_fraction
from gigapatch.tiling.pieces import small_pieces_note
from gigapatch.tiling.place import grid_coords

DS = 8.0
SIZE = 256
DIMS = (4096, 3072)


def blobs(seed: int) -> np.ndarray:
    """A (384, 512) mask at downsample 8: a few ragged ellipses."""
    rng = np.random.default_rng(seed)
    m = np.zeros((DIMS[1] // 8, DIMS[0] // 8), np.uint8)
    for _ in range(4):
        c = (int(rng.integers(60, 450)), int(rng.integers(60, 320)))
        axes = (int(rng.integers(20, 90)), int(rng.integers(15, 70)))
        cv2.ellipse(m, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    noise = cv2.GaussianBlur(rng.standard_normal(m.shape).astype(np.float32), (0, 0), 3)
    return (m.astype(bool) & (noise > -0.8)) | (cv2.dilate(m, np.ones((5, 5))).astype(bool)
                                                  & (noise > 0.9))


def covered(coords: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mask pixels (centre rule) inside any patch, by brute force."""
    out = np.zeros(shape, bool)
    for x, y in coords:
        c0, c1 = int(np.ceil(x / DS - 0.5)), int(np.ceil((x + SIZE) / DS - 0.5))
        r0, r1 = int(np.ceil(y / DS - 0.5)), int(np.ceil((y + SIZE) / DS - 0.5))
        out[max(r0, 0) : r1, max(c0, 0) : c1] = True
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_border_adds_shifted_patches_that_take_uncovered_foreground(seed):
    m = blobs(seed)
    bar = 0.6
    coords = border_coords(m, DS, SIZE, SIZE, DIMS, min_foreground=bar, rounds=50)
    grid = grid_coords(m, DS, SIZE, SIZE, DIMS, min_foreground=0.0)
    as_set = {tuple(c) for c in coords.tolist()}
    assert {tuple(c) for c in grid.tolist()} <= as_set and len(as_set) == len(coords)
    order = np.lexsort((coords[:, 0], coords[:, 1]))
    assert np.array_equal(order, np.arange(len(coords)))  # row-major
    shifted = np.array([c for c in coords.tolist() if tuple(c) not in
                        {tuple(g) for g in grid.tolist()}])
    assert len(shifted) > 0
    assert (shifted[:, 0] + SIZE <= DIMS[0]).all() and (shifted[:, 1] + SIZE <= DIMS[1]).all()
    assert (shifted % (SIZE // 8) == 0).all()  # on the size / 8 lattice
    assert (mask_fraction(m, shifted, SIZE, DS) >= bar - 1e-6).all()
    passing = grid[mask_fraction(m, grid, SIZE, DS) >= bar]
    kept = np.concatenate([passing, shifted])
    # more foreground under patches that pass the bar than the grid alone takes
    assert (m & covered(kept, m.shape)).sum() > 1.02 * (m & covered(passing, m.shape)).sum()
    # done: no lattice patch passing the bar could still take 10 % of a patch of new foreground
    xs, ys = lattice_positions(DIMS[0], SIZE, 8), lattice_positions(DIMS[1], SIZE, 8)
    lattice = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    ok = mask_fraction(m, lattice, SIZE, DS) >= bar
    left = m & ~covered(kept, m.shape)
    gain = mask_fraction(left, lattice[ok], SIZE, DS)
    assert gain.max() < 0.1 + 0.02  # the centre rule of painting vs area weights


def test_border_keeps_shifted_patches_off_artefacts():
    m = blobs(3)
    col = int(np.argmax(m.sum(axis=0)))
    ink = np.zeros_like(m)
    ink[:, col : col + 2] = True  # a thin stroke across the tissue: 6 % of a patch
    mask = m & ~ink
    grid = {tuple(g) for g in grid_coords(mask, DS, SIZE, SIZE, DIMS).tolist()}

    def shifted(coords: np.ndarray) -> np.ndarray:
        return np.array([c for c in coords.tolist() if tuple(c) not in grid])

    free = shifted(border_coords(mask, DS, SIZE, SIZE, DIMS, min_foreground=0.6))
    kept_off = shifted(border_coords(mask, DS, SIZE, SIZE, DIMS, min_foreground=0.6, avoid=ink))
    assert (mask_fraction(ink, free, SIZE, DS) > 0.03).any()  # some would sit on the stroke
    assert len(kept_off) > 0
    near = cv2.dilate(ink.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert (mask_fraction(near, kept_off, SIZE, DS) == 0).all()  # off the stroke and its edge
    # the cells the stroke crosses cover nothing: tissue beside it is taken by shifted patches
    crossed = np.array([g for g in grid if mask_fraction(ink, np.array([g]), SIZE, DS)[0] > 0.03])
    assert len(crossed) and any(
        (np.abs(kept_off - c).max(axis=1) < SIZE).any() for c in crossed)


def test_border_without_foreground_or_room():
    empty = np.zeros((384, 512), bool)
    assert border_coords(empty, DS, SIZE, SIZE, DIMS).shape == (0, 2)
    m = blobs(0)
    assert np.array_equal(border_coords(m, DS, SIZE, SIZE, DIMS, rounds=0),
                          grid_coords(m, DS, SIZE, SIZE, DIMS))
    full = np.ones((384, 512), bool)  # the grid takes everything: nothing to add
    assert np.array_equal(border_coords(full, DS, SIZE, SIZE, DIMS, min_foreground=0.6),
                          grid_coords(full, DS, SIZE, SIZE, DIMS))


def test_small_pieces_are_named():
    m = np.zeros((100, 100), bool)
    m[10:17, 20:32] = True  # 12 x 7 px at ds 8: 96 x 56 level-0 px
    note = small_pieces_note(m, DS, SIZE, 0.6)
    assert note is not None and "one piece" in note and "96 x 56" in note
    assert small_pieces_note(m, DS, 64, 0.6) is None  # a 64 px patch can hold it
    assert small_pieces_note(np.zeros((10, 10), bool), DS, SIZE, 0.6) is None


def test_box_counts_and_union_match_painting_each_box() -> None:
    """The difference-array counts (float32 integral) against boxes painted one by one."""
    from gigapatch.tiling.coverage import box_counts, box_union

    rng = np.random.default_rng(7)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        n = int(rng.integers(0, 300))
        r0, c0 = rng.integers(0, h, n), rng.integers(0, w, n)
        r1 = np.minimum(h - 1, r0 + rng.integers(0, 20, n))
        c1 = np.minimum(w - 1, c0 + rng.integers(0, 20, n))
        want = np.zeros((h, w), np.int32)
        for a, b, c, d in zip(r0, r1, c0, c1):
            want[a:b, c:d] += 1
        got = box_counts((h, w), r0, r1, c0, c1)
        assert got.dtype == np.int32 and np.array_equal(got, want)
        assert np.array_equal(box_union((h, w), r0, r1, c0, c1), want > 0)
    assert box_counts((0, 5), *(np.zeros(0, np.int64),) * 4).shape == (0, 5)
