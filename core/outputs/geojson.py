"""GeoJSON round trip with QuPath: export tissue regions and patches, read hand-edited annotations
back as include / exclude polygons, and rasterise them into a mask.

All coordinates are level-0 pixels (QuPath's image coordinates), x right, y down. The export is a
``FeatureCollection``: each tissue region is an ``"annotation"`` (``classification.name`` =
``"Tissue"`` unless the region says otherwise), each kept patch a ``"detection"`` box whose scores
are in ``properties.measurements`` (a name -> value mapping, as QuPath >= 0.4 writes it).
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


def region_feature(region: Region) -> dict[str, Any]:
    """One tissue :class:`Region` as a QuPath annotation feature (rings closed, CCW exterior)."""
    import shapely
    from shapely.geometry import mapping
    from shapely.geometry.polygon import orient

    poly = orient(shapely.Polygon(region.exterior, [h for h in region.holes if len(h) >= 3]), 1.0)
    name = str(region.properties.get("classification", region.properties.get("name", "Tissue")))
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
    feats = [region_feature(r) for r in regions]
    feats += _box_features(patchset.coords, size, patchset.scores, "Patch", PATCH_COLOR)
    if include_rejected and len(patchset.rejected_coords):
        feats += _box_features(
            patchset.rejected_coords, size, patchset.rejected_scores, "Rejected", REJECTED_COLOR,
            reasons=np.asarray(patchset.rejected_reason).astype(str),
        )
    return {"type": "FeatureCollection", "features": feats}


def export_geojson(
    patchset: PatchSet,
    path: str | Path,
    regions: list[Region] | None = None,
    include_rejected: bool = False,
) -> Path:
    """Write tissue regions and patches as a QuPath-compatible GeoJSON FeatureCollection.

    Parameters
    ----------
    patchset : its ``coords`` (N, 2) level-0 top-left corners and ``attrs["patch_size_level0"]``
        give the detection boxes; its ``scores`` become each box's measurements (NaN -> null).
    path : output file (written to a temporary name, then renamed).
    regions : tissue regions (level-0 px) to write as annotations; default ``patchset.regions``.
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


__all__ = ["export_geojson", "region_feature", "to_geojson"]
