"""Foreground that no patch can keep: pieces too small for one patch.

A slide with one small fragment (a biopsy crumb, a sparse IHC section) has foreground, but no
patch of the chosen size can hold ``min_foreground`` of it; calling it empty would be wrong,
and the fix (a smaller patch) is the user's to make. :func:`small_pieces_note` says so.
"""

from __future__ import annotations

import numpy as np


def small_pieces_note(mask: np.ndarray, mask_downsample: float, size_level0: int,
                      min_foreground: float) -> str | None:
    """One line when every 8-connected piece of ``mask`` (h, w) bool is smaller than
    ``min_foreground`` of a patch of ``size_level0`` level-0 px (so no patch can keep one),
    naming the largest piece's level-0 bounding box; None otherwise (or without foreground)."""
    import cv2

    m = np.ascontiguousarray(mask, dtype=bool)
    if not m.any():
        return None
    n, _labels, stats, _ = cv2.connectedComponentsWithStats(m.view(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    ds = float(mask_downsample)
    biggest = int(np.argmax(areas)) + 1
    if areas.max() * ds * ds >= max(min_foreground, 1e-9) * size_level0 ** 2:
        return None
    w = int(round(stats[biggest, cv2.CC_STAT_WIDTH] * ds))
    h = int(round(stats[biggest, cv2.CC_STAT_HEIGHT] * ds))
    pieces = "one piece" if n == 2 else f"{n - 1} pieces"
    return (f"foreground in {pieces} smaller than one patch (largest {w} x {h} level-0 px, "
            f"{100 * m.mean():.3f}% of the image; a patch is {size_level0} px and needs "
            f"{min_foreground:g} foreground): a smaller --patch-size keeps it")


__all__ = ["small_pieces_note"]
