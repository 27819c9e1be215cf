"""Border placement: the global grid, plus patches shifted along the foreground's border.

A grid cell on the border of the foreground often holds too little of it to be kept, and
its foreground is then lost, although a patch shifted by part of a side would hold enough.
:func:`border_coords` keeps every cell of the grid (so interior patches stay aligned with the
image's tiles and with earlier runs) and adds such shifted patches: on a lattice of ``size /
steps`` level-0 px, the positions whose patch holds at least ``min_foreground`` and whose
foreground *not yet covered* by the grid's passing cells (or by patches added before) is at
least ``min_gain`` of the patch. They are chosen in rounds, each vectorised over the lattice:
a position is taken when its new foreground is the largest within one patch side of it (so
the patches taken in one round never overlap each other), then the covered foreground is
updated and the next round looks again. Added patches may overlap the grid's cells. With
artefacts to avoid (marker ink), a shifted patch holds little of them, and a grid cell holding
more counts as covering nothing: the pen rule will reject it, and the tissue beside the stroke
is then taken by patches shifted off it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from gigapatch.tiling.coverage import box_counts
from gigapatch.tiling.integral import grid_box_sums, integral_table, mask_fraction
from gigapatch.tiling.place import grid_coords

#: lattice steps per patch side at most (the lattice is never finer than two mask pixels)
STEPS = 8
#: least new (uncovered) foreground, as a share of the patch, for a shifted patch
MIN_GAIN = 0.1
#: rounds of choices at most
ROUNDS = 6
#: most of a shifted patch on the artefacts to avoid, grown by ``AVOID_GROW`` mask pixels
#: (marker ink: the ink a coarse mask misses lies along its edge, and a patch shifted flush
#: against a stroke would often hold more than the pen rule allows)
MAX_AVOID = 0.0
AVOID_GROW = 1
#: a grid cell with more of the artefacts than this counts as covering nothing
PASS_AVOID = 0.03
#: lattice rows evaluated at a time (bounds memory on huge images)
_ROW_BLOCK = 128


def lattice_positions(length: int, size: int, steps: int) -> np.ndarray:
    """Level-0 positions ``(k * size) // steps`` along an axis of ``length`` px whose patch lies
    inside it: (n,) int64."""
    if length < size:
        return np.zeros(0, np.int64)
    k = np.arange((length - size) * steps // size + 1, dtype=np.int64)
    p = k * size // steps
    return p[p + size <= length]


def _paint(shape: tuple[int, int], coords: np.ndarray, size: int, ds: float) -> np.ndarray:
    """(h, w) bool: the mask pixels whose centre lies in one of the patches at ``coords``."""
    h, w = shape
    c = np.asarray(coords, np.float64).reshape(-1, 2)
    if len(c) == 0:
        return np.zeros(shape, bool)
    c0 = np.clip(np.ceil(c[:, 0] / ds - 0.5), 0, w).astype(np.int64)
    c1 = np.clip(np.ceil((c[:, 0] + size) / ds - 0.5), 0, w).astype(np.int64)
    r0 = np.clip(np.ceil(c[:, 1] / ds - 0.5), 0, h).astype(np.int64)
    r1 = np.clip(np.ceil((c[:, 1] + size) / ds - 0.5), 0, h).astype(np.int64)
    counts = box_counts((h + 1, w + 1), r0, r1, c0, c1)[:h, :w]
    return counts > 0


def _lattice_shares(table: np.ndarray, xs: np.ndarray, ys: np.ndarray, size: int,
                    ds: float) -> np.ndarray:
    """(ny, nx) float32 share of each lattice patch covered by the mask behind ``table``: exact
    sums of the table's corners where the lattice falls on mask pixel edges, else area-weighted
    (:func:`~gigapatch.tiling.integral.grid_box_sums`)."""
    area = (size / ds) ** 2
    cx0, cx1, cy0, cy1 = xs / ds, (xs + size) / ds, ys / ds, (ys + size) / ds
    edges = np.concatenate([cx0, cx1, cy0, cy1])
    if np.array_equal(edges, np.round(edges)):  # on pixel edges: four gathers, no interpolation
        h, w = table.shape[0] - 1, table.shape[1] - 1
        x0, x1 = np.clip(cx0, 0, w).astype(np.intp), np.clip(cx1, 0, w).astype(np.intp)
        y0 = np.clip(cy0, 0, h).astype(np.intp)[:, None]
        y1 = np.clip(cy1, 0, h).astype(np.intp)[:, None]
        t = table  # exact integer sums
        sums = t[y1, x1] - t[y0, x1] - t[y1, x0] + t[y0, x0]
        return (sums / area).astype(np.float32)
    out = np.empty((len(ys), len(xs)), np.float32)
    for s in range(0, len(ys), _ROW_BLOCK):
        yb = ys[s : s + _ROW_BLOCK]
        out[s : s + len(yb)] = grid_box_sums(table, xs / ds, (xs + size) / ds, yb / ds,
                                             (yb + size) / ds) / area
    return out


def border_coords(
    mask: np.ndarray,
    mask_downsample: float,
    size_level0: int,
    stride_level0: int,
    dims: tuple[int, int],
    *,
    min_foreground: float = 0.5,
    edge: Literal["inside", "skip", "pad", "shift"] = "inside",
    steps: int | None = None,
    min_gain: float | None = None,
    rounds: int | None = None,
    avoid: np.ndarray | None = None,
    max_avoid: float | None = None,
) -> np.ndarray:
    """Every grid cell touching the foreground, plus shifted patches along its border.

    Parameters
    ----------
    mask : (h, w) bool foreground at ``mask_downsample``.
    mask_downsample : level-0 px per mask px.
    size_level0, stride_level0 : patch side and step of the grid in level-0 px.
    dims : (width, height) of level 0; shifted patches lie wholly inside it.
    min_foreground : foreground share a patch needs to count as covering its foreground (the
        grid's cells) and to be added (shifted patches).
    edge : the grid's edge rule (:func:`~gigapatch.tiling.place.grid_coords`).
    steps : lattice steps per patch side (capped so a step is at least two mask pixels;
        default :data:`STEPS`).
    min_gain : least uncovered foreground, as a share of the patch, a shifted patch must add
        (default :data:`MIN_GAIN`).
    rounds : rounds of choices at most (see the module; default :data:`ROUNDS`).
    avoid : (h, w) bool on the mask's grid (artefacts: marker ink...), or None: a shifted patch
        holds at most ``max_avoid`` (default :data:`MAX_AVOID`) of it grown by
        :data:`AVOID_GROW` mask pixels, and a grid cell holding more than :data:`PASS_AVOID`
        of it is not counted as covering its foreground (it stays a candidate: the selection
        rules judge it).

    Returns
    -------
    (N, 2) int64 level-0 top-left (x, y), unique, in row-major order (y, then x): the grid's
    cells holding any foreground and the shifted patches.
    """
    import cv2

    steps = STEPS if steps is None else steps
    min_gain = MIN_GAIN if min_gain is None else min_gain
    rounds = ROUNDS if rounds is None else rounds
    max_avoid = MAX_AVOID if max_avoid is None else max_avoid
    m = np.asarray(mask) != 0
    size, ds = int(size_level0), float(mask_downsample)
    grid = grid_coords(m, ds, size, int(stride_level0), dims, min_foreground=0.0, edge=edge)
    if len(grid) == 0 or rounds < 1:
        return grid
    steps = max(1, min(int(steps), int(size / (2 * ds))))  # a step of 2 mask px or more
    w0, h0 = int(dims[0]), int(dims[1])
    xs, ys = lattice_positions(w0, size, steps), lattice_positions(h0, size, steps)
    if len(xs) == 0 or len(ys) == 0:
        return grid
    # only the lattice near the foreground: rows / columns whose patch meets its bounding box
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    xs = xs[(xs + size > cols[0] * ds) & (xs < (cols[-1] + 1) * ds)]
    ys = ys[(ys + size > rows[0] * ds) & (ys < (rows[-1] + 1) * ds)]
    if len(xs) == 0 or len(ys) == 0:
        return grid
    passing = mask_fraction(m, grid, size, ds) >= min_foreground
    eligible = _lattice_shares(integral_table(m), xs, ys, size, ds) >= min_foreground
    if avoid is not None and np.any(avoid):
        a = np.asarray(avoid, bool)
        near = a
        if AVOID_GROW > 0:
            k = np.ones((2 * AVOID_GROW + 1, 2 * AVOID_GROW + 1), np.uint8)
            near = cv2.dilate(a.view(np.uint8), k).astype(bool)
        eligible &= _lattice_shares(integral_table(near), xs, ys, size, ds) <= max_avoid
        # a cell on the artefact will likely be rejected: its foreground is not covered
        passing &= mask_fraction(a, grid, size, ds) <= PASS_AVOID
    if not eligible.any():
        return grid
    covered = _paint(m.shape, grid[passing], size, ds)
    # ties go to the earlier position (row-major): a tiny, strictly decreasing bonus
    order = np.arange(eligible.size, dtype=np.float64).reshape(eligible.shape)
    bonus = (1.0 - order / eligible.size) * 1e-6
    kernel = np.ones((2 * steps - 1, 2 * steps - 1), np.uint8)
    added: list[np.ndarray] = []
    for _ in range(int(rounds)):
        gain = _lattice_shares(integral_table(m & ~covered), xs, ys, size, ds)
        ok = eligible & (gain >= min_gain)
        if not ok.any():
            break
        score = np.where(ok, gain + bonus, -1.0)
        local_max = cv2.dilate(score, kernel)  # the best score within one patch side
        iy, ix = np.nonzero(ok & (score >= local_max))
        picks = np.stack([xs[ix], ys[iy]], axis=1)
        added.append(picks)
        covered |= _paint(m.shape, picks, size, ds)
        eligible[iy, ix] = False
    if not added:
        return grid
    both = np.unique(np.concatenate([grid, np.concatenate(added)]).astype(np.int64), axis=0)
    return both[np.lexsort((both[:, 0], both[:, 1]))]


__all__ = ["border_coords", "lattice_positions"]
