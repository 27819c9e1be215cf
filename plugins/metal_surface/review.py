"""``<id>_review.png``: what an inspector checks a run against.

The scan's low-resolution view in grey, the distance-from-normal heatmap over it (cells above
half the defect threshold, warmer = further from normal), the kept patches (green), the defect
candidates (yellow) and the true boxes of ``<image>.xml`` when there is one (red), with a
legend. A long strip is cut into segments laid side by side, so the picture stays readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .settings import DOMAIN

KEPT = (40, 200, 60)
CANDIDATE = (250, 210, 0)
TRUTH = (230, 30, 30)
#: longest side of the drawing before it is cut into segments
MAX_ROWS = 1600
MAX_WIDTH = 480
#: pixels of the drawing before it is cut into segments
MAX_PIXELS = 3_000_000


def _rects(img: np.ndarray, boxes: np.ndarray, scale: float, colour: tuple[int, int, int],
           thickness: int) -> None:
    import cv2

    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4) / scale:
        cv2.rectangle(img, (int(x0), int(y0)), (max(int(x0), int(np.ceil(x1)) - 1),
                      max(int(y0), int(np.ceil(y1)) - 1)), colour, thickness, cv2.LINE_AA)


def _heat(img: np.ndarray, m: Any, scale: float) -> None:
    """Blend the distance map (cells, level-0 origin) into ``img`` (drawing px)."""
    import cv2

    d = m.distance.astype(np.float32)
    lo = 0.5 * m.threshold
    strength = np.clip((d - lo) / max(2.0 * m.threshold - lo, 1e-6), 0.0, 1.0)
    h, w = img.shape[:2]
    ox, oy = m.origin[0] / scale, m.origin[1] / scale
    cw = m.cell / scale
    size = (max(1, round(d.shape[1] * cw)), max(1, round(d.shape[0] * cw)))
    big = cv2.resize(strength, size, interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((h, w), np.float32)
    x0, y0 = int(round(ox)), int(round(oy))
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(w, x0 + big.shape[1]), min(h, y0 + big.shape[0])
    if sx1 <= sx0 or sy1 <= sy0:
        return
    canvas[sy0:sy1, sx0:sx1] = big[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
    level = (canvas * 255).astype(np.uint8)
    del canvas
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_INFERNO)
    colours = lut[level, 0, ::-1]
    # img + a (colours - img), a = 0.75 level / 255, in 16-bit integers (no float copies)
    a = (level.astype(np.uint16) * 3 // 4)[..., None]
    mixed = (img.astype(np.uint16) * (255 - a) + colours.astype(np.uint16) * a + 127) // 255
    img[:] = mixed.astype(np.uint8)


def _fold(img: np.ndarray, rows: int) -> np.ndarray:
    """A tall picture cut into segments of ``rows`` rows, side by side (white gaps)."""
    h, w = img.shape[:2]
    if h <= rows:
        return img
    n = -(-h // rows)
    gap = 12
    out = np.full((rows, n * w + (n - 1) * gap, 3), 255, np.uint8)
    for k in range(n):
        part = img[k * rows : (k + 1) * rows]
        out[: len(part), k * (w + gap) : k * (w + gap) + w] = part
    return out


def _legend(width: int, lines: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    import cv2

    band = np.full((18 * len(lines) + 8, max(width, 360), 3), 255, np.uint8)
    for i, (text, colour) in enumerate(lines):
        y = 18 * i + 16
        cv2.rectangle(band, (6, y - 10), (18, y), colour, -1)
        cv2.putText(band, text, (24, y), 0, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return band


def render_review(rgb: np.ndarray, view_downsample: float, kept: np.ndarray, size: float,
                  candidates: np.ndarray | None, truth: np.ndarray | None, heat: Any | None,
                  title: str) -> np.ndarray:
    """The review picture as an (h, w, 3) uint8 RGB array.

    Parameters
    ----------
    rgb : (h, w, 3) the scan's low-resolution view; view_downsample : its level-0 px per px.
    kept : (N, 2) level-0 top-left of the kept patches; size : their side (level-0 px).
    candidates, truth : (K, 4) level-0 x0, y0, x1, y1 boxes, or None.
    heat : the distance map (:class:`.scoring.ScoreMap`) or None.
    title : first legend line.
    """
    import cv2

    h, w = rgb.shape[:2]
    zoom = min(1.0, MAX_WIDTH / w) if w > MAX_WIDTH else min(4.0, MAX_WIDTH / w)
    zoom = min(zoom, (MAX_PIXELS / max(1, h * w)) ** 0.5)  # a long strip stays a few MP
    scale = view_downsample / zoom  # level-0 px per drawing px
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (max(1, round(w * zoom)), max(1, round(h * zoom))),
                      interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
    img = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    if heat is not None:
        _heat(img, heat, scale)
    k = np.asarray(kept, np.float64).reshape(-1, 2)
    _rects(img, np.concatenate([k, k + size], axis=1), scale, KEPT, 1)
    if candidates is not None:
        _rects(img, candidates, scale, CANDIDATE, 1)
    if truth is not None:
        _rects(img, truth, scale, TRUTH, 2)
    lines = [(title, (255, 255, 255)), (f"{len(k)} kept patches", KEPT)]
    if candidates is not None:
        lines.append((f"{len(candidates)} defect candidates; heat: distance from normal",
                      CANDIDATE))
    if truth is not None:
        lines.append((f"{len(truth)} true boxes", TRUTH))
    body = _fold(img, MAX_ROWS)
    legend = _legend(body.shape[1], lines)
    if legend.shape[1] > body.shape[1]:
        pad = np.full((body.shape[0], legend.shape[1] - body.shape[1], 3), 255, np.uint8)
        body = np.concatenate([body, pad], axis=1)
    return np.concatenate([legend, body], axis=0)


def write_review(path: Path, patchset: Any, context: Any,
                 truth: list[tuple[str, int, int, int, int]] | None) -> Path:
    """Draw and write ``<id>_review.png`` (through a temporary name)."""
    import cv2

    from gigapatch import atomic_path

    from .metrics import rects

    cache = context.plugin_cache(DOMAIN)
    cand = cache.get("candidates")
    pic = render_review(
        context.rgb, context.mask_downsample, patchset.coords, patchset.patch_size_level0,
        None if cand is None else cand.boxes, None if truth is None else rects(truth),
        cache.get("map"), f"{patchset.image_id} ({context.config.score.rank_by} order)",
    )
    ok, data = cv2.imencode(".png", cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 picture
        raise RuntimeError("PNG encoding failed")
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data.tobytes())
    return path


__all__ = ["render_review", "write_review"]
