"""GeoJSON round trip with QuPath: export tissue regions and patches, read hand-edited annotations
back as include / exclude polygons, and rasterise them into a mask.

All coordinates are level-0 pixels (QuPath's image coordinates), x right, y down. The export is a
``FeatureCollection``: each region is an ``"annotation"`` classified by the region class its
domain declares (``region_class`` in ``gigapatch_domains``: pathology "Tissue", metal_surface
"Metal", satellite "Land", generic "Foreground") unless the region names its own, each kept patch
a ``"detection"`` box whose scores are in ``properties.measurements`` (a name -> value mapping, as
QuPath >= 0.4 writes it). Every geometry written passes ``shapely.is_valid``: a region whose
pixel-boundary ring touches itself (two pixels meeting at a corner) is written as the valid
(Multi)Polygon of the same area.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gigapatch.outputs.patchset import PatchSet
    from gigapatch.tiling.segment import Region

#: QuPath's default colours (packed RGB ints are also accepted; lists are what QuPath writes)
TISSUE_COLOR = [80, 200, 80]
PATCH_COLOR = [40, 120, 255]
REJECTED_COLOR = [220, 60, 60]


def _ring(a: np.ndarray) -> list[list[float]]:
    pts = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    if len(pts) and not np.array_equal(pts[0], pts[-1]):
        pts = np.vstack([pts, pts[:1]])
    return pts.tolist()


def _json_num(v: Any) -> float | None:
    f = float(v)
    return f if math.isfinite(f) else None


def valid_polygon(region: Region) -> Any:
    """The region as a valid shapely Polygon or MultiPolygon of the same area, exteriors
    counter-clockwise and holes clockwise (GeoJSON's right-hand rule).

    :func:`gigapatch.tiling.segment.segment_mask` rings follow pixel edges exactly, so a ring may
    touch itself where two pixels meet at a corner (OGC: "Ring Self-intersection"); such a
    polygon is rebuilt with ``shapely.make_valid`` (``method="structure"``), keeping only its
    polygonal parts (collapsed slivers have no area).
    """
    import shapely

    poly = region.to_shapely()
    if not poly.is_valid:
        fixed = shapely.make_valid(poly, method="structure", keep_collapsed=False)
        parts = [g for g in shapely.get_parts(fixed) if isinstance(g, shapely.Polygon)
                 and not g.is_empty]
        poly = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    return shapely.orient_polygons(poly)


def region_class(domain: str | None) -> str:
    """The GeoJSON class name of ``domain``'s regions (its declared ``region_class``; generic's,
    "Foreground", for a domain that declares none)."""
    from gigapatch.plugin.manager import list_domains

    domains = list_domains()
    info = domains.get(domain or "generic") or domains.get("generic") or {}
    return str(info.get("region_class") or "Foreground")


def region_feature(region: Region, default_class: str = "Foreground") -> dict[str, Any]:
    """One :class:`Region` as a QuPath annotation feature (valid, rings closed, CCW exteriors),
    classified ``region.properties["classification"]`` (or ``"name"``) when it has one, else
    ``default_class``."""
    from shapely.geometry import mapping

    poly = valid_polygon(region)
    name = str(region.properties.get("classification", region.properties.get("name", default_class)))
    props: dict[str, Any] = {
        "objectType": "annotation",
        "name": f"region {region.label}",
        "classification": {"name": name, "color": TISSUE_COLOR},
        "isLocked": False,
        "measurements": {"label": region.label, "area_px": _json_num(poly.area)},
    }
    return {"type": "Feature", "geometry": mapping(poly), "properties": props}


def _box_features(
    coords: np.ndarray, size: int, scores: dict[str, np.ndarray], cls: str, color: list[int],
    reasons: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    c = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    x0, y0 = c[:, 0].tolist(), c[:, 1].tolist()
    cols = {k: np.asarray(v, np.float64).tolist() for k, v in scores.items()}
    feats = []
    for i in range(len(c)):
        x, y = x0[i], y0[i]
        ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
        meas = {k: (v[i] if math.isfinite(v[i]) else None) for k, v in cols.items()}
        name = cls if reasons is None else f"{cls}: {reasons[i]}"
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "objectType": "detection",
                    "classification": {"name": name, "color": color},
                    "measurements": meas,
                },
            }
        )
    return feats


def to_geojson(
    patchset: PatchSet, regions: list[Region] | None = None, include_rejected: bool = False
) -> dict[str, Any]:
    """The FeatureCollection dict of :func:`export_geojson` (see there)."""
    regions = patchset.regions if regions is None else regions
    size = patchset.patch_size_level0
    cls = region_class(patchset.attrs.get("domain"))
    feats = [region_feature(r, cls) for r in regions]
    feats += _box_features(patchset.coords, size, patchset.scores, "Patch", PATCH_COLOR)
    if include_rejected and len(patchset.rejected_coords):
        feats += _box_features(
            patchset.rejected_coords, size, patchset.rejected_scores, "Rejected", REJECTED_COLOR,
            reasons=np.asarray(patchset.rejected_reason).astype(str),
        )
    from gigapatch.version import __version__

    return {"type": "FeatureCollection", "generator": f"gigapatch {__version__}", "features": feats}


def export_geojson(
    patchset: PatchSet,
    path: str | Path,
    regions: list[Region] | None = None,
    include_rejected: bool = False,
) -> Path:
    """Write regions and patches as a QuPath-compatible GeoJSON FeatureCollection.

    Parameters
    ----------
    patchset : its ``coords`` (N, 2) level-0 top-left corners and ``attrs["patch_size_level0"]``
        give the detection boxes; its ``scores`` become each box's measurements (NaN -> null).
    path : output file (written to a temporary name, then renamed).
    regions : regions (level-0 px) to write as annotations, classified by the region class of
        ``patchset.attrs["domain"]``; default ``patchset.regions``.
    include_rejected : also write rejected candidates as detections classified
        ``"Rejected: <reason>"``.

    Returns
    -------
    The path written.
    """
    from gigapatch.io.atomic import write_text_atomic

    path = Path(path)
    write_text_atomic(path, json.dumps(to_geojson(patchset, regions, include_rejected)))
    return path


__all__ = ["export_geojson", "region_class", "region_feature", "to_geojson", "valid_polygon"]
