"""Kept patches scored against a synthetic slide's ground truth (:mod:`.synth`).

Two views of the same patches:

- :func:`truth_metrics` (the first figures, kept as they were): against the *ideal grid* at the
  run's own ``min_foreground``: coverage of its clean tissue, the kept patches' tissue fraction,
  and their pen, blur and fold rates;
- :func:`usable_metrics`: *usable tissue* (true tissue not under ink and not blurred) under the
  kept patches, against what a truth-knowing aligned grid keeps at >= 50 % usable tissue
  (``usable_cover``, 1.0 = as much as that grid); ``usable_precision``, the share of kept
  patches truly usable at that bar; ``overlap``, the share of the kept patches' area covered
  twice or more (placement that shifts patches along borders may overlap them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: the ideal grid's quality bars (the kept patches are held to the same): true pen <= 5 %,
#: true blurred tissue <= 50 % of the patch
IDEAL_MAX_PEN = 0.05
IDEAL_MAX_BLUR = 0.5
#: usable-tissue share of a cell the truth grid of :func:`usable_metrics` keeps
USABLE_BAR = 0.5


def box_counts(coords: np.ndarray, side: int, shape: tuple[int, int]) -> np.ndarray:
    """How many ``side`` x ``side`` boxes at ``coords`` (N, 2) x, y cover each pixel of an
    (h, w) plane: (h, w) int32, from a summed difference image (no per-box loop)."""
    h, w = shape
    c = np.asarray(coords, np.int64).reshape(-1, 2)
    d = np.zeros((h + 1, w + 1), np.int32)
    if len(c):
        x0, y0 = np.clip(c[:, 0], 0, w), np.clip(c[:, 1], 0, h)
        x1, y1 = np.clip(c[:, 0] + side, 0, w), np.clip(c[:, 1] + side, 0, h)
        np.add.at(d, (y0, x0), 1)
        np.add.at(d, (y0, x1), -1)
        np.add.at(d, (y1, x0), -1)
        np.add.at(d, (y1, x1), 1)
    return np.cumsum(np.cumsum(d, axis=0), axis=1)[:h, :w]


def _truth_grid(dims: tuple[int, int], size: int, stride: int) -> np.ndarray:
    """(M, 2) level-0 x, y of the grid anchored at 0 (cells wholly inside ``dims``)."""
    from gigapatch import axis_positions

    xs = axis_positions(dims[0], size, stride, "inside")
    ys = axis_positions(dims[1], size, stride, "inside")
    return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)


def truth_metrics(
    coords: np.ndarray, size_level0: int, truth: dict[str, Any], dims: tuple[int, int],
    min_foreground: float, stride_level0: int | None = None,
) -> dict[str, float]:
    """Score kept patches against a synthetic slide's ground truth.

    *Clean tissue* is ``tissue & ~pen & ~blur``. The *ideal grid* is what an oracle keeps: every
    cell of the level-0 grid (anchored at 0, step ``stride_level0``, wholly inside ``dims``)
    whose clean-tissue fraction is at least ``min_foreground`` and that passes the same quality
    bars the kept patches are held to (true pen <= 5 %, true blur <= 50 %).

    Returns
    -------
    dict with ``n_kept``, ``n_ideal``, ``coverage`` (clean tissue under the kept patches / clean
    tissue under the ideal cells, union areas; ``covered_px`` / ``target_px``, in truth pixels,
    to pool slides), ``tissue_fraction`` (mean true tissue fraction
    of the kept patches), ``pen_bad`` (fraction of kept patches with > 5 % pen), ``blur_bad``
    (fraction of kept patches > 50 % in blurred tissue), ``fold_kept`` (fraction > 50 % fold),
    ``precision`` (fraction of kept patches that are ideal cells), ``ideal_tissue`` (mean true
    tissue fraction of the ideal cells: on a slide with much tissue border, it can fall below
    a ``tissue_fraction`` target that full coverage then cannot meet); and every figure of
    :func:`usable_metrics`.
    """
    from gigapatch import mask_fraction

    ds = float(truth["downsample"])
    size = int(size_level0)
    stride = int(stride_level0 or size)
    clean = truth["tissue"] & ~truth["pen"] & ~truth["blur"]
    grid = _truth_grid(dims, size, stride)
    ok = (
        (mask_fraction(clean, grid, size, ds) >= min_foreground)
        & (mask_fraction(truth["pen"], grid, size, ds) <= IDEAL_MAX_PEN)
        & (mask_fraction(truth["blur"], grid, size, ds) <= IDEAL_MAX_BLUR)
    )
    ideal = grid[ok]
    kept = np.asarray(coords, np.int64).reshape(-1, 2)
    s = int(round(size / ds))
    kept_union = box_counts(np.floor(kept / ds).astype(np.int64), s, clean.shape) > 0
    target = clean & (box_counts(np.floor(ideal / ds).astype(np.int64), s, clean.shape) > 0)
    denom = float(target.sum())
    covered = float((target & kept_union).sum())
    frac = {k: mask_fraction(truth[k], kept, size, ds) for k in ("tissue", "pen", "blur", "fold")}
    n = len(kept)
    ideal_set = {tuple(p) for p in ideal.tolist()}
    out = {
        "n_kept": float(n),
        "n_ideal": float(len(ideal)),
        "coverage": covered / denom if denom else float("nan"),
        "covered_px": covered if denom else 0.0,
        "target_px": denom,
        "tissue_fraction": float(frac["tissue"].mean()) if n else float("nan"),
        "pen_bad": float((frac["pen"] > IDEAL_MAX_PEN).mean()) if n else 0.0,
        "blur_bad": float((frac["blur"] > IDEAL_MAX_BLUR).mean()) if n else 0.0,
        "fold_kept": float((frac["fold"] > 0.5).mean()) if n else 0.0,
        "precision": float(np.mean([tuple(p) in ideal_set for p in kept.tolist()])) if n else 1.0,
        "ideal_tissue": float(mask_fraction(truth["tissue"], ideal, size, ds).mean())
        if len(ideal) else float("nan"),
    }
    out.update(usable_metrics(kept, size, truth, dims))
    return out


def usable_metrics(
    coords: np.ndarray, size_level0: int, truth: dict[str, Any], dims: tuple[int, int],
    bar: float = USABLE_BAR,
) -> dict[str, float]:
    """Usable tissue under the kept patches against a truth-knowing aligned grid.

    *Usable tissue* is true tissue not under ink and not blurred (``tissue & ~pen & ~blur``).
    The *truth grid* keeps every cell of the aligned grid (anchored at 0, step = the patch side,
    wholly inside ``dims``) with at least ``bar`` usable tissue.

    Parameters
    ----------
    coords : (N, 2) level-0 x, y of the kept patches (any positions; they may overlap).
    size_level0 : patch side in level-0 px.
    truth : :func:`~gigapatch_pathology.synth.synthetic_slide`'s truth.
    dims : level-0 (width, height).
    bar : usable-tissue share the truth grid (and a precise kept patch) needs.

    Returns
    -------
    dict with ``n_usable_grid`` (cells the truth grid keeps); ``usable_cover``: usable tissue
    under the kept patches (their union) / usable tissue under the truth grid's cells
    (``usable_covered_px`` / ``usable_target_px`` in truth pixels, to pool slides; > 1 when
    the patches take usable tissue the grid leaves); ``usable_precision``: share of kept patches
    with at least ``bar`` usable tissue (1.0 without patches); ``overlap``: share of the kept
    patches' union covered by two or more of them.
    """
    from gigapatch import mask_fraction

    ds = float(truth["downsample"])
    size = int(size_level0)
    usable = truth["tissue"] & ~truth["pen"] & ~truth["blur"]
    grid = _truth_grid(dims, size, size)
    cells = grid[mask_fraction(usable, grid, size, ds) >= bar]
    kept = np.asarray(coords, np.int64).reshape(-1, 2)
    s = int(round(size / ds))
    count = box_counts(np.floor(kept / ds).astype(np.int64), s, usable.shape)
    target = float((usable & (box_counts(np.floor(cells / ds).astype(np.int64), s,
                                         usable.shape) > 0)).sum())
    covered = float((usable & (count > 0)).sum())
    union = float((count > 0).sum())
    n = len(kept)
    return {
        "n_usable_grid": float(len(cells)),
        "usable_cover": covered / target if target else float("nan"),
        "usable_covered_px": covered,
        "usable_target_px": target,
        "usable_precision": float((mask_fraction(usable, kept, size, ds) >= bar).mean())
        if n else 1.0,
        "overlap": float((count > 1).sum()) / union if union else 0.0,
    }


__all__ = ["IDEAL_MAX_BLUR", "IDEAL_MAX_PEN", "USABLE_BAR", "box_counts", "truth_metrics",
           "usable_metrics"]
