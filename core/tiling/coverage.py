"""How well a set of patches covers a foreground mask: coverage and overlap on the mask grid."""

from __future__ import annotations

from typing import Any

import numpy as np

#: mask rows rasterised at a time by :func:`coverage_report`
_COVER_BAND = 256


def pixel_span(lo: np.ndarray, hi: np.ndarray, ds: float, n: int, origin: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """The mask pixels whose centre lies in ``[lo, hi)`` (level-0 px; pixel j's centre is at
    ``(j + 0.5) * ds``), as (N,) int64 ``[start, stop)`` indices into a run of ``n`` pixels that
    starts at mask pixel ``origin``, clipped to it."""
    start = np.ceil(np.asarray(lo, np.float64) / ds - 0.5).astype(np.int64) - origin
    stop = np.ceil(np.asarray(hi, np.float64) / ds - 0.5).astype(np.int64) - origin
    return np.clip(start, 0, n), np.clip(stop, 0, n)


def _count_table(shape: tuple[int, int], r0: np.ndarray, r1: np.ndarray, c0: np.ndarray,
                 c1: np.ndarray) -> np.ndarray:
    """(h, w) counts of :func:`box_counts`, float32 (exact below 2**24 boxes) or else int64."""
    import cv2

    h, w = shape
    boxes = ((r0, c0, 1), (r0, c1, -1), (r1, c0, -1), (r1, c1, 1))
    if len(np.asarray(r0)) >= 2**24:  # float32 sums would no longer be exact
        big = np.zeros(h * w, np.int64)
        for rows, cols, sign in boxes:
            np.add.at(big, np.asarray(rows, np.int64) * w + cols, sign)
        return big.reshape(h, w).cumsum(0).cumsum(1)
    diff = np.zeros(h * w, np.float32)
    for rows, cols, sign in boxes:
        cell, n = np.unique(np.asarray(rows, np.int64) * w + cols, return_counts=True)
        diff[cell] += sign * n
    return cv2.integral(diff.reshape(h, w), sdepth=cv2.CV_32F)[1:, 1:]


def box_counts(
    shape: tuple[int, int], r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray
) -> np.ndarray:
    """How many boxes ``[r0, r1) x [c0, c1)`` (integer cells, ``r1 <= h``, ``c1 <= w``) cover
    each cell of ``shape`` = (h, w): a 2-D difference array (each corner's boxes counted once
    with :func:`numpy.unique`) summed along both axes by :func:`cv2.integral`.

    The difference array is float32 and so are the integral's partial sums: every one of them
    is a whole number no larger in size than the number of boxes, so they are exact (below
    2**24 boxes; more go through int64).

    Returns
    -------
    (h, w) int32 counts.
    """
    h, w = shape
    if h == 0 or w == 0:
        return np.zeros((h, w), np.int32)
    return _count_table(shape, r0, r1, c0, c1).astype(np.int32)


def box_union(
    shape: tuple[int, int], r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray
) -> np.ndarray:
    """(h, w) bool: the cells of ``shape`` inside at least one box (:func:`box_counts` > 0,
    without the int32 copy)."""
    h, w = shape
    if h == 0 or w == 0:
        return np.zeros((h, w), bool)
    return _count_table(shape, r0, r1, c0, c1) > 0


# --------------------------------------------------------------------------- evaluation


def coverage_report(
    mask: np.ndarray,
    mask_downsample: float,
    coords: np.ndarray,
    size_level0: int,
    *,
    labels: np.ndarray | None = None,
    n_labels: int = 0,
) -> dict[str, Any]:
    """How well a set of patches covers the foreground, measured on the mask grid.

    Each box is rasterised to the mask pixels whose centres it contains (mask pixel j is in
    ``[x0, x1)`` when ``x0 <= j + 0.5 < x1``; exact when boxes align with mask pixels) and counted
    with a 2-D difference array integrated in place, a band of rows at a time.

    Returns
    -------
    dict with ``coverage`` (fraction of foreground pixels inside at least one patch; 0.0 when
    there is no foreground), ``overlap`` (fraction of the covered area covered by more than one
    patch), ``n_patches``, ``foreground_px`` (foreground mask pixels) and ``covered_px``
    (foreground mask pixels covered). With ``labels`` ((h, w) integer labels in ``[0,
    n_labels]``, e.g. regions), also ``covered_by_label``: (n_labels,) int64 pixels of label
    ``k + 1`` inside at least one patch, counted in the same pass.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    c = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    h, w = m.shape
    ds = float(mask_downsample)
    fg = int(np.count_nonzero(m))
    covered = n_any = n_multi = 0
    by_label = np.zeros(int(n_labels) + 1, np.int64)
    if len(c) and h and w:
        j0, j1 = pixel_span(c[:, 0], c[:, 0] + size_level0, ds, w)
        i0, i1 = pixel_span(c[:, 1], c[:, 1] + size_level0, ds, h)
        ok = (j1 > j0) & (i1 > i0)
        j0, j1, i0, i1 = j0[ok], j1[ok], i0[ok], i1[ok]
        # bands of rows, so that the counts never cover the whole mask at once
        for b0 in range(0, h, _COVER_BAND):
            b1 = min(h, b0 + _COVER_BAND)
            sel = (i0 < b1) & (i1 > b0)
            if not sel.any():
                continue
            r0, r1 = np.clip(i0[sel], b0, b1) - b0, np.clip(i1[sel], b0, b1) - b0
            count = box_counts((b1 - b0 + 1, w + 1), r0, r1, j0[sel], j1[sel])[:-1, :-1]
            hit = count > 0
            n_any += int(np.count_nonzero(hit))
            covered += int(np.count_nonzero(hit & (m[b0:b1] != 0)))
            n_multi += int(np.count_nonzero(count > 1))
            if labels is not None:
                by_label += np.bincount(labels[b0:b1][hit], minlength=len(by_label))[: len(by_label)]
    return {
        "coverage": covered / fg if fg else 0.0,
        "overlap": n_multi / n_any if n_any else 0.0,
        "n_patches": len(c),
        "foreground_px": fg,
        "covered_px": covered,
        **({"covered_by_label": by_label[1:]} if labels is not None else {}),
    }


__all__ = ["box_counts", "box_union", "coverage_report", "pixel_span"]
