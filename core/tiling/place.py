"""Patch placement on a foreground mask: a global grid, or a per-region placement (shelves,
:mod:`gigapatch.tiling.shelves`; or a phase search when patches overlap) that covers at least the same
foreground with fewer patches. All coordinates are level-0 pixels (top-left x, y).

A patch ``(x, y)`` covers ``[x, x + size_level0) x [y, y + size_level0)``; on a mask of
downsample ``ds`` that is the mask box ``[x / ds, (x + size_level0) / ds)`` (same for y),
partial mask pixels counted by area (see :func:`gigapatch.tiling.score.mask_fraction`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from gigapatch.tiling.coverage import box_union
from gigapatch.tiling.integral import grid_box_sums, integral_table, interp_cols, interp_rows

if TYPE_CHECKING:
    from gigapatch.tiling.segment import Region

#: tolerance on sums of mask area (mask px^2) against floating-point noise of the interpolation
_AREA_EPS = 1e-6
#: cells of the grid evaluated per block of rows (bounds memory on huge images)
_ROW_BLOCK = 256


def _check(mask: np.ndarray, mask_downsample: float, size: int, stride: int) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    if mask_downsample <= 0:
        raise ValueError("mask_downsample must be positive")
    if size < 1 or stride < 1:
        raise ValueError("size_level0 and stride_level0 must be >= 1")
    return m != 0


def _effective_mask(
    mask: np.ndarray, mask_downsample: float, regions: list[Region] | None
) -> np.ndarray:
    """The mask, restricted to ``regions`` (rasterised at the mask's scale) when given."""
    if regions is None:
        return mask
    from gigapatch.tiling.segment import regions_to_mask

    return mask & regions_to_mask(regions, mask.shape, mask_downsample)


def axis_positions(length: int, size: int, stride: int, edge: str) -> np.ndarray:
    """Grid positions along one axis of ``length`` level-0 px, anchored at 0.

    ``"inside"`` (or ``"skip"``): every position with ``p + size <= length`` (the leftover strip
    at the end is skipped). ``"pad"``: as many as needed for the last patch to reach the end
    (``p + size >= length``), so it may overhang; at least one, and never one that starts at or
    past the end (with ``stride > size`` the gaps stay gaps). ``"shift"``: the inside positions,
    plus one at ``length - size`` when they stop short of the end (the last patch is shifted
    inward to end at the edge, overlapping its neighbour); an axis shorter than a patch gets one
    overhanging patch at 0, as with ``"pad"``.
    """
    if length <= 0:
        return np.zeros(0, np.int64)
    if edge in ("inside", "skip"):
        n = (length - size) // stride + 1 if length >= size else 0
    elif edge == "pad":
        n = min(-(-max(length - size, 0) // stride) + 1, -(-length // stride))
    elif edge == "shift":
        if length <= size:
            return np.zeros(1, np.int64)
        p = np.arange((length - size) // stride + 1, dtype=np.int64) * stride
        return p if p[-1] == length - size else np.append(p, np.int64(length - size))
    else:
        raise ValueError(f"edge must be 'inside', 'skip', 'pad' or 'shift', got {edge!r}")
    return np.arange(n, dtype=np.int64) * stride


def _keep(sums: np.ndarray, box_area: float, min_foreground: float) -> np.ndarray:
    """Cells with some foreground and at least ``min_foreground`` of the box."""
    return (sums > _AREA_EPS) & (sums >= min_foreground * box_area - _AREA_EPS)


def _fg_bounds(m: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, x1, y0, y1) half-open bounding box of the True pixels, or None."""
    rows = np.flatnonzero(m.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    return int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1


def grid_coords(
    mask: np.ndarray,
    mask_downsample: float,
    size_level0: int,
    stride_level0: int,
    dims: tuple[int, int],
    *,
    min_foreground: float = 0.0,
    edge: Literal["inside", "skip", "pad", "shift"] = "inside",
    regions: list[Region] | None = None,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Patches of a global grid anchored at level-0 ``origin`` that hold enough foreground.

    The grid is the same for every run and image scale, so patches align with the image's
    stored tiles when ``stride_level0`` is a multiple of the tile size. A cell is kept when its
    foreground fraction (exact, from the integral image) is > 0 and >= ``min_foreground``.
    Fully vectorised (separable interpolation of the summed-area table; no per-patch loop).

    Parameters
    ----------
    mask : (h, w) bool foreground at ``mask_downsample``.
    mask_downsample : level-0 px per mask px.
    size_level0, stride_level0 : patch side and step in level-0 px.
    dims : (width, height) of level 0.
    min_foreground : minimum fraction of the patch that is foreground.
    edge : ``"inside"`` (or ``"skip"``): patches lie wholly inside ``dims``, the leftover strip
        at the right and bottom is skipped; ``"pad"``: the grid goes on until the last
        row/column reaches the image edge, so those patches may overhang (the reader pads them;
        the overhang counts as background); ``"shift"``: the last row/column is shifted inward
        to end at the image edge (inside ``dims``, overlapping its neighbour; an image smaller
        than a patch gets one overhanging patch). See :func:`axis_positions`.
    regions : when given, only foreground inside these regions counts (rasterised at the
        mask's scale with :func:`gigapatch.regions_to_mask`).
    origin : level-0 (x, y) of the grid's first cell (default (0, 0); the grid covers only
        the image to the right of and below it).

    Returns
    -------
    (N, 2) int64 level-0 top-left (x, y), in row-major order (y, then x).
    """
    size, stride = int(size_level0), int(stride_level0)
    m = _effective_mask(_check(mask, mask_downsample, size, stride), mask_downsample, regions)
    empty = np.zeros((0, 2), np.int64)
    bounds = _fg_bounds(m)
    if bounds is None:
        return empty
    ds = float(mask_downsample)
    w0, h0 = int(dims[0]), int(dims[1])
    ox, oy = int(origin[0]), int(origin[1])
    xs = ox + axis_positions(w0 - ox, size, stride, edge)
    ys = oy + axis_positions(h0 - oy, size, stride, edge)
    bx0, bx1, by0, by1 = (b * ds for b in bounds)
    xs = xs[(xs + size > bx0) & (xs < bx1)]
    ys = ys[(ys + size > by0) & (ys < by1)]
    if len(xs) == 0 or len(ys) == 0:
        return empty
    table = integral_table(m)
    side = size / ds
    out = []
    for s in range(0, len(ys), _ROW_BLOCK):
        yb = ys[s : s + _ROW_BLOCK]
        sums = grid_box_sums(table, xs / ds, (xs + size) / ds, yb / ds, (yb + size) / ds)
        iy, ix = np.nonzero(_keep(sums, side * side, min_foreground))
        out.append(np.stack([xs[ix], yb[iy]], axis=1))
    return np.concatenate(out).astype(np.int64) if out else empty


# --------------------------------------------------------------------------- optimal placement


def _phase_positions(
    offset: int, stride: int, size: int, lo: float, hi: float, length: int, shift_edges: bool
) -> np.ndarray:
    """Positions ``offset + k * stride`` whose patch meets ``[lo, hi)``, kept inside
    ``[0, length - size]`` by clamping (``shift_edges``) or dropping."""
    k0 = int(np.floor((lo - size - offset) / stride)) + 1
    k1 = int(np.ceil((hi - offset) / stride))
    p = offset + stride * np.arange(k0, max(k1, k0), dtype=np.int64)
    if shift_edges:
        return np.unique(np.clip(p, 0, length - size))
    return p[(p >= 0) & (p <= length - size)]


def _disjoint(p: np.ndarray, size: int) -> bool:
    return len(p) < 2 or int(np.diff(p).min()) >= size


class _Group:
    """Summed-area table of one group's foreground and the maths on its candidate grids.

    ``rows`` arguments are ``S(y, .)`` sampled at the top then the bottom edge of every row of
    patches (:meth:`rows_at`), shared by every x phase of one y phase.
    """

    def __init__(self, fg: np.ndarray, origin: tuple[int, int], ds: float, size: int) -> None:
        self.table = integral_table(fg)
        self.gx, self.gy = origin
        self.ds = ds
        self.size = size

    def rows_at(self, ys: np.ndarray) -> np.ndarray:
        """(2 ny, w + 1) float64: S(y, .) at ``ys`` then at ``ys + size``."""
        edges = np.concatenate([ys, ys + self.size]) / self.ds - self.gy
        return interp_rows(self.table, edges)

    def cell_sums(self, rows: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """(ny, nx) foreground area (mask px^2) under each patch of the grid ``xs`` x ``ys``."""
        ny, nx = len(rows) // 2, len(xs)
        t = interp_cols(rows, np.concatenate([xs, xs + self.size]) / self.ds - self.gx)
        return t[ny:, nx:] - t[ny:, :nx] - t[:ny, nx:] + t[:ny, :nx]

    def _elementary(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cut points along x of the patches (sorted) and each patch's first/last cell index."""
        ex = np.unique(np.concatenate([xs, xs + self.size]))
        return ex, np.searchsorted(ex, xs), np.searchsorted(ex, xs + self.size)

    def row_cover(self, rows: np.ndarray, xs: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """(ny,) foreground area under the union of the kept patches of each row."""
        ny = len(rows) // 2
        if _disjoint(xs, self.size):
            return (self.cell_sums(rows, xs) * keep).sum(axis=1)
        ex, a, b = self._elementary(xs)
        iy, ix = np.nonzero(keep)
        ne = len(ex)
        diff = np.bincount(iy * ne + a[ix], minlength=ny * ne) - np.bincount(
            iy * ne + b[ix], minlength=ny * ne
        )
        covered = diff.reshape(ny, ne).cumsum(axis=1)[:, :-1] > 0
        t = interp_cols(rows, ex / self.ds - self.gx)  # (2 ny, ne)
        col = np.diff(t, axis=1)
        return ((col[ny:] - col[:ny]) * covered).sum(axis=1)

    def union_cover(
        self, rows: np.ndarray, xs: np.ndarray, ys: np.ndarray, keep: np.ndarray
    ) -> float:
        """Foreground area under the union of the kept patches of the grid ``xs`` x ``ys``: the
        plane is cut at every patch edge and a 2-D difference array marks covered cells."""
        if not keep.any():
            return 0.0
        ex, ax, bx = self._elementary(xs)
        ey, first = np.unique(np.concatenate([ys, ys + self.size]), return_index=True)
        ay, by = np.searchsorted(ey, ys), np.searchsorted(ey, ys + self.size)
        iy, ix = np.nonzero(keep)
        covered = box_union((len(ey), len(ex)), ay[iy], by[iy], ax[ix], bx[ix])[:-1, :-1]
        t = interp_cols(rows, ex / self.ds - self.gx)[first]  # S at every (ey, ex)
        fg = np.diff(np.diff(t, axis=0), axis=1)
        return float(fg[covered].sum())


#: prices of one patch, in units of one patch area of foreground, tried by the Lagrangian search
_PRICES = np.concatenate([np.geomspace(0.02, 20.0, 40), [1e9]])


class _Best:
    """Best placements of one group: under the group's own constraint (cover at least the
    global grid's cover, ``base_cover``), and, for every patch price, the one minimising
    ``n * price - cover``."""

    def __init__(self, prices: np.ndarray, base_cover: float) -> None:
        self.prices = prices
        self.base_cover = base_cover
        self.constrained: tuple[int, float, np.ndarray] | None = None
        self.value = np.full(len(prices), np.inf)
        self.n = np.zeros(len(prices), np.int64)
        self.cover = np.zeros(len(prices))
        self.coords: list[np.ndarray | None] = [None] * len(prices)

    def offer(
        self, ns: npt.ArrayLike, covers: npt.ArrayLike, make: Callable[[int], np.ndarray]
    ) -> None:
        """Consider placements ``i`` of ``ns[i]`` patches covering ``covers[i]``; ``make(i)``
        builds the coords of one (only called for winners)."""
        ns = np.asarray(ns, np.int64)
        covers = np.asarray(covers, np.float64)
        if len(ns) == 0:
            return
        built: dict[int, np.ndarray] = {}

        def get(i: int) -> np.ndarray:
            if i not in built:
                built[i] = make(i)
            return built[i]

        base = self.base_cover
        ok = np.flatnonzero(covers >= base - _AREA_EPS * max(1.0, base))
        if len(ok):
            i = int(ok[np.lexsort((-covers[ok], ns[ok]))[0]])
            c = self.constrained
            if c is None or (ns[i], -covers[i]) < (c[0], -c[1]):
                self.constrained = (int(ns[i]), float(covers[i]), get(i))
        values = ns[:, None] * self.prices[None, :] - covers[:, None]  # (K, prices)
        pick = np.argmin(values, axis=0)
        cols = np.arange(len(self.prices))
        v = values[pick, cols]
        better = (v < self.value) | ((v == self.value) & (ns[pick] < self.n))
        for k in np.flatnonzero(better):
            i = int(pick[k])
            self.value[k], self.n[k], self.cover[k] = v[k], ns[i], covers[i]
            self.coords[k] = get(i)

    def merge_swapped(self, other: _Best) -> None:
        """Fold in the results of the x/y-swapped search (whose coords are (y, x))."""
        oc, sc = other.constrained, self.constrained
        if oc is not None and (sc is None or (oc[0], -oc[1]) < (sc[0], -sc[1])):
            self.constrained = (oc[0], oc[1], oc[2][:, ::-1])
        better = (other.value < self.value) | ((other.value == self.value) & (other.n < self.n))
        for k in np.flatnonzero(better):
            coords = other.coords[k]
            assert coords is not None  # a finite value always comes with its coords
            self.value[k], self.n[k], self.cover[k] = other.value[k], other.n[k], other.cover[k]
            self.coords[k] = coords[:, ::-1]


def _phase_cells(
    keep: np.ndarray, starts: np.ndarray, xs_all: np.ndarray, ys: np.ndarray, p: int
) -> np.ndarray:
    """(N, 2) x, y of the kept cells of x phase ``p`` (columns ``starts[p]:starts[p + 1]``)."""
    s, e = starts[p], starts[p + 1]
    iy, ix = np.nonzero(keep[:, s:e])
    return np.stack([xs_all[s:e][ix], ys[iy]], axis=1)


def _row_cells(
    picks: np.ndarray, keep: np.ndarray, starts: np.ndarray, xs_all: np.ndarray, ys: np.ndarray,
    j: int,
) -> np.ndarray:
    """(N, 2) x, y of the kept cells when row i uses x phase ``picks[j, i]``."""
    pick = picks[j]
    rows = np.arange(len(ys))
    parts = []
    for p in np.unique(pick):
        rr = rows[pick == p]
        s, e = starts[p], starts[p + 1]
        iy, ix = np.nonzero(keep[rr, s:e])
        parts.append(np.stack([xs_all[s:e][ix], ys[rr[iy]]], axis=1))
    return np.concatenate(parts)


def _search_group(
    group: _Group,
    xs_phases: list[np.ndarray],
    ys_phases: list[np.ndarray],
    box_area: float,
    min_foreground: float,
    best: _Best,
) -> None:
    """Offer every placement of one group to ``best``.

    Placements: each uniform phase (xs x ys), all x phases of one y phase evaluated at once;
    and, when rows of patches cannot overlap, each y phase with every row taking its own x
    phase, the rows chosen per patch price (a multiple-choice knapsack by Lagrangian
    relaxation: each row minimises ``n * price - cover``).
    """
    size = group.size
    xs_phases = [xs for xs in xs_phases if len(xs)]
    if not xs_phases:
        return
    lens = np.array([len(xs) for xs in xs_phases])
    starts = np.concatenate([[0], np.cumsum(lens)])
    xs_all = np.concatenate(xs_phases)
    x_disjoint = all(_disjoint(xs, size) for xs in xs_phases)
    for ys in ys_phases:
        ny = len(ys)
        if ny == 0:
            continue
        rows = group.rows_at(ys)
        keep = _keep(group.cell_sums(rows, xs_all), box_area, min_foreground)  # (ny, sum nx)
        n_rows = np.add.reduceat(keep.astype(np.int64), starts[:-1], axis=1)  # (ny, P)
        if _disjoint(ys, size):
            if x_disjoint:
                sums = group.cell_sums(rows, xs_all) * keep
                c_rows = np.add.reduceat(sums, starts[:-1], axis=1)
            else:
                c_rows = np.stack(
                    [
                        group.row_cover(rows, xs, keep[:, starts[p] : starts[p + 1]])
                        for p, xs in enumerate(xs_phases)
                    ],
                    axis=1,
                )
            best.offer(
                n_rows.sum(axis=0),
                c_rows.sum(axis=0),
                partial(_phase_cells, keep, starts, xs_all, ys),
            )
            if len(xs_phases) < 2:
                continue
            # every row takes its own x phase, per price: (prices, P, ny) -> (prices, ny)
            prices = best.prices[:, None, None]
            tie = c_rows.T[None] * (1e-9 / max(box_area, 1e-12))
            picks = np.argmin(n_rows.T[None] * prices - c_rows.T[None] - tie, axis=1)
            picks = np.unique(picks, axis=0)
            r = np.arange(ny)
            best.offer(
                n_rows[r, picks].sum(axis=1),
                c_rows[r, picks].sum(axis=1),
                partial(_row_cells, picks, keep, starts, xs_all, ys),
            )
        else:
            covers = [
                group.union_cover(rows, xs, ys, keep[:, starts[p] : starts[p + 1]])
                for p, xs in enumerate(xs_phases)
            ]
            best.offer(n_rows.sum(axis=0), covers, partial(_phase_cells, keep, starts, xs_all, ys))


def _choose(bests: list[_Best]) -> list[np.ndarray]:
    """Pick one placement per group: the fewest patches overall whose total coverage is at least
    the global grid's. Candidates: every group under its own constraint, and every patch price
    applied to all groups at once (which may trade coverage between groups)."""
    own = [(b, b.constrained) for b in bests if b.constrained is not None]
    if not own:
        return []
    bests = [b for b, _ in own]
    base = sum(b.base_cover for b in bests)
    options: list[list[tuple[int, float, np.ndarray]]] = [[c for _, c in own]]
    for k in range(len(_PRICES)):
        opt = [(int(b.n[k]), float(b.cover[k]), c) for b in bests if (c := b.coords[k]) is not None]
        if len(opt) == len(bests):
            options.append(opt)
    top: tuple[int, float] | None = None
    chosen: list[np.ndarray] = []
    for opt in options:
        n = sum(int(o[0]) for o in opt)
        cover = sum(float(o[1]) for o in opt)
        if cover < base - _AREA_EPS * max(1.0, base):
            continue
        if top is None or (n, -cover) < top:
            top = (n, -cover)
            chosen = [o[2] for o in opt]
    return chosen


def _shelf_or_grid(
    m: np.ndarray, ds: float, size: int, stride: int, dims: tuple[int, int],
    min_foreground: float, phases: int,
) -> np.ndarray:
    """Shelf layout covering at least the grid's foreground (the grid itself when no layout
    does it with fewer patches)."""
    from gigapatch.tiling.integral import box_sums
    from gigapatch.tiling.shelves import shelf_coords

    grid = grid_coords(m, ds, size, stride, dims, min_foreground=min_foreground)
    if len(grid) == 0:
        return grid
    side = size / ds
    x0, y0 = grid[:, 0] / ds, grid[:, 1] / ds
    target = float(box_sums(integral_table(m), x0, y0, x0 + side, y0 + side).sum())
    steps = min(phases, max(1, int(np.ceil(side))))  # lattice steps of about a mask px or more
    res = shelf_coords(m, ds, size, dims, min_foreground=min_foreground, target=target, steps=steps)
    return grid if res is None or len(res[0]) >= len(grid) else res[0]


def optimal_coords(
    mask: np.ndarray,
    mask_downsample: float,
    size_level0: int,
    stride_level0: int,
    dims: tuple[int, int],
    *,
    min_foreground: float = 0.5,
    phases: int = 8,
    shift_edges: bool = True,
    regions: list[Region] | None = None,
) -> np.ndarray:
    """The fewest patches, placed per region, that cover at least the grid's foreground.

    The target is the foreground area (exact, from the summed-area table) under the patches
    :func:`grid_coords` keeps at the same ``min_foreground``; every patch placed also holds
    some foreground and at least ``min_foreground`` of its area, and lies inside ``dims``.

    Patches that do not overlap (``stride >= size``): shelf layouts
    (:func:`gigapatch.tiling.shelves.shelf_coords`): per group of nearby foreground (closer than about
    a patch; groups whose layouts overlap are merged and solved again), strips one patch high
    at any y holding patches at any x, or the same with vertical strips, on a lattice of
    ``size / steps`` level-0 px
    (``steps = min(phases, ceil(size / mask_downsample))``, so about a mask pixel or more)
    anchored at (0, 0), which contains the grid when ``stride == size``. Exact dynamic
    programmes give, for each price per patch, the layout maximising covered foreground minus
    price x patches; a sweep of prices finds the fewest patches reaching the target, groups are
    then traded greedily against the cover left over, and the patches bringing least foreground
    are dropped while the cover stays above the target. The result never overlaps, and is the
    grid itself if no layout beats it. ``shift_edges`` is not used (the lattice lies inside).

    Overlapping patches (``stride < size``): per group, every grid phase ``(ox, oy)``, ``ox,
    oy`` in ``round(k * stride / phases)``, ``k < phases``, of the stride grid (and, when rows
    cannot overlap, one x phase per row, or per column), the kept cells of each measured
    exactly; the fewest patches whose total cover is at least the grid's (phase (0, 0) of
    every group is the grid). ``shift_edges``: patches that would overhang the image edge are
    clamped to lie on it instead of being dropped.

    Parameters
    ----------
    mask : (h, w) bool foreground at ``mask_downsample``.
    mask_downsample : level-0 px per mask px.
    size_level0, stride_level0 : patch side and step in level-0 px.
    dims : (width, height) of level 0; every patch lies wholly inside it.
    min_foreground : minimum foreground fraction of a kept patch.
    phases : lattice steps per patch side (shelves), or phase steps per stride (phase search).
    shift_edges : see above (phase search only).
    regions : when given, only foreground inside these regions counts.

    Returns
    -------
    (N, 2) int64 level-0 top-left (x, y), unique, in row-major order (y, then x).
    """
    import cv2

    size, stride = int(size_level0), int(stride_level0)
    m = _effective_mask(_check(mask, mask_downsample, size, stride), mask_downsample, regions)
    if phases < 1:
        raise ValueError("phases must be >= 1")
    empty = np.zeros((0, 2), np.int64)
    w0, h0 = int(dims[0]), int(dims[1])
    if w0 < size or h0 < size or not m.any():
        return empty
    ds = float(mask_downsample)
    if stride >= size:
        return _shelf_or_grid(m, ds, size, stride, (w0, h0), min_foreground, phases)
    side = size / ds
    box_area = side * side
    offsets = np.unique(np.round(np.arange(phases) * stride / phases).astype(np.int64))
    # groups: components of the mask dilated by about half a patch on each side
    r = int(np.ceil(side / 2.0)) + 1
    m8 = np.ascontiguousarray(m).view(np.uint8)
    grouped = cv2.dilate(m8, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
    n_groups, labels, stats, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
    bests: list[_Best] = []
    for g in range(1, n_groups):
        gx, gy = int(stats[g, cv2.CC_STAT_LEFT]), int(stats[g, cv2.CC_STAT_TOP])
        gw, gh = int(stats[g, cv2.CC_STAT_WIDTH]), int(stats[g, cv2.CC_STAT_HEIGHT])
        fg = m[gy : gy + gh, gx : gx + gw] & (labels[gy : gy + gh, gx : gx + gw] == g)
        bounds = _fg_bounds(fg)
        if bounds is None:
            continue
        bx0, bx1, by0, by1 = bounds
        lo_x, hi_x = (gx + bx0) * ds, (gx + bx1) * ds
        lo_y, hi_y = (gy + by0) * ds, (gy + by1) * ds
        xs_all = [_phase_positions(o, stride, size, lo_x, hi_x, w0, shift_edges) for o in offsets]
        ys_all = [_phase_positions(o, stride, size, lo_y, hi_y, h0, shift_edges) for o in offsets]
        group = _Group(fg, (gx, gy), ds, size)
        base_cover = 0.0  # the global grid: phase (0, 0)
        if len(xs_all[0]) and len(ys_all[0]):
            rows = group.rows_at(ys_all[0])
            keep = _keep(group.cell_sums(rows, xs_all[0]), box_area, min_foreground)
            base_cover = group.union_cover(rows, xs_all[0], ys_all[0], keep)
        best = _Best(_PRICES * box_area, base_cover)
        _search_group(group, xs_all, ys_all, box_area, min_foreground, best)
        # the same search with x and y swapped (per-column y phases); coords come back as (y, x)
        swapped = _Best(_PRICES * box_area, base_cover)
        _search_group(
            _Group(fg.T, (gy, gx), ds, size), ys_all, xs_all, box_area, min_foreground, swapped
        )
        best.merge_swapped(swapped)
        bests.append(best)
    out = _choose(bests)
    out = [c for c in out if len(c)]
    if not out:
        return empty
    coords = np.unique(np.concatenate(out).astype(np.int64), axis=0)
    return coords[np.lexsort((coords[:, 0], coords[:, 1]))]


__all__ = ["axis_positions", "grid_coords", "optimal_coords"]
