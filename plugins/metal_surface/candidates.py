"""Defect candidates from a cell score map, merged across patch borders, and a review order.

A defect is rarely one patch: a scratch crosses several, a blotch straddles a seam, and with
overlapping patches every defect is seen two to four times. Candidates are therefore made on
the whole scan, not per patch:

1. cells whose score is above a threshold are joined into connected regions (8-neighbours,
   after closing one-cell gaps), whatever patch borders they cross;
2. each region becomes a box (level-0 px) with its peak and summed excess score;
3. boxes that overlap by more than ``merge`` of the smaller one (intersection over the smaller
   box, as SAHI merges sliced detections) are merged, until none do.

:func:`review_order` then ranks the placed patches for a review budget: greedily, the patch
most likely to hold (cover at least half of) the most candidates not yet held, weighted by
their strength, so that k patches show as many distinct defects as they can; the rest follow by
their own score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def core_boxes(c: Candidates, score: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """(K, 4) level-0 boxes of each candidate's core: its cells scoring at least ``alpha``
    times its peak (a cluster's strongest part, without the weaker texture around it)."""
    boxes = c.boxes.copy()
    if c.labels.size == 0:
        return boxes
    ox, oy = c.origin
    for q in range(len(c)):
        bx0, by0, bx1, by1 = c.boxes[q]
        r0, c0 = int((by0 - oy) // c.cell), int((bx0 - ox) // c.cell)
        r1, c1 = int(-(-(by1 - oy) // c.cell)), int(-(-(bx1 - ox) // c.cell))
        sub = np.where(c.labels[r0:r1, c0:c1] == q + 1, score[r0:r1, c0:c1], -np.inf)
        ys, xs = np.nonzero(sub >= alpha * float(c.peak[q]))
        if len(ys):
            boxes[q] = (ox + (c0 + xs.min()) * c.cell, oy + (r0 + ys.min()) * c.cell,
                        ox + (c0 + xs.max() + 1) * c.cell, oy + (r0 + ys.max() + 1) * c.cell)
    return boxes


def hold_chance(cov: np.ndarray, lo: float = 0.3, hi: float = 0.6) -> np.ndarray:
    """How likely a patch covering a share ``cov`` of a candidate's (core) box holds at least
    :data:`HOLD` of the true defect: 0 below ``lo``, 1 above ``hi``, linear between (the box
    is only an estimate of the defect's)."""
    return np.clip((np.asarray(cov, np.float64) - lo) / (hi - lo), 0.0, 1.0)


def review_order(coords: np.ndarray, size: float, boxes: np.ndarray, weight: np.ndarray,
                 fallback: np.ndarray) -> np.ndarray:
    """A review score per patch: higher is shown first.

    Greedy maximum expected coverage of the candidates: patch i holds candidate k with the
    chance ``p_ik`` = :func:`hold_chance` of the share of its box it covers; the next patch is
    the one that adds the most weighted chance ``sum_k weight_k * miss_k * p_ik`` (``miss_k``:
    the chance that no patch picked so far holds k; ties: the higher ``fallback``), so strong
    distinct defects come first and a defect across a seam gets the patch on its other side
    once the rest are shown. A patch that adds nothing ends the greedy part. Patches picked
    get scores above every other patch, in pick order; the others keep the order of
    ``fallback``.

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
    n = len(coords)
    fb = np.nan_to_num(np.asarray(fallback, np.float64), nan=-np.inf)
    finite = fb[np.isfinite(fb)]
    lo, hi = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
    out = np.where(np.isfinite(fb), (fb - lo) / max(hi - lo, 1e-9) * 0.999, 0.0)
    if n == 0 or len(boxes) == 0:
        return out.astype(np.float32)
    rows_list, chance = [], []
    for s in range(0, n, 2048):  # (N, K) in slices: memory stays small on long strips
        part = hold_chance(coverage(coords[s : s + 2048], size, boxes))
        some = np.flatnonzero(part.any(axis=1))
        rows_list.append(s + some)
        chance.append(part[some])
    rows = np.concatenate(rows_list)
    if len(rows) == 0:
        return out.astype(np.float32)
    p = np.concatenate(chance)
    miss = np.asarray(weight, np.float64).copy()  # weight x chance that nothing holds it yet
    taken = np.zeros(len(rows), bool)
    tie = out[rows] * 1e-6
    picks: list[int] = []
    while True:
        gain = p @ miss
        gain[taken] = 0.0
        best = int(np.argmax(gain + np.where(gain > 1e-9, tie, -np.inf)))
        if gain[best] <= 1e-9:
            break
        picks.append(int(rows[best]))
        taken[best] = True
        miss *= 1.0 - p[best]
    for t, i in enumerate(picks):
        out[i] = 1.0 + (len(picks) - t)
    return out.astype(np.float32)


__all__ = ["HOLD", "Candidates", "core_boxes", "coverage", "hold_chance",
           "intersection_over_smaller", "mass_share", "merge", "regions", "review_order"]

