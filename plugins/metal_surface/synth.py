"""A synthetic steel strip with defects at known boxes, for the demo and tests.

:func:`steel_strip` draws a grey rolled-steel strip running left to right (the rolling
direction is x) across a dark roller conveyor: a slightly skewed strip with wobbling edges,
fine streaks along the rolling direction, grain noise, a slow mottle and a brightness that falls
off towards the strip's edges, as a line-scan camera with a bar light sees it. Defects of the
NEU-DET classes are pasted at random places inside the strip, away from its edges and from each
other:

* ``scratches``: a thin bright line, a little curved, roughly along the rolling direction;
* ``inclusion``: a cluster of dark slivers drawn out along the rolling direction;
* ``patches``: an irregular dark blotch;
* ``pitted_surface``: many small dark pits;
* ``rolled-in_scale``: dark flakes pressed into a slightly darker band.

(``crazing``, a network of fine cracks all over, is not drawn: it has no compact box.) Each box
is the bounding box of the pixels its defect changes by at least :data:`BOX_MIN_DELTA` grey
levels, so the boxes are exact. Everything is deterministic per seed.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from gigapatch import ImageError, atomic_path

#: defect classes drawn (NEU-DET names)
DEFECT_KINDS = ("scratches", "inclusion", "patches", "pitted_surface", "rolled-in_scale")
#: a defect's box holds the pixels it changes by at least this many grey levels
BOX_MIN_DELTA = 10.0
#: free steel kept between two defects, and at least between a defect and the strip's edge (px)
MARGIN = 24

#: a VOC box: class name, xmin, ymin, xmax, ymax (1-based, inclusive)
Box = tuple[str, int, int, int, int]


# --------------------------------------------------------------------------------- noise
def smooth_noise(rng: np.random.Generator, h: int, w: int, cell_x: float, cell_y: float) -> np.ndarray:
    """(h, w) float32 Gaussian noise with unit std, correlated over ~``cell_x`` px along x and
    ~``cell_y`` px along y (a coarse random grid upsampled bicubically)."""
    import cv2

    cx, cy = max(1.0, float(cell_x)), max(1.0, float(cell_y))
    gh, gw = int(h / cy) + 4, int(w / cx) + 4
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    up = cv2.resize(g, (math.ceil(gw * cx), math.ceil(gh * cy)), interpolation=cv2.INTER_CUBIC)
    up = up[:h, :w]
    return (up - up.mean()) / (up.std() + 1e-6)


# --------------------------------------------------------------------------------- surface
def strip_edges(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Top and bottom edge rows (w,) float32 of a strip covering ~64 % of the height, skewed by
    up to 0.3 degrees and wobbling by a few px."""
    x = np.arange(w, dtype=np.float32)
    skew = math.tan(math.radians(rng.uniform(-0.3, 0.3)))
    centre = h * rng.uniform(0.48, 0.52) + skew * (x - w / 2)
    half = 0.32 * h
    wobble = smooth_noise(rng, 2, w, 300, 1)
    return centre - half + 2.0 * wobble[0], centre + half + 2.0 * wobble[1]


def conveyor(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w) float32 dark roller conveyor: rollers across the strip every ~180 px, ~28 grey."""
    x = np.arange(w, dtype=np.float32)
    period = rng.uniform(150, 210)
    rollers = 8.0 * np.cos(2 * np.pi * (x / period + rng.uniform())) ** 2
    return 22.0 + rollers[None, :] + 2.5 * rng.standard_normal((h, w)).astype(np.float32)


def steel(rng: np.random.Generator, h: int, w: int, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """(h, w) float32 rolled-steel grey (~150): edge fall-off, slow drift, streaks along x,
    mottle and grain."""
    y = np.arange(h, dtype=np.float32)[:, None]
    across = (y - (top + bottom)[None, :] / 2) / ((bottom - top)[None, :] / 2)  # -1..1 on steel
    g = 152.0 - 16.0 * np.clip(across, -1, 1) ** 2
    g += 5.0 * smooth_noise(rng, 1, w, 700, 1)  # coil-to-coil drift along the strip
    g += 6.0 * smooth_noise(rng, h, w, 140, 1.2)  # fine rolling streaks
    g += 4.0 * smooth_noise(rng, h, w, 500, 7)  # broad streaks
    g += 3.0 * smooth_noise(rng, h, w, 40, 30)  # mottle
    g += 4.0 * rng.standard_normal((h, w)).astype(np.float32)  # grain / sensor noise
    return g


# --------------------------------------------------------------------------------- defects
def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(a, (0, 0), sigma) if sigma > 0 else a


def _ellipses(shape: tuple[int, int], centres: np.ndarray, axes: np.ndarray,
              angles: np.ndarray) -> np.ndarray:
    """(h, w) float32 canvas, 1 inside any of the filled ellipses (centres, semi-axes (K, 2),
    angles in degrees (K,)), antialiased."""
    import cv2

    canvas = np.zeros(shape, np.float32)
    for (cx, cy), (a, b), ang in zip(centres, axes, angles):
        cv2.ellipse(canvas, ((float(cx), float(cy)), (2 * float(a), 2 * float(b)), float(ang)),
                    1.0, -1, cv2.LINE_AA)
    return np.clip(canvas, 0, 1)


def scratch(rng: np.random.Generator) -> np.ndarray:
    """A thin bright line 180-420 px long within 20 degrees of the rolling direction."""
    import cv2

    length = rng.uniform(180, 420)
    angle = math.radians(rng.uniform(-20, 20))
    t = np.linspace(0, 1, 6)[:, None]
    along = np.array([math.cos(angle), math.sin(angle)])
    across = np.array([-along[1], along[0]])
    pts = t * length * along + rng.normal(0, 4, (6, 1)) * across
    pts -= pts.min(axis=0) - 8
    w, h = (np.ceil(pts.max(axis=0)) + 9).astype(int)
    canvas = np.zeros((h, w), np.float32)
    cv2.polylines(canvas, [np.round(pts * 16).astype(np.int32)], False, 1.0,
                  int(rng.integers(2, 4)), cv2.LINE_AA, 4)
    strength = 0.7 + 0.3 * np.clip(smooth_noise(rng, h, w, 40, 40) * 0.5 + 0.5, 0, 1)
    return 80.0 * _blur(canvas, 0.6) * strength


def inclusion(rng: np.random.Generator) -> np.ndarray:
    """3-7 dark slivers (8-30 px long, 2-5 px thick) clustered in ~130 x 50 px."""
    k = int(rng.integers(3, 8))
    centres = np.column_stack([rng.uniform(35, 130, k), rng.uniform(10, 55, k)])
    axes = np.column_stack([rng.uniform(8, 30, k), rng.uniform(2, 5, k)])
    canvas = _ellipses((65, 165), centres, axes, rng.uniform(-6, 6, k))
    return -75.0 * _blur(canvas, 0.8)


def patch(rng: np.random.Generator) -> np.ndarray:
    """An irregular dark blotch of ~220 x 140 px with a mottled inside and soft edges."""
    h, w = 160, 240
    y, x = np.mgrid[:h, :w].astype(np.float32)
    r = np.hypot((x - w / 2) / (w * 0.38), (y - h / 2) / (h * 0.38))
    field = 1.0 - r + 0.3 * smooth_noise(rng, h, w, 60, 45)
    blotch = _blur(((field > 0.2) & (r < 1.25)).astype(np.float32), 3.0)
    return -55.0 * blotch * (0.75 + 0.25 * smooth_noise(rng, h, w, 24, 3))


def pits(rng: np.random.Generator) -> np.ndarray:
    """60-120 small dark pits (radius 1-3 px), denser towards the middle of ~160 x 160 px."""
    k = int(rng.integers(60, 121))
    centres = np.clip(rng.normal(80, 32, (k, 2)), 6, 154)
    radius = rng.uniform(1.0, 3.0, k)
    canvas = _ellipses((160, 160), centres, np.column_stack([radius, radius * 0.8]),
                       rng.uniform(0, 180, k))
    return -65.0 * canvas


def scale(rng: np.random.Generator) -> np.ndarray:
    """40-80 dark flakes pressed into a ~260 x 100 px band that is a little darker itself."""
    h, w = 110, 270
    k = int(rng.integers(40, 81))
    centres = np.column_stack([rng.uniform(12, w - 12, k), rng.uniform(10, h - 10, k)])
    axes = np.column_stack([rng.uniform(3, 10, k), rng.uniform(1, 3, k)])
    flakes = _ellipses((h, w), centres, axes, rng.uniform(-30, 30, k))
    y, x = np.mgrid[:h, :w].astype(np.float32)
    band = np.clip(1.0 - np.hypot((x - w / 2) / (w / 2), (y - h / 2) / (h / 2)), 0, 1)
    return -50.0 * _blur(flakes, 0.7) - 8.0 * np.sqrt(band)


DRAW = {
    "scratches": scratch, "inclusion": inclusion, "patches": patch,
    "pitted_surface": pits, "rolled-in_scale": scale,
}


def _place(rng: np.random.Generator, size: tuple[int, int], top: np.ndarray, bottom: np.ndarray,
           taken: list[tuple[int, int, int, int]], edge_margin: int) -> tuple[int, int] | None:
    """A top-left (x, y) where an (h, w) defect lies inside the strip, ``edge_margin`` px from
    its edges and ``MARGIN`` px from every rectangle in ``taken`` (x0, y0, x1, y1); None after
    200 tries."""
    h, w = size
    width = len(top)
    for _ in range(200):
        x = int(rng.integers(MARGIN, max(MARGIN + 1, width - w - MARGIN)))
        y_lo = math.ceil(top[x : x + w].max()) + edge_margin
        y_hi = math.floor(bottom[x : x + w].min()) - edge_margin - h
        if x + w + MARGIN > width or y_hi < y_lo:
            continue
        y = int(rng.integers(y_lo, y_hi + 1))
        if all(x + w + MARGIN <= a or a1 + MARGIN <= x or y + h + MARGIN <= b or b1 + MARGIN <= y
               for a, b, a1, b1 in taken):
            return x, y
    return None


def paste_defects(grey: np.ndarray, rng: np.random.Generator, top: np.ndarray, bottom: np.ndarray,
                  n: int, edge_margin: int = MARGIN) -> list[Box]:
    """Add ``n`` defects (the classes in turn, shuffled) to ``grey`` (h, w) float32 in place,
    each at least ``edge_margin`` px inside the strip (``top``, ``bottom``: (w,) edge rows).

    Returns the VOC boxes (1-based, inclusive) of the defects that found room.
    """
    kinds = [DEFECT_KINDS[i % len(DEFECT_KINDS)] for i in range(n)]
    boxes: list[Box] = []
    taken: list[tuple[int, int, int, int]] = []
    for kind in rng.permutation(kinds):
        delta = DRAW[str(kind)](rng)
        rows, cols = np.nonzero(np.abs(delta) >= BOX_MIN_DELTA)
        if len(rows) == 0:
            continue
        delta = delta[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        at = _place(rng, delta.shape, top, bottom, taken, max(MARGIN, edge_margin))
        if at is None:
            continue
        x, y = at
        h, w = delta.shape
        grey[y : y + h, x : x + w] += delta
        taken.append((x, y, x + w, y + h))
        boxes.append((str(kind), x + 1, y + 1, x + w, y + h))
    return boxes


def steel_strip(seed: int, size: tuple[int, int] = (1536, 4096), n_defects: int = 8,
                edge_margin: int = MARGIN) -> tuple[np.ndarray, list[Box]]:
    """A grey steel strip on a dark conveyor with defects at known boxes.

    Parameters
    ----------
    seed : random seed (the same seed draws the same strip; the surface is the same whatever
        ``n_defects``).
    size : (height, width) in px; the strip runs along the width.
    n_defects : defects to paste (fewer when the strip has no room left).
    edge_margin : free steel between a defect and the strip's edge (px).

    Returns
    -------
    grey : (height, width) uint8.
    boxes : ``(class, xmin, ymin, xmax, ymax)`` Pascal-VOC boxes (1-based, inclusive), as
        :func:`gigapatch_metal_surface.read_voc_boxes` returns them.
    """
    h, w = int(size[0]), int(size[1])
    # one stream each: the surface does not depend on how many defects are drawn
    surface, defects, belt = np.random.default_rng(seed).spawn(3)
    top, bottom = strip_edges(surface, h, w)
    metal = steel(surface, h, w, top, bottom)
    boxes = paste_defects(metal, defects, top, bottom, n_defects, edge_margin)
    y = np.arange(h, dtype=np.float32)[:, None]
    inside = np.clip(np.minimum(y - top[None, :], bottom[None, :] - y) / 1.5 + 0.5, 0, 1)
    grey = inside * metal + (1 - inside) * conveyor(belt, h, w)
    return np.clip(grey + 0.5, 0, 255).astype(np.uint8), boxes


# --------------------------------------------------------------------------------- files
def write_grey_tiff(path: str | Path, grey: np.ndarray, *, downsamples: tuple[int, ...] = (4, 16),
                    tile: int = 256) -> Path:
    """Write (H, W) uint8 grey as a tiled, deflate-compressed pyramid: level 0, then one reduced
    page per downsample (area-averaged), the layout of a generic pyramidal TIFF."""
    import cv2
    import tifffile

    p = Path(path)
    h, w = grey.shape
    levels = [grey] + [
        cv2.resize(grey, (max(1, w // d), max(1, h // d)), interpolation=cv2.INTER_AREA)
        for d in downsamples if min(h, w) // d >= 64
    ]
    with atomic_path(p) as tmp, tifffile.TiffWriter(tmp) as tw:
        for i, level in enumerate(levels):
            tw.write(level, photometric="minisblack", compression="zlib", tile=(tile, tile),
                     subfiletype=0 if i == 0 else 1, metadata=None)
    return p


def write_voc(path: str | Path, image_name: str, shape: tuple[int, ...], boxes: list[Box]) -> Path:
    """Write ``boxes`` (1-based, inclusive) as a Pascal-VOC annotation of an image of ``shape``
    (H, W) or (H, W, C), laid out as NEU-DET's, readable by
    :func:`gigapatch_metal_surface.read_voc_boxes`."""
    p = Path(path)
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = image_name
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "gigapatch synthetic"
    dims = ET.SubElement(root, "size")
    for tag, value in zip(("width", "height", "depth"), (shape[1], shape[0], *shape[2:3], 1)):
        ET.SubElement(dims, tag).text = str(int(value))
    ET.SubElement(root, "segmented").text = "0"
    for name, *corners in boxes:
        if corners[2] < corners[0] or corners[3] < corners[1]:
            raise ImageError(p, f"empty {name} box {tuple(corners)}")
        obj = ET.SubElement(root, "object")
        for tag, text in (("name", name), ("pose", "Unspecified"), ("truncated", "0"),
                          ("difficult", "0")):
            ET.SubElement(obj, tag).text = text
        bb = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), corners):
            ET.SubElement(bb, tag).text = str(int(value))
    ET.indent(root, "\t")
    with atomic_path(p) as tmp:
        ET.ElementTree(root).write(tmp, encoding="unicode")
    return p
