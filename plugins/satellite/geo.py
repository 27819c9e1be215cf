"""Patch footprints in map coordinates: bounds, polygons and a georeferenced GeoJSON export.

Patches are level-0 pixel squares ``[x, x + size) x [y, y + size)``; an affine ``transform``
(rasterio's, or its first six numbers ``(a, b, c, d, e, f)``) maps pixel (col, row) to map
``(a * col + b * row + c, d * col + e * row + f)``, so the footprints come out in the raster's
CRS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _affine(transform: Any) -> np.ndarray:
    """(2, 3) float64 matrix of an affine transform (Affine object or 6+ numbers)."""
    t = np.asarray(tuple(transform)[:6], np.float64)
    if t.shape != (6,):
        raise ValueError("transform needs six numbers (a, b, c, d, e, f)")
    return t.reshape(2, 3)


def patch_corners(coords: np.ndarray, size_level0: float, transform: Any) -> np.ndarray:
    """Map coordinates of the four corners of every patch.

    Parameters
    ----------
    coords : (N, 2) level-0 top-left x, y (pixel col, row).
    size_level0 : patch side in level-0 px.
    transform : pixel -> map affine transform.

    Returns
    -------
    (N, 4, 2) float64 corners in ring order top-left, bottom-left, bottom-right, top-right (in
    pixel terms), which is counter-clockwise on a north-up map.
    """
    c = np.asarray(coords, np.float64).reshape(-1, 2)
    s = float(size_level0)
    offsets = np.array([[0.0, 0.0], [0.0, s], [s, s], [s, 0.0]])
    px = c[:, None, :] + offsets[None]  # (N, 4, 2) col, row
    m = _affine(transform)
    return px @ m[:, :2].T + m[:, 2]


def patch_bounds(coords: np.ndarray, size_level0: float, transform: Any) -> np.ndarray:
    """Georeferenced bounds of every patch.

    Parameters
    ----------
    coords : (N, 2) level-0 top-left x, y.
    size_level0 : patch side in level-0 px.
    transform : pixel -> map affine transform (e.g. ``image.transform`` of a RasterioImage).

    Returns
    -------
    (N, 4) float64 ``(left, bottom, right, top)``: the envelope of the patch's corners, equal
    to :func:`rasterio.windows.bounds` of its window for a north-up raster.
    """
    corners = patch_corners(coords, size_level0, transform)
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    return np.stack([lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]], axis=1)


def patch_polygons(coords: np.ndarray, size_level0: float, transform: Any) -> np.ndarray:
    """(N,) array of shapely Polygons: the exact (possibly rotated) footprints in map units,
    exteriors counter-clockwise."""
    import shapely

    corners = patch_corners(coords, size_level0, transform)
    rings = np.concatenate([corners, corners[:, :1]], axis=1)  # closed
    return shapely.orient_polygons(shapely.polygons(rings))


def _crs_member(crs: Any) -> dict[str, Any] | None:
    """The (GeoJSON 2008) named-CRS member for ``crs`` (a rasterio CRS or a string)."""
    if crs is None:
        return None
    epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
    text = crs.to_string() if hasattr(crs, "to_string") else str(crs)
    if epsg is None and text.upper().startswith("EPSG:"):
        epsg = int(text.split(":", 1)[1])
    name = f"urn:ogc:def:crs:EPSG::{epsg}" if epsg is not None else text
    return {"type": "name", "properties": {"name": name}}


def to_geojson(
    coords: np.ndarray,
    size_level0: float,
    transform: Any,
    crs: Any = None,
    scores: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Patch footprints as a GeoJSON FeatureCollection in the raster's CRS.

    Parameters
    ----------
    coords : (N, 2) level-0 top-left x, y.
    size_level0 : patch side in level-0 px.
    transform : pixel -> map affine transform.
    crs : the raster's CRS (rasterio CRS or string such as ``"EPSG:32618"``); written as the
        ``crs`` member (GeoJSON 2008 style; RFC 7946 readers assume WGS 84 and ignore it).
    scores : optional name -> (N,) per-patch values, written as feature properties.

    Returns
    -------
    dict: ``{"type": "FeatureCollection", "features": [...], "bbox": [...], "crs": ...}``; each
    feature has properties ``x``, ``y`` (level-0 px) and the scores.
    """
    import shapely

    c = np.asarray(coords, np.int64).reshape(-1, 2)
    polys = patch_polygons(c, size_level0, transform)
    geoms = shapely.to_geojson(polys) if len(polys) else []
    cols = {k: np.asarray(v).tolist() for k, v in (scores or {}).items()}
    features = []
    for i, g in enumerate(geoms):
        props: dict[str, Any] = {"x": int(c[i, 0]), "y": int(c[i, 1])}
        for k, v in cols.items():
            val = v[i]
            props[k] = None if isinstance(val, float) and not np.isfinite(val) else val
        features.append({"type": "Feature", "geometry": json.loads(g), "properties": props})
    out: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if len(c):
        b = patch_bounds(c, size_level0, transform)
        out["bbox"] = [float(b[:, 0].min()), float(b[:, 1].min()),
                       float(b[:, 2].max()), float(b[:, 3].max())]
    member = _crs_member(crs)
    if member is not None:
        out["crs"] = member
    return out


def write_geojson(path: str | Path, patchset: Any, image: Any) -> Path:
    """Write the kept patches of ``patchset`` (a :class:`gigapatch.PatchSet`) as georeferenced
    footprints, using ``image.transform`` and ``image.crs`` (a :class:`RasterioImage`)."""
    p = Path(path)
    data = to_geojson(
        patchset.coords, patchset.patch_size_level0, image.transform, image.crs, patchset.scores
    )
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data))
    return p
