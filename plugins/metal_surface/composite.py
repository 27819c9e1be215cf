"""Composite steel strips: defect-free procedural steel with real NEU-DET defects at known boxes.

For benchmarks and tests of budgeted review on long line-scan strips. The strip runs along y
(rows are scan lines, as a line-scan camera writes them): ``(length, width)`` px, e.g.
20,000 x 2,000 or 100,000 x 4,000. It is

* a defect-free rolled-steel texture (:func:`steel_rows`): an illumination fall-off towards the
  strip's edges (with more sensor noise there), a slow drift along the strip, fine and broad
  rolling streaks along it, a mottle and grain. Every noise field is a coarse random grid over
  the whole strip upsampled (bicubic) at the rows asked for, so any band of rows is the same
  whether drawn alone or with the rest;
* NEU-DET defects (:func:`neu_defects`, read from a NEU-DET folder: the images are not shipped)
  cut out with a margin around their VOC boxes (boxes closer than the margin stay together),
  levelled to the steel around them and blended in over the margin; each keeps its boxes;
* placed at random without overlap; a share of them centred on the seams of a patch grid, and a
  few in the strips a grid of whole patches leaves at the right and bottom edges.

8-bit strips hold the grey levels; 16-bit strips a 12-bit camera's (x 16, dithered). Written
band by band (:func:`write_strip`) as a striped (one strip, uncompressed) or tiled TIFF with its
VOC boxes beside it, so a 100,000 x 4,000 strip is never held whole by the writer either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .synth import Box, write_voc

#: free px between two pasted defects, and the blend margin around a defect's boxes
MARGIN = 12
#: rows generated at a time
BAND_ROWS = 2048


@dataclass
class Defect:
    """One NEU-DET defect cut out of its image: ``grey`` (h, w) float32, the blend weight
    ``alpha`` (h, w) in [0, 1], its ``boxes`` (class, x0, y0, x1, y1; 0-based, half-open, in
    the cut-out) and the grey ``level`` of the steel around them."""

    grey: np.ndarray
    alpha: np.ndarray
    boxes: list[tuple[str, int, int, int, int]]
    level: float
    source: str = ""


@dataclass
class Placed:
    """A defect at level-0 (x, y) of the strip, levelled to ``level`` (the steel's median grey
    under it)."""

    defect: Defect
    x: int
    y: int
    level: float = 150.0


@dataclass
class Strip:
    """A composite strip's recipe: shape (rows, cols), its noise grids and placed defects."""

    shape: tuple[int, int]
    seed: int
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    placed: list[Placed] = field(default_factory=list)

    def boxes(self) -> list[Box]:
        """Every true defect box, Pascal-VOC style (class, xmin, ymin, xmax, ymax; 1-based,
        inclusive), as :func:`gigapatch_metal_surface.read_voc_boxes` returns them."""
        out: list[Box] = []
        for p in self.placed:
            for name, x0, y0, x1, y1 in p.defect.boxes:
                out.append((name, p.x + x0 + 1, p.y + y0 + 1, p.x + x1, p.y + y1))
        return out


# --------------------------------------------------------------------------------- defects
def _clusters(rects: np.ndarray, margin: int) -> list[list[int]]:
    """Groups of rects (K, 4) that come within ``margin`` px of each other."""
    k = len(rects)
    parent = list(range(k))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(k):
        for j in range(i + 1, k):
            a, b = rects[i], rects[j]
            if (a[0] - margin < b[2] and b[0] - margin < a[2]
                    and a[1] - margin < b[3] and b[1] - margin < a[3]):
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(k):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def neu_defects(neu_dir: str | Path, margin: int = MARGIN) -> list[Defect]:
    """Every defect of a NEU-DET folder (``<class>_<n>.jpg`` + ``.xml``), cut out with
    ``margin`` px around its boxes; sorted by source file."""
    import cv2

    from .voc import read_voc_boxes

    out: list[Defect] = []
    for jpg in sorted(Path(neu_dir).glob("*.jpg")):
        xml = jpg.with_suffix(".xml")
        if not xml.exists():
            continue
        grey = cv2.imread(str(jpg), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            continue
        h, w = grey.shape
        boxes = read_voc_boxes(xml)
        rects = np.array([[b[1] - 1, b[2] - 1, b[3], b[4]] for b in boxes], np.int64).reshape(-1, 4)
        rects[:, [0, 2]] = rects[:, [0, 2]].clip(0, w)
        rects[:, [1, 3]] = rects[:, [1, 3]].clip(0, h)
        for group in _clusters(rects, margin):
            r = rects[group]
            x0, y0 = max(0, int(r[:, 0].min()) - margin), max(0, int(r[:, 1].min()) - margin)
            x1, y1 = min(w, int(r[:, 2].max()) + margin), min(h, int(r[:, 3].max()) + margin)
            cut = grey[y0:y1, x0:x1].astype(np.float32)
            inside = np.zeros(cut.shape, np.uint8)
            for bx0, by0, bx1, by1 in r:
                inside[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0] = 1
            dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 3)
            alpha = np.clip(1.0 - dist / max(1, margin), 0.0, 1.0).astype(np.float32)
            ring = cut[(inside == 0) & (alpha > 0)]
            level = float(np.median(ring)) if ring.size > 0.1 * cut.size else float(np.median(cut))
            names = [boxes[i][0] for i in group]
            rel = [(n, int(b[0] - x0), int(b[1] - y0), int(b[2] - x0), int(b[3] - y0))
                   for n, b in zip(names, r)]
            out.append(Defect(cut, alpha, rel, level, jpg.name))
    return out


# --------------------------------------------------------------------------------- steel
def _grid(rng: np.random.Generator, shape: tuple[int, int], cell: tuple[float, float]) -> np.ndarray:
    """A coarse (gh, gw) float32 N(0, 1) grid for a field correlated over ``cell`` (cy, cx) px."""
    gh = int(shape[0] / cell[0]) + 5
    gw = int(shape[1] / cell[1]) + 5
    return rng.standard_normal((gh, gw)).astype(np.float32)


#: (name, (cell y, cell x) px, amplitude in grey levels) of the steel's noise fields
FIELDS = (
    ("drift", (2500.0, 1e9), 5.0),  # slow drift of the coil along the strip
    ("streaks", (150.0, 1.3), 5.0),  # fine rolling streaks along the strip
    ("broad", (700.0, 9.0), 3.0),  # broad streaks
    ("mottle", (45.0, 45.0), 3.0),
)


def _render(grid: np.ndarray, cell: tuple[float, float], y0: int, rows: int, cols: int) -> np.ndarray:
    """Rows ``y0:y0 + rows`` of the field of ``grid`` (bicubic), (rows, cols) float32."""
    import cv2

    gy = (np.arange(y0, y0 + rows, dtype=np.float64) / cell[0] + 2).astype(np.float32)
    gx = (np.arange(cols, dtype=np.float64) / cell[1] + 2).astype(np.float32)
    gy0 = max(0, int(gy[0]) - 2)
    sub = np.ascontiguousarray(grid[gy0 : int(gy[-1]) + 4])
    map_x = np.broadcast_to(gx[None, :], (rows, cols)).astype(np.float32)
    map_y = np.broadcast_to((gy - gy0)[:, None], (rows, cols)).astype(np.float32)
    return cv2.remap(sub, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def steel_rows(strip: Strip, y0: int, rows: int) -> np.ndarray:
    """Rows ``y0:y0 + rows`` of the defect-free steel of ``strip``: (rows, cols) float32 grey."""
    h, w = strip.shape
    rows = min(rows, h - y0)
    across = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / ((w - 1) / 2)
    g = np.empty((rows, w), np.float32)
    g[:] = 150.0 - 22.0 * across[None, :] ** 4
    for name, cell, amp in FIELDS:
        g += amp * _render(strip.fields[name], cell, y0, rows, w)
    g += _grain(strip.seed, y0, rows, w) * (3.0 + 3.0 * np.abs(across[None, :]) ** 3)
    return g


def _grain(seed: int, y0: int, rows: int, cols: int, block: int = 256) -> np.ndarray:
    """Rows ``y0:y0 + rows`` of unit white noise drawn per block of ``block`` rows (seeded by
    the block), so that every band of rows gets the same noise whatever its bounds."""
    b0, b1 = y0 // block, -(-(y0 + rows) // block)
    parts = [np.random.default_rng([seed, 7, b]).standard_normal((block, cols), dtype=np.float32)
             for b in range(b0, b1)]
    return np.concatenate(parts)[y0 - b0 * block : y0 - b0 * block + rows]


# --------------------------------------------------------------------------------- placement
def _fits(x: int, y: int, h: int, w: int, taken: list[tuple[int, int, int, int]]) -> bool:
    return all(x + w + MARGIN <= a or a1 + MARGIN <= x or y + h + MARGIN <= b or b1 + MARGIN <= y
               for a, b, a1, b1 in taken)


def place(rng: np.random.Generator, defects: list[Defect], shape: tuple[int, int], n: int,
          patch: int = 256, seam_share: float = 0.3, edge: int = 4) -> list[Placed]:
    """``n`` defects (classes in turn, in a random order) at random places without overlap:
    ``seam_share`` of them centred on a seam of a ``patch`` px grid, ``edge`` of them in the
    leftover strips a grid of whole patches does not reach (right, bottom), when there are."""
    h, w = shape
    by_class: dict[str, list[Defect]] = {}
    for d in defects:
        by_class.setdefault(d.boxes[0][0], []).append(d)
    classes = sorted(by_class)
    taken: list[tuple[int, int, int, int]] = []
    out: list[Placed] = []
    order = rng.permutation(n)
    for k in range(n):
        pool = by_class[classes[int(order[k]) % len(classes)]]
        d = pool[int(rng.integers(len(pool)))]
        dh, dw = d.grey.shape
        kind = "edge" if k < edge else ("seam" if rng.random() < seam_share else "free")
        for _ in range(300):
            if kind == "edge":
                right = (w % patch) >= dw and (k % 2 == 0 or (h % patch) < dh)
                if right:
                    x = int(rng.integers(w - w % patch, w - dw + 1))
                    y = int(rng.integers(0, h - dh + 1))
                elif (h % patch) >= dh:
                    x = int(rng.integers(0, w - dw + 1))
                    y = int(rng.integers(h - h % patch, h - dh + 1))
                else:
                    kind = "free"
                    continue
            elif kind == "seam":  # across a vertical seam, a horizontal one, or a corner
                u = rng.random()
                x = int(rng.integers(0, w - dw + 1))
                y = int(rng.integers(0, h - dh + 1))
                if u < 0.55:
                    gx = patch * int(rng.integers(1, max(2, w // patch)))
                    x = int(np.clip(gx - dw // 2 + rng.integers(-8, 9), 0, w - dw))
                if u > 0.45:
                    gy = patch * int(rng.integers(1, max(2, h // patch)))
                    y = int(np.clip(gy - dh // 2 + rng.integers(-8, 9), 0, h - dh))
            else:
                x = int(rng.integers(0, w - dw + 1))
                y = int(rng.integers(0, h - dh + 1))
            if _fits(x, y, dh, dw, taken):
                taken.append((x, y, x + dw, y + dh))
                out.append(Placed(d, x, y))
                break
    return out


def composite_strip(neu_dir: str | Path, seed: int, shape: tuple[int, int] = (20_000, 2_000),
                    n_defects: int = 60, patch: int = 256, seam_share: float = 0.3,
                    edge: int = 4, defects: list[Defect] | None = None) -> Strip:
    """The recipe of a composite strip (nothing drawn yet; see :func:`strip_rows`).

    Parameters
    ----------
    neu_dir : a NEU-DET folder (``*.jpg`` + ``*.xml``).
    seed : the same seed gives the same strip.
    shape : (length, width) px; the strip runs along y.
    n_defects : defects to place (fewer when no room is left).
    patch : the grid whose seams and leftover edge strips get defects.
    seam_share, edge : see :func:`place`.
    defects : the cut-outs (default: :func:`neu_defects` of ``neu_dir``).
    """
    rng_fields, rng_place = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    s = Strip((int(shape[0]), int(shape[1])), seed)
    for name, cell, _ in FIELDS:
        s.fields[name] = _grid(rng_fields, s.shape, cell)
    pool = defects if defects is not None else neu_defects(neu_dir)
    s.placed = place(rng_place, pool, s.shape, n_defects, patch, seam_share, edge)
    for p in s.placed:
        dh, dw = p.defect.grey.shape
        p.level = float(np.median(steel_rows(s, p.y, dh)[:, p.x : p.x + dw]))
    return s


def strip_rows(strip: Strip, y0: int, rows: int) -> np.ndarray:
    """Rows ``y0:y0 + rows`` of the strip with its defects: (rows, cols) float32 grey."""
    g = steel_rows(strip, y0, rows)
    y1 = y0 + g.shape[0]
    for p in strip.placed:
        dh, dw = p.defect.grey.shape
        a0, a1 = max(y0, p.y), min(y1, p.y + dh)
        if a1 <= a0:
            continue
        sy = slice(a0 - p.y, a1 - p.y)
        dst = g[a0 - y0 : a1 - y0, p.x : p.x + dw]
        alpha = p.defect.alpha[sy]
        dst += alpha * (p.defect.grey[sy] - p.defect.level + p.level - dst)
    return g


def to_samples(grey: np.ndarray, dtype: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """Float grey (0-255) as uint8, or as a 12-bit camera's uint16 (x 16, dithered)."""
    if np.dtype(dtype) == np.uint8:
        return np.clip(np.round(grey), 0, 255).astype(np.uint8)
    r = rng if rng is not None else np.random.default_rng(0)
    v = grey * 16.0 + r.uniform(0, 16, grey.shape).astype(np.float32)
    return np.clip(v, 0, 4095).astype(np.uint16)


def bands(strip: Strip, dtype: str = "uint8", rows: int = BAND_ROWS) -> Iterator[np.ndarray]:
    """The strip in bands of ``rows`` rows, as samples of ``dtype``."""
    h = strip.shape[0]
    for y0 in range(0, h, rows):
        rng = np.random.default_rng([strip.seed, 11, y0])
        yield to_samples(strip_rows(strip, y0, rows), dtype, rng)


def write_strip(strip: Strip, path: str | Path, dtype: str = "uint8", layout: str = "striped",
                pixel_size_mm: tuple[float, float] | None = None) -> tuple[Path, Path]:
    """Write ``strip`` as a TIFF (``layout``: ``"striped"`` = one uncompressed strip as line
    scanners write, ``"tiled"`` = 256 px deflate tiles) and its boxes as ``<stem>.xml``; both
    through temporary names. ``pixel_size_mm`` goes into the resolution tags.

    Returns the image and the VOC file.
    """
    import tifffile

    from gigapatch import atomic_path

    p = Path(path)
    h, w = strip.shape
    dt = np.dtype(dtype)
    res = None if pixel_size_mm is None else (10.0 / pixel_size_mm[0], 10.0 / pixel_size_mm[1])
    unit = None if res is None else "CENTIMETER"
    with atomic_path(p) as tmp:
        if layout == "tiled":
            tifffile.imwrite(tmp, _tiles(strip, dtype), shape=(h, w), dtype=dt, tile=(256, 256),
                             compression="zlib", photometric="minisblack", metadata=None,
                             resolution=res, resolutionunit=unit)
        else:
            tifffile.imwrite(tmp, bands(strip, dtype), shape=(h, w), dtype=dt,
                             photometric="minisblack", metadata=None, rowsperstrip=h,
                             resolution=res, resolutionunit=unit)
    voc = write_voc(p.with_suffix(".xml"), p.name, (h, w), strip.boxes())
    return p, voc


def _tiles(strip: Strip, dtype: str) -> Iterator[np.ndarray]:
    w = strip.shape[1]
    for band in bands(strip, dtype, rows=256 * (BAND_ROWS // 256)):
        for y in range(0, band.shape[0], 256):
            rows = band[y : y + 256]
            for x in range(0, w, 256):
                tile = np.zeros((256, 256), band.dtype)
                part = rows[:, x : x + 256]
                tile[: part.shape[0], : part.shape[1]] = part
                yield tile


def whole(strip: Strip, dtype: str = "uint8") -> np.ndarray:
    """The whole strip as one (rows, cols) array of ``dtype`` (small strips: tests)."""
    return np.concatenate(list(bands(strip, dtype)))


__all__ = ["Defect", "Placed", "Strip", "bands", "composite_strip", "neu_defects", "place",
           "steel_rows", "strip_rows", "whole", "write_strip"]
