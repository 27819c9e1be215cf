"""Patches that cover the same ground as a patch of another image of the same run.

Overlapping scenes (two Landsat paths, two UTM zones) are each tiled in their own CRS; a patch
of the image being written is a duplicate when at least :data:`MIN_OVERLAP` of its area lies
under one kept patch of an image written before it into the same output folder. The other
image's patch footprints are reprojected into this image's CRS (their corners, by PROJ) and
intersected exactly (shapely, an STRtree over them). The first image of a run has no
duplicates; the second one's overlapping patches are flagged, naming the first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .geo import corner_polygons, patch_corners

#: share of a patch's area under another image's patch that makes it a duplicate
MIN_OVERLAP = 0.5


def _reproject(corners: np.ndarray, src: Any, dst: Any) -> np.ndarray:
    from rasterio.warp import transform as warp

    if src == dst:
        return corners
    flat = corners.reshape(-1, 2)
    x, y = warp(src, dst, flat[:, 0].tolist(), flat[:, 1].tolist())
    return np.stack([np.asarray(x), np.asarray(y)], axis=1).reshape(corners.shape)


def find_duplicates(out_dir: Path, image_id: str, coords: np.ndarray, size_level0: int,
                    transform: Any, crs: Any) -> list[dict[str, Any]]:
    """One row per duplicate patch of ``image_id`` (``coords`` (N, 2) level-0 x, y of its kept
    patches): ``x``, ``y``, ``other`` (image id), ``other_x``, ``other_y``, ``overlap`` (share
    of this patch's area), the largest overlap for each patch. Compares with every image whose
    ``<id>_raster.json`` is already in ``out_dir``."""
    import shapely
    from rasterio.crs import CRS

    from gigapatch import PatchSet

    c = np.asarray(coords, np.int64).reshape(-1, 2)
    if len(c) == 0 or crs is None:
        return []
    mine = corner_polygons(patch_corners(c, size_level0, transform))
    area = shapely.area(mine)
    best = np.zeros(len(c))
    rows: dict[int, dict[str, Any]] = {}
    for record in sorted(out_dir.glob("*_raster.json")):
        info = json.loads(record.read_text())
        other_id = info.get("image_id")
        h5 = out_dir / f"{other_id}.h5"
        if other_id == image_id or not info.get("crs_wkt") or not h5.exists():
            continue
        other = PatchSet.read(h5)
        if len(other) == 0:
            continue
        corners = patch_corners(other.coords, other.patch_size_level0, info["transform"])
        polys = corner_polygons(_reproject(corners, CRS.from_wkt(info["crs_wkt"]), crs))
        tree = shapely.STRtree(polys)
        i_mine, i_other = tree.query(mine, predicate="intersects")
        if len(i_mine) == 0:
            continue
        share = shapely.area(shapely.intersection(mine[i_mine], polys[i_other])) / area[i_mine]
        for a, b, s in zip(i_mine.tolist(), i_other.tolist(), share.tolist()):
            if s >= MIN_OVERLAP and s > best[a]:
                best[a] = s
                ox, oy = (int(v) for v in other.coords[b])
                rows[a] = {"x": int(c[a, 0]), "y": int(c[a, 1]), "other": other_id,
                           "other_x": ox, "other_y": oy, "overlap": round(float(s), 6)}
    return [rows[k] for k in sorted(rows)]


def write_duplicates(path: Path, rows: list[dict[str, Any]]) -> Path:
    """``rows`` as CSV (header always), temporary name then renamed."""
    import csv
    import io

    from gigapatch import write_text_atomic

    buf = io.StringIO()
    w = csv.DictWriter(buf, ["x", "y", "other", "other_x", "other_y", "overlap"])
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())
    return path


__all__ = ["MIN_OVERLAP", "find_duplicates", "write_duplicates"]
