"""Quality-control pictures: the mask, region contours and ids, and patches over a thumbnail,
contact sheets of the best and worst patches by a score, and a loud warning when segmentation
probably failed.

The overlay reads at a glance on H&E, grey steel and satellite scenes alike:

* every cell is outlined *inside* its own square (inset), so a kept cell and a rejected
  neighbour never share a line: kept cells get a thick colour line in a dark halo, rejected
  ones a thinner line in a light halo further in, crossed by a slash unless the reason is
  ``foreground`` (thin grey); cells under 16 drawing px become bare open squares (kept) and
  translucent fills (rejected);
* kept cells are coloured by a score from its true min to its max over the kept patches, and
  each rejection reason has a stable colour (:mod:`gigapatch.outputs.marks`);
* the picture is the image at its native scale when it is smaller than the thumbnail (read from
  the image, never an upscale of the low-resolution view);
* a legend names every mark: the tint outside the mask, kept, each reason with its count, the
  region contour, region ids, holes.

Drawing is OpenCV (vectorised per colour: one ``polylines`` call per colour, not per patch);
PNGs are encoded with ``cv2.imencode`` and written through a temporary file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gigapatch.outputs.marks import (
    BACKGROUND_SHADE,
    CONTOUR,
    FONT,
    HALO,
    HOLE,
    LABEL_TEXT,
    LIGHT_HALO,
    NEUTRAL_REASON,
    NO_SCORE,
    REASON_PALETTE,
    Entry,
    dotted,
    legend_strip,
    reason_colors,
    score_colors,
    swatch_fill,
    swatch_kept,
    swatch_open,
    swatch_rejected,
    swatch_ring,
    swatch_tag,
    text,
)

if TYPE_CHECKING:
    from gigapatch.io.geometry import PatchGeometry
    from gigapatch.io.image import Image
    from gigapatch.tiling.segment import Region

_TAG_MARGIN = 3  # drawing px between a region id's tag and the region's contour
_SMALL_CELL = 16  # drawing px: cells below this get open squares and fills


def _boxes(coords: np.ndarray, size: float, scale: float, inset: float = 0.0) -> np.ndarray:
    """(N, 4, 2) int32 corners at the drawing scale of level-0 boxes (N, 2) top-left, each
    pulled ``inset`` drawing px inside its own square (and at least 1 px off its far sides), so
    neighbours never share a line."""
    c = np.asarray(coords, np.float64).reshape(-1, 2) / scale
    s = size / scale
    lo, hi = inset, max(inset, s - 1 - max(inset, 1.0))
    corners = np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]])
    return np.round(c[:, None, :] + corners[None]).astype(np.int32)


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
        (tw, th), base = cv2.getTextSize(text, FONT, font, 1)
        bw, bh = tw + 6, th + base + 4
        x, y = region_label_box(r, scale, (bw, bh), img.shape[:2])
        cv2.rectangle(img, (x, y), (x + bw - 1, y + bh - 1), (255, 255, 255), -1)
        cv2.rectangle(img, (x, y), (x + bw - 1, y + bh - 1), CONTOUR, 1)
        cv2.putText(img, text, (x + 3, y + 2 + th), FONT, font, LABEL_TEXT, 1, cv2.LINE_AA)


class _Style:
    """How cells of ``cell`` drawing px are drawn: kept cells a ``line`` px colour line inside a
    dark halo two px wider, pulled in so the halo stays inside the cell; rejected cells a
    ``rejected_line`` px line in a light halo, a gap further in. Below :data:`_SMALL_CELL` px
    (``filled``): kept cells a bare 1 px open square, rejected ones a translucent fill."""

    def __init__(self, cell: float) -> None:
        self.cell = cell
        self.filled = cell < _SMALL_CELL
        self.line = 1 if cell < 24 else (2 if cell < 64 else 3)
        self.halo = self.line + 2
        # filled cells keep a 1 px gap on their far sides, so neighbours stay apart
        self.kept_inset = 1.0 if self.filled else float((self.halo + 1) // 2)
        self.rejected_line = 2 if cell >= 40 else 1
        self.rejected_inset = 0.0 if self.filled else float(self.halo + self.rejected_line + 1)


def _draw_rejected(out: np.ndarray, boxes: np.ndarray, why: np.ndarray,
                   colors: dict[str, tuple[int, int, int]], style: _Style) -> None:
    """Rejected cells: per reason (neutral first), an inset outline and a slash corner to corner,
    both in a light halo, or, for the neutral reason, a dotted outline; filled translucently
    when cells are small (the neutral reason then not drawn)."""
    import cv2

    order = sorted(set(why.tolist()), key=lambda r: (r != NEUTRAL_REASON, r))
    for reason in order:
        sel = boxes[why == reason]
        col = colors[reason]
        if style.filled:
            if reason != NEUTRAL_REASON:
                layer = out.copy()
                cv2.fillPoly(layer, list(sel), col)
                cv2.addWeighted(layer, 0.4, out, 0.6, 0, dst=out)
            continue
        if reason == NEUTRAL_REASON:
            dotted(out, sel)
            continue
        slash = list(np.ascontiguousarray(sel[:, [0, 2]]))
        line = style.rejected_line
        for colour, width in ((LIGHT_HALO, line + 2), (col, line)):  # seen on any scene
            cv2.polylines(out, list(sel), True, colour, width, cv2.LINE_8)
            cv2.polylines(out, slash, False, colour, width, cv2.LINE_AA)


def _draw_kept(out: np.ndarray, boxes: np.ndarray, colours: np.ndarray, style: _Style) -> None:
    """Kept cells: the dark halo of every cell, then its colour line on top (one call per
    colour); a bare 1 px open square when cells are small."""
    import cv2

    keys, inverse = np.unique(colours, axis=0, return_inverse=True)
    groups = [(tuple(int(c) for c in key), boxes[inverse.ravel() == i]) for i, key in enumerate(keys)]
    if style.filled:  # small cells: a 1 px open square each, no halo (rejected ones are filled)
        for col, sel in groups:
            cv2.polylines(out, list(sel), True, col, 1, cv2.LINE_8)
        return
    cv2.polylines(out, list(boxes), True, HALO, style.halo, cv2.LINE_8)
    for col, sel in groups:
        cv2.polylines(out, list(sel), True, col, style.line, cv2.LINE_8)


def _drawing_view(
    rgb: np.ndarray, rgb_downsample: float, image: Image | None, max_side: int, min_side: int
) -> tuple[np.ndarray, float]:
    """The picture to draw on and its level-0 px per drawing px: ``rgb`` shrunk to at most
    ``max_side``, or, when ``rgb`` is smaller than ``min_side`` and ``image`` is given, the image
    read at a scale between the two, never beyond its native (level-0) size; never an upscale."""
    import cv2

    img = np.ascontiguousarray(np.asarray(rgb)[:, :, :3])
    h, w = img.shape[:2]
    side = max(h, w, 1)
    target = float(min(max(side, min_side), max_side))
    if image is not None:
        native = max(image.dimensions)
        target = min(target, float(native))
        if target > side:
            view = np.ascontiguousarray(image.read_level_downsampled(native / target)[:, :, :3])
            return view, image.dimensions[0] / view.shape[1]
    if target < side:
        zoom = target / side
        img = cv2.resize(img, (max(1, round(w * zoom)), max(1, round(h * zoom))),
                         interpolation=cv2.INTER_AREA)
        return img, rgb_downsample * w / img.shape[1]
    return img, rgb_downsample


@dataclass
class OverlayDrawing:
    """An overlay before its legend: the picture, its scale and the marks drawn on it.

    Attributes
    ----------
    picture : (H, W, 3) uint8 RGB drawing.
    scale : level-0 px per picture px.
    entries : the legend's swatches and labels, one per kind of mark drawn, in legend order.
    values : (N,) the kept patches' colouring score (NaN where unknown).
    """

    picture: np.ndarray
    scale: float
    entries: list[Entry] = field(default_factory=list)
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def labels(self) -> list[str]:
        """The legend's labels of the marks (the score row aside)."""
        return [label for _, label in self.entries]


def _tint_background(d: OverlayDrawing, mask: np.ndarray) -> None:
    """Tint the picture outside the mask towards :data:`BACKGROUND_SHADE`."""
    import cv2

    H, W = d.picture.shape[:2]
    m = cv2.resize(np.asarray(mask, np.uint8), (W, H), interpolation=cv2.INTER_NEAREST).astype(bool)
    shade = np.asarray(BACKGROUND_SHADE, np.float32)  # the foreground keeps its colours
    # the tint of every value of each channel, looked up (no float copy of the picture)
    lut = (0.6 * np.arange(256, dtype=np.uint8)[:, None] + 0.4 * shade).astype(np.uint8)
    tinted = cv2.LUT(d.picture, np.ascontiguousarray(lut.reshape(1, 256, 3)))
    np.copyto(d.picture, tinted, where=~m[..., None])
    if not m.all():
        r, g, b = (int(0.6 * 245 + 0.4 * c) for c in BACKGROUND_SHADE)  # the tint on glass
        d.entries.append((swatch_fill((r, g, b)), "tinted: outside the mask"))


def _draw_regions(out: np.ndarray, regions: list[Region], scale: float) -> bool:
    """Region contours (in a light halo) and holes; True when a hole was drawn."""
    import cv2

    thick = 2 if max(out.shape[:2]) >= 1500 else 1
    holes_drawn = False
    for r in regions:
        ext = np.round(np.asarray(r.exterior) / scale).astype(np.int32)
        cv2.polylines(out, [ext], True, LIGHT_HALO, thick + 2, cv2.LINE_AA)
        cv2.polylines(out, [ext], True, CONTOUR, thick, cv2.LINE_AA)
        holes = [np.round(np.asarray(hh) / scale).astype(np.int32) for hh in r.holes if len(hh) >= 3]
        if holes:
            cv2.polylines(out, holes, True, HOLE, 1, cv2.LINE_AA)
            holes_drawn = True
    return holes_drawn


def _draw_cells(d: OverlayDrawing, coords: np.ndarray, size_level0: float,
                rejected_coords: np.ndarray | None, rejected_reason: np.ndarray | None) -> None:
    """Rejected cells (per reason) then kept cells (by ``d.values``), with their legend items."""
    style = _Style(size_level0 / d.scale)
    c = np.asarray(coords).reshape(-1, 2)
    if len(c):  # none kept: the score row says so
        d.entries.append((swatch_open if style.filled else swatch_kept, f"kept {len(c)}"))
    if rejected_coords is not None and len(rejected_coords):
        why = np.asarray(rejected_reason if rejected_reason is not None else
                         np.full(len(rejected_coords), "rejected"), dtype=str)
        colors = reason_colors(why.tolist())
        boxes = _boxes(rejected_coords, size_level0, d.scale, style.rejected_inset)
        _draw_rejected(d.picture, boxes, why, colors, style)
        names, counts = np.unique(why, return_counts=True)
        for reason, n in sorted(zip(names.tolist(), counts.tolist()),
                                key=lambda t: (t[0] != NEUTRAL_REASON, t[0])):
            if style.filled and reason == NEUTRAL_REASON:
                continue  # not drawn on small cells
            label = ("rejected: too little foreground" if reason == NEUTRAL_REASON
                     else f"rejected: {reason}")
            d.entries.append((swatch_rejected(colors[reason], reason != NEUTRAL_REASON,
                                              style.filled), f"{label} {n}"))
    if len(c):
        finite = d.values[np.isfinite(d.values)]
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        _draw_kept(d.picture, _boxes(c, size_level0, d.scale, style.kept_inset),
                   score_colors(d.values, lo, hi), style)
        if len(finite) < len(c):
            d.entries.append((swatch_fill(NO_SCORE), "kept, no score to colour by"))


def overlay_drawing(
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
    image: Image | None = None,
    max_side: int = 2048,
    min_side: int = 1024,
) -> OverlayDrawing:
    """:func:`overlay_image`'s picture without its legend (same parameters), with the legend's
    entries: what the legend will name."""
    h, w = np.asarray(rgb).shape[:2]
    if rgb_downsample is None:
        rgb_downsample = mask_downsample * (mask.shape[1] / w if mask is not None and w else 1.0)
    base, scale = _drawing_view(rgb, rgb_downsample, image, max_side, min_side)
    c = np.asarray(coords).reshape(-1, 2)
    vals = None if scores is None else scores.get(color_by)
    values = np.asarray(vals, np.float64)[: len(c)] if vals is not None else np.full(len(c), np.nan)
    d = OverlayDrawing(base.copy(), scale, [], values)
    if mask is not None and mask.size:
        _tint_background(d, mask)
    regions = regions or []
    holes = _draw_regions(d.picture, regions, scale)
    _draw_cells(d, c, size_level0, rejected_coords, rejected_reason)
    if regions:
        d.entries += [(swatch_ring(CONTOUR, 2), "region contour"), (swatch_tag, "region id")]
    if holes:
        d.entries.append((swatch_ring(HOLE, 1), "hole in a region"))
    _label_regions(d.picture, regions, scale, 0.55 if max(d.picture.shape[:2]) >= 1500 else 0.4)
    return d


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
    image: Image | None = None,
    max_side: int = 2048,
    min_side: int = 1024,
) -> np.ndarray:
    """A QC picture of one image: tinted background, region contours and ids, kept and rejected
    patches, and a legend naming every mark (see the module docstring).

    Parameters
    ----------
    rgb : (h, w, 3) uint8 low-resolution view (usually the one the mask was computed on).
    mask : (hm, wm) bool foreground at ``mask_downsample``, or None.
    mask_downsample : level-0 px per mask px.
    regions : regions (level-0 px) whose contours are drawn (holes in orange), each tagged with
        its id (its index in the list) just inside its upper contour.
    coords : (N, 2) level-0 top-left corners of the kept patches.
    size_level0 : patch side in level-0 px.
    scores : score columns of the kept patches; ``scores[color_by]`` colours their outlines,
        its min..max over the kept patches spanning the colour map (colour bar in the legend).
    rejected_coords, rejected_reason : (M, 2) and (M,) rejected candidates, drawn in the colour
        of their reason (:func:`gigapatch.outputs.marks.reason_colors`; counts in the legend).
    rgb_downsample : level-0 px per ``rgb`` px (default: ``mask_downsample`` scaled by the
        mask/rgb width ratio, or ``mask_downsample`` without a mask).
    image : the image itself: when ``rgb`` is smaller than ``min_side``, the picture is read
        from it at up to ``min_side`` px (never beyond its level 0) instead of upscaling ``rgb``.
    max_side, min_side : bounds on the picture's longer side (``min_side`` only with
        ``image``, and only up to the image's own size).

    Returns
    -------
    (H, W, 3) uint8 RGB: the drawing (padded with white to the legend's width when narrower)
    above the legend strip.
    """
    d = overlay_drawing(rgb, mask, mask_downsample, regions, coords, size_level0, scores, color_by,
                        rejected_coords, rejected_reason, rgb_downsample=rgb_downsample,
                        image=image, max_side=max_side, min_side=min_side)
    H, W = d.picture.shape[:2]
    legend = legend_strip(W, color_by, d.values, d.entries, 0.45 if W >= 700 else 0.4)
    out = d.picture
    if legend.shape[1] > W:
        out = np.hstack([out, np.full((H, legend.shape[1] - W, 3), 255, np.uint8)])
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
        text(sec, title, (6, 17), 0.5)
        for k, j in enumerate(idx.tolist()):
            r, q = divmod(k, cols)
            x0, y0 = q * cell_w + 4, 24 + r * cell_h
            sec[y0 : y0 + thumb, x0 : x0 + thumb] = tiles[j]
            v = float(np.asarray(scores[by])[j])
            text(sec, f"{by}={v:.4g}", (x0, y0 + thumb + 12), 0.35)
            text(sec, f"x={c[j, 0]} y={c[j, 1]}", (x0, y0 + thumb + 25), 0.35, (60, 60, 60))
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
    "OverlayDrawing",
    "REASON_PALETTE",
    "overlay_drawing",
    "reason_colors",
    "score_colors",
]
