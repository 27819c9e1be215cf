"""Quality-control pictures: the mask, region contours and ids, and patches over a thumbnail,
contact sheets of the best and worst patches by a score, and a loud warning when segmentation
probably failed.

Drawing is OpenCV (vectorised per colour: one ``polylines`` call per colour bin, not per patch);
PNGs are encoded with ``cv2.imencode`` and written through a temporary file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gigapatch.io.geometry import PatchGeometry
    from gigapatch.io.image import Image
    from gigapatch.tiling.segment import Region

#: RGB colour of each rejection reason (others: white)
REASON_COLORS: dict[str, tuple[int, int, int]] = {
    "foreground": (150, 150, 150),
    "pen": (230, 0, 230),
    "blur": (0, 200, 230),
    "keep": (255, 140, 0),
    "top_n": (240, 220, 0),
}
BACKGROUND_SHADE = (110, 130, 165)  # non-foreground is shaded towards this
CONTOUR = (0, 120, 40)
HOLE = (230, 120, 0)
LABEL_TEXT = (0, 70, 25)  # region ids: this on a white tag
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX
_TAG_MARGIN = 3  # drawing px between a region id's tag and the region's contour


def _colormap(values: np.ndarray) -> np.ndarray:
    """(N,) values in [0, 1] -> (N, 3) uint8 RGB viridis (NaN -> grey)."""
    import cv2

    v = np.asarray(values, np.float64)
    idx = np.clip(np.nan_to_num(v, nan=0.0) * 255, 0, 255).astype(np.uint8)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_VIRIDIS)[:, 0, ::-1]
    out = lut[idx].copy()
    out[np.isnan(v)] = (128, 128, 128)
    return out


def _boxes(coords: np.ndarray, size: float, scale: float) -> np.ndarray:
    """(N, 4, 2) int32 corners at the drawing scale of level-0 boxes (N, 2) top-left."""
    c = np.asarray(coords, np.float64).reshape(-1, 2) / scale
    s = size / scale
    corners = np.array([[0, 0], [s, 0], [s, s], [0, s]])
    return np.round(c[:, None, :] + corners[None]).astype(np.int32)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45,
          color: tuple[int, int, int] = (0, 0, 0)) -> None:
    import cv2

    cv2.putText(img, text, org, _FONT, scale, color, 1, cv2.LINE_AA)


def region_label_box(region: Region, scale: float, box_size: tuple[int, int],
                     shape: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner (drawing px) of the tag that carries a region's id: the topmost (then
    leftmost) place where the whole tag lies inside the region, a few px clear of the contour,
    just under its upper edge; when the region is too small for it, centred just above it.

    Parameters
    ----------
    region : the region (level-0 px).
    scale : level-0 px per drawing px.
    box_size : (width, height) of the tag in drawing px.
    shape : (H, W) of the picture; the tag is kept inside it.
    """
    import cv2

    bw, bh = box_size
    ext = np.asarray(region.exterior, np.float64).reshape(-1, 2) / scale
    x0 = max(int(np.floor(ext[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(ext[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(ext[:, 0].max())) + 2, shape[1])
    y1 = min(int(np.ceil(ext[:, 1].max())) + 2, shape[0])
    found = None
    if x1 - x0 > bw + 2 * _TAG_MARGIN and y1 - y0 > bh + 2 * _TAG_MARGIN:
        inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
        shift = np.array([x0, y0], np.float64)
        cv2.fillPoly(inside, [np.round(ext - shift).astype(np.int32)], 1)
        holes = [np.round(np.asarray(h, np.float64) / scale - shift).astype(np.int32)
                 for h in region.holes if len(h) >= 3]
        if holes:
            cv2.fillPoly(inside, holes, 0)
        # a pixel stays where the tag and a margin, their top-left corner there, lie inside
        m = _TAG_MARGIN
        fits = cv2.erode(inside, np.ones((bh + 2 * m, bw + 2 * m), np.uint8), anchor=(0, 0),
                         borderType=cv2.BORDER_CONSTANT, borderValue=0)
        rows = np.flatnonzero(fits.any(axis=1))
        if len(rows):
            found = (x0 + int(np.flatnonzero(fits[rows[0]])[0]) + m, y0 + int(rows[0]) + m)
    if found is None:  # centred above the region
        mid = 0.5 * (ext[:, 0].min() + ext[:, 0].max())
        found = (int(round(mid)) - bw // 2, int(np.floor(ext[:, 1].min())) - bh - 2)
    x = int(np.clip(found[0], 0, max(0, shape[1] - bw)))
    return x, int(np.clip(found[1], 0, max(0, shape[0] - bh)))


def _label_regions(img: np.ndarray, regions: list[Region], scale: float, font: float) -> None:
    """Tag every region with its id (its index in ``regions``: the ``region`` column of the
    tables), dark on a white tag inside the region under its upper contour."""
    import cv2

    for k, r in enumerate(regions):
        if len(r.exterior) < 3:
            continue
        text = str(k)
        (tw, th), base = cv2.getTextSize(text, _FONT, font, 1)
        bw, bh = tw + 6, th + base + 4
        x, y = region_label_box(r, scale, (bw, bh), img.shape[:2])
        cv2.rectangle(img, (x, y), (x + bw - 1, y + bh - 1), (255, 255, 255), -1)
        cv2.rectangle(img, (x, y), (x + bw - 1, y + bh - 1), CONTOUR, 1)
        cv2.putText(img, text, (x + 3, y + 2 + th), _FONT, font, LABEL_TEXT, 1, cv2.LINE_AA)


def _legend(width: int, color_by: str, lo: float, hi: float, n_kept: int,
            reasons: dict[str, int]) -> np.ndarray:
    """A white strip (h, width, 3): colour bar of the score, then one swatch per reason."""
    import cv2

    h = 46
    strip = np.full((h, max(width, 420), 3), 255, np.uint8)
    bar_w = 160
    bar = _colormap(np.linspace(0, 1, bar_w))
    strip[8:22, 10 : 10 + bar_w] = bar[None]
    _text(strip, f"{lo:.3g}", (10, 38))
    _text(strip, f"{hi:.3g}", (10 + bar_w - 40, 38))
    _text(strip, f"kept {n_kept} by {color_by}", (180, 20))
    x = 180
    for reason, count in reasons.items():
        col = REASON_COLORS.get(reason, (255, 255, 255))
        label = f"{reason} {count}"
        if x + 30 + 8 * len(label) > strip.shape[1]:
            break
        cv2.rectangle(strip, (x, 28), (x + 12, 40), col, -1)
        cv2.rectangle(strip, (x, 28), (x + 12, 40), (0, 0, 0), 1)
        _text(strip, label, (x + 16, 39), 0.4)
        x += 24 + 8 * len(label)
    return strip[:, :width] if strip.shape[1] > width else strip


def overlay_image(
    rgb: np.ndarray,
    mask: np.ndarray | None,
    mask_downsample: float,
    regions: list[Region] | None,
    coords: np.ndarray,
    size_level0: float,
    scores: dict[str, np.ndarray] | None = None,
    color_by: str = "foreground",
    rejected_coords: np.ndarray | None = None,
    rejected_reason: np.ndarray | None = None,
    *,
    rgb_downsample: float | None = None,
    max_side: int = 2048,
    min_side: int = 1024,
) -> np.ndarray:
    """A QC picture of one image: shaded background, region contours, kept and rejected patches.

    Parameters
    ----------
    rgb : (h, w, 3) uint8 low-resolution view (usually the one the mask was computed on).
    mask : (hm, wm) bool foreground at ``mask_downsample``, or None.
    mask_downsample : level-0 px per mask px.
    regions : tissue regions (level-0 px) whose contours are drawn (holes in orange), each
        tagged with its id (its index in the list) just inside its upper contour.
    coords : (N, 2) level-0 top-left corners of the kept patches.
    size_level0 : patch side in level-0 px.
    scores : score columns of the kept patches; ``scores[color_by]`` colours their boxes
        (viridis, 2nd-98th percentile range; colour bar in the legend).
    rejected_coords, rejected_reason : (M, 2) and (M,) rejected candidates, drawn thin in the
        colour of their reason (:data:`REASON_COLORS`, counts in the legend).
    rgb_downsample : level-0 px per ``rgb`` px (default: ``mask_downsample`` scaled by the
        mask/rgb width ratio, or ``mask_downsample`` without a mask).
    max_side, min_side : the picture is resized so that its longer side lies in this range.

    Returns
    -------
    (H, W, 3) uint8 RGB: the drawing plus a 46-px legend strip at the bottom.
    """
    import cv2

    img = np.ascontiguousarray(np.asarray(rgb)[:, :, :3])
    h, w = img.shape[:2]
    if rgb_downsample is None:
        rgb_downsample = mask_downsample * (mask.shape[1] / w if mask is not None and w else 1.0)
    side = max(h, w, 1)
    zoom = float(np.clip(side, min_side, max_side)) / side
    if zoom != 1.0:
        interp = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (max(1, round(w * zoom)), max(1, round(h * zoom))), interpolation=interp)
    scale = rgb_downsample / zoom  # level-0 px per drawing px
    out = img.copy()
    H, W = out.shape[:2]
    if mask is not None and mask.size:
        m = cv2.resize(np.asarray(mask, np.uint8), (W, H), interpolation=cv2.INTER_NEAREST).astype(bool)
        shade = np.asarray(BACKGROUND_SHADE, np.float32)  # tissue keeps its colours
        out[~m] = (0.6 * out[~m] + 0.4 * shade).astype(np.uint8)
    thick = 2 if max(H, W) >= 1500 else 1
    for r in regions or []:
        ext = np.round(np.asarray(r.exterior) / scale).astype(np.int32)
        cv2.polylines(out, [ext], True, CONTOUR, thick, cv2.LINE_AA)
        holes = [np.round(np.asarray(hh) / scale).astype(np.int32) for hh in r.holes if len(hh) >= 3]
        if holes:
            cv2.polylines(out, holes, True, HOLE, 1, cv2.LINE_AA)
    _label_regions(out, regions or [], scale, 0.55 if max(H, W) >= 1500 else 0.4)
    reasons: dict[str, int] = {}
    if rejected_coords is not None and len(rejected_coords):
        why = np.asarray(rejected_reason if rejected_reason is not None else
                         np.full(len(rejected_coords), ""), dtype=str)
        boxes = _boxes(rejected_coords, size_level0, scale)
        # foreground rejects are the majority and least interesting: draw them first
        order = sorted(set(why.tolist()), key=lambda s: (s != "foreground", s))
        for reason in order:
            sel = why == reason
            reasons[reason] = int(sel.sum())
            col = REASON_COLORS.get(reason, (255, 255, 255))
            cv2.polylines(out, list(boxes[sel]), True, col, 1, cv2.LINE_8)
    lo = hi = float("nan")
    c = np.asarray(coords).reshape(-1, 2)
    if len(c):
        boxes = _boxes(c, size_level0, scale)
        vals = None if scores is None else scores.get(color_by)
        if vals is None:
            bins = np.zeros(len(c), np.int64)
            cols = np.tile(np.array([[40, 90, 255]], np.uint8), (len(c), 1))
        else:
            v = np.asarray(vals, np.float64)
            finite = v[np.isfinite(v)]
            lo, hi = (np.percentile(finite, [2, 98]) if len(finite) else (0.0, 1.0))
            norm = (v - lo) / (hi - lo) if hi > lo else np.where(np.isfinite(v), 0.5, np.nan)
            norm = np.where(np.isfinite(norm), np.clip(norm, 0, 1), np.nan)
            bins = np.where(np.isnan(norm), -1, np.round(np.nan_to_num(norm) * 31)).astype(np.int64)
            cols = _colormap(np.where(bins < 0, np.nan, bins / 31.0))
        for b in np.unique(bins):
            sel = np.flatnonzero(bins == b)
            colour = tuple(int(x) for x in cols[sel[0]])
            cv2.polylines(out, list(boxes[sel]), True, colour, thick, cv2.LINE_8)
    legend = _legend(W, color_by, lo, hi, len(c), reasons)
    if legend.shape[1] > W:
        pad = np.full((H, legend.shape[1] - W, 3), 255, np.uint8)
        out = np.hstack([out, pad])
    return np.vstack([out, legend])


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an (h, w, 3) uint8 RGB array (via ``cv2.imencode``)."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1]))
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB array as PNG through a temporary file; returns the path."""
    from gigapatch.io.atomic import write_bytes_atomic

    path = Path(path)
    write_bytes_atomic(path, encode_png(rgb))
    return path


def write_overlay(path: str | Path, **kwargs: Any) -> Path:
    """:func:`overlay_image` (same keyword arguments) written as a PNG at ``path``."""
    return write_png(path, overlay_image(**kwargs))


def contact_sheet(
    image: Image,
    coords: np.ndarray,
    geometry: PatchGeometry,
    scores: dict[str, np.ndarray],
    by: str,
    n: int = 16,
    path: str | Path | None = None,
    *,
    thumb: int = 128,
    columns: int = 8,
    workers: int = 4,
) -> np.ndarray:
    """The top and bottom ``n`` patches by ``scores[by]``, with captions.

    Parameters
    ----------
    image : the image the patches come from.
    coords : (N, 2) level-0 top-left corners; geometry : how they are read.
    scores : score columns (N,) each; by : the one to sort on (descending; NaN last).
    n : patches in each section (fewer when N < 2n: every patch then appears once).
    path : when given, the sheet is also written there as PNG.
    thumb : side of each thumbnail in px; columns : thumbnails per row.

    Returns
    -------
    (H, W, 3) uint8 RGB sheet: a "top n" section, then a "bottom n" section; each thumbnail is
    captioned with the score value and its level-0 x, y.
    """
    import cv2

    from gigapatch.errors import ConfigError
    from gigapatch.io.patches import read_patches
    from gigapatch.tiling.select import rank_order

    if by not in scores:
        known = ", ".join(sorted(scores))
        raise ConfigError(f"contact sheet: unknown score {by!r} (known columns: {known})")
    c = np.asarray(coords, np.int64).reshape(-1, 2)
    order = rank_order(np.asarray(scores[by]), c)
    top = order[: min(n, len(order))]
    rest = order[len(top) :]
    bottom = rest[::-1][: min(n, len(rest))][::-1]
    pick = np.r_[top, bottom].astype(np.int64)
    tiles: dict[int, np.ndarray] = {}
    for i, patch in read_patches(image, c[pick], geometry, workers=workers):
        tiles[int(pick[i])] = cv2.resize(patch, (thumb, thumb), interpolation=cv2.INTER_AREA)
    cap = 30
    cell_w, cell_h = thumb + 8, thumb + cap + 4
    cols = max(1, min(columns, max(len(top), len(bottom), 1)))

    def section(title: str, idx: np.ndarray) -> np.ndarray:
        rows = max(1, -(-len(idx) // cols))
        sec = np.full((24 + rows * cell_h, cols * cell_w, 3), 255, np.uint8)
        _text(sec, title, (6, 17), 0.5)
        for k, j in enumerate(idx.tolist()):
            r, q = divmod(k, cols)
            x0, y0 = q * cell_w + 4, 24 + r * cell_h
            sec[y0 : y0 + thumb, x0 : x0 + thumb] = tiles[j]
            v = float(np.asarray(scores[by])[j])
            _text(sec, f"{by}={v:.4g}", (x0, y0 + thumb + 12), 0.35)
            _text(sec, f"x={c[j, 0]} y={c[j, 1]}", (x0, y0 + thumb + 25), 0.35, (60, 60, 60))
        return sec

    parts = [section(f"top {len(top)} by {by}", top)]
    if len(bottom):
        parts.append(section(f"bottom {len(bottom)} by {by}", bottom))
    sheet = np.vstack(parts)
    if path is not None:
        write_png(path, sheet)
    return sheet


def segmentation_warning(
    foreground_fraction: float, image_id: str, threshold: float = 0.01, high: float | None = 0.98,
) -> str | None:
    """A loud one-line warning when the foreground is implausibly small (or the whole image).

    Returns
    -------
    The warning text, or None when ``threshold <= foreground_fraction <= high``.
    """
    f = float(foreground_fraction)
    if not np.isfinite(f) or f < threshold:
        return (
            f"WARNING: {image_id}: only {100 * f:.3f}% of the image is foreground "
            f"(< {100 * threshold:g}%): segmentation probably failed or the slide is nearly empty; "
            f"check the overlay, lower mask.min_threshold or try mask.method: otsu"
        )
    if high is not None and f > high:
        return (
            f"WARNING: {image_id}: {100 * f:.1f}% of the image is foreground (> {100 * high:g}%): "
            f"the background was probably taken for tissue; check the overlay and mask.max_brightness"
        )
    return None


__all__ = [
    "overlay_image",
    "write_overlay",
    "contact_sheet",
    "segmentation_warning",
    "encode_png",
    "write_png",
    "REASON_COLORS",
]
