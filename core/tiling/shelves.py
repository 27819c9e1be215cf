"""Shelf placement: the fewest non-overlapping patches that cover a given share of the foreground.

Per group of nearby foreground, patches are laid out in *shelves*: horizontal strips one patch
high at any y (strips do not overlap), and inside every strip patches at any x (patches do not
overlap). Positions lie on a lattice of ``size / steps`` level-0 px anchored at (0, 0), so the
global grid (``stride == size``) is one of the layouts. For a price ``lam`` per patch, the layout
maximising ``covered foreground - lam * patches`` is found exactly (within the lattice) by two
nested dynamic programmes: a 1-D DP along x inside every candidate strip (all strips and all
prices at once, numpy over strips x prices), then a 1-D DP over the strips along y. The same is
done with vertical strips, and per group and price the better of the two is kept.

To reach a target cover with the fewest patches (Lagrangian relaxation): a sweep of prices, a
finer sweep inside the bracket where the total cover crosses the target, then greedy trades
that the cover left above the target pays for (a group, then a single strip, takes the layout
of another price with fewer patches; finally the patches bringing least foreground go).

Covered foreground is exact: area-weighted sums of the mask under each box from the summed-area
table (mask px^2), and, patches being disjoint, the cover is the sum over patches.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np

from gigapatch.tiling.integral import integral_table, interp_cols, interp_rows

#: tolerance on sums of mask area (mask px^2)
_AREA_EPS = 1e-6
#: relative tolerance of the target cover (floating-point noise of sums of interpolated areas)
_REL_TOL = 1e-9
#: most groups solved apart (each costs a few numpy calls per lattice step); beyond it, groups
#: take in the foreground up to twice as far, and so on
_MAX_GROUPS = 128
#: prices per patch (in patch areas of foreground) of the first sweep; the second refines the
#: bracket around the target with as many again
_SWEEP = np.concatenate([[1e-6], np.geomspace(2e-3, 1.0, 11)])


def _lattice(lo: float, hi: float, size: int, steps: int, length: int) -> tuple[int, int] | None:
    """Half-open range ``[k0, k1)`` of lattice indices ``k`` whose patch at ``(k * size) // steps``
    meets ``[lo, hi)`` and lies inside ``[0, length)``; None when there is none."""
    k = np.arange(
        max(0, int(np.floor((lo - size) * steps / size)) - 1),
        int(np.ceil(hi * steps / size)) + 2,
        dtype=np.int64,
    )
    p = k * size // steps
    k = k[(p + size > lo) & (p < hi) & (p + size <= length)]
    return (int(k[0]), int(k[-1]) + 1) if len(k) else None


@overload
def _dp(
    value: np.ndarray,
    lams: np.ndarray,
    steps: int,
    weight: np.ndarray | None = None,
    keep_take: Literal[False] = False,
) -> tuple[np.ndarray, np.ndarray, None]: ...


@overload
def _dp(
    value: np.ndarray,
    lams: np.ndarray,
    steps: int,
    weight: np.ndarray | None = None,
    *,
    keep_take: Literal[True],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def _dp(
    value: np.ndarray,
    lams: np.ndarray,
    steps: int,
    weight: np.ndarray | None = None,
    keep_take: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Best disjoint selection along axis 0, for every column and price at once.

    Item ``k`` (a patch, or a strip) occupies slots ``k .. k + steps - 1``; choosing it gains
    ``value[k] - lams`` (``-inf`` forbids it). ``F[t] = max(F[t - 1], F[t - steps] + value[t -
    steps] - lam)``, computed with a ring buffer of ``steps`` rows.

    Parameters
    ----------
    value : (T, R) or (T, R, K) float64 gains before the price (``-inf``: not allowed).
    lams : (K,) prices per item.
    steps : slots one item occupies.
    weight : same shape as ``value``: patches an item stands for (default 1 each).
    keep_take : also return the choice table for :func:`_backtrack`.

    Returns
    -------
    best : (R, K) optimal gain; count : (R, K) patches in it; take : (T, R, K) bool or None.
    """
    t_len, r = value.shape[:2]
    k = len(lams)
    ring = np.zeros((steps, r, k))
    ringc = np.zeros((steps, r, k))
    best, count = np.zeros((r, k)), np.zeros((r, k))
    cand, tk = np.empty((r, k)), np.empty((r, k), bool)
    take = np.empty((t_len, r, k), bool) if keep_take else None
    v3 = value if value.ndim == 3 else value[:, :, None]
    w3 = None if weight is None else (weight if weight.ndim == 3 else weight[:, :, None])
    for t in range(t_len):
        s = t % steps
        np.subtract(v3[t], lams, out=cand)
        cand += ring[s]
        np.greater(cand, best, out=tk)
        np.maximum(best, cand, out=best)
        np.add(ringc[s], 1.0 if w3 is None else w3[t], out=cand)
        np.copyto(count, cand, where=tk)
        ring[s] = best
        ringc[s] = count
        if take is not None:
            take[t] = tk
    return best, count, take


def _backtrack(
    take: np.ndarray, cols: np.ndarray, ks: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Items chosen by :func:`_dp` in columns ``cols`` at prices ``ks``: (column, slot) pairs.

    Vectorised over the columns: each pass takes, per column, the last item at or before its
    cursor (a running maximum of the chosen slots) and moves the cursor ``steps`` before it.
    """
    t_len = take.shape[0]
    if len(cols) == 0 or t_len == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    idx = np.arange(t_len, dtype=np.int64)[:, None]
    last = np.maximum.accumulate(np.where(take[:, cols, ks], idx, -1), axis=0)
    cur = np.full(len(cols), t_len - 1, np.int64)
    active = np.arange(len(cols))
    out_c, out_t = [], []
    while len(active):
        k = last[cur[active], active]
        ok = k >= 0
        active, k = active[ok], k[ok]
        out_c.append(cols[active])
        out_t.append(k)
        cur[active] = k - steps
        active = active[cur[active] >= 0]
    return np.concatenate(out_c), np.concatenate(out_t)


class _Group:
    """One group's box sums on the lattice and its shelf layouts.

    ``boxes[j, i]``: foreground area (mask px^2) under the patch at ``(xs[i], ys[j])``, ``-inf``
    where the patch does not meet the foreground bar. :meth:`sweep` keeps, per orientation,
    every strip's best gain and patch count at every price swept (``(R, K)`` tables).
    """

    def __init__(
        self,
        fg: np.ndarray,
        origin: tuple[int, int],
        ds: float,
        size: int,
        steps: int,
        dims: tuple[int, int],
        min_area: float,
    ) -> None:
        gx, gy = origin
        rows = np.flatnonzero(fg.any(axis=1))
        cols = np.flatnonzero(fg.any(axis=0))
        rx = _lattice((gx + cols[0]) * ds, (gx + cols[-1] + 1) * ds, size, steps, dims[0])
        ry = _lattice((gy + rows[0]) * ds, (gy + rows[-1] + 1) * ds, size, steps, dims[1])
        self.steps = steps
        self.lams = np.zeros(0)
        self.tables: dict[bool, tuple[np.ndarray, np.ndarray]] = {}
        self.k0 = np.zeros(2, np.int64)
        if rx is None or ry is None:
            self.boxes = np.zeros((0, 0))
            self.xs = self.ys = np.zeros(0, np.int64)
            return
        ex = np.arange(rx[0], rx[1] + steps, dtype=np.int64) * size // steps
        ey = np.arange(ry[0], ry[1] + steps, dtype=np.int64) * size // steps
        self.xs, self.ys = ex[: rx[1] - rx[0]], ey[: ry[1] - ry[0]]
        self.k0 = np.array([rx[0], ry[0]], np.int64)  # lattice index of xs[0], ys[0]
        table = integral_table(fg)
        t = interp_cols(interp_rows(table, ey / ds - gy), ex / ds - gx)
        n = steps
        b = t[n:, n:] - t[:-n, n:] - t[n:, :-n] + t[:-n, :-n]
        ok = (b > _AREA_EPS) & (b >= min_area - _AREA_EPS)
        self.boxes = np.where(ok, b, -np.inf)

    def _strips(self, vertical: bool) -> np.ndarray:
        """(T, R) gains with strips as columns: R = rows of patches (or columns, vertical)."""
        return self.boxes if vertical else np.ascontiguousarray(self.boxes.T)

    def sweep(self, lams: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best shelf layout per price: (K,) patches, (K,) cover, (K,) bool vertical strips."""
        k = len(lams)
        if self.boxes.size == 0:
            return np.zeros(k), np.zeros(k), np.zeros(k, bool)
        self.lams = np.concatenate([self.lams, lams])
        res = []
        for vertical in (False, True):
            strip, cnt, _ = _dp(self._strips(vertical), lams, self.steps)
            total, n, _ = _dp(strip[:, None], lams * 0.0, self.steps, weight=cnt[:, None])
            res.append((total[0], n[0]))
            old = self.tables.get(vertical)
            self.tables[vertical] = (
                (strip, cnt)
                if old is None
                else (np.hstack([old[0], strip]), np.hstack([old[1], cnt]))
            )
        (fh, nh), (fv, nv) = res
        vert = (fv > fh) | ((fv == fh) & (nv < nh))
        f, n = np.where(vert, fv, fh), np.where(vert, nv, nh)
        return n, f + lams * n, vert

    def strips(self, k: int, vertical: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The strips of the best layout at swept price ``k``: (S,) strip indices, and their
        (S, K) patch counts and covers at every swept price."""
        if self.boxes.size == 0:
            return (
                np.zeros(0, np.int64),
                np.zeros((0, len(self.lams))),
                np.zeros((0, len(self.lams))),
            )
        gain, cnt = self.tables[vertical]
        _, _, take = _dp(
            gain[:, k, None, None],
            np.zeros(1),
            self.steps,
            weight=cnt[:, k, None, None],
            keep_take=True,
        )
        _, chosen = _backtrack(take, np.zeros(1, np.int64), np.zeros(1, np.int64), self.steps)
        chosen = np.sort(chosen)
        return chosen, cnt[chosen], gain[chosen] + self.lams * cnt[chosen]

    def layout(
        self, chosen: np.ndarray, ks: np.ndarray, vertical: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, 2) level-0 x, y, (N,) cover and (N, 2) lattice indices of the patches of strips
        ``chosen``, each laid out as at its swept price ``ks``."""
        if len(chosen) == 0:
            return np.zeros((0, 2), np.int64), np.zeros(0), np.zeros((0, 2), np.int64)
        used, ki = np.unique(ks, return_inverse=True)
        sub = np.ascontiguousarray(self._strips(vertical)[:, chosen])
        _, _, take = _dp(sub, self.lams[used], self.steps, keep_take=True)
        local, pos = _backtrack(take, np.arange(len(chosen)), ki, self.steps)
        strips = chosen[local]
        j, i = (pos, strips) if vertical else (strips, pos)  # vertical: strips are columns
        lattice = np.stack([i, j], axis=1) + self.k0
        return np.stack([self.xs[i], self.ys[j]], axis=1), self.boxes[j, i], lattice


def group_labels(mask: np.ndarray, reach: float) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected groups of foreground closer than about ``2 * reach`` mask px: components of the
    mask dilated by ``ceil(reach) + 1`` px (with ``reach`` = one patch side, patches that meet
    the foreground of different groups cannot overlap). Returns ``(n_labels, labels, stats)``
    of :func:`cv2.connectedComponentsWithStats` (label 0 is the background)."""
    import cv2

    r = int(np.ceil(reach)) + 1
    m8 = np.ascontiguousarray(mask).view(np.uint8)
    grouped = cv2.dilate(m8, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
    return n, labels, stats


def _improve(n: np.ndarray, c: np.ndarray, pick: np.ndarray, target: float) -> np.ndarray:
    """Greedy multiple-choice knapsack after the common price: while the cover above the target
    allows, move one item (a group, or a strip) to another of its swept layouts with fewer
    patches, the move saving most patches per cover lost first. ``n``, ``c``: (G, K) patches
    and cover of every item at every price; ``pick``: (G,) current price of each item."""
    rows = np.arange(len(pick))
    tol = _REL_TOL * max(1.0, target)
    while True:
        slack = c[rows, pick].sum() - target
        saved = n[rows, pick][:, None] - n
        lost = c[rows, pick][:, None] - c
        ok = (saved > 0) & (lost <= slack + tol)
        if not ok.any():
            return pick
        score = np.where(ok, saved / np.maximum(lost, tol), -np.inf)
        g, k = np.unravel_index(int(np.argmax(score)), score.shape)
        pick[g] = k


def _overlapping(lattice: np.ndarray, steps: int) -> bool:
    """Whether any two patches (lattice indices (N, 2), ``steps`` lattice units wide) overlap:
    a 2-D difference array of the boxes, integrated."""
    if len(lattice) < 2:
        return False
    k = lattice - lattice.min(axis=0)
    w, h = k.max(axis=0) + steps + 1
    diff = np.zeros(int(h) * int(w), np.int32)
    for dx, dy, sign in ((0, 0, 1), (steps, 0, -1), (0, steps, -1), (steps, steps, 1)):
        np.add.at(diff, (k[:, 1] + dy) * w + k[:, 0] + dx, sign)
    return bool((diff.reshape(h, w).cumsum(0).cumsum(1) > 1).any())


def _layouts(
    groups: list[_Group], target: float, area: float
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] | None:
    """Per group: coords, cover and lattice indices of the fewest patches (all groups together)
    covering ``target``: a sweep of prices, then greedy trades of groups and of strips."""
    tol = _REL_TOL * max(1.0, target)
    lams = _SWEEP * area
    n, c, v = (np.stack(a) for a in zip(*(gr.sweep(lams) for gr in groups), strict=True))
    ok = np.flatnonzero(c.sum(axis=0) >= target - tol)
    if len(ok) == 0:
        return None
    i = int(ok[-1])  # prices increase: the last feasible one uses the fewest patches
    if i + 1 < len(lams):  # refine the bracket [lams[i], lams[i + 1])
        fine = np.geomspace(lams[i], lams[i + 1], len(_SWEEP) + 2)[1:-1]
        n2, c2, v2 = (np.stack(a) for a in zip(*(gr.sweep(fine) for gr in groups), strict=True))
        n, c, v = np.hstack([n, n2]), np.hstack([c, c2]), np.hstack([v, v2])
        ok = np.flatnonzero(c.sum(axis=0) >= target - tol)
        i = int(ok[np.lexsort((-c.sum(axis=0)[ok], n.sum(axis=0)[ok]))[0]])
    pick = _improve(n, c, np.full(len(groups), i), target)
    # the same, one strip at a time, on the strips of every group's layout
    parts = [gr.strips(int(k), bool(v[g, k])) for g, (gr, k) in enumerate(zip(groups, pick))]
    k_all = n.shape[1]  # a group without strips gives (0, 0) arrays: keep the price axis
    sn = np.vstack([p[1].reshape(-1, k_all) for p in parts])
    sc = np.vstack([p[2].reshape(-1, k_all) for p in parts])
    ks = _improve(sn, sc, np.repeat(pick, [len(p[0]) for p in parts]), target)
    ends = np.cumsum([len(p[0]) for p in parts])[:-1]
    out = [
        gr.layout(p[0], kk, bool(v[g, pick[g]]))
        for g, (gr, p, kk) in enumerate(zip(groups, parts, np.split(ks, ends)))
    ]
    return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]


def shelf_coords(
    mask: np.ndarray,
    mask_downsample: float,
    size_level0: int,
    dims: tuple[int, int],
    *,
    min_foreground: float,
    target: float,
    steps: int = 8,
) -> tuple[np.ndarray, float] | None:
    """Fewest non-overlapping shelf patches covering at least ``target`` foreground.

    Groups are the foreground closer than about one patch; when the layouts of groups closer
    than two patches overlap, those are merged and solved again as one.

    Parameters
    ----------
    mask : (h, w) bool foreground at ``mask_downsample``.
    mask_downsample : level-0 px per mask px.
    size_level0 : patch side in level-0 px.
    dims : (width, height) of level 0; patches lie wholly inside it.
    min_foreground : every patch holds at least this fraction of foreground (and some).
    target : foreground area (mask px^2) to cover at least.
    steps : lattice positions per patch side (``size / steps`` level-0 px apart).

    Returns
    -------
    ``(coords, cover)``: (N, 2) int64 level-0 top-left x, y (row-major) and the foreground area
    they cover; None when no swept layout reaches ``target``.
    """
    size, ds = int(size_level0), float(mask_downsample)
    side = size / ds
    area = side * side
    steps = max(1, min(int(steps), size))
    reach = side / 2  # groups: foreground closer than about a patch (coarser when too many)
    small = group_labels(mask, reach)
    while small[0] - 1 > _MAX_GROUPS:
        reach *= 2
        small = group_labels(mask, reach)
    labellings = [small, small if reach >= side else group_labels(mask, side)]  # groups, merged

    def group(level: int, g: int) -> tuple[_Group, int]:
        """A group and the merged group it lies in."""
        _, labels, stats = labellings[level]
        x, y, w, h = (int(v) for v in stats[g, :4])
        fg = mask[y : y + h, x : x + w] & (labels[y : y + h, x : x + w] == g)
        r, c = divmod(int(np.argmax(fg)), w)
        gr = _Group(fg, (x, y), ds, size, steps, dims, min_foreground * area)
        return gr, int(labellings[1][1][y + r, x + c])

    pairs = [group(0, g) for g in range(1, labellings[0][0])]
    if not pairs:
        return None
    groups, parent = [p[0] for p in pairs], np.array([p[1] for p in pairs])
    while True:
        res = _layouts(groups, target, area)
        if res is None:
            return None
        coords_g, cover_g, lattice_g = res
        bad = [
            p
            for p in np.unique(parent[parent > 0])
            if (parent == p).sum() > 1
            and _overlapping(
                np.concatenate([lattice_g[i] for i in np.flatnonzero(parent == p)]), steps
            )
        ]
        if not bad:
            break
        keep = ~np.isin(parent, bad)
        groups = [gr for gr, k in zip(groups, keep) if k] + [group(1, int(p))[0] for p in bad]
        parent = np.concatenate([parent[keep], np.zeros(len(bad), parent.dtype)])
    coords = np.concatenate(coords_g).astype(np.int64)
    cover = np.concatenate(cover_g)
    # the cover above the target pays for dropping the patches that bring least foreground
    tol = _REL_TOL * max(1.0, target)
    order = np.argsort(cover, kind="stable")
    drop = order[np.cumsum(cover[order]) <= cover.sum() - target + tol]
    keep = np.ones(len(coords), bool)
    keep[drop] = False
    coords, cover = coords[keep], cover[keep]
    order = np.lexsort((coords[:, 0], coords[:, 1]))
    return coords[order], float(cover.sum())


__all__ = ["group_labels", "shelf_coords"]
