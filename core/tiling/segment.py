"""Segmentation of a foreground mask into connected regions with holes (contour hierarchy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Region:
    """One connected foreground region, in level-0 pixel coordinates.

    Attributes
    ----------
    exterior : (K, 2) float64 array of x, y vertices of the outer contour (level-0 px).
    holes : list of (K_i, 2) float64 arrays, one per hole.
    label : integer id, 0-based, stable within one image.
    properties : free-form (e.g. a classification name imported from QuPath).
    """

    exterior: np.ndarray
    holes: list[np.ndarray] = field(default_factory=list)
    label: int = 0
    properties: dict[str, Any] = field(default_factory=dict)

    def to_shapely(self):  # -> shapely.Polygon
        import shapely

        return shapely.Polygon(self.exterior, [h for h in self.holes if len(h) >= 3])

    @property
    def area(self) -> float:
        """Area in level-0 px^2 (exterior minus holes)."""
        return float(self.to_shapely().area)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in level-0 px."""
        x, y = self.exterior[:, 0], self.exterior[:, 1]
        return float(x.min()), float(y.min()), float(x.max()), float(y.max())


# --------------------------------------------------------------------------- mask -> regions


def _closure_grid(mask: np.ndarray) -> np.ndarray:
    """(2h + 1, 2w + 1) uint8 cell complex of the closed pixel squares of ``mask``.

    Cell (2i + 1, 2j + 1) is pixel (i, j); even rows/columns are the pixel edges and corners. An
    edge cell is set when a pixel on either side of it is, a corner cell when one of its four
    pixels is (a 3 x 3 dilation of the pixel cells, written directly: one grid-sized array), so
    the cells on the border of this image are exactly the corners and edge midpoints of the
    pixel boundary ("crack" boundary) of the mask.
    """
    m = np.asarray(mask, dtype=bool).view(np.uint8)
    h, w = m.shape
    g = np.zeros((2 * h + 1, 2 * w + 1), np.uint8)
    g[1::2, 1::2] = m
    # vertical edges (odd rows, even columns): the pixels left and right
    g[1::2, 0] = m[:, 0]
    g[1::2, -1] = m[:, -1]
    np.bitwise_or(m[:, :-1], m[:, 1:], out=g[1::2, 2:-1:2])
    # horizontal edges and corners (even rows): the odd rows above and below
    g[0] = g[1]
    g[-1] = g[-2]
    np.bitwise_or(g[1:-2:2], g[3::2], out=g[2:-1:2])
    return g


def _crack_rings(
    contours: list[np.ndarray], grid: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """Exact pixel-boundary rings (mask px) from 8-connected contours traced on ``grid``.

    The tracer steps diagonally at concave corners; of the two cells beside a diagonal step
    exactly one is foreground (the closure always contains the corner cell), and the boundary
    runs through it: insert it, then halve (grid cell -> mask px) and drop collinear vertices.
    All contours are processed at once (concatenated, with per-ring wrap-around).

    Returns
    -------
    rings : list of (K_i, 2) float64 vertex arrays in mask px.
    areas : (n,) float64 signed shoelace areas (mask px^2, positive = counter-clockwise).
    """
    lens = np.fromiter((len(c) for c in contours), np.int64, len(contours))
    if len(lens) == 0:
        return [], np.zeros(0)
    c = np.concatenate([np.asarray(x).reshape(-1, 2) for x in contours]).astype(np.int64)
    ring = np.repeat(np.arange(len(lens)), lens)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])

    def neighbours(
        n_lens: np.ndarray, n_starts: np.ndarray, ring_id: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Index of the next and previous vertex of each vertex, wrapping within its ring."""
        idx = np.arange(len(ring_id))
        local = idx - n_starts[ring_id]
        nxt = n_starts[ring_id] + (local + 1) % n_lens[ring_id]
        prv = n_starts[ring_id] + (local - 1) % n_lens[ring_id]
        return nxt, prv

    nxt, _ = neighbours(lens, starts, ring)
    d = c[nxt] - c
    diag = (d[:, 0] != 0) & (d[:, 1] != 0)
    if diag.any():
        gh, gw = grid.shape
        cand_a = np.stack([c[:, 0] + d[:, 0], c[:, 1]], axis=1)
        cand_b = np.stack([c[:, 0], c[:, 1] + d[:, 1]], axis=1)
        fg_a = grid[np.clip(cand_a[:, 1], 0, gh - 1), np.clip(cand_a[:, 0], 0, gw - 1)] > 0
        mid = np.where(fg_a[:, None], cand_a, cand_b)
        pos = np.arange(len(c)) + np.concatenate([[0], np.cumsum(diag)[:-1]])
        pts = np.empty((len(c) + int(diag.sum()), 2), np.int64)
        pts[pos] = c
        pts[pos[diag] + 1] = mid[diag]
        new_ring = np.empty(len(pts), np.int64)
        new_ring[pos] = ring
        new_ring[pos[diag] + 1] = ring[diag]
        lens = lens + np.bincount(ring[diag], minlength=len(lens))
        c, ring = pts, new_ring
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    # drop vertices where the direction does not change
    nxt, prv = neighbours(lens, starts, ring)
    keep = np.any((c - c[prv]) != (c[nxt] - c), axis=1) | (lens[ring] <= 2)
    c, ring = c[keep], ring[keep]
    lens = np.bincount(ring, minlength=len(lens))
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    nxt, _ = neighbours(lens, starts, ring)
    xy = c.astype(np.float64) / 2.0
    cross = xy[:, 0] * xy[nxt, 1] - xy[nxt, 0] * xy[:, 1]
    areas = 0.5 * np.bincount(ring, weights=cross, minlength=len(lens))
    return np.split(xy, np.cumsum(lens)[:-1]), areas


def segment_mask(
    mask: np.ndarray,
    downsample: float = 1.0,
    *,
    min_area: float = 0.0,
    min_hole_area: float = 0.0,
    origin: tuple[float, float] = (0.0, 0.0),
) -> list[Region]:
    """Split a mask into connected regions with holes, as polygons in level-0 pixels.

    Contours describe pixel *areas*, not pixel centres: mask pixel (i, j) covers
    ``[j, j + 1) x [i, i + 1)``, and each ring runs along pixel edges, so
    ``regions_to_mask(segment_mask(m, ds), m.shape, ds) == m`` for every mask (with the default
    area filters) and a region's area is its pixel count times ``downsample ** 2``. Traced with
    :func:`cv2.findContours` (``RETR_CCOMP``) on the cell complex of the mask (see
    :func:`_closure_grid`): regions are 8-connected, holes 4-connected; two pixels touching at a
    corner belong to one region whose ring touches itself at that corner.

    Parameters
    ----------
    mask : (h, w) bool (non-zero = foreground).
    downsample : level-0 px per mask px.
    min_area : drop regions whose area (exterior minus holes) is below this (level-0 px^2).
    min_hole_area : holes smaller than this (level-0 px^2) are dropped (i.e. filled).
    origin : level-0 (x, y) of the mask's top-left corner, e.g. ``(-pad * ds, -pad * ds)`` for a
        mask padded by :func:`gigapatch.tiling.refine.pad_mask`.

    Returns
    -------
    list of :class:`Region`, sorted by area (descending), labels 0..n-1. Exteriors are
    counter-clockwise in (x, y) (positive shoelace area, the GeoJSON convention), holes
    clockwise; rings are not closed (first vertex not repeated).
    """
    import cv2

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"segment_mask needs a 2-D mask, got shape {m.shape}")
    if downsample <= 0:
        raise ValueError("downsample must be positive")
    m = (m != 0).view(np.uint8) if m.dtype == bool else (m != 0).astype(np.uint8)
    if m.size == 0 or not m.any():
        return []
    grid = _closure_grid(m)
    contours, hierarchy = cv2.findContours(grid, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return []
    hier = hierarchy.reshape(-1, 4)
    ds = float(downsample)
    ox, oy = float(origin[0]), float(origin[1])
    scale2 = ds * ds

    def to_level0(ring: np.ndarray) -> np.ndarray:
        out = ring * ds
        out[:, 0] += ox
        out[:, 1] += oy
        return out

    rings, areas = _crack_rings(list(contours), grid)  # areas in mask px^2: exact integers
    holes_of: dict[int, list[int]] = {}
    for child, parent in enumerate(hier[:, 3]):
        if parent >= 0:
            holes_of.setdefault(int(parent), []).append(child)
    found: list[tuple[float, float, float, Region]] = []
    for i in np.flatnonzero(hier[:, 3] < 0):
        ext = rings[i] if areas[i] > 0 else rings[i][::-1]
        holes: list[np.ndarray] = []
        area_px = abs(areas[i])
        for j in holes_of.get(int(i), []):
            if abs(areas[j]) * scale2 < min_hole_area:
                continue
            ring = rings[j] if areas[j] < 0 else rings[j][::-1]
            holes.append(to_level0(ring))
            area_px -= abs(areas[j])
        if area_px * scale2 < min_area:
            continue
        region = Region(exterior=to_level0(ext), holes=holes)
        found.append((-area_px, float(ext[:, 1].min()), float(ext[:, 0].min()), region))
    # largest first; ties (exact, in pixels) by top then left edge
    order = sorted(range(len(found)), key=lambda k: found[k][:3])
    regions = []
    for label, k in enumerate(order):
        region = found[k][3]
        region.label = label
        regions.append(region)
    return regions


def fill_rings(rings: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Even-odd scanline fill of polygon rings: the pixels whose centres are inside.

    Pixel (i, j) has its centre at (j + 0.5, i + 0.5). Every edge is intersected with the
    centre line of each pixel row it spans (half-open in y, so a vertex is counted once); each
    crossing toggles the pixels whose centres lie to its right, accumulated with a difference
    array and a cumulative sum along the rows (parity). Vectorised over all edges; exact up to
    centres lying exactly on an edge.

    Parameters
    ----------
    rings : list of (K, 2) x, y vertex arrays in pixel units (rings need not be closed).
    shape : (h, w) of the output.

    Returns
    -------
    (h, w) bool.
    """
    h, w = int(shape[0]), int(shape[1])
    rings = [np.asarray(r, np.float64).reshape(-1, 2) for r in rings]
    rings = [r for r in rings if len(r) >= 3]
    if not rings or h == 0 or w == 0:
        return np.zeros((h, w), bool)
    p0 = np.concatenate(rings)
    p1 = np.concatenate([np.roll(r, -1, axis=0) for r in rings])
    y_lo, y_hi = np.minimum(p0[:, 1], p1[:, 1]), np.maximum(p0[:, 1], p1[:, 1])
    # rows whose centre y = i + 0.5 is in [y_lo, y_hi), clipped to the image
    r0 = np.clip(np.ceil(y_lo - 0.5), 0, h).astype(np.int64)
    r1 = np.clip(np.ceil(y_hi - 0.5), 0, h).astype(np.int64)
    count = np.maximum(r1 - r0, 0)
    total = int(count.sum())
    if total == 0:
        return np.zeros((h, w), bool)
    edge = np.repeat(np.arange(len(p0)), count)
    row = r0[edge] + (np.arange(total) - np.repeat(np.cumsum(count) - count, count))
    yc = row + 0.5
    a, b = p0[edge], p1[edge]
    x = a[:, 0] + (yc - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    col = np.clip(np.floor(x - 0.5) + 1, 0, w).astype(np.int64)  # first centre right of x
    toggles = np.zeros(h * (w + 1), np.uint8)
    np.add.at(toggles, row * (w + 1) + col, 1)  # uint8 wraps mod 256: parity is kept
    parity = np.cumsum(toggles.reshape(h, w + 1), axis=1, dtype=np.uint8)[:, :w] & 1
    return parity.astype(bool)


def regions_to_mask(
    regions: list[Region],
    shape: tuple[int, int],
    downsample: float = 1.0,
    *,
    origin: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Rasterise regions (level-0 polygons with holes) onto a mask grid.

    A mask pixel is set when its centre lies inside a region: inside its exterior and outside its
    holes (:func:`fill_rings`, even-odd). Rings that run along pixel edges (as from
    :func:`segment_mask`) rasterise exactly. Regions are filled one by one in their bounding
    boxes and united, so overlapping regions union and an island inside another region's hole
    is kept.

    Parameters
    ----------
    regions : :class:`Region` list, level-0 px.
    shape : (h, w) of the mask.
    downsample : level-0 px per mask px.
    origin : level-0 (x, y) of the mask's top-left corner.

    Returns
    -------
    (h, w) bool.
    """
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((h, w), bool)
    if h == 0 or w == 0:
        return out
    ds = float(downsample)
    o = np.array(origin, np.float64)
    for region in regions:
        ext = (np.asarray(region.exterior, np.float64).reshape(-1, 2) - o) / ds
        if len(ext) < 3:
            continue
        x0 = max(int(np.floor(ext[:, 0].min())), 0)
        y0 = max(int(np.floor(ext[:, 1].min())), 0)
        x1 = min(int(np.ceil(ext[:, 0].max())), w)
        y1 = min(int(np.ceil(ext[:, 1].max())), h)
        if x1 <= x0 or y1 <= y0:
            continue
        shift = np.array([x0, y0], np.float64)
        rings = [ext - shift] + [
            (np.asarray(hole, np.float64).reshape(-1, 2) - o) / ds - shift
            for hole in region.holes
        ]
        out[y0:y1, x0:x1] |= fill_rings(rings, (y1 - y0, x1 - x0))
    return out
