"""Synthetic whole-slide images with pixel-exact ground truth, for tests and benchmarks.

:func:`synthetic_slide` draws an H&E-like slide: a few tissue pieces (biopsy cores and larger
blobs) with ragged edges, holes and small loose fragments, paler towards their edges and some
faint all over; the tissue texture is cut from a real H&E image (``texture=`` a path or an RGB
array, e.g. the CC0 ``CMU-1-Small-Region.svs``) or drawn procedurally (purple nuclei on pink
stroma). On top come folds (a darker double layer), out-of-focus areas (Gaussian blur),
translucent marker ink (blue, green, black; optionally red) over tissue and glass, dust and
debris, and a glass background with a slight tint, gradient and noise.

The defaults keep the slides of earlier releases (tests and tuning depend on them);
:data:`REALISTIC` holds the options closer to real slides: felt-tip marker strokes (hundreds of
microns wide) and folds whose second layer does not double the texture's JPEG chroma noise.

The image is rendered in horizontal bands (memory ~ a few bands, not the whole float image) and
composed in optical density: ``rgb = glass * transmittance ** density``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .truth import IDEAL_MAX_BLUR, IDEAL_MAX_PEN, truth_metrics

#: ground-truth masks returned by :func:`synthetic_slide`
TRUTH_KEYS = ("tissue", "pen", "blur", "fold", "dust")
#: stains :func:`synthetic_slide` draws
STAINS = ("he", "ihc")

#: :func:`synthetic_slide` options closer to real slides than its defaults (which keep the
#: slides of earlier releases): felt-tip marker strokes 0.5-2 mm wide, folds without doubled
#: JPEG chroma noise
REALISTIC: dict[str, Any] = {"pen_width_um": (250.0, 800.0), "fold_blur_um": 3.0}

#: per-channel transmittance of marker ink at full density
INK = {
    "blue": (0.22, 0.38, 0.80),
    "green": (0.35, 0.68, 0.42),
    "black": (0.16, 0.16, 0.19),
    "red": (0.85, 0.22, 0.28),
}

_D = 8  # design scale: level-0 px per design px
_BAND = 1024  # rows rendered at once


# --------------------------------------------------------------------------------- helpers
def _noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth Gaussian noise (h, w) float32 with unit std and feature size ~``cell`` px."""
    import cv2

    cell = max(1.0, float(cell))
    gh, gw = int(h / cell) + 3, int(w / cell) + 3
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    up = cv2.resize(g, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)[:h, :w]
    return (up - up.mean()) / (up.std() + 1e-6)


def _up_rows(design: np.ndarray, y0: int, y1: int, w: int) -> np.ndarray:
    """Rows [y0, y1) of a design map upsampled (bilinear) to level 0, width ``w``."""
    import cv2

    r0 = max(0, y0 // _D - 1)
    r1 = min(design.shape[0], -(-y1 // _D) + 1)
    crop = np.ascontiguousarray(design[r0:r1])
    up = cv2.resize(crop, (crop.shape[1] * _D, crop.shape[0] * _D), interpolation=cv2.INTER_LINEAR)
    return up[y0 - r0 * _D : y1 - r0 * _D, :w]


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    a = np.rot90(a, k % 4)
    return a[:, ::-1] if k >= 4 else a


def _local(pts: np.ndarray, width: float, h: int, w: int):
    """Clipped bbox (r0, r1, c0, c1) of points ``pts`` (K, 2) x, y grown by ``width``, and the
    canvas origin (x, y) to subtract from the points; None when it misses the (h, w) band."""
    m = int(width) + 2
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - m
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + m
    c0, r0 = max(0, x0), max(0, y0)
    c1, r1 = min(w, x1), min(h, y1)
    if c1 <= c0 or r1 <= r0:
        return None
    return (r0, r1, c0, c1), np.array([c0, r0])


# --------------------------------------------------------------------------------- texture
_LOADED: dict[tuple[str, float], np.ndarray] = {}


def _load_rgb(src: str | Path | np.ndarray) -> np.ndarray:
    if isinstance(src, np.ndarray):
        a = src
    else:
        p = Path(src)
        key = (str(p.resolve()), p.stat().st_mtime)
        if key in _LOADED:  # decoding a JPEG 2000 slide takes seconds: once per process
            return _LOADED[key]
        if p.suffix.lower() in (".svs", ".tif", ".tiff", ".ndpi", ".scn"):
            import tifffile

            a = tifffile.imread(p, key=0)
        else:
            from PIL import Image as PILImage

            a = np.asarray(PILImage.open(p).convert("RGB"))
        if len(_LOADED) >= 4:
            _LOADED.clear()
        _LOADED[key] = _check_rgb(a)
        return _LOADED[key]
    return _check_rgb(a)


def _check_rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[2] < 3 or a.dtype != np.uint8:
        raise ValueError("texture must be an (H, W, 3) uint8 RGB image")
    return np.ascontiguousarray(a[:, :, :3])


def texture_tiles(
    src: str | Path | np.ndarray | None, rng: np.random.Generator, tile: int = 256,
    min_tissue: float = 0.9, max_tiles: int = 96,
) -> np.ndarray:
    """Tissue-dense texture tiles as transmittance (K, tile, tile, 3) float32 in (0, 1].

    From a real H&E image: every ``tile``-px window (stride tile/4) whose saturated fraction is
    at least ``min_tissue``, divided by the image's own glass colour. With ``src=None``: procedural
    tiles (purple nuclei on fibrous pink stroma, a few pale gaps).
    """
    import cv2

    if src is None:
        return _procedural_tiles(rng, tile, 16)
    a = _load_rgb(src)
    hsv = cv2.cvtColor(a, cv2.COLOR_RGB2HSV)
    tissue = hsv[..., 1] > 25
    bg = (hsv[..., 1] < 20) & (hsv[..., 2] > 200)
    glass = np.median(a[bg], axis=0) if bg.sum() > 1000 else np.percentile(a.reshape(-1, 3), 99, 0)
    glass = np.maximum(glass.astype(np.float32), 1.0)
    ii = cv2.integral(tissue.astype(np.uint8))
    step = max(1, tile // 4)
    ys = np.arange(0, a.shape[0] - tile + 1, step)
    xs = np.arange(0, a.shape[1] - tile + 1, step)
    if len(ys) == 0 or len(xs) == 0:
        raise ValueError(f"texture image smaller than one {tile}-px tile")
    Y, X = np.meshgrid(ys, xs, indexing="ij")
    frac = (ii[Y + tile, X + tile] - ii[Y, X + tile] - ii[Y + tile, X] + ii[Y, X]) / tile**2
    ok = np.flatnonzero(frac.ravel() >= min_tissue)
    if len(ok) < 4:
        ok = np.argsort(frac.ravel())[::-1][:16]
        if frac.ravel()[ok[-1]] < 0.5:  # e.g. a sparse slide: its texture would be mostly glass
            raise ValueError(f"texture image has too few tissue-dense {tile}-px windows")
    pick = rng.choice(ok, size=min(max_tiles, len(ok)), replace=False)
    tiles = np.stack([a[Y.flat[i] : Y.flat[i] + tile, X.flat[i] : X.flat[i] + tile] for i in pick])
    return np.clip((tiles.astype(np.float32) + 0.5) / glass, 1e-3, 1.0)


def _procedural_tiles(rng: np.random.Generator, tile: int, k: int) -> np.ndarray:
    import cv2

    out = np.empty((k, tile, tile, 3), np.float32)
    stroma = np.array([0.90, 0.60, 0.80], np.float32)
    nucleus = np.array([0.38, 0.26, 0.60], np.float32)
    for t in range(k):
        # fibres: smooth noise stretched along a random direction
        big = _noise(rng, tile * 2, tile // 2, 3.0)
        fib = cv2.resize(big, (tile, tile), interpolation=cv2.INTER_LINEAR)
        fib = _dihedral(fib, int(rng.integers(8)))
        dens = 1.0 + 0.22 * fib + 0.1 * _noise(rng, tile, tile, 24)
        dens = np.clip(dens, 0.3, 1.8)
        img = stroma[None, None, :] ** dens[..., None]
        gap = _noise(rng, tile, tile, 10) > 1.9  # pale gaps in loose stroma
        img[gap] = img[gap] ** 0.25
        nuc = np.zeros((tile, tile), np.float32)
        n = int(rng.integers(60, 220))
        for _ in range(n):
            cx, cy = rng.integers(0, tile, 2)
            ax = int(rng.integers(3, 8))
            ay = int(max(2, ax * rng.uniform(0.5, 1.0)))
            cv2.ellipse(nuc, (int(cx), int(cy)), (ax, ay), float(rng.uniform(0, 180)), 0, 360,
                        float(rng.uniform(0.7, 1.0)), -1, cv2.LINE_AA)
        chrom = np.clip(1.0 + 0.25 * _noise(rng, tile, tile, 1.5), 0.5, 1.5)
        nd = np.clip(nuc * chrom, 0, 1.3)[..., None]
        img = img * (nucleus[None, None, :] / stroma[None, None, :]) ** nd
        out[t] = np.clip(img, 1e-3, 1.0)
    return out


# --------------------------------------------------------------------------------- layout
def _layout(rng: np.random.Generator, w: int, h: int, faint: bool, folds: bool, blur: bool,
            pen: bool, dust: bool, pen_colors: tuple[str, ...],
            pen_px: tuple[float, float] = (40.0, 150.0)) -> dict[str, Any]:
    """Design-scale maps (tissue field, stain, folds, blur) and vector artefacts (pen, dust)."""
    import cv2

    dh, dw = -(-h // _D), -(-w // _D)
    yy, xx = np.mgrid[0:dh, 0:dw].astype(np.float32)
    xx = (xx + 0.5) * _D
    yy = (yy + 0.5) * _D
    low = _noise(rng, dh, dw, max(8.0, min(dh, dw) / 10))
    mid = _noise(rng, dh, dw, 6.0)
    hf = _noise(rng, dh, dw, 1.5)
    field = np.full((dh, dw), -1.0, np.float32)
    piece = np.zeros((dh, dw), np.int32)
    n_pieces = int(rng.integers(1, 4))
    stains: list[float] = []
    side = min(w, h)
    for i in range(n_pieces):
        cx, cy = rng.uniform(0.28, 0.72) * w, rng.uniform(0.28, 0.72) * h
        if rng.random() < 0.35:  # a needle core: long and thin
            a = rng.uniform(0.35, 0.5) * w
            b = a / rng.uniform(3.5, 6.0)
        else:
            a = rng.uniform(0.2, 0.34) * side
            b = a * rng.uniform(0.55, 1.0)
        th = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        f = 1.0 - np.sqrt((u / a) ** 2 + (v / b) ** 2) + 0.22 * low + 0.07 * mid + 0.012 * hf
        better = f > field
        field = np.where(better, f, field)
        piece = np.where(better, i, piece)
        stains.append(float(rng.uniform(0.8, 1.25)))
    if faint and n_pieces >= 2:
        stains[int(rng.integers(n_pieces))] = float(rng.uniform(0.35, 0.5))
    # loose fragments
    for _ in range(int(rng.integers(0, 5))):
        cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        r = rng.uniform(60, 220)
        f = 1.0 - np.hypot(xx - cx, yy - cy) / r + 0.15 * mid + 0.05 * hf
        better = f > field
        field = np.where(better, f, field)
        piece = np.where(better, len(stains), piece)
        stains.append(float(rng.uniform(0.7, 1.2)))
    # holes (vessels, fat, tears)
    inside = np.argwhere(field > 0.25)
    for _ in range(int(rng.integers(0, 7)) if len(inside) else 0):
        cy_i, cx_i = inside[rng.integers(len(inside))]
        r = rng.uniform(40, 260)
        rr = np.hypot(xx - xx[0, cx_i], (yy - yy[cy_i, 0]) * rng.uniform(0.6, 1.4)) / r
        field = np.minimum(field, (rr - 1.0 + 0.1 * hf) * 0.5)
    # keep a glass margin at the border
    border = np.minimum(np.minimum(xx, w - xx), np.minimum(yy, h - yy))
    field = np.minimum(field, (border - 96.0) / 400.0)
    tissue = (field > 0).astype(np.uint8)
    dist = cv2.distanceTransform(tissue, cv2.DIST_L2, 3) * _D
    edge_px = rng.uniform(100, 250)
    fade = 0.45 + 0.55 * np.clip(dist / edge_px, 0, 1)
    stain = np.asarray(stains, np.float32)[piece] * fade.astype(np.float32)
    tis_pts = np.argwhere(field > 0.15)

    def on_tissue() -> tuple[float, float]:
        if len(tis_pts) == 0:
            return rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        r_, c_ = tis_pts[rng.integers(len(tis_pts))]
        return float(xx[0, c_]), float(yy[r_, 0])

    def segment_alpha(p0, p1, half: float, soft: float) -> np.ndarray:
        p0, p1 = np.asarray(p0, np.float32), np.asarray(p1, np.float32)
        d = p1 - p0
        t = np.clip(((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1]) / max(1e-6, d @ d), 0, 1)
        dist_ = np.hypot(xx - p0[0] - t * d[0], yy - p0[1] - t * d[1])
        return np.clip((half - dist_) / soft + 0.5, 0, 1)

    fold = np.zeros((dh, dw), np.float32)
    for _ in range(int(rng.integers(0, 3)) if folds else 0):
        c = np.array(on_tissue())
        ang = rng.uniform(0, np.pi)
        length = rng.uniform(600, 2400)
        d = np.array([np.cos(ang), np.sin(ang)]) * length / 2
        fold = np.maximum(fold, segment_alpha(c - d, c + d, rng.uniform(40, 120), 24.0))
    blur_a = np.zeros((dh, dw), np.float32)
    for _ in range(int(rng.integers(1, 3)) if blur else 0):
        cx, cy = on_tissue()
        r = rng.uniform(300, 900)
        rr = np.hypot(xx - cx, (yy - cy) * rng.uniform(0.7, 1.3))
        blur_a = np.maximum(blur_a, np.clip((r - rr) / 96.0 + 0.5, 0, 1))
    strokes = []
    for _ in range(int(rng.integers(2, 6)) if pen else 0):
        color = pen_colors[int(rng.integers(len(pen_colors)))]
        width = int(rng.uniform(pen_px[0], pen_px[1]))
        density = float(rng.uniform(0.55, 1.0))
        if rng.random() < 0.3:  # a circle drawn around tissue
            cx, cy = on_tissue()
            axes = (int(rng.uniform(500, 1600)), int(rng.uniform(400, 1300)))
            a0 = rng.uniform(0, 360)
            pts = cv2.ellipse2Poly((int(cx), int(cy)), axes, int(rng.uniform(0, 180)),
                                   int(a0), int(a0 + rng.uniform(200, 340)), 3)
            width = min(width, max(40, min(axes) // 2))  # a ring, not a filled blob
        else:  # a free stroke: a smooth random curve, possibly crossing tissue
            p = np.array(on_tissue() if rng.random() < 0.6 else
                         (rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h))
            ang = rng.uniform(0, 2 * np.pi)
            n = int(rng.integers(30, 90))
            turn = np.cumsum(rng.normal(0, 0.07, n))
            steps = np.c_[np.cos(ang + turn), np.sin(ang + turn)] * rng.uniform(30, 70)
            pts = (p + np.cumsum(steps, axis=0)).astype(np.int32)
        strokes.append({"color": color, "width": width, "density": density, "pts": pts})
    specks = []
    if dust:
        n = int(rng.poisson(12 * w * h / 1e7)) + 2
        for _ in range(n):
            big = rng.random() < 0.08
            r = rng.uniform(12, 40) if big else rng.uniform(2, 8)
            tr = rng.uniform(0.12, 0.4) if big else rng.uniform(0.35, 0.8)
            if rng.random() < 0.25:  # a fibre
                ang = rng.uniform(0, np.pi)
                ln = rng.uniform(60, 300)
                specks.append(("line", rng.uniform(0, w), rng.uniform(0, h), ang, ln,
                               max(2.0, r / 3), tr))
            else:
                specks.append(("dot", rng.uniform(0, w), rng.uniform(0, h), 0.0, 0.0, r, tr))
    glass = np.array([rng.uniform(236, 246), rng.uniform(235, 245), rng.uniform(238, 248)],
                     np.float32)
    grad = rng.uniform(-5, 5, 2).astype(np.float32)
    return {
        "field": field, "stain": stain, "fold": fold, "blur": blur_a,
        "ink": _noise(rng, dh, dw, 20.0), "strokes": strokes, "specks": specks,
        "glass": glass, "grad": grad, "sigma": float(rng.uniform(2.5, 4.5)),
    }


# --------------------------------------------------------------------------------- render
def _texture_band(tiles: np.ndarray, grid: np.ndarray, y0: int, y1: int, w: int,
                  off: tuple[int, int], cell: int) -> np.ndarray:
    """Feathered mosaic of texture tiles over rows [y0, y1): (y1-y0, w, 3) float32."""
    P = tiles.shape[1]
    ov = P - cell
    ramp = np.ones(P, np.float32)
    if ov > 0:
        r = (np.arange(ov, dtype=np.float32) + 0.5) / ov
        ramp[:ov] = r
        ramp[-ov:] = r[::-1]
    win = (ramp[:, None] * ramp[None, :])[..., None]
    acc = np.zeros((y1 - y0, w, 3), np.float32)
    wsum = np.zeros((y1 - y0, w, 1), np.float32)
    ox, oy = off
    i0 = max(0, (y0 + oy - P) // cell)
    i1 = min(grid.shape[0] - 1, (y1 + oy) // cell + 1)
    for i in range(i0, i1 + 1):
        ty = i * cell - oy
        a0, a1 = max(ty, y0), min(ty + P, y1)
        if a1 <= a0:
            continue
        for j in range(grid.shape[1]):
            tx = j * cell - ox
            b0, b1 = max(tx, 0), min(tx + P, w)
            if b1 <= b0:
                continue
            k, d = divmod(int(grid[i, j]), 8)
            t = _dihedral(tiles[k], d)[a0 - ty : a1 - ty, b0 - tx : b1 - tx]
            ww = win[a0 - ty : a1 - ty, b0 - tx : b1 - tx]
            acc[a0 - y0 : a1 - y0, b0:b1] += t * ww
            wsum[a0 - y0 : a1 - y0, b0:b1] += ww
    return acc / np.maximum(wsum, 1e-6)


def _render_band(lay: dict[str, Any], tiles_od: np.ndarray, grid: np.ndarray,
                 off: tuple[int, int], cell: int, y0: int, y1: int, w: int, h: int,
                 noise: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows [y0, y1) of the slide, composed in optical density, and their truth masks."""
    import cv2

    sigma = lay["sigma"]
    m = int(math.ceil(3 * sigma)) + 2 if lay["blur"].any() else 0
    ya, yb = max(0, y0 - m), min(h, y1 + m)
    field = _up_rows(lay["field"], ya, yb, w)
    tissue = field > 0
    dens = _up_rows(lay["stain"], ya, yb, w) * np.clip(field * 50.0, 0, 1)
    fold = _up_rows(lay["fold"], ya, yb, w) * tissue
    fs = lay.get("fold_sigma", 0.0)
    if not fs:  # the second layer is the same texture again (doubles its JPEG chroma noise too)
        dens *= 1.0 + fold
    od = _texture_band(tiles_od, grid, ya, yb, w, off, cell)
    od *= dens[..., None]
    if fs and fold.any():  # the folded-over layer: the tissue's colour, its fine detail blurred
        rr, cc = np.flatnonzero(fold.max(axis=1) > 0), np.flatnonzero(fold.max(axis=0) > 0)
        r0, r1, c0, c1 = rr[0], rr[-1] + 1, cc[0], cc[-1] + 1
        under = cv2.GaussianBlur(od[r0:r1, c0:c1], (0, 0), fs)
        od[r0:r1, c0:c1] += under * fold[r0:r1, c0:c1, None]
    blur = _up_rows(lay["blur"], ya, yb, w) if m else np.zeros_like(field)
    if m:  # blur only the bounding box of the out-of-focus areas
        rr = np.flatnonzero(blur.max(axis=1) > 0)
        cc = np.flatnonzero(blur.max(axis=0) > 0)
        if len(rr):
            r0, r1 = max(0, rr[0] - m), min(yb - ya, rr[-1] + m + 1)
            c0, c1 = max(0, cc[0] - m), min(w, cc[-1] + m + 1)
            sub = od[r0:r1, c0:c1]
            soft = cv2.GaussianBlur(sub, (0, 0), sigma)
            sub += (soft - sub) * blur[r0:r1, c0:c1, None]
    s0, s1 = y0 - ya, y1 - ya
    od = od[s0:s1]
    tissue, fold, blur = tissue[s0:s1], fold[s0:s1], blur[s0:s1]
    # marker ink (on the coverslip, after blur) and dust, drawn in small local canvases
    pen_a = np.zeros((y1 - y0, w), np.float32)
    if lay["strokes"]:
        ink_mod = np.clip(1.0 + 0.12 * _up_rows(lay["ink"], y0, y1, w), 0.7, 1.2)
        for s in lay["strokes"]:
            pts = s["pts"] - np.array([0, y0])
            hit = _local(pts, s["width"], y1 - y0, w)
            if hit is None:
                continue
            (r0, r1, c0, c1), origin = hit
            canvas = np.zeros((r1 - r0, c1 - c0), np.uint8)
            cv2.polylines(canvas, [(pts - origin).astype(np.int32)], False, 255, s["width"],
                          cv2.LINE_AA)
            a = canvas.astype(np.float32) / 255.0
            d = (a * s["density"] * ink_mod[r0:r1, c0:c1])[..., None]
            od[r0:r1, c0:c1] += d * -np.log(np.asarray(INK[s["color"]], np.float32))
            pen_a[r0:r1, c0:c1] = np.maximum(pen_a[r0:r1, c0:c1], a)
    dust_a = np.zeros((y1 - y0, w), np.float32)
    for kind, x, y, ang, ln, r, tr in lay["specks"]:
        if kind == "dot":
            pts = np.array([[x, y - y0]])
        else:
            dx, dy = math.cos(ang) * ln / 2, math.sin(ang) * ln / 2
            pts = np.array([[x - dx, y - y0 - dy], [x + dx, y - y0 + dy]])
        hit = _local(pts, 2 * r + 2, y1 - y0, w)
        if hit is None:
            continue
        (r0, r1, c0, c1), origin = hit
        canvas = np.zeros((r1 - r0, c1 - c0), np.uint8)
        q = (pts - origin).astype(np.int32)
        if kind == "dot":
            cv2.circle(canvas, (int(q[0, 0]), int(q[0, 1])), int(max(1, r)), 255, -1, cv2.LINE_AA)
        else:
            cv2.line(canvas, tuple(map(int, q[0])), tuple(map(int, q[1])), 255, int(max(1, r)),
                     cv2.LINE_AA)
        a = canvas.astype(np.float32) / 255.0
        od[r0:r1, c0:c1] += (a * -math.log(tr))[..., None]
        dust_a[r0:r1, c0:c1] = np.maximum(dust_a[r0:r1, c0:c1], a)
    rows = np.arange(y0, y1, dtype=np.float32)[:, None, None]
    cols = np.arange(w, dtype=np.float32)[None, :, None]
    gx, gy = lay["grad"]
    glass = lay["glass"] + gx * (cols / w - 0.5) + gy * (rows / h - 0.5)
    np.negative(od, out=od)
    np.exp(od, out=od)
    od *= glass
    od += noise[: y1 - y0]
    out = cv2.convertScaleAbs(od.reshape(y1 - y0, -1)).reshape(y1 - y0, w, 3)
    truth = {
        "tissue": tissue,
        "pen": pen_a > 0.5,
        "blur": (blur > 0.5) & tissue,
        "fold": (fold > 0.5) & tissue,
        "dust": dust_a > 0.5,
    }
    return out, truth


def synthetic_slide(
    seed: int,
    size: tuple[int, int] = (8192, 6144),
    texture: str | Path | np.ndarray | None = None,
    *,
    mpp: float = 0.5,
    pen: bool = True,
    blur: bool = True,
    folds: bool = True,
    dust: bool = True,
    faint: bool = True,
    pen_colors: tuple[str, ...] = ("blue", "green", "black"),
    pen_width_um: tuple[float, float] = (20.0, 75.0),
    fold_blur_um: float = 0.0,
    truth_downsample: int = 4,
    noise_sigma: float = 1.5,
    stain: str = "he",
    path: str | Path | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Draw a synthetic H&E (or IHC) slide and its ground truth.

    Parameters
    ----------
    seed : layout, texture placement and noise seed (different seeds, different slides).
    size : (width, height) of level 0 in pixels.
    texture : a real H&E image (path readable by tifffile/PIL, or (H, W, 3) uint8 RGB) to cut
        tissue texture from, or None for procedural texture.
    mpp : microns per level-0 pixel recorded in the image.
    pen, blur, folds, dust, faint : which artefacts to draw (``faint``: one piece pale all over).
    pen_colors : marker colours to choose from (keys of :data:`INK`).
    pen_width_um : range of marker stroke widths in microns. The default (20-75 um, fine pen)
        keeps the slides of earlier releases; a felt-tip marker draws 500-2000 um
        (:data:`REALISTIC`).
    fold_blur_um : 0 draws a fold as the tissue's texture at double density (which doubles
        the texture's JPEG chroma noise too: teal fringes); > 0 draws the folded-over layer
        as the tissue blurred by this sigma (microns), added to the in-focus layer.
    truth_downsample : level-0 px per ground-truth px (integer >= 1).
    noise_sigma : std of the sensor noise added to every pixel (grey levels).
    stain : ``"he"`` or ``"ihc"``: the texture redrawn as an IHC slide, a haematoxylin
        counterstain (blue to blue-grey, often weak) and brown DAB on positive cells, no eosin
        (:func:`gigapatch_pathology.stains.ihc_from_he`; the layout is the H&E slide's of the
        same seed).
    path : if given, write a tiled pyramidal TIFF there (JPEG q90, levels 1/4/16/64, resolution
        tags) and return its path; otherwise return an in-memory :class:`gigapatch.ArrayImage`.

    Returns
    -------
    image : :class:`gigapatch.ArrayImage` or the written :class:`~pathlib.Path`.
    truth : dict with bool (ceil(h/ds), ceil(w/ds)) masks ``tissue``, ``pen``, ``blur`` (blurred
        tissue), ``fold``, ``dust`` (a truth pixel is True when at least half its area is), plus
        ``downsample`` (float) and ``seed``.
    """
    import cv2

    from gigapatch import ArrayImage

    w, h = int(size[0]), int(size[1])
    if w < 512 or h < 512:
        raise ValueError("synthetic slides are at least 512 x 512 px")
    if stain not in STAINS:
        raise ValueError(f"stain must be one of {STAINS}, got {stain!r}")
    ds = int(truth_downsample)
    rng = np.random.default_rng(seed)
    lo, hi = (float(v) / mpp for v in pen_width_um)
    lay = _layout(rng, w, h, faint, folds, blur, pen, dust, tuple(pen_colors), (lo, hi))
    lay["fold_sigma"] = float(fold_blur_um) / mpp
    tiles_od = -np.log(texture_tiles(texture, rng))
    if stain == "ihc":
        from .stains import ihc_from_he

        tiles_od = ihc_from_he(tiles_od, rng)
    P = tiles_od.shape[1]
    cell = P - P // 8
    off = (int(rng.integers(cell)), int(rng.integers(cell)))
    grid = rng.integers(0, len(tiles_od) * 8, size=(h // cell + 3, w // cell + 3))
    band = max(ds, _BAND // ds * ds)
    # one band of sensor noise (+0.5 for rounding), reused by every band
    noise = rng.standard_normal((min(band, h), w, 3), dtype=np.float32) * noise_sigma + 0.5
    out = np.empty((h, w, 3), np.uint8)
    th, tw = -(-h // ds), -(-w // ds)
    truth: dict[str, Any] = {k: np.zeros((th, tw), bool) for k in TRUTH_KEYS}
    for y0 in range(0, h, band):
        y1 = min(h, y0 + band)
        rgb, t = _render_band(lay, tiles_od, grid, off, cell, y0, y1, w, h, noise)
        out[y0:y1] = rgb
        r0, r1 = y0 // ds, -(-y1 // ds)
        for k, m in t.items():
            if ds == 1:
                truth[k][r0:r1] = m
            else:
                small = cv2.resize(m.astype(np.float32), (tw, r1 - r0), interpolation=cv2.INTER_AREA)
                truth[k][r0:r1] = small >= 0.5
    truth["downsample"] = float(ds)
    truth["seed"] = seed
    if path is None:
        return ArrayImage(out, mpp=mpp, path=f"synthetic-{seed}"), truth
    from gigapatch import write_pyramidal_tiff

    return write_pyramidal_tiff(path, out, downsamples=(4, 16, 64), mpp=mpp), truth


__all__ = [
    "IDEAL_MAX_BLUR",
    "IDEAL_MAX_PEN",
    "INK",
    "REALISTIC",
    "STAINS",
    "TRUTH_KEYS",
    "synthetic_slide",
    "texture_tiles",
    "truth_metrics",
]
