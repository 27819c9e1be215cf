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

from dataclasses import dataclass
from typing import Literal

import numpy as np

from gigapatch.tiling.coverage import box_union, pixel_span
from gigapatch.tiling.integral import (
    grid_box_sums,
    integral_table,
    interp_points,
    mask_fraction,
)
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


def _paint(covered: np.ndarray, coords: np.ndarray, size: int, ds: float,
           origin: tuple[int, int] = (0, 0)) -> None:
    """Set in ``covered`` (a (h, w) bool window of the mask whose top-left is mask pixel
    ``origin`` = (row, col)) the pixels whose centre lies in one of the patches at ``coords``;
    the boxes are counted on the part of the window they span only."""
    h, w = covered.shape
    c = np.asarray(coords, np.float64).reshape(-1, 2)
    if len(c) == 0:
        return
    c0, c1 = pixel_span(c[:, 0], c[:, 0] + size, ds, w, origin[1])
    r0, r1 = pixel_span(c[:, 1], c[:, 1] + size, ds, h, origin[0])
    y, x = int(r0.min()), int(c0.min())
    hh, ww = int(r1.max()) - y, int(c1.max()) - x
    if hh <= 0 or ww <= 0:
        return
    covered[y : y + hh, x : x + ww] |= box_union((hh + 1, ww + 1), r0 - y, r1 - y, c0 - x,
                                                 c1 - x)[:hh, :ww]


def _progression(v: np.ndarray) -> int | None:
    """The step of ``v`` when it is an arithmetic progression with a positive step, else None."""
    if len(v) < 2:
        return 1 if len(v) == 1 else None
    step = int(v[1] - v[0])
    return step if step > 0 and np.array_equal(v, v[0] + step * np.arange(len(v))) else None


def _lattice_shares(table: np.ndarray, xs: np.ndarray, ys: np.ndarray, size: int,
                    ds: float, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(ny, nx) float32 share of each lattice patch covered by the mask behind ``table`` (the
    summed-area table of a mask window whose top-left is mask pixel ``origin`` = (row, col)):
    exact sums of the table's corners where the lattice falls on mask pixel edges (strided
    slices when it is evenly spaced), else area-weighted
    (:func:`~gigapatch.tiling.integral.grid_box_sums`)."""
    area = (size / ds) ** 2
    oy, ox = origin  # whole pixels: subtracting them from an edge is exact
    cx0, cx1 = xs / ds - ox, (xs + size) / ds - ox
    cy0, cy1 = ys / ds - oy, (ys + size) / ds - oy
    edges = np.concatenate([cx0, cx1, cy0, cy1])
    if not np.array_equal(edges, np.round(edges)):
        out = np.empty((len(ys), len(xs)), np.float32)
        for s in range(0, len(ys), _ROW_BLOCK):
            sl = slice(s, s + _ROW_BLOCK)
            out[sl] = grid_box_sums(table, cx0, cx1, cy0[sl], cy1[sl]) / area
        return out
    h, w = table.shape[0] - 1, table.shape[1] - 1
    x0, x1 = np.clip(cx0, 0, w).astype(np.intp), np.clip(cx1, 0, w).astype(np.intp)
    y0, y1 = np.clip(cy0, 0, h).astype(np.intp), np.clip(cy1, 0, h).astype(np.intp)
    t = table  # exact integer sums
    sx, sy = _progression(x0), _progression(y0)
    if sx and sy and _progression(x1) == sx and _progression(y1) == sy:
        def at(ry: np.ndarray, rx: np.ndarray) -> np.ndarray:  # a strided view, no gather
            return t[ry[0] : ry[-1] + 1 : sy, rx[0] : rx[-1] + 1 : sx]

        sums = at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)
    else:
        top, bottom = t[y0], t[y1]  # two row gathers, then columns
        sums = bottom[:, x1] - top[:, x1] - bottom[:, x0] + top[:, x0]
    return (sums / area).astype(np.float32)


def _shares_at(table: np.ndarray, xs: np.ndarray, ys: np.ndarray, iy: np.ndarray,
               ix: np.ndarray, size: int, ds: float, origin: tuple[int, int]) -> np.ndarray:
    """(k,) float32: :func:`_lattice_shares` at the lattice points ``(iy, ix)`` only, the same
    numbers (on pixel edges the interpolation weights are 0 and 1, so the sums are exact)."""
    area = (size / ds) ** 2
    oy, ox = origin
    x, y = xs[ix], ys[iy]
    cx0, cx1, cy0, cy1 = x / ds - ox, (x + size) / ds - ox, y / ds - oy, (y + size) / ds - oy
    sums = (interp_points(table, cy1, cx1) - interp_points(table, cy1, cx0)
            - interp_points(table, cy0, cx1) + interp_points(table, cy0, cx0))
    return (sums / area).astype(np.float32)


def _window(xs: np.ndarray, ys: np.ndarray, size: int, ds: float, shape: tuple[int, int]
            ) -> tuple[slice, slice]:
    """The rows and columns of the mask that the lattice's patches touch (their areas and the
    pixels painted under them), so that the rounds work on that window only."""
    h, w = shape
    r0 = max(0, int(np.floor(ys[0] / ds - 0.5)))  # the first pixel a patch covers or paints
    c0 = max(0, int(np.floor(xs[0] / ds - 0.5)))
    r1 = min(h, int(np.ceil((ys[-1] + size) / ds)) + 1)
    c1 = min(w, int(np.ceil((xs[-1] + size) / ds)) + 1)
    return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


@dataclass(frozen=True)
class _Lattice:
    """The lattice of shifted positions on a window of the mask."""

    xs: np.ndarray  # (nx,) level-0 x of the columns
    ys: np.ndarray  # (ny,) level-0 y of the rows
    size: int  # patch side, level-0 px
    ds: float  # level-0 px per mask px
    origin: tuple[int, int]  # mask (row, col) of the window's top-left pixel
    steps: int  # lattice steps per patch side


def _rounds(lat: _Lattice, mw: np.ndarray, covered: np.ndarray, eligible: np.ndarray,
            min_gain: float, rounds: int) -> np.ndarray:
    """The shifted patches chosen in up to ``rounds`` rounds (see the module) among the
    ``eligible`` ((ny, nx) bool) lattice positions: (K, 2) level-0 x, y. ``covered`` (the
    window's pixels under the grid's passing cells) is updated in place.

    The first round measures every lattice position; a later one only those that could still
    be chosen (new foreground only shrinks as more is covered), with the same numbers."""
    import cv2

    ny, nx = eligible.shape
    kernel = np.ones((2 * lat.steps - 1, 2 * lat.steps - 1), np.uint8)
    gain = _lattice_shares(integral_table(mw & ~covered), lat.xs, lat.ys, lat.size, lat.ds,
                           lat.origin)
    iy, ix = np.nonzero(eligible & (gain >= min_gain))
    gain_at = gain[iy, ix]
    added: list[np.ndarray] = []
    for r in range(rounds):
        if r:  # the positions not chosen yet, measured again
            gain_at = _shares_at(integral_table(mw & ~covered), lat.xs, lat.ys, iy, ix,
                                 lat.size, lat.ds, lat.origin)
        ok = gain_at >= min_gain
        iy, ix, gain_at = iy[ok], ix[ok], gain_at[ok]
        if len(iy) == 0:
            break
        # ties go to the earlier position (row-major): a tiny, strictly decreasing bonus
        order = (iy * nx + ix).astype(np.float64)
        score = np.full((ny, nx), -1.0)
        score[iy, ix] = gain_at + (1.0 - order / eligible.size) * 1e-6
        local_max = cv2.dilate(score, kernel)  # the best score within one patch side
        best = score[iy, ix] >= local_max[iy, ix]
        picks = np.stack([lat.xs[ix[best]], lat.ys[iy[best]]], axis=1)
        added.append(picks)
        _paint(covered, picks, lat.size, lat.ds, lat.origin)
        iy, ix = iy[~best], ix[~best]
    return np.concatenate(added) if added else np.zeros((0, 2), np.int64)


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
    rs, cs = _window(xs, ys, size, ds, m.shape)  # the rounds see only what the lattice touches
    origin = (rs.start, cs.start)
    mw = m[rs, cs]
    eligible = _lattice_shares(integral_table(mw), xs, ys, size, ds, origin) >= min_foreground
    if avoid is not None and np.any(avoid):
        a = np.asarray(avoid, bool)
        near = a
        if AVOID_GROW > 0:
            k = np.ones((2 * AVOID_GROW + 1, 2 * AVOID_GROW + 1), np.uint8)
            near = cv2.dilate(a.view(np.uint8), k).astype(bool)
        eligible &= _lattice_shares(integral_table(near[rs, cs]), xs, ys, size, ds,
                                    origin) <= max_avoid
        # a cell on the artefact will likely be rejected: its foreground is not covered
        passing &= mask_fraction(a, grid, size, ds) <= PASS_AVOID
    if not eligible.any():
        return grid
    covered = np.zeros(mw.shape, bool)
    _paint(covered, grid[passing], size, ds, origin)
    lattice = _Lattice(xs, ys, size, ds, origin, steps)
    added = _rounds(lattice, mw, covered, eligible, min_gain, int(rounds))
    if len(added) == 0:
        return grid
    both = np.unique(np.concatenate([grid, added]).astype(np.int64), axis=0)
    return both[np.lexsort((both[:, 0], both[:, 1]))]


__all__ = ["border_coords", "lattice_positions"]
