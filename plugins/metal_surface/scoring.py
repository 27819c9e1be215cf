"""The ``normal`` and ``review`` scores: distance from normal texture, and an order for review.

One pass over the scan (:func:`.features.feature_map`, band by band in its own samples) gives a
map of cell statistics over the candidates' area; the normal-texture model (:mod:`.normal`)
turns it into a map of distances. Then, per patch:

* ``normal``: the largest distance of a cell the patch covers (comparable across scans scored
  with the same model; with the scan's own model, in units of its own texture);
* ``review``: the greedy maximum-coverage order of :func:`.candidates.review_order` over the
  defect candidates of the map (weighted by :func:`review_weight`), so that ``--top-percent P
  --rank-by review`` shows as many distinct defects as P % of the patches can hold.

The map and its defect records (candidates merged across patch borders: pieces less than
:data:`MERGE_GROW` cells apart, or overlapping by ``merge_overlap`` of the smaller box, are one
record) stay in the image's context (``context.plugin_cache("metal_surface")``) for the
domain's output files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .candidates import Candidates, merge, regions, review_order
from .settings import DOMAIN, MetalSettings

#: defect records: pieces closer than this many cells are one defect
MERGE_GROW = 2.0


@dataclass
class ScoreMap:
    """A per-cell score over a box of level 0: cell (i, j) covers level-0 x in
    ``[x0 + j cell, x0 + (j + 1) cell)`` and y likewise."""

    distance: np.ndarray
    origin: tuple[int, int]
    cell: int
    threshold: float
    valid: np.ndarray


def cell_side(s: MetalSettings, patch_size_level0: int) -> int:
    """The cell side: the setting, else an eighth of the patch, within 8-64 px."""
    if s.cell is not None:
        return int(s.cell)
    return int(min(64, max(8, patch_size_level0 // 8)))


def valid_cells(mask: np.ndarray | None, mask_downsample: float, origin: tuple[int, int],
                shape: tuple[int, int], cell: int) -> np.ndarray:
    """(rows, cols) bool: cells whose centre is foreground in ``mask`` (all, without one)."""
    if mask is None:
        return np.ones(shape, bool)
    rows, cols = shape
    cy = ((origin[1] + (np.arange(rows) + 0.5) * cell) / mask_downsample).astype(np.int64)
    cx = ((origin[0] + (np.arange(cols) + 0.5) * cell) / mask_downsample).astype(np.int64)
    inside_y = (cy >= 0) & (cy < mask.shape[0])
    inside_x = (cx >= 0) & (cx < mask.shape[1])
    out = np.zeros(shape, bool)
    sub = mask[np.clip(cy, 0, mask.shape[0] - 1)][:, np.clip(cx, 0, mask.shape[1] - 1)]
    out[:] = sub & inside_y[:, None] & inside_x[None, :]
    return out


def score_map(image: Any, coords: np.ndarray, size: int, s: MetalSettings,
              mask: np.ndarray | None = None, mask_downsample: float = 1.0) -> ScoreMap:
    """The distance map over the area the patches ``coords`` (N, 2) of side ``size`` cover."""
    from .features import feature_map
    from .normal import distance_map, model_for

    model = model_for(s.normal_model)
    cell = model.cell if model is not None else cell_side(s, size)
    c = np.asarray(coords, np.int64).reshape(-1, 2)
    x0, y0 = (int(v) // cell * cell for v in c.min(axis=0))
    x1, y1 = (int(v) + size for v in c.max(axis=0))
    feats = feature_map(image, (x0, y0, x1, y1), cell)
    valid = valid_cells(mask, mask_downsample, (x0, y0), feats.shape[:2], cell)
    dist = distance_map(feats, model, valid)
    dist[~valid] = 0.0
    inside = dist[valid] if valid.any() else dist.ravel()
    med = float(np.median(inside)) if inside.size else 0.0
    mad = float(np.median(np.abs(inside - med))) * 1.4826 if inside.size else 0.0
    threshold = max(s.min_distance, med + s.threshold * mad)
    return ScoreMap(dist, (x0, y0), cell, threshold, valid)


def patch_max(m: ScoreMap, coords: np.ndarray, size: int) -> np.ndarray:
    """(N,) the largest cell value each patch covers (cells partly under it count)."""
    import cv2

    c = np.asarray(coords, np.int64).reshape(-1, 2)
    if len(c) == 0:
        return np.zeros(0, np.float32)
    ox, oy = m.origin
    i0 = (c[:, 1] - oy) // m.cell
    j0 = (c[:, 0] - ox) // m.cell
    ki = -(-(c[:, 1] + size - oy) // m.cell) - i0
    kj = -(-(c[:, 0] + size - ox) // m.cell) - j0
    out = np.zeros(len(c), np.float32)
    src = m.distance.astype(np.float32)
    for k in np.unique(np.stack([ki, kj], 1), axis=0):  # one or two window sizes
        grown = cv2.dilate(src, np.ones((int(k[0]), int(k[1])), np.uint8), anchor=(0, 0),
                           borderType=cv2.BORDER_CONSTANT, borderValue=0)
        sel = (ki == k[0]) & (kj == k[1])
        out[sel] = grown[np.clip(i0[sel], 0, src.shape[0] - 1),
                         np.clip(j0[sel], 0, src.shape[1] - 1)]
    return out


def candidates_of(m: ScoreMap, over: float = 0.5, grow_cells: float = 0.0) -> Candidates:
    """Defect candidates of a map: connected cells above its threshold, merged when their
    boxes grown by ``grow_cells`` cells overlap by more than ``over`` (see :mod:`.candidates`)."""
    return merge(regions(m.distance, m.threshold, m.origin, m.cell, m.valid), over,
                 grow_cells * m.cell)


def review_weight(c: Candidates) -> np.ndarray:
    """(K,) weight of each candidate in the review order: ``cells ** 0.25``.

    The budget is judged by how many distinct defects it shows, so every candidate counts about
    the same (not by its strength: weighting by the summed excess spent 5 % of a dense strip's
    patches on the loudest defects, 0.72-0.80 of the oracle); a larger region counts a little
    more, as it more often holds several annotated defects (median 9 cells for one, 19 for two
    on the tuning strips).
    """
    return np.asarray(c.cells, np.float64) ** 0.25


def normal_scores(context: Any, coords: np.ndarray, s: MetalSettings) -> dict[str, np.ndarray]:
    """``normal`` and ``review`` columns of the candidates ``coords`` (N, 2) of one image; the
    map and its defect candidates are kept in ``context.plugin_cache("metal_surface")``."""
    geom = context.geometry
    size = int(geom.size_level0)
    m = score_map(context.image, coords, size, s, context.mask, context.mask_downsample)
    normal = patch_max(m, coords, size)
    views = candidates_of(m)  # what one patch can show: pieces merged only when they overlap
    review = review_order(coords, size, views.boxes, review_weight(views), normal)
    cache = context.plugin_cache(DOMAIN)
    cache["map"] = m
    cache["candidates"] = candidates_of(m, s.merge_overlap, MERGE_GROW)  # one per defect
    return {"normal": normal, "review": review}


__all__ = ["ScoreMap", "candidates_of", "cell_side", "normal_scores", "patch_max", "review_weight",
           "score_map"]
