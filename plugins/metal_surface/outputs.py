"""The metal_surface domain's own per-patch columns and files.

* ``gigapatch_patch_columns``: per-patch labels from the Pascal-VOC boxes beside the image
  (``<image>.xml``, as NEU-DET ships them): ``label`` is the class of the box overlapping the
  patch most, when that box covers ``label_overlap`` of the patch or of itself, else
  ``normal``; ``label_overlap`` that overlap; ``defects_held`` how many boxes the patch covers
  at least half of. With ``folder_labels`` the label is the image's folder name (class folders).
* ``gigapatch_write_outputs``: ``<id>_defects.csv`` / ``.geojson`` / ``.xml``, one record per
  defect candidate (merged across patch borders, in level-0 px, matched to the true boxes when
  there are any), ``<id>_defects.npz`` (the distance map, for AUPRO) and ``<id>_review.png``: the scan with the distance-from-normal heatmap, the
  kept patches, the candidates and the true boxes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gigapatch import hookimpl

from .settings import DOMAIN, settings

NORMAL = "normal"


def sidecar_boxes(context: Any) -> list[tuple[str, int, int, int, int]] | None:
    """The VOC boxes of ``<image stem>.xml`` beside the image (None when there is none),
    read once per image."""
    cache = context.plugin_cache(DOMAIN)
    if "truth" not in cache:
        path = getattr(context.image, "path", None)
        xml = None if path is None else Path(path).with_suffix(".xml")
        if xml is not None and xml.is_file():
            from .voc import read_voc_boxes

            cache["truth"] = read_voc_boxes(xml)
        else:
            cache["truth"] = None
    return cache["truth"]


def patch_labels(coords: np.ndarray, size: float, boxes: list[tuple[str, int, int, int, int]],
                 threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-patch labels from VOC boxes.

    Returns
    -------
    label : (N,) str: the class of the box with the largest overlap (intersection over the
        smaller of box and patch) when it reaches ``threshold``, else ``"normal"``.
    overlap : (N,) float32 that largest overlap.
    held : (N,) int32 boxes the patch covers at least half of.
    """
    from .candidates import coverage, intersection_over_smaller
    from .metrics import rects

    c = np.asarray(coords, np.float64).reshape(-1, 2)
    n = len(c)
    if n == 0 or not boxes:
        return np.full(n, NORMAL, dtype=object), np.zeros(n, np.float32), np.zeros(n, np.int32)
    r = rects(boxes)
    patches = np.concatenate([c, c + size], axis=1)
    ios = intersection_over_smaller(patches, r)
    best = ios.argmax(axis=1)
    top = ios[np.arange(n), best]
    names = np.array([b[0] for b in boxes], dtype=object)
    label = np.where(top >= threshold, names[best], NORMAL).astype(object)
    held = (coverage(c, size, r) >= 0.5 - 1e-9).sum(axis=1).astype(np.int32)
    return label, top.astype(np.float32), held


@hookimpl
def gigapatch_patch_columns(coords: np.ndarray, context: Any) -> dict[str, np.ndarray] | None:
    """``label``, ``label_overlap`` and ``defects_held`` from the VOC boxes beside the image
    (or ``label`` from its folder with ``folder_labels``)."""
    if context.domain != DOMAIN:
        return None
    s = settings(context.config)
    size = context.geometry.size_level0
    if s.voc and (boxes := sidecar_boxes(context)) is not None:
        label, overlap, held = patch_labels(coords, size, boxes, s.label_overlap)
        return {"label": label.astype(str), "label_overlap": overlap, "defects_held": held}
    path = getattr(context.image, "path", None)
    if s.folder_labels and path is not None:
        return {"label": np.full(len(coords), Path(path).parent.name)}
    return None


# ------------------------------------------------------------------------ defect records
def defect_records(context: Any) -> dict[str, np.ndarray] | None:
    """The image's defect candidates as columns (None when the ``normal`` scorer did not run):
    ``defect`` id, ``x0, y0, x1, y1`` (level-0 px, half-open), ``peak`` and ``excess``
    distance, ``cells``, and with true boxes the ``match`` class (``""``: a false alarm)."""
    cache = context.plugin_cache(DOMAIN)
    cand = cache.get("candidates")
    if cand is None:
        return None
    b = cand.boxes
    cols: dict[str, np.ndarray] = {
        "defect": np.arange(len(cand), dtype=np.int64),
        "x0": b[:, 0].astype(np.int64), "y0": b[:, 1].astype(np.int64),
        "x1": b[:, 2].astype(np.int64), "y1": b[:, 3].astype(np.int64),
        "peak": cand.peak.astype(np.float32), "excess": cand.excess.astype(np.float32),
        "cells": cand.cells.astype(np.int64),
    }
    pixel = context.image.pixel_size
    if context.config.patch.pixel_size is not None:
        from gigapatch import PixelSize

        px, py = context.config.patch.pixel_size
        pixel = PixelSize(float(px), float(py), "mm")
    if pixel is not None:
        mm = pixel.to("mm")
        cols["width_mm"] = ((b[:, 2] - b[:, 0]) * mm.x).astype(np.float32)
        cols["height_mm"] = ((b[:, 3] - b[:, 1]) * mm.y).astype(np.float32)
    truth = sidecar_boxes(context)
    if truth:
        from .metrics import match_records, rects

        m = match_records(b, rects(truth))
        names = np.array([t[0] for t in truth] + [""], dtype=object)
        first = np.where(m.any(axis=1), m.argmax(axis=1), len(truth))
        cols["match"] = names[first].astype(str)
    return cols


def _write_csv(path: Path, cols: dict[str, np.ndarray]) -> Path:
    import csv
    import io

    from gigapatch import write_text_atomic

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(list(cols))
    for row in zip(*(c.tolist() for c in cols.values())):
        w.writerow([f"{v:.4g}" if isinstance(v, float) else v for v in row])
    write_text_atomic(path, buf.getvalue())
    return path


def _write_geojson(path: Path, cols: dict[str, np.ndarray]) -> Path:
    """The records as GeoJSON polygons in level-0 pixels (x right, y down), QuPath-style."""
    from gigapatch import write_text_atomic

    feats = []
    props = [k for k in cols if k not in ("x0", "y0", "x1", "y1")]
    for i in range(len(cols["x0"])):
        x0, y0, x1, y1 = (int(cols[k][i]) for k in ("x0", "y0", "x1", "y1"))
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        p = {k: cols[k][i].item() for k in props}
        p["objectType"] = "detection"
        p["classification"] = {"name": str(p.get("match") or "defect")}
        feats.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                      "properties": p})
    write_text_atomic(path, json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def _write_voc(path: Path, cols: dict[str, np.ndarray], image: Any) -> Path:
    from .synth import write_voc

    w, h = image.dimensions
    names = cols.get("match", np.full(len(cols["x0"]), ""))
    boxes = [(str(n) or "defect", int(a) + 1, int(b) + 1, max(int(a) + 1, int(c)),
              max(int(b) + 1, int(d)))
             for n, a, b, c, d in zip(names, cols["x0"], cols["y0"], cols["x1"], cols["y1"])]
    name = Path(image.path).name if image.path else "image"
    return write_voc(path, name, (h, w), boxes)


def _write_map(path: Path, context: Any) -> Path:
    """The distance-from-normal map: ``distance`` (rows, cols) float32, ``origin`` (level-0 x,
    y of cell (0, 0)), ``cell`` (px) and the defect ``threshold``."""
    from gigapatch import atomic_path

    m = context.plugin_cache(DOMAIN)["map"]
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, distance=m.distance.astype(np.float32),
                            origin=np.asarray(m.origin, np.int64), cell=m.cell,
                            threshold=m.threshold)
    return path


@hookimpl
def gigapatch_write_outputs(patchset: Any, context: Any, out_dir: Path) -> dict[str, Path] | None:
    """``<id>_defects.csv/.geojson/.xml`` (``plugin.metal_surface.defects``) and
    ``<id>_review.png`` (``plugin.metal_surface.review``)."""
    if context.domain != DOMAIN:
        return None
    s = settings(context.config)
    out: dict[str, Path] = {}
    stem = Path(out_dir) / patchset.image_id
    cols = defect_records(context) if s.defects else None
    if cols is not None:
        out["defects_map"] = _write_map(Path(f"{stem}_defects.npz"), context)
        out["defects"] = _write_csv(Path(f"{stem}_defects.csv"), cols)
        out["defects_geojson"] = _write_geojson(Path(f"{stem}_defects.geojson"), cols)
        out["defects_voc"] = _write_voc(Path(f"{stem}_defects.xml"), cols, context.image)
    if s.review and context.rgb is not None:
        from .review import write_review

        out["review"] = write_review(Path(f"{stem}_review.png"), patchset, context,
                                     sidecar_boxes(context))
    return out or None


__all__ = ["defect_records", "patch_labels", "sidecar_boxes"]
