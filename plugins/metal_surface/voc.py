"""Pascal-VOC box annotations (as shipped with NEU-DET) and per-patch box overlap.

VOC corners are 1-based and inclusive: a box ``xmin..xmax`` covers pixel columns
``xmin - 1 .. xmax - 1``, i.e. the level-0 area ``[xmin - 1, xmax) x [ymin - 1, ymax)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gigapatch import ImageError

Box = tuple[str, int, int, int, int]


def read_voc_boxes(xml_path: str | Path) -> list[Box]:
    """Boxes of a Pascal-VOC annotation file.

    Returns
    -------
    list of ``(name, xmin, ymin, xmax, ymax)`` as written in the file (1-based, inclusive).

    Raises
    ------
    ImageError : missing file, not XML, or an object without a complete ``bndbox`` (one line).
    """
    import xml.etree.ElementTree as ET

    p = Path(xml_path)
    try:
        root = ET.parse(p).getroot()
    except FileNotFoundError:
        raise ImageError(p, "annotation file not found") from None
    except (ET.ParseError, OSError) as e:
        raise ImageError(p, f"not a readable Pascal-VOC XML file ({e})") from None
    boxes: list[Box] = []
    for k, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        corners = [] if bb is None else [bb.findtext(t) or "" for t in ("xmin", "ymin", "xmax", "ymax")]
        try:
            xmin, ymin, xmax, ymax = (round(float(c)) for c in corners)
        except ValueError:  # no bndbox (nothing to unpack), a missing corner, or not a number
            what = name or "unnamed"
            raise ImageError(p, f"object {k} ({what}) has no complete bndbox") from None
        if xmax < xmin or ymax < ymin:
            raise ImageError(p, f"object {k} ({name}) has an empty box {xmin, ymin, xmax, ymax}")
        boxes.append((name, xmin, ymin, xmax, ymax))
    return boxes


def _union_overlap(coords: np.ndarray, size_level0: float, rects: np.ndarray) -> np.ndarray:
    """Fraction of each patch square covered by the union of (M, 4) x0, y0, x1, y1 rects."""
    import shapely

    c = np.asarray(coords, np.float64).reshape(-1, 2)
    if len(c) == 0 or len(rects) == 0:
        return np.zeros(len(c), np.float32)
    s = float(size_level0)
    union = shapely.union_all(shapely.box(rects[:, 0], rects[:, 1], rects[:, 2], rects[:, 3]))
    patches = shapely.box(c[:, 0], c[:, 1], c[:, 0] + s, c[:, 1] + s)
    inter = shapely.area(shapely.intersection(patches, union))
    return np.clip(inter / (s * s), 0.0, 1.0).astype(np.float32)


def _rects(boxes: list[Box], one_based: bool) -> np.ndarray:
    shift = 1.0 if one_based else 0.0
    r = np.array([b[1:] for b in boxes], np.float64).reshape(-1, 4)
    r[:, :2] -= shift  # xmin, ymin -> left / top edge; xmax, ymax (inclusive) -> right edge
    return r


def box_overlap(
    coords: np.ndarray, size_level0: float, boxes: list[Box], *, one_based: bool = True
) -> np.ndarray:
    """(N,) float32 fraction of each patch covered by any box (union, not sum)."""
    return _union_overlap(coords, size_level0, _rects(boxes, one_based))


def box_labels(
    coords: np.ndarray,
    size_level0: float,
    boxes: list[Box],
    *,
    classes: list[str] | None = None,
    one_based: bool = True,
) -> dict[str, np.ndarray]:
    """Per-patch overlap with each defect class.

    Parameters
    ----------
    coords : (N, 2) level-0 top-left x, y of the patches.
    size_level0 : patch side in level-0 px.
    boxes : ``(name, xmin, ymin, xmax, ymax)`` boxes in level-0 px (:func:`read_voc_boxes`).
    classes : class names to report (default: those present in ``boxes``, sorted); a class
        without boxes gets zeros.
    one_based : VOC convention (1-based inclusive corners); False for 0-based half-open boxes.

    Returns
    -------
    class name -> (N,) float32 fraction of each patch covered by that class's boxes.
    """
    names = sorted({b[0] for b in boxes}) if classes is None else list(classes)
    out: dict[str, np.ndarray] = {}
    for name in names:
        mine = [b for b in boxes if b[0] == name]
        out[name] = _union_overlap(coords, size_level0, _rects(mine, one_based))
    return out
