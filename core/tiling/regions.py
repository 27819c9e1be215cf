"""Regions drive placement: which region each patch lies in, placement region by region, and
how well each region is covered.

Regions (:class:`~gigapatch.tiling.segment.Region`, level-0 polygons with holes) are rasterised
once into a label image at the mask's scale (0 = background, ``k + 1`` = ``regions[k]``); every
per-patch question is then a box sum over an integral image of one region's pixels, inside that
region's bounding box (no per-patch loop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from gigapatch.tiling.coverage import coverage_report
from gigapatch.tiling.integral import box_sums, integral_image
from gigapatch.tiling.place import grid_coords, optimal_coords
from gigapatch.tiling.segment import fill_rings

if TYPE_CHECKING:
    from gigapatch.tiling.segment import Region


def region_labels(regions: list[Region], shape: tuple[int, int], downsample: float) -> np.ndarray:
    """Rasterise regions into an (h, w) int32 label image: ``k + 1`` where ``regions[k]`` holds the
    pixel centre, 0 elsewhere (a later region wins where two overlap)."""
    h, w = int(shape[0]), int(shape[1])
    labels = np.zeros((h, w), np.int32)
    ds = float(downsample)
    for k, region in enumerate(regions):
        ext = np.asarray(region.exterior, np.float64).reshape(-1, 2) / ds
        if len(ext) < 3:
            continue
        x0, y0 = max(int(np.floor(ext[:, 0].min())), 0), max(int(np.floor(ext[:, 1].min())), 0)
        x1, y1 = min(int(np.ceil(ext[:, 0].max())), w), min(int(np.ceil(ext[:, 1].max())), h)
        if x1 <= x0 or y1 <= y0:
            continue
        shift = np.array([x0, y0], np.float64)
        rings = [ext - shift] + [np.asarray(hh, np.float64).reshape(-1, 2) / ds - shift
                                 for hh in region.holes]
        inside = fill_rings(rings, (y1 - y0, x1 - x0))
        labels[y0:y1, x0:x1][inside] = k + 1
    return labels


def _bbox(m: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) half-open bounding box of the True pixels of ``m``, or None."""
    rows = np.flatnonzero(m.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _areas_in(
    m: np.ndarray, box: tuple[int, int, int, int], coords: np.ndarray, size_level0: float, ds: float
) -> np.ndarray:
    """Area (mask px^2, exact) of the pixels of ``m`` (cropped to ``box``) inside each patch."""
    x0, y0, x1, y1 = box
    table = integral_image(m[y0:y1, x0:x1])
    cx = coords[:, 0] / ds - x0
    cy = coords[:, 1] / ds - y0
    side = size_level0 / ds
    return np.asarray(box_sums(table, cx, cy, cx + side, cy + side), np.float64)


def patch_regions(
    labels: np.ndarray, n_regions: int, coords: np.ndarray, size_level0: float, downsample: float
) -> np.ndarray:
    """The region holding most of each patch's foreground.

    Parameters
    ----------
    labels : (h, w) int32 from :func:`region_labels`.
    n_regions : number of regions.
    coords : (N, 2) level-0 top-left x, y.
    size_level0 : patch side in level-0 px.
    downsample : level-0 px per label px.

    Returns
    -------
    (N,) int32 region index (0-based), -1 for a patch that holds no region's pixels.
    """
    c = np.asarray(coords, np.float64).reshape(-1, 2)
    out = np.full(len(c), -1, np.int32)
    if len(c) == 0 or n_regions == 0:
        return out
    best = np.zeros(len(c))
    ds = float(downsample)
    side = size_level0 / ds
    for k in range(n_regions):
        m = labels == k + 1
        box = _bbox(m)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        near = ((c[:, 0] / ds + side > x0) & (c[:, 0] / ds < x1)
                & (c[:, 1] / ds + side > y0) & (c[:, 1] / ds < y1))
        if not near.any():
            continue
        idx = np.flatnonzero(near)
        area = _areas_in(m, box, c[idx], size_level0, ds)
        better = area > best[idx] + 1e-9
        out[idx[better]] = k
        best[idx[better]] = area[better]
    return out


def place_per_region(
    labels: np.ndarray,
    n_regions: int,
    downsample: float,
    size_level0: int,
    stride_level0: int,
    dims: tuple[int, int],
    *,
    placement: Literal["grid", "optimal"] = "grid",
    min_foreground: float = 0.0,
    edge: Literal["inside", "pad"] = "inside",
) -> tuple[np.ndarray, np.ndarray]:
    """Place patches region by region, so that no patch is shared by two regions.

    Each region is placed on its own pixels: ``"grid"`` anchors a grid at the region's bounding
    box (level-0 px), ``"optimal"`` runs :func:`~gigapatch.tiling.place.optimal_coords` on the
    region alone. A patch that would hold any pixel of another region is dropped, so two regions
    closer than one patch never share one.

    Returns
    -------
    coords : (N, 2) int64 level-0 top-left x, y, in row-major order.
    region : (N,) int32 region index of each patch.
    """
    ds = float(downsample)
    w0, h0 = int(dims[0]), int(dims[1])
    size = int(size_level0)
    found: list[np.ndarray] = []
    owner: list[np.ndarray] = []
    for k in range(n_regions):
        m = labels == k + 1
        box = _bbox(m)
        if box is None:
            continue
        if placement == "optimal":
            cand = optimal_coords(m, ds, size, stride_level0, (w0, h0), min_foreground=min_foreground)
        else:  # the grid's anchor: the region's top-left corner
            origin = (int(np.floor(box[0] * ds)), int(np.floor(box[1] * ds)))
            cand = grid_coords(m, ds, size, stride_level0, (w0, h0), min_foreground=min_foreground,
                               edge=edge, origin=origin)
        if len(cand) == 0:
            continue
        others = (labels > 0) & ~m
        obox = _bbox(others)
        if obox is not None:
            shared = _areas_in(others, obox, cand.astype(np.float64), size, ds) > 1e-9
            cand = cand[~shared]
        found.append(cand.astype(np.int64))
        owner.append(np.full(len(cand), k, np.int32))
    if not found:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.int32)
    coords, region = np.concatenate(found), np.concatenate(owner)
    order = np.lexsort((coords[:, 0], coords[:, 1]))
    return coords[order], region[order]


def region_summary(
    labels: np.ndarray,
    n_regions: int,
    downsample: float,
    coords: np.ndarray,
    region: np.ndarray,
    size_level0: int,
) -> list[dict[str, float | int]]:
    """Patches and coverage of every region.

    Returns
    -------
    One dict per region: ``region`` (index), ``area_level0`` (level-0 px^2 of its mask
    pixels), ``n_patches`` (kept patches assigned to it) and ``coverage`` (share of its mask
    pixels inside any kept patch, as :func:`~gigapatch.tiling.coverage.coverage_report`).
    """
    ds = float(downsample)
    c = np.asarray(coords).reshape(-1, 2)
    r = np.asarray(region).reshape(-1)
    rows: list[dict[str, float | int]] = []
    for k in range(n_regions):
        m = labels == k + 1
        box = _bbox(m)
        area = int(np.count_nonzero(m))
        cov = 0.0
        if box is not None and len(c):
            x0, y0, x1, y1 = box
            local = c.astype(np.float64) - np.array([x0 * ds, y0 * ds])
            cov = float(coverage_report(m[y0:y1, x0:x1], ds, local, size_level0)["coverage"])
        rows.append({"region": k, "area_level0": area * ds * ds,
                     "n_patches": int(np.count_nonzero(r == k)), "coverage": cov})
    return rows


__all__ = ["patch_regions", "place_per_region", "region_labels", "region_summary"]
