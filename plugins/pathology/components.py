"""Connected components of (h, w) bool masks: dropping specks, and hysteresis (the weak
components that hold a seed), as the tissue and ink masks use them."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from . import view


def drop_specks(mask: np.ndarray, min_area: float) -> np.ndarray:
    """(h, w) bool mask without its 8-connected components smaller than ``min_area`` px."""
    import cv2

    m = np.ascontiguousarray(mask, bool)
    if not m.any() or min_area <= 1:
        return m
    _n, labels, stats, _ = cv2.connectedComponentsWithStats(m.view(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels]


def hysteresis(weak: np.ndarray, seeds: Iterable[tuple[int, int, np.ndarray]]) -> np.ndarray:
    """The 8-connected components of ``weak`` (h, w) bool that hold a seed, written into ``weak``.

    ``seeds`` yields ``(y0, y1, s)``: ``s`` (y1 - y0, w) bool seed pixels of rows ``y0:y1`` (seeds
    outside ``weak`` count for nothing). Peak memory: the int32 labels.
    """
    import cv2

    n, labels = cv2.connectedComponents(weak.view(np.uint8), connectivity=8)
    seeded = np.zeros(n, bool)
    for y0, y1, s in seeds:
        seeded[labels[y0:y1][s]] = True
    seeded[0] = False
    h, w = weak.shape
    for y0, y1 in view.bands(h, w):  # band by band: a whole-image lookup buffers int64 indices
        weak[y0:y1] = seeded[labels[y0:y1]]
    return weak
