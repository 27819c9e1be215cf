"""Regions drive placement: which region each patch lies in, placement region by region, and
how well each region is covered.

Regions (:class:`~gigapatch.tiling.segment.Region`, level-0 polygons with holes) are rasterised
once into a label image at the mask's scale (0 = background, ``k + 1`` = ``regions[k]``), kept
to the foreground mask, so a region's pixels are its foreground. Every per-patch question is a
box sum over the summed-area table of one region's pixels, cropped to that region's bounding box
(or that box grown by one patch): vectorised over patches, and per region only its own box is
visited, never the whole image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

from gigapatch.tiling.coverage import coverage_report
from gigapatch.tiling.integral import box_sums, integral_table
from gigapatch.tiling.place import optimal_coords
from gigapatch.tiling.segment import fill_rings

if TYPE_CHECKING:
    from gigapatch.tiling.segment import Region

#: tolerance on areas (mask px^2) against the floating-point noise of the interpolated tables
_EPS = 1e-6


def region_labels(
    regions: list[Region],
    shape: tuple[int, int],
    downsample: float,
    *,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Rasterise regions into a label image on the mask grid.

    A pixel takes label ``k + 1`` when its centre lies inside ``regions[k]`` (inside its exterior,
    outside its holes: the rule of :func:`~gigapatch.tiling.segment.regions_to_mask`, so
    ``labels > 0`` equals ``regions_to_mask(regions, shape, downsample)``); where regions overlap,
    the later one wins.

    Parameters
    ----------
    regions : :class:`Region` list, level-0 px.
    shape : (h, w) of the mask grid.
    downsample : level-0 px per mask px.
    mask : optional (h, w) bool foreground: labels are kept to it (0 outside).

    Returns
    -------
    (h, w) int32 labels, 0 = no region.
    """
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
        labels[y0:y1, x0:x1][fill_rings(rings, (y1 - y0, x1 - x0))] = k + 1
    if mask is not None:
        np.multiply(labels, np.asarray(mask, bool), out=labels)
    return labels


def region_extents(labels: np.ndarray, n_regions: int) -> tuple[np.ndarray, np.ndarray]:
    """Tight bounding box and pixel count of every label, from the runs of equal labels along
    the rows (a box spans the first and last run of its label, an area sums its runs' lengths:
    one pass over the image, then work per run).

    Parameters
    ----------
    labels : (h, w) integer labels in ``[0, n_regions]`` (0 = no region).
    n_regions : number of regions.

    Returns
    -------
    boxes : (n_regions, 4) int64 half-open ``x0, y0, x1, y1`` in mask px; all zero for a region
        with no pixel (e.g. one hidden by a later region, or off the mask).
    areas : (n_regions,) int64 pixels of each label (``np.bincount(labels)[1:]``).
    """
    lab = np.asarray(labels)
    n = int(n_regions)
    boxes = np.zeros((n, 4), np.int64)
    if lab.size == 0 or n == 0:
        return boxes, np.zeros(n, np.int64)
    if int(lab.min()) < 0 or int(lab.max()) > n:
        raise ValueError(f"labels must lie in [0, {n}]")
    w = lab.shape[1]
    nz = lab != 0
    change = lab[:, 1:] != lab[:, :-1]
    start, end = nz.copy(), nz
    start[:, 1:] &= change
    end[:, :-1] &= change
    fs, fe = np.flatnonzero(start), np.flatnonzero(end)  # run starts and ends, paired in order
    ys, xs = np.divmod(fs, w)
    ye, xe = np.divmod(fe, w)
    ks = lab.reshape(-1)[fs].astype(np.int64) - 1  # a run's label, at its start and its end
    lo = np.full((n, 2), np.iinfo(np.int64).max)
    hi = np.full((n, 2), -1, np.int64)
    np.minimum.at(lo, ks, np.stack([xs, ys], 1))
    np.maximum.at(hi, ks, np.stack([xe, ye], 1) + 1)
    found = hi[:, 0] >= 0
    boxes[found] = np.hstack([lo, hi])[found]
    areas = np.bincount(ks, weights=fe - fs + 1, minlength=n)[:n]
    return boxes, np.rint(areas).astype(np.int64)


def region_boxes(labels: np.ndarray, n_regions: int) -> np.ndarray:
    """(n_regions, 4) int64 tight half-open ``x0, y0, x1, y1`` box of every label in mask px
    (all zero for a label with no pixel): :func:`region_extents`' boxes."""
    return region_extents(labels, n_regions)[0]


def _near(coords: np.ndarray, box: np.ndarray, side: float, ds: float) -> np.ndarray:
    """(N,) bool: the level-0 patches ``coords`` (N, 2) that meet the mask-px ``box``."""
    x, y = coords[:, 0] / ds, coords[:, 1] / ds
    return (x + side > box[0]) & (x < box[2]) & (y + side > box[1]) & (y < box[3])


def _areas(table: np.ndarray, corner: tuple[int, int], coords: np.ndarray, side: float,
           ds: float) -> np.ndarray:
    """(N,) float64 area (mask px^2, exact) of a crop's pixels inside each level-0 patch of
    ``coords`` (N, 2): ``table`` is the crop's summed-area table, ``corner`` = (x, y) its
    top-left mask px; nothing outside the crop counts."""
    cx = coords[:, 0] / ds - corner[0]
    cy = coords[:, 1] / ds - corner[1]
    return np.asarray(box_sums(table, cx, cy, cx + side, cy + side), np.float64)


def _own_areas(labels: np.ndarray, k: int, box: np.ndarray, coords: np.ndarray, side: float,
               ds: float) -> np.ndarray:
    """(N,) area (mask px^2) of region ``k``'s pixels inside each patch."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return _areas(integral_table(labels[y0:y1, x0:x1] == k + 1), (x0, y0), coords, side, ds)


def patch_regions(
    labels: np.ndarray, n_regions: int, coords: np.ndarray, size_level0: float, downsample: float,
    *, boxes: np.ndarray | None = None,
) -> np.ndarray:
    """The region holding most of each patch's foreground (ties: the lower index).

    Parameters
    ----------
    labels : (h, w) int32 from :func:`region_labels`.
    n_regions : number of regions.
    coords : (N, 2) level-0 top-left x, y.
    size_level0 : patch side in level-0 px.
    downsample : level-0 px per label px.
    boxes : optional (n_regions, 4) :func:`region_boxes` of ``labels``, when the caller has them.

    Returns
    -------
    (N,) int32 region index (0-based), -1 for a patch that holds no region's pixels.
    """
    c = np.asarray(coords, np.float64).reshape(-1, 2)
    out = np.full(len(c), -1, np.int32)
    if len(c) == 0 or n_regions == 0:
        return out
    ds = float(downsample)
    side = size_level0 / ds
    best = np.zeros(len(c))
    if boxes is None:
        boxes = region_boxes(labels, n_regions)
    for k in np.flatnonzero(boxes[:, 2] > boxes[:, 0]):
        idx = np.flatnonzero(_near(c, boxes[k], side, ds))
        area = _own_areas(labels, int(k), boxes[k], c[idx], side, ds)
        better = area > best[idx] + _EPS
        out[idx[better]] = k
        best[idx[better]] = area[better]
    return out


def own_fraction(
    labels: np.ndarray, n_regions: int, coords: np.ndarray, region: np.ndarray,
    size_level0: float, downsample: float, *, boxes: np.ndarray | None = None,
) -> np.ndarray:
    """Fraction of each patch covered by its own region's pixels.

    Parameters
    ----------
    labels : (h, w) int32 from :func:`region_labels`; n_regions : number of regions.
    coords : (N, 2) level-0 top-left x, y; region : (N,) int32 region of each (-1: none).
    size_level0 : patch side in level-0 px; downsample : level-0 px per label px.
    boxes : optional (n_regions, 4) :func:`region_boxes` of ``labels``, when the caller has them.

    Returns
    -------
    (N,) float32 in [0, 1] (0 for a patch of no region).
    """
    c = np.asarray(coords, np.float64).reshape(-1, 2)
    r = np.asarray(region).reshape(-1)
    out = np.zeros(len(c), np.float32)
    ks = np.unique(r[r >= 0])
    if len(ks) == 0:
        return out
    ds = float(downsample)
    side = size_level0 / ds
    if boxes is None:
        boxes = region_boxes(labels, n_regions)
    for k in ks:
        sel = np.flatnonzero(r == k)
        area = _own_areas(labels, int(k), boxes[k], c[sel], side, ds)
        out[sel] = np.clip(area / (side * side), 0.0, 1.0)
    return out


class _View(NamedTuple):
    """A region's pixels in its box (``own``, top-left mask px ``corner``) and the other
    regions' pixels in that box grown by one patch (``other_table``, top-left ``other_corner``;
    None when there are none), with summed-area tables."""

    own: np.ndarray
    corner: tuple[int, int]
    own_table: np.ndarray
    other_corner: tuple[int, int]
    other_table: np.ndarray | None


def _view(labels: np.ndarray, k: int, box: np.ndarray, side: float) -> _View:
    """Region ``k`` (box ``box``, mask px) and its neighbours within a patch."""
    x0, y0, x1, y1 = (int(v) for v in box)
    own = labels[y0:y1, x0:x1] == k + 1
    gx0, gy0, gx1, gy1 = _grown(box, side, labels.shape)
    win = labels[gy0:gy1, gx0:gx1]
    other = (win != 0) & (win != k + 1)
    return _View(own, (x0, y0), integral_table(own), (gx0, gy0),
                 integral_table(other) if other.any() else None)


def _keep(view: _View, cand: np.ndarray, side: float, ds: float, min_foreground: float
          ) -> np.ndarray:
    """(N,) bool: the patches holding some of the region's pixels, at least ``min_foreground``
    of the patch, and no pixel of another region."""
    c = cand.astype(np.float64)
    own = _areas(view.own_table, view.corner, c, side, ds)
    ok = (own > _EPS) & (own >= min_foreground * side * side - _EPS)
    if view.other_table is not None:
        ok &= _areas(view.other_table, view.other_corner, c, side, ds) <= _EPS
    return ok


def _covered(view: _View, cand: np.ndarray, size: int, ds: float) -> int:
    """Pixels of the region inside the patches (:func:`coverage_report`'s ``covered_px``)."""
    shift = np.array([view.corner[0] * ds, view.corner[1] * ds])
    return int(coverage_report(view.own, ds, cand - shift, size)["covered_px"])


def _cells(lo: float, hi: float, origin: int, size: int, stride: int, dim: int, edge: str
           ) -> np.ndarray:
    """Positions ``origin + j * stride`` (any integer j) of the patches meeting ``[lo, hi)``
    (level-0) that the image admits: wholly inside ``[0, dim)`` (``"inside"``), or starting in
    it (``"pad"``)."""
    j0 = int(np.floor((lo - size - origin) / stride)) + 1
    j1 = int(np.ceil((hi - origin) / stride))
    p = origin + stride * np.arange(j0, max(j0, j1), dtype=np.int64)
    return p[(p >= 0) & (p <= (dim - size if edge == "inside" else dim - 1))]


def _anchored_grid(
    view: _View, box: np.ndarray, ds: float, size: int, stride: int, dims: tuple[int, int],
    edge: str, min_foreground: float, select: float,
) -> np.ndarray:
    """The region's grid anchored at the corner of its box (top-left, top-right, bottom-left or
    bottom-right, level-0) whose patches reaching ``select`` cover most of it once the patches
    holding another region are dropped (ties: the first, top-left first). Returns its patches
    holding at least ``min_foreground`` (N, 2) int64, row-major."""
    side = size / ds
    axes = []
    for lo, hi, dim in ((box[0] * ds, box[2] * ds, dims[0]), (box[1] * ds, box[3] * ds, dims[1])):
        near, far = int(np.floor(lo)), int(np.ceil(hi)) - size
        axes.append([_cells(lo, hi, o, size, stride, dim, edge) for o in (near, far)])
    best, best_key = np.zeros((0, 2), np.int64), (-1, 0)
    for ys in axes[1]:
        for xs in axes[0]:
            gx, gy = np.meshgrid(xs, ys)  # (ny, nx): row-major order
            cand = np.stack([gx.ravel(), gy.ravel()], axis=1)
            cand = cand[_keep(view, cand, side, ds, min_foreground)]
            good = cand[_keep(view, cand, side, ds, select)] if select > min_foreground else cand
            key = (_covered(view, good, size, ds), -len(cand))
            if key > best_key:
                best, best_key = cand, key
    return best


def _grown(box: np.ndarray, side: float, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` (mask px) grown by one patch and a pixel on every side, clipped to ``shape``."""
    pad = int(np.ceil(side)) + 1
    return (max(int(box[0]) - pad, 0), max(int(box[1]) - pad, 0),
            min(int(box[2]) + pad, shape[1]), min(int(box[3]) + pad, shape[0]))


def _optimal_in_region(
    labels: np.ndarray, k: int, box: np.ndarray, ds: float, size: int, stride: int,
    dims: tuple[int, int], min_foreground: float,
) -> np.ndarray:
    """:func:`optimal_coords` of region ``k`` alone, on the crop of its box grown by a patch, in
    a level-0 frame moved to the whole level-0 px nearest the crop's corner (exact when ``ds``
    is whole; else the search sees the crop shifted by under half a level-0 px, and the caller
    measures what it returns exactly)."""
    x0, y0, x1, y1 = _grown(box, size / ds, labels.shape)
    ox, oy = int(round(x0 * ds)), int(round(y0 * ds))
    crop = labels[y0:y1, x0:x1] == k + 1
    found = optimal_coords(crop, ds, size, stride, (dims[0] - ox, dims[1] - oy),
                           min_foreground=min_foreground)
    return found + np.array([ox, oy], np.int64)


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
    edge: Literal["inside", "pad", "shift"] = "inside",
    select_foreground: float | None = None,
    boxes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Place patches region by region, so that no patch is shared by two regions.

    Every region is placed on its own pixels, and a patch holding any pixel of another region is
    dropped: two regions closer than one patch never share one (a strip of a region within a
    patch of its neighbour may go uncovered). ``"grid"``: a grid (``stride_level0``) anchored at
    a corner of the region's bounding box, the corner whose patches (those reaching
    ``select_foreground``) cover most of the region once shared patches are dropped; it keeps
    the cells holding some of the region and at least ``min_foreground``. ``"optimal"``:
    :func:`~gigapatch.tiling.place.optimal_coords` on the region alone, shared patches dropped,
    or the region's grid (``edge="inside"``) where that covers more.

    Parameters
    ----------
    labels : (h, w) int32 from :func:`region_labels`.
    n_regions : number of regions.
    downsample : level-0 px per label px.
    size_level0, stride_level0 : patch side and step in level-0 px.
    dims : (width, height) of level 0.
    placement, min_foreground, edge : as ``patch.placement``, ``patch.min_foreground`` and
        ``patch.edge`` (``edge`` applies to ``"grid"``; ``"shift"`` is ``"inside"`` here: a
        region's grid anchored at its far corner already ends at the region's edge).
    select_foreground : the fraction a patch will need to be kept (default ``min_foreground``):
        what the anchor and the grid-or-optimal choice are judged on.
    boxes : optional (n_regions, 4) :func:`region_boxes` of ``labels``, when the caller has them.

    Returns
    -------
    coords : (N, 2) int64 level-0 top-left x, y, in row-major order (y, then x).
    region : (N,) int32 region index of each patch.
    """
    ds = float(downsample)
    size, stride = int(size_level0), int(stride_level0)
    dims = (int(dims[0]), int(dims[1]))
    select = min_foreground if select_foreground is None else max(select_foreground,
                                                                  min_foreground)
    if boxes is None:
        boxes = region_boxes(labels, n_regions)
    found: list[np.ndarray] = [np.zeros((0, 2), np.int64)]
    owner: list[np.ndarray] = [np.zeros(0, np.int32)]
    for k in np.flatnonzero(boxes[:, 2] > boxes[:, 0]):
        view = _view(labels, int(k), boxes[k], size / ds)
        grid_edge = "inside" if placement == "optimal" or edge == "shift" else edge
        cand = _anchored_grid(view, boxes[k], ds, size, stride, dims, grid_edge, min_foreground,
                              select)
        if placement == "optimal":
            opt = _optimal_in_region(labels, int(k), boxes[k], ds, size, stride, dims,
                                     min_foreground)
            opt = opt[_keep(view, opt, size / ds, ds, min_foreground)]
            if _covered(view, opt, size, ds) >= _covered(view, cand, size, ds):
                cand = opt
        found.append(cand.astype(np.int64))
        owner.append(np.full(len(cand), k, np.int32))
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
    *,
    covered: np.ndarray | None = None,
    areas: np.ndarray | None = None,
) -> list[dict[str, float | int]]:
    """Patches and coverage of every region.

    Parameters
    ----------
    labels : (h, w) int32 from :func:`region_labels`; n_regions : number of regions.
    downsample : level-0 px per label px.
    coords : (N, 2) level-0 top-left x, y of the kept patches; region : (N,) int32 their regions.
    size_level0 : patch side in level-0 px.
    covered : optional (n_regions,) pixels of each region inside any kept patch, when the caller
        has them (:func:`~gigapatch.tiling.coverage.coverage_report` with ``labels``); else
        measured here, the same way.
    areas : optional (n_regions,) pixels of each region (:func:`region_extents`), when the
        caller has them; else counted here.

    Returns
    -------
    One dict per region: ``region`` (index), ``area_level0`` (level-0 px^2 of its pixels),
    ``n_patches`` (kept patches assigned to it) and ``coverage`` (share of its pixels inside any
    kept patch).
    """
    ds = float(downsample)
    lab = np.asarray(labels)
    r = np.asarray(region).reshape(-1)
    counts = np.bincount(r[r >= 0], minlength=n_regions)
    if areas is None:
        areas = region_extents(lab, n_regions)[1]
    if covered is None:
        covered = coverage_report(lab > 0, ds, coords, size_level0, labels=lab,
                                  n_labels=n_regions)["covered_by_label"]
    return [{"region": k, "area_level0": float(areas[k]) * ds * ds, "n_patches": int(counts[k]),
             "coverage": float(covered[k]) / float(areas[k]) if areas[k] else 0.0}
            for k in range(n_regions)]


__all__ = [
    "own_fraction",
    "patch_regions",
    "place_per_region",
    "region_boxes",
    "region_extents",
    "region_labels",
    "region_summary",
]
