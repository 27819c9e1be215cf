"""Inspection metrics: per-defect recall at a review budget (and the best any selection could
do), AUPRO up to a false-positive rate, false alarms per metre.

* **Budgeted recall.** A defect counts as found when one reviewed patch covers at least half
  of its box (:data:`HOLD`). :func:`recall_at` measures a selection; :func:`oracle_recall` the
  best any selection of the same number of patches from the same candidates could do: the
  exact 0/1 programme "choose k patches to hold the most boxes" (maximum coverage), solved by
  SciPy's HiGHS (``scipy.optimize.milp``).
* **AUPRO** (:func:`aupro`), as anomalib defines it: for every threshold of an anomaly map,
  the per-region overlap (PRO) is the mean over the connected regions of the ground truth of the
  share of the region above the threshold, and the false-positive rate (FPR) the share of
  normal pixels above it; the PRO curve over FPR is integrated up to ``fpr_limit`` (0.3; the
  curve linearly interpolated at the limit) and divided by it.
* **False alarms per metre**: defect records that match no true box, per metre of strip.
"""

from __future__ import annotations

import numpy as np

#: a patch holds a defect when it covers at least this share of the defect's box
HOLD = 0.5


def rects(boxes: list[tuple[str, int, int, int, int]]) -> np.ndarray:
    """VOC boxes (1-based, inclusive) as (K, 4) float64 level-0 x0, y0, x1, y1 (half-open)."""
    r = np.array([b[1:] for b in boxes], np.float64).reshape(-1, 4)
    r[:, :2] -= 1.0
    return r


def holds(coords: np.ndarray, size: float, boxes: np.ndarray, hold: float = HOLD) -> np.ndarray:
    """(N, K) bool: patch i (level-0 top-left, side ``size``) covers at least ``hold`` of box k
    ((K, 4) x0, y0, x1, y1)."""
    from .candidates import coverage

    return coverage(coords, size, boxes) >= hold - 1e-9


def inside(coords: np.ndarray, size: float, boxes: np.ndarray) -> np.ndarray:
    """(N, K) bool: box k lies wholly inside patch i."""
    return holds(coords, size, boxes, 1.0)


def recall_at(held: np.ndarray, chosen: np.ndarray) -> float:
    """Share of the boxes (columns of ``held`` (N, K)) that some chosen patch holds."""
    if held.shape[1] == 0:
        return float("nan")
    return float(held[np.asarray(chosen, np.int64)].any(axis=0).mean()) if len(chosen) else 0.0


def budget(n: int, percent: float) -> int:
    """Patches in ``percent`` % of ``n`` (rounded up, as ``score.top_percent``)."""
    import math

    return min(n, math.ceil(n * percent / 100.0 - 1e-9))


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores (NaN last; ties by index)."""
    s = np.nan_to_num(np.asarray(score, np.float64), nan=-np.inf)
    return np.lexsort((np.arange(len(s)), -s))[:k]


def oracle_recall(held: np.ndarray, k: int, time_limit: float = 60.0) -> tuple[float, np.ndarray]:
    """The best recall any ``k`` patches can reach, and those patches (exact maximum coverage).

    Maximise the boxes held, ``sum_d y_d``, subject to ``sum_p x_p <= k`` and
    ``y_d <= sum_p held[p, d] x_p``, with x, y in {0, 1}; solved by HiGHS.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, hstack, identity, vstack

    n, m = held.shape
    if m == 0:
        return float("nan"), np.zeros(0, np.int64)
    useful = np.flatnonzero(held.any(axis=1))
    h = held[useful]
    coverable = h.any(axis=0)
    if len(useful) <= k:
        return float(coverable.mean()), useful
    p = len(useful)
    cost = np.concatenate([np.zeros(p), -np.ones(m)])
    # y_d - sum_p held[p, d] x_p <= 0 ; sum_p x_p <= k
    link = hstack([-csr_matrix(h.T.astype(np.float64)), identity(m, format="csr")])
    count = hstack([csr_matrix(np.ones((1, p))), csr_matrix((1, m))])
    a = vstack([link, count]).tocsr()
    ub = np.concatenate([np.zeros(m), [k]])
    res = milp(cost, constraints=LinearConstraint(a, -np.inf, ub), integrality=np.ones(p + m),
               bounds=Bounds(0, 1), options={"time_limit": time_limit})
    if res.x is None:
        raise RuntimeError(f"HiGHS found no solution ({res.message})")
    x = res.x[:p] > 0.5
    chosen = useful[x]
    return recall_at(held, chosen), chosen


def aupro(maps: np.ndarray | list[np.ndarray], masks: np.ndarray | list[np.ndarray],
          fpr_limit: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to ``fpr_limit``, divided by it (anomalib's
    AUPRO; see the module docstring).

    Parameters
    ----------
    maps : anomaly maps (higher = more anomalous), one per image (any shapes).
    masks : bool ground truth of the same shapes; regions are their 8-connected components.
    fpr_limit : integrate the curve over FPR in [0, fpr_limit].

    Returns
    -------
    float in [0, 1] (NaN without any region or without normal pixels).
    """
    import cv2

    maps_l = [np.asarray(a, np.float64) for a in (maps if isinstance(maps, list) else [maps])]
    masks_l = [np.asarray(b, bool) for b in (masks if isinstance(masks, list) else [masks])]
    scores, weight, normal = [], [], []
    n_regions = 0
    labelled = []
    for a, b in zip(maps_l, masks_l):
        n, lab = cv2.connectedComponents(b.astype(np.uint8), connectivity=8)
        labelled.append((a.ravel(), lab.ravel(), n - 1))
        n_regions += n - 1
    if n_regions == 0:
        return float("nan")
    for flat, lab, n in labelled:
        sizes = np.bincount(lab, minlength=n + 1).astype(np.float64)
        w = np.where(lab > 0, 1.0 / (n_regions * np.maximum(sizes[lab], 1.0)), 0.0)
        scores.append(flat)
        weight.append(w)
        normal.append(lab == 0)
    s = np.concatenate(scores)
    w = np.concatenate(weight)
    bg = np.concatenate(normal).astype(np.float64)
    n_bg = bg.sum()
    if n_bg == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, w, bg = s[order], w[order], bg[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # one point per distinct score
    pro = np.r_[0.0, np.cumsum(w)[last]]
    fpr = np.r_[0.0, np.cumsum(bg)[last] / n_bg]
    cut = np.searchsorted(fpr, fpr_limit, side="right")
    if cut < len(fpr):  # interpolate the curve at the limit
        f0, f1, p0, p1 = fpr[cut - 1], fpr[cut], pro[cut - 1], pro[cut]
        p_lim = p0 + (p1 - p0) * (fpr_limit - f0) / (f1 - f0) if f1 > f0 else p1
        fpr, pro = np.r_[fpr[:cut], fpr_limit], np.r_[pro[:cut], p_lim]
    area = float(np.sum((fpr[1:] - fpr[:-1]) * (pro[1:] + pro[:-1]) / 2.0))
    return area / fpr_limit


def box_mask(boxes: np.ndarray, shape: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """(h, w) bool: the union of boxes (K, 4) level-0 x0, y0, x1, y1 drawn at ``1 / scale``
    (a pixel is in when its centre is)."""
    out = np.zeros(shape, bool)
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4) / scale:
        a0, a1 = int(np.ceil(y0 - 0.5)), int(np.ceil(y1 - 0.5))
        b0, b1 = int(np.ceil(x0 - 0.5)), int(np.ceil(x1 - 0.5))
        out[max(0, a0) : max(0, a1), max(0, b0) : max(0, b1)] = True
    return out


def match_records(records: np.ndarray, truth: np.ndarray, over: float = 0.3) -> np.ndarray:
    """(R, K) bool: record r matches true box k when they overlap by at least ``over`` of the
    smaller of the two (intersection over the smaller box)."""
    from .candidates import intersection_over_smaller

    if len(records) == 0 or len(truth) == 0:
        return np.zeros((len(records), len(truth)), bool)
    return intersection_over_smaller(np.asarray(records, np.float64),
                                     np.asarray(truth, np.float64)) >= over


def record_stats(records: np.ndarray, truth: np.ndarray, length_m: float) -> dict[str, float]:
    """How defect records (R, 4) match the true boxes (K, 4): ``found`` (share of true boxes
    matched), ``duplicates`` (share of matched true boxes matched by more than one record),
    ``false_alarms_per_m`` (records that match no true box, per metre of strip)."""
    m = match_records(records, truth)
    per_box = m.sum(axis=0)
    found = per_box > 0
    return {
        "records": float(len(records)),
        "found": float(found.mean()) if len(truth) else float("nan"),
        "duplicates": float((per_box > 1).sum() / max(1, found.sum())),
        "false_alarms_per_m": float((~m.any(axis=1)).sum() / max(length_m, 1e-9)),
    }


__all__ = ["HOLD", "aupro", "box_mask", "budget", "holds", "inside", "match_records",
           "oracle_recall", "recall_at", "record_stats", "rects", "top_k"]
