"""Defect candidates from a cell score map, merged across patch borders, and a review order.

A defect is rarely one patch: a scratch crosses several, a blotch straddles a seam, and with
overlapping patches every defect is seen two to four times. Candidates are therefore made on
the whole scan, not per patch:

1. cells whose score is above a threshold are joined into connected regions (8-neighbours,
   after closing one-cell gaps), whatever patch borders they cross;
2. each region becomes a box (level-0 px) with its peak and summed excess score;
3. boxes that overlap by more than ``merge`` of the smaller one (intersection over the smaller
   box, as SAHI merges sliced detections) are merged, until none do.

:func:`review_order` then ranks the placed patches for a review budget by greedy weighted
maximum coverage (:func:`greedy_cover` over a sparse patches x candidates matrix): next, the
patch most likely to hold (cover at least half of) the most candidate weight not yet held, so
that k patches show as many distinct defects as they can; the rest follow by their own score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: a patch holds a candidate when it covers at least this share of the candidate's box
HOLD = 0.5


@dataclass
class Candidates:
    """Defect candidates of one image.

    Attributes
    ----------
    boxes : (K, 4) float64 level-0 x0, y0, x1, y1 (half-open).
    peak : (K,) float32 largest cell score inside.
    excess : (K,) float32 sum over the region's cells of (score - threshold).
    cells : (K,) int32 cells in the region.
    labels : (rows, cols) int32 map of the cells: k + 1 on the cells of candidate k, else 0.
    mass : (rows, cols) float32 each defect cell's score above the threshold (else 0).
    origin : level-0 (x, y) of cell (0, 0); cell : cell side (px).
    """

    boxes: np.ndarray
    peak: np.ndarray
    excess: np.ndarray
    cells: np.ndarray
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))
    mass: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    origin: tuple[int, int] = (0, 0)
    cell: int = 1

    def __len__(self) -> int:
        return len(self.boxes)


def empty() -> Candidates:
    return Candidates(np.zeros((0, 4)), np.zeros(0, np.float32), np.zeros(0, np.float32),
                      np.zeros(0, np.int32))


def regions(score: np.ndarray, threshold: float, origin: tuple[int, int], cell: int,
            valid: np.ndarray | None = None, close: bool = False) -> Candidates:
    """Connected regions of cells above ``threshold`` as candidate boxes.

    Parameters
    ----------
    score : (rows, cols) cell scores.
    threshold : cells above it are defect cells.
    origin : level-0 (x, y) of cell (0, 0); cell : cell side (px).
    valid : (rows, cols) bool cells that may hold a defect (None: all).
    close : join regions one cell apart (a morphological closing) first.
    """
    import cv2

    hot = score > threshold
    if valid is not None:
        hot &= valid
    if not hot.any():
        return empty()
    joined = hot.astype(np.uint8)
    if close:
        closed = cv2.morphologyEx(joined, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        joined = np.maximum(joined, closed.astype(np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    mass = np.where(hot, score - threshold, 0.0).astype(np.float32)
    lab = np.asarray(labels, np.int64).ravel()
    excess = np.bincount(lab, mass.ravel().astype(np.float64), n)[1:]
    peak = np.full(n, -np.inf)
    flat_hot = hot.ravel()
    np.maximum.at(peak, lab[flat_hot], np.asarray(score, np.float64).ravel()[flat_hot])
    x, y, w, h = (stats[1:, i].astype(np.float64) for i in range(4))
    ox, oy = origin
    boxes = np.stack([ox + x * cell, oy + y * cell, ox + (x + w) * cell, oy + (y + h) * cell], 1)
    return Candidates(boxes, peak[1:].astype(np.float32), excess.astype(np.float32),
                      stats[1:, 4].astype(np.int32), labels.astype(np.int32), mass,
                      (int(ox), int(oy)), int(cell))


def intersection_over_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, N) intersection area over the smaller box's area of boxes (M, 4) and (N, 4)."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]),
                 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]),
                 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    return np.where(smaller > 0, ix * iy / np.maximum(smaller, 1e-9), 0.0)


def merge(c: Candidates, over: float = 0.5, grow: float = 0.0) -> Candidates:
    """Merge candidates whose boxes, each grown by ``grow`` px on every side, overlap by more
    than ``over`` of the smaller box (their union box, the larger peak, summed excess and
    cells, one label), until no two do. ``grow`` joins the pieces of a defect that a gap
    narrower than it splits (a broken scratch, a cluster of pits)."""
    if len(c) < 2:
        return c
    boxes, peak = c.boxes + np.array([-grow, -grow, grow, grow]), c.peak.astype(np.float64)
    excess, cells = c.excess.astype(np.float64), c.cells.astype(np.float64)
    relabel = np.arange(len(c) + 1)
    while True:
        ios = intersection_over_smaller(boxes, boxes)
        np.fill_diagonal(ios, 0.0)
        if ios.max(initial=0.0) <= over:
            break
        import scipy.sparse as sp
        from scipy.sparse.csgraph import connected_components

        _, group = connected_components(sp.csr_matrix(ios > over), directed=False)
        k = group.max() + 1
        nb = np.empty((k, 4))
        for j, fn in enumerate((np.minimum, np.minimum, np.maximum, np.maximum)):
            nb[:, j] = np.inf if j < 2 else -np.inf
            fn.at(nb[:, j], group, boxes[:, j])
        np_peak = np.full(k, -np.inf)
        np.maximum.at(np_peak, group, peak)
        boxes, peak = nb, np_peak
        excess = np.bincount(group, excess, k).astype(np.float64)
        cells = np.bincount(group, cells, k).astype(np.float64)
        relabel[1:] = group[relabel[1:] - 1] + 1
    labels = relabel[c.labels] if c.labels.size else c.labels
    boxes = boxes - np.array([-grow, -grow, grow, grow])
    return Candidates(boxes, peak.astype(np.float32), excess.astype(np.float32),
                      cells.astype(np.int32), labels.astype(np.int32), c.mass, c.origin, c.cell)


def mass_share(coords: np.ndarray, size: float, c: Candidates) -> np.ndarray:
    """(N, K) share of each candidate's excess score that lies in the cells each patch covers
    (cells partly under a patch count whole)."""
    n, k = len(coords), len(c)
    out = np.zeros((n, k))
    if n == 0 or k == 0 or c.labels.size == 0:
        return out
    ox, oy = c.origin
    xy = np.asarray(coords, np.int64).reshape(-1, 2)
    i0 = (xy[:, 1] - oy) // c.cell
    j0 = (xy[:, 0] - ox) // c.cell
    i1 = -(-(xy[:, 1] + int(size) - oy) // c.cell)
    j1 = -(-(xy[:, 0] + int(size) - ox) // c.cell)
    lab, mass = c.labels, c.mass.astype(np.float64)
    for q in range(k):
        bx0, by0, bx1, by1 = c.boxes[q]
        near = np.flatnonzero((xy[:, 0] < bx1) & (xy[:, 0] + size > bx0)
                              & (xy[:, 1] < by1) & (xy[:, 1] + size > by0))
        if len(near) == 0:
            continue
        r0, c0 = int((by0 - oy) // c.cell), int((bx0 - ox) // c.cell)
        r1, c1 = int(-(-(by1 - oy) // c.cell)), int(-(-(bx1 - ox) // c.cell))
        own = np.where(lab[r0:r1, c0:c1] == q + 1, mass[r0:r1, c0:c1], 0.0)
        total = own.sum()
        if total <= 0:
            continue
        table = np.zeros((own.shape[0] + 1, own.shape[1] + 1))
        table[1:, 1:] = own.cumsum(0).cumsum(1)
        a0 = np.clip(i0[near] - r0, 0, own.shape[0])
        a1 = np.clip(i1[near] - r0, 0, own.shape[0])
        b0 = np.clip(j0[near] - c0, 0, own.shape[1])
        b1 = np.clip(j1[near] - c0, 0, own.shape[1])
        out[near, q] = (table[a1, b1] - table[a0, b1] - table[a1, b0] + table[a0, b0]) / total
    return out


def coverage(coords: np.ndarray, size: float, boxes: np.ndarray) -> np.ndarray:
    """(N, K) share of each box (K, 4) that each patch (level-0 top-left (N, 2), side ``size``)
    covers."""
    c = np.asarray(coords, np.float64).reshape(-1, 2)
    if len(c) == 0 or len(boxes) == 0:
        return np.zeros((len(c), len(boxes)))
    ix = np.clip(np.minimum(c[:, None, 0] + size, boxes[None, :, 2])
                 - np.maximum(c[:, None, 0], boxes[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(c[:, None, 1] + size, boxes[None, :, 3])
                 - np.maximum(c[:, None, 1], boxes[None, :, 1]), 0, None)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-9)
    return ix * iy / area[None, :]


def coverage_matrix(coords: np.ndarray, size: float, boxes: np.ndarray) -> Any:
    """(N, K) sparse CSR: the share of box k (K, 4) that patch i (level-0 top-left (N, 2), side
    ``size``) covers, stored only where it is above 0.

    Built box by box over the patches sorted by y (each box meets a few patches), so a long
    strip with thousands of patches and candidates never makes the dense (N, K) matrix.
    """
    import scipy.sparse as sp

    c = np.asarray(coords, np.float64).reshape(-1, 2)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    n, k = len(c), len(b)
    if n == 0 or k == 0:
        return sp.csr_matrix((n, k))
    order = np.argsort(c[:, 1], kind="stable")
    ys = c[order, 1]
    rows, cols, vals = [], [], []
    for q in range(k):
        lo, hi = np.searchsorted(ys, [b[q, 1] - size, b[q, 3]], side="right")
        near = order[lo:hi]
        near = near[(c[near, 0] < b[q, 2]) & (c[near, 0] + size > b[q, 0])]
        if len(near) == 0:
            continue
        share = coverage(c[near], size, b[q : q + 1])[:, 0]
        some = share > 0
        rows.append(near[some])
        cols.append(np.full(int(some.sum()), q))
        vals.append(share[some])
    if not rows:
        return sp.csr_matrix((n, k))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n, k))


def hold_chance(cov: np.ndarray, lo: float = 0.3, hi: float = 0.8) -> np.ndarray:
    """How likely a patch covering a share ``cov`` of a candidate's box holds at least
    :data:`HOLD` of the true defect: 0 below ``lo``, 1 above ``hi``, linear between. The box
    is only an estimate of the defect's (it takes in the defect's halo, and a candidate may
    hold several annotated defects), so a patch must cover most of it to be sure."""
    return np.clip((np.asarray(cov, np.float64) - lo) / (hi - lo), 0.0, 1.0)


def greedy_cover(p: Any, weight: np.ndarray, tie: np.ndarray | None = None) -> np.ndarray:
    """Greedy weighted maximum (expected) coverage: the order in which to pick the rows of ``p``.

    Row i holds column k with the chance ``p[i, k]``; the next pick is the row that adds the
    most ``sum_k weight_k * miss_k * p[i, k]`` (``miss_k``: the chance that no row picked so far
    holds k, so with 0/1 chances the plain weight of the columns not yet held), ties to the
    larger ``tie``. Picking stops when no row adds anything. With 0/1 chances this is the
    classical greedy for maximum coverage, within (1 - 1/e) of the best k rows at every k.
    The gains are updated only for the rows that share a column with the pick (sparse).

    Parameters
    ----------
    p : (N, K) chances in [0, 1], a scipy.sparse matrix or an array.
    weight : (K,) non-negative column weights.
    tie : (N,) tie-breaking values (default: none; ties to the lower row).

    Returns
    -------
    (P,) int64 the picked rows, in pick order.
    """
    import scipy.sparse as sp

    pr = sp.csr_matrix(p, dtype=np.float64)
    pc = pr.tocsc()
    miss = np.asarray(weight, np.float64).copy()
    gain = pr @ miss
    t = np.zeros(pr.shape[0]) if tie is None else np.asarray(tie, np.float64)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-300) * 1e-9 if len(t) else t
    picks: list[int] = []
    while pr.shape[0]:
        best = int(np.argmax(gain + t))
        if not np.isfinite(gain[best]):  # every row picked
            break
        a, b = pr.indptr[best], pr.indptr[best + 1]
        cols, chance = pr.indices[a:b], pr.data[a:b]
        if float(miss[cols] @ chance) <= 1e-9:  # exact, not the running sum
            break
        picks.append(best)
        drop = miss[cols] * chance
        miss[cols] -= drop
        gain -= pc[:, cols] @ drop
        gain[best] = -np.inf
    return np.asarray(picks, np.int64)


def review_order(coords: np.ndarray, size: float, boxes: np.ndarray, weight: np.ndarray,
                 fallback: np.ndarray) -> np.ndarray:
    """A review score per patch: higher is shown first.

    :func:`greedy_cover` of the candidates: patch i holds candidate k with the chance
    :func:`hold_chance` of the share of k's box it covers, so distinct defects come first
    and a defect across a seam gets the patch on its other side once the rest are shown.
    Patches picked get scores above every other patch, in pick order; the others keep the
    order of ``fallback`` (ties among picks: the higher ``fallback``).

    Parameters
    ----------
    coords : (N, 2) level-0 top-left of the patches; size : their side (level-0 px).
    boxes : (K, 4) the candidates' boxes; weight : (K,) their weights.
    fallback : (N,) the patches' own scores.

    Returns
    -------
    (N,) float32: ``1 + (picks - t)`` for the t-th pick (t from 0), and ``fallback`` squeezed
    into [0, 1) for the others.
    """
    fb = np.nan_to_num(np.asarray(fallback, np.float64), nan=-np.inf)
    finite = fb[np.isfinite(fb)]
    lo, hi = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
    out = np.where(np.isfinite(fb), (fb - lo) / max(hi - lo, 1e-9) * 0.999, 0.0)
    if len(coords) == 0 or len(boxes) == 0:
        return out.astype(np.float32)
    p = coverage_matrix(coords, size, boxes)
    p.data = hold_chance(p.data)
    p.eliminate_zeros()
    picks = greedy_cover(p, weight, out)
    out[picks] = 1.0 + (len(picks) - np.arange(len(picks)))
    return out.astype(np.float32)


__all__ = ["HOLD", "Candidates", "coverage", "coverage_matrix", "greedy_cover", "hold_chance",
           "intersection_over_smaller", "mass_share", "merge", "regions", "review_order"]

