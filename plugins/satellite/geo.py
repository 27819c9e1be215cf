"""Patch footprints in map coordinates: windows, transforms, bounds, polygons, GeoJSON.

Patches are level-0 pixel squares ``[x, x + size) x [y, y + size)``; an affine ``transform``
(rasterio's, or its first six numbers ``(a, b, c, d, e, f)``) maps pixel (col, row) to map
``(a * col + b * row + c, d * col + e * row + f)``, so the footprints come out in the raster's
CRS; rotated grids (``b``, ``d`` not 0) are exact too. Everything is vectorised over patches.

GeoJSON comes in two flavours: in the raster's own CRS (named in a ``crs`` member, the 2008
convention GDAL and QGIS read), and RFC 7946 (WGS 84 longitude, latitude; no ``crs`` member;
exterior rings counter-clockwise), the patch corners transformed by PROJ.
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
    (N, 4) float64 ``(left, bottom, right, top)``: the envelope of the patch's four corners,
    equal to :func:`rasterio.windows.bounds` of its window on a north-up grid (on a rotated one,
    rasterio's takes two corners only; this is the true envelope).
    """
    corners = patch_corners(coords, size_level0, transform)
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    return np.stack([lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]], axis=1)


def patch_transforms(coords: np.ndarray, size_level0: float, size: int, transform: Any
                     ) -> np.ndarray:
    """The affine transform of every patch as a chip of ``size`` x ``size`` px.

    Parameters
    ----------
    coords : (N, 2) level-0 top-left x, y; size_level0 : patch side in level-0 px.
    size : the chip's side in px (``size_level0`` when read at level 0 without resizing).
    transform : the raster's level-0 pixel -> map transform.

    Returns
    -------
    (N, 6) float64 ``(a, b, c, d, e, f)``: :func:`rasterio.windows.transform` of the patch's
    level-0 window, scaled by ``size_level0 / size`` (the chip's pixels are that much larger).
    """
    m = _affine(transform)
    c = np.asarray(coords, np.float64).reshape(-1, 2)
    k = float(size_level0) / float(size)
    origin = c @ m[:, :2].T + m[:, 2]  # (N, 2) map x, y of the top-left corner
    out = np.empty((len(c), 6), np.float64)
    out[:, [0, 1, 3, 4]] = (m[:, :2] * k).reshape(-1)[[0, 1, 2, 3]]
    out[:, 2], out[:, 5] = origin[:, 0], origin[:, 1]
    return out


def windows_of(bounds: np.ndarray, transform: Any) -> np.ndarray:
    """Level-0 pixel windows ``(col_off, row_off, width, height)`` (float64, (N, 4)) of map
    ``bounds`` (N, 4) on a north-up raster: the inverse of :func:`patch_bounds`."""
    m = _affine(transform)
    if m[0, 1] != 0 or m[1, 0] != 0:
        raise ValueError("windows from bounds need a north-up transform (b = d = 0)")
    b = np.asarray(bounds, np.float64).reshape(-1, 4)
    col0 = (b[:, 0] - m[0, 2]) / m[0, 0]
    col1 = (b[:, 2] - m[0, 2]) / m[0, 0]
    row0 = (b[:, 3] - m[1, 2]) / m[1, 1]
    row1 = (b[:, 1] - m[1, 2]) / m[1, 1]
    c0, r0 = np.minimum(col0, col1), np.minimum(row0, row1)
    return np.stack([c0, r0, np.abs(col1 - col0), np.abs(row1 - row0)], axis=1)


def patch_polygons(coords: np.ndarray, size_level0: float, transform: Any) -> np.ndarray:
    """(N,) array of shapely Polygons: the exact (possibly rotated) footprints in map units,
    exteriors counter-clockwise."""
    return corner_polygons(patch_corners(coords, size_level0, transform))


def corner_polygons(corners: np.ndarray) -> np.ndarray:
    import shapely

    rings = np.concatenate([corners, corners[:, :1]], axis=1)  # closed
    return shapely.orient_polygons(shapely.polygons(rings))


def to_wgs84(xy: np.ndarray, crs: Any) -> np.ndarray:
    """(..., 2) map x, y in ``crs`` -> (..., 2) float64 WGS 84 longitude, latitude (PROJ, through
    GDAL's :func:`rasterio.warp.transform`, axis order x/lon first)."""
    from rasterio.warp import transform as warp

    a = np.asarray(xy, np.float64)
    flat = a.reshape(-1, 2)
    lon, lat = warp(crs, "EPSG:4326", flat[:, 0].tolist(), flat[:, 1].tolist())
    return np.stack([np.asarray(lon), np.asarray(lat)], axis=1).reshape(a.shape)


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


def _properties(c: np.ndarray, values: dict[str, Any]) -> list[dict[str, Any]]:
    cols = {k: np.asarray(v).tolist() for k, v in values.items()}
    out = []
    for i in range(len(c)):
        props: dict[str, Any] = {"x": int(c[i, 0]), "y": int(c[i, 1])}
        for k, v in cols.items():
            val = v[i]
            props[k] = None if isinstance(val, float) and not np.isfinite(val) else val
        out.append(props)
    return out


def to_geojson(
    coords: np.ndarray,
    size_level0: float,
    transform: Any,
    crs: Any = None,
    scores: dict[str, np.ndarray] | None = None,
    columns: dict[str, np.ndarray] | None = None,
    *,
    wgs84: bool = False,
) -> dict[str, Any]:
    """Patch footprints as a GeoJSON FeatureCollection.

    Parameters
    ----------
    coords : (N, 2) level-0 top-left x, y.
    size_level0 : patch side in level-0 px.
    transform : pixel -> map affine transform.
    crs : the raster's CRS (rasterio CRS or string such as ``"EPSG:32618"``).
    scores, columns : optional name -> (N,) per-patch values, written as feature properties.
    wgs84 : False: coordinates in ``crs``, named in a ``crs`` member (GeoJSON 2008, as GDAL and
        QGIS read it); True: RFC 7946, WGS 84 longitude / latitude of the corners (``crs``
        needed), no ``crs`` member.

    Returns
    -------
    dict: ``{"type": "FeatureCollection", "generator": "gigapatch <version>", "features": [...],
    "bbox": [...] (, "crs": ...)}``; each feature has properties ``x``, ``y`` (level-0 px),
    the scores and columns (NaN as null); every geometry is a valid polygon.
    """
    import shapely

    from gigapatch import __version__

    c = np.asarray(coords, np.int64).reshape(-1, 2)
    corners = patch_corners(c, size_level0, transform)
    if wgs84:
        if crs is None:
            raise ValueError("WGS 84 footprints need the raster's CRS")
        corners = to_wgs84(corners, crs)
    polys = corner_polygons(corners) if len(c) else np.zeros(0, object)
    geoms = shapely.to_geojson(polys) if len(polys) else []
    props = _properties(c, {**(scores or {}), **(columns or {})})
    features = [{"type": "Feature", "geometry": json.loads(g), "properties": p}
                for g, p in zip(geoms, props)]
    out: dict[str, Any] = {"type": "FeatureCollection", "generator": f"gigapatch {__version__}",
                           "features": features}
    if len(c):
        lo, hi = corners.min(axis=(0, 1)), corners.max(axis=(0, 1))
        out["bbox"] = [float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])]
    member = None if wgs84 else _crs_member(crs)
    if member is not None:
        out["crs"] = member
    return out


def write_geojson(path: str | Path, patchset: Any, image: Any, *, wgs84: bool = False) -> Path:
    """Write the kept patches of ``patchset`` (a :class:`gigapatch.PatchSet`) as georeferenced
    footprints with their scores and columns, using ``image.transform`` and ``image.crs`` (a
    :class:`RasterioImage`), in its CRS or (``wgs84``) RFC 7946; written to a temporary name,
    then renamed."""
    from gigapatch import write_text_atomic

    p = Path(path)
    data = to_geojson(
        patchset.coords, patchset.patch_size_level0, image.transform, image.crs, patchset.scores,
        patchset.columns, wgs84=wgs84,
    )
    p.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(p, json.dumps(data))
    return p


def write_geoparquet(path: str | Path, table: dict[str, np.ndarray], coords: np.ndarray,
                     size_level0: float, transform: Any, crs: Any) -> Path:
    """Write ``table`` (name -> (N,) columns, one row per patch at ``coords``) as GeoParquet
    1.1: a WKB ``geometry`` column of the footprints in the raster's CRS, described (PROJJSON
    CRS, bbox, encoding) in the file's ``geo`` metadata; temporary name, then renamed."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    from gigapatch import __version__, atomic_path

    c = np.asarray(coords, np.int64).reshape(-1, 2)
    polys = patch_polygons(c, size_level0, transform) if len(c) else np.zeros(0, object)
    data = {k: pa.array(np.asarray(v)) for k, v in table.items()}
    data["geometry"] = pa.array(list(shapely.to_wkb(polys)) if len(c) else [], pa.binary())
    column: dict[str, Any] = {"encoding": "WKB", "geometry_types": ["Polygon"]}
    if crs is not None:
        column["crs"] = crs.to_dict(projjson=True) if hasattr(crs, "to_dict") else str(crs)
    if len(c):
        b = patch_bounds(c, size_level0, transform)
        column["bbox"] = [float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()),
                          float(b[:, 3].max())]
    geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column},
           "creator": {"library": "gigapatch", "version": __version__}}
    t = pa.table(data)
    t = t.replace_schema_metadata({**(t.schema.metadata or {}), b"geo": json.dumps(geo).encode()})
    p = Path(path)
    with atomic_path(p) as tmp:
        pq.write_table(t, tmp)
    return p


__all__ = [
    "corner_polygons",
    "patch_bounds",
    "patch_corners",
    "patch_polygons",
    "patch_transforms",
    "to_geojson",
    "to_wgs84",
    "windows_of",
    "write_geojson",
    "write_geoparquet",
]
