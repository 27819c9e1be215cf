"""Hand-drawn annotations (GeoJSON, e.g. edited in QuPath) read back as include / exclude polygons
and rasterised into the foreground mask.

All coordinates are level-0 pixels (QuPath's image coordinates), x right, y down.
"""

from __future__ import annotations

import json
import math
import warnings
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gigapatch.errors import ConfigError

if TYPE_CHECKING:
    from gigapatch.config import AnnotationConfig

#: QuPath's default colours (packed RGB ints are also accepted; lists are what QuPath writes)
TISSUE_COLOR = [80, 200, 80]
PATCH_COLOR = [40, 120, 255]
REJECTED_COLOR = [220, 60, 60]

#: an annotation file larger than this is refused before it is parsed (5 million vertices of
#: QuPath's JSON take ~100 MB)
MAX_ANNOTATION_BYTES = 200 << 20
#: vertices a file may hold in all
MAX_VERTICES = 5_000_000
#: coordinates are level-0 px: beyond this they are not (degrees, metres, or garbage)
MAX_COORDINATE = 1e9
#: a ring with more vertices than this is rasterised by point-in-polygon tests on the pixel
#: centres (prepared, indexed) instead of scan conversion (which costs vertices x pixels)
DENSE_RING = 10_000


# ---------------------------------------------------------------------------------- reading
def _class_name(props: dict[str, Any]) -> str:
    c = props.get("classification")
    if isinstance(c, dict):
        return str(c.get("name") or "")
    if isinstance(c, str):
        return c
    return str(props.get("classification_name") or "")


def _features(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):  # older QuPath: a bare array of features
        return data
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError("not a GeoJSON object (no 'type')")
    if data["type"] == "FeatureCollection":
        feats = data.get("features")
        if not isinstance(feats, list):
            raise ValueError("FeatureCollection without a 'features' list")
        return feats
    if data["type"] == "Feature":
        return [data]
    return [{"type": "Feature", "geometry": data, "properties": {}}]  # a bare geometry


def _matches(name: str, patterns: list[str] | None) -> bool:
    return any(fnmatchcase(name, p) for p in (patterns or []))


def read_annotations(
    path: str | Path, ann_cfg: AnnotationConfig | None = None
) -> tuple[list[Any], list[Any]]:
    """Read include and exclude polygons from a GeoJSON file (e.g. exported from QuPath).

    A feature is *excluded* when its classification name matches a pattern of
    ``ann_cfg.exclude`` (fnmatch, case-sensitive; default ``Exclude``, ``Ignore*``, ``Other``);
    otherwise it is *included* when ``ann_cfg.include`` is None or one of its patterns matches.
    Detections (``objectType: "detection"``, e.g. exported patches) and features without area
    (points, lines) are skipped; invalid polygons are repaired with ``shapely.make_valid``.

    Returns
    -------
    include, exclude : lists of shapely (Multi)Polygons in level-0 px.

    Raises
    ------
    ConfigError
        naming the file when it is missing, not JSON, not GeoJSON or has bad coordinates.
    """
    import shapely

    from gigapatch.config import AnnotationConfig

    cfg = ann_cfg or AnnotationConfig()
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_ANNOTATION_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size:,} bytes is too large for an "
                              f"annotation file (limit {MAX_ANNOTATION_BYTES:,})")
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ConfigError(f"{path}: not valid JSON ({str(e)[:200]})") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not an annotation file") from None
    include: list[Any] = []
    exclude: list[Any] = []
    vertices = 0
    try:
        feats = _features(data)
        for i, feat in enumerate(feats):
            if not isinstance(feat, dict) or not isinstance(feat.get("geometry"), dict):
                raise ValueError(f"feature {i} has no geometry")
            props = feat.get("properties") or {}
            if not isinstance(props, dict):
                raise ValueError(f"feature {i}: 'properties' is not an object")
            if props.get("objectType") == "detection":
                continue
            geom = _geometry(feat["geometry"], i)
            vertices += shapely.get_num_coordinates(geom)
            if vertices > MAX_VERTICES:
                raise ValueError(f"more than {MAX_VERTICES:,} vertices (feature {i}); simplify "
                                 "the annotations")
            if not geom.is_valid:  # self-intersections, bow-ties: repaired
                geom = shapely.make_valid(geom)
            geom = _areal(geom)
            if geom is None:
                continue
            name = _class_name(props)
            if _matches(name, cfg.exclude):
                exclude.append(geom)
            elif cfg.include is None or _matches(name, cfg.include):
                include.append(geom)
    except (ValueError, TypeError, shapely.errors.GEOSException) as e:
        raise ConfigError(f"{path}: not usable GeoJSON: {str(e)[:300]}") from None
    return include, exclude


def _geometry(geojson: dict[str, Any], i: int) -> Any:
    """The shapely geometry of feature ``i``'s GeoJSON ``geometry``; ValueError naming the
    feature when it cannot be built or a coordinate is not finite or beyond
    :data:`MAX_COORDINATE` (annotations are level-0 px)."""
    import shapely
    from shapely.geometry import shape

    try:
        with warnings.catch_warnings():  # NaN coordinates: said below, not as a RuntimeWarning
            warnings.simplefilter("ignore", RuntimeWarning)
            geom = shape(geojson)
    except Exception as e:
        raise ValueError(f"feature {i}: bad geometry ({str(e)[:200]})") from None
    xy = shapely.get_coordinates(geom)
    if not np.isfinite(xy).all():
        raise ValueError(f"feature {i}: a coordinate is NaN or infinite")
    if len(xy) and np.abs(xy).max() > MAX_COORDINATE:
        raise ValueError(f"feature {i}: coordinates reach {np.abs(xy).max():.3g}, beyond "
                         f"{MAX_COORDINATE:.0e} px; annotations are level-0 pixel coordinates "
                         "(not degrees or metres)")
    return geom


def _areal(geom: Any) -> Any | None:
    """The polygonal part of a geometry, or None when it has no area."""
    import shapely

    if geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom if geom.area > 0 else None
    polys = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        return None
    out = shapely.union_all(polys)
    return out if out.area > 0 else None


def rasterize_polygons(
    geoms: list[Any], shape: tuple[int, int], downsample: float
) -> np.ndarray:
    """Bool (h, w) mask of the pixels whose centres fall in any of ``geoms`` (level-0 px).

    Mask pixel (row i, col j) covers level-0 ``[j*ds, (j+1)*ds) x [i*ds, (i+1)*ds)``. Holes are
    honoured; overlapping polygons are united.
    """
    import shapely
    from skimage.draw import polygon as fill_polygon

    h, w = shape
    out = np.zeros((h, w), bool)
    for g in geoms:
        for poly in getattr(g, "geoms", [g]):
            if poly.geom_type != "Polygon" or poly.is_empty:
                continue
            x0, y0, x1, y1 = poly.bounds
            c0 = max(0, int(math.floor(x0 / downsample)) - 1)
            r0 = max(0, int(math.floor(y0 / downsample)) - 1)
            c1 = min(w, int(math.ceil(x1 / downsample)) + 1)
            r1 = min(h, int(math.ceil(y1 / downsample)) + 1)
            if c1 <= c0 or r1 <= r0:
                continue
            if shapely.get_num_coordinates(poly) > DENSE_RING:
                out[r0:r1, c0:c1] |= _centres_inside(poly, r0, r1, c0, c1, downsample)
                continue
            sub = np.zeros((r1 - r0, c1 - c0), bool)
            for k, ring in enumerate([poly.exterior, *poly.interiors]):
                # pixel (i, j) has its centre at level-0 ((j + 0.5) ds, (i + 0.5) ds)
                xy = np.asarray(ring.coords, np.float64)[:, :2] / downsample - 0.5
                rr, cc = fill_polygon(xy[:, 1] - r0, xy[:, 0] - c0, shape=sub.shape)
                sub[rr, cc] = k == 0  # exterior on, holes off (holes never overlap)
            out[r0:r1, c0:c1] |= sub
    return out


def _centres_inside(poly: Any, r0: int, r1: int, c0: int, c1: int, ds: float) -> np.ndarray:
    """Bool (r1 - r0, c1 - c0): mask pixels of that window whose centres lie in ``poly``
    (prepared: an indexed test, O(pixels log vertices)), one row band at a time."""
    import shapely

    shapely.prepare(poly)
    xs = (np.arange(c0, c1) + 0.5) * ds
    out = np.zeros((r1 - r0, c1 - c0), bool)
    band = max(1, 1_000_000 // max(1, c1 - c0))
    for r in range(r0, r1, band):
        rows = np.arange(r, min(r + band, r1))
        gx, gy = np.meshgrid(xs, (rows + 0.5) * ds)
        out[r - r0:r - r0 + len(rows)] = shapely.contains_xy(poly, gx, gy)
    return out


def annotation_mask(
    path: str | Path,
    shape: tuple[int, int],
    downsample: float,
    base_mask: np.ndarray | None = None,
    ann_cfg: AnnotationConfig | None = None,
) -> np.ndarray:
    """Combine hand-drawn annotations with a computed foreground mask.

    Parameters
    ----------
    path : GeoJSON file in level-0 px (see :func:`read_annotations`).
    shape : (h, w) of the mask.
    downsample : level-0 px per mask px.
    base_mask : (h, w) bool computed foreground, or None to use the include polygons alone.
    ann_cfg : include / exclude classification patterns.

    Returns
    -------
    (h, w) bool: ``base_mask & include`` when there are include polygons (``include`` alone when
    ``base_mask`` is None; ``base_mask`` alone when there are none), minus the exclude polygons.
    """
    import shapely

    include, exclude = read_annotations(path, ann_cfg)
    if base_mask is not None and base_mask.shape != tuple(shape):
        raise ValueError(f"base_mask shape {base_mask.shape} != {tuple(shape)}")
    w0, h0 = shape[1] * downsample, shape[0] * downsample
    if include and not any(shapely.intersects(g, shapely.box(0, 0, w0, h0)) for g in include):
        raise ConfigError(f"{path}: no include polygon lies on the image ({w0:,.0f} x "
                          f"{h0:,.0f} level-0 px): are its coordinates this image's level-0 "
                          "pixels?")
    if include:
        inc = rasterize_polygons(include, shape, downsample)
        out = inc if base_mask is None else (np.asarray(base_mask, bool) & inc)
    else:
        out = np.zeros(shape, bool) if base_mask is None else np.asarray(base_mask, bool).copy()
    if exclude:
        out &= ~rasterize_polygons(exclude, shape, downsample)
    return out


__all__ = ["annotation_mask", "rasterize_polygons", "read_annotations"]
