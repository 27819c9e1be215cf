"""The overlay's marks: the score colours, the rejection reasons' colours and the legend.

* Kept patches are coloured by a score on viridis without its darkest quarter
  (:data:`CMAP_START`): perceptually uniform, monotonic in lightness (so its order reads with
  any colour vision, even in grey), its dark end clear of the purple of H&E and of dark scenes.
* Each rejection reason takes a stable colour from a colour-blind-safe qualitative palette
  (:data:`REASON_PALETTE`) by a hash of its name (:func:`reason_colors`), so any plugin's reasons
  get colours and a reason keeps its colour from picture to picture; the core's ``foreground``
  (too little foreground, the commonest) is neutral grey.
* :func:`legend_strip` draws the legend: the colour bar from the kept values' true min to
  max, then a swatch and a label per mark.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable

import numpy as np

#: draws a swatch of side ``s`` px at ``(x, y)`` into an RGB image
Swatch = Callable[[np.ndarray, int, int, int], None]

#: colour-blind-safe qualitative palette for rejection reasons: Okabe & Ito's (2008) without
#: its black and yellow (the halo's and the score colours') and with Tol's purple for their
#: reddish purple, which fades on H&E; every entry holds its own on white (the light halo)
REASON_PALETTE: tuple[tuple[int, int, int], ...] = (
    (213, 94, 0),     # vermillion
    (0, 114, 178),    # blue
    (230, 159, 0),    # orange
    (170, 51, 119),   # purple (Tol)
    (0, 158, 115),    # bluish green
    (86, 180, 233),   # sky blue
)
#: the core's "too little foreground" reason: the commonest and least interesting
NEUTRAL_REASON = "foreground"
NEUTRAL = (160, 160, 160)  # its legend colour; on the picture its outlines are dotted
DOTS = ((25, 25, 25), (235, 235, 235))  # a dotted outline alternates these: seen on any scene
BACKGROUND_SHADE = (110, 130, 165)  # non-foreground is tinted towards this
CONTOUR = (0, 120, 40)
HOLE = (230, 120, 0)
HALO = (20, 20, 20)  # around kept outlines
LIGHT_HALO = (248, 248, 248)  # around rejected outlines and contours (pure white: id tags)
NO_SCORE = (128, 128, 128)  # a kept patch whose colouring score is NaN
LABEL_TEXT = (0, 70, 25)  # region ids: this on a white tag
#: share of viridis left out at its dark end (it vanishes on purple H&E and dark scenes)
CMAP_START = 0.25
FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def reason_colors(reasons: Iterable[str]) -> dict[str, tuple[int, int, int]]:
    """A stable colour per rejection reason.

    ``foreground`` is :data:`NEUTRAL`; every other reason takes the :data:`REASON_PALETTE`
    entry at ``crc32(reason) % len(palette)``, or, when another reason of the same picture took
    it already (in sorted order), the next free one; reasons beyond the palette reuse it.
    """
    out: dict[str, tuple[int, int, int]] = {}
    used: set[int] = set()
    n = len(REASON_PALETTE)
    for reason in sorted(set(reasons)):
        if reason == NEUTRAL_REASON:
            out[reason] = NEUTRAL
            continue
        k = zlib.crc32(reason.encode()) % n
        for step in range(n):
            if (k + step) % n not in used:
                k = (k + step) % n
                break
        used.add(k)
        out[reason] = REASON_PALETTE[k]
    return out


def colormap_lut() -> np.ndarray:
    """(256, 3) uint8 RGB: viridis from :data:`CMAP_START` to its bright end."""
    import cv2

    full = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_VIRIDIS)
    idx = np.round(np.linspace(CMAP_START * 255, 255, 256)).astype(np.uint8)
    return np.ascontiguousarray(full[idx, 0, ::-1])


def score_colors(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(N,) values -> (N, 3) uint8 RGB on the overlay's colour map, ``lo``..``hi`` spanning it
    (the middle colour when ``hi == lo``; :data:`NO_SCORE` grey for NaN)."""
    v = np.asarray(values, np.float64)
    t = (v - lo) / (hi - lo) if hi > lo else np.full(v.shape, 0.5)
    idx = np.round(np.clip(np.nan_to_num(t, nan=0.0), 0, 1) * 255).astype(np.int64)
    out = colormap_lut()[idx]
    out[~np.isfinite(v)] = NO_SCORE
    return out


def text(img: np.ndarray, label: str, org: tuple[int, int], scale: float = 0.45,
         color: tuple[int, int, int] = (0, 0, 0)) -> None:
    """Draw ``label`` with its baseline's left end at ``org`` (anti-aliased Hershey simplex)."""
    import cv2

    cv2.putText(img, label, org, FONT, scale, color, 1, cv2.LINE_AA)


def dotted(img: np.ndarray, boxes: np.ndarray) -> None:
    """Draw the outlines of ``boxes`` (N, 4, 2) int32 as 1 px lines whose pixels alternate a
    dark and a light grey (:data:`DOTS`), visible on light, dark and grey scenes alike."""
    import cv2

    if not len(boxes):
        return
    x0, y0 = np.maximum(boxes.reshape(-1, 2).min(axis=0), 0)
    x1, y1 = boxes.reshape(-1, 2).max(axis=0) + 1
    x1, y1 = min(int(x1), img.shape[1]), min(int(y1), img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    layer = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.polylines(layer, list(boxes - np.array([x0, y0], np.int32)), True, 1, 1, cv2.LINE_8)
    yy, xx = np.nonzero(layer)
    dark = (xx + yy) % 2 == 0
    img[yy[dark] + y0, xx[dark] + x0] = DOTS[0]
    img[yy[~dark] + y0, xx[~dark] + x0] = DOTS[1]


# ---------------------------------------------------------------------- swatches
def _mid_colour() -> tuple[int, int, int]:
    r, g, b = (int(c) for c in colormap_lut()[160])
    return r, g, b


def swatch_kept(img: np.ndarray, x: int, y: int, s: int) -> None:
    """A kept cell: a colour line in a dark halo."""
    import cv2

    cv2.rectangle(img, (x + 1, y + 1), (x + s - 2, y + s - 2), HALO, 3)
    cv2.rectangle(img, (x + 1, y + 1), (x + s - 2, y + s - 2), _mid_colour(), 1)


def swatch_open(img: np.ndarray, x: int, y: int, s: int) -> None:
    """A kept small cell: a bare open square."""
    import cv2

    cv2.rectangle(img, (x + 2, y + 2), (x + s - 3, y + s - 3), _mid_colour(), 1)


def swatch_rejected(col: tuple[int, int, int], slash: bool, fill: bool = False) -> Swatch:
    """A rejected cell of colour ``col``: a filled square (small cells), a square and a slash in
    a light halo (on grey, as the halo shows on a picture), or a dotted square (the neutral
    reason)."""

    def draw(img: np.ndarray, x: int, y: int, s: int) -> None:
        import cv2

        if fill:
            cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), col, -1)
        elif slash:
            cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), (150, 150, 150), -1)
            for colour, width in ((LIGHT_HALO, 4), (col, 2)):
                cv2.rectangle(img, (x + 3, y + 3), (x + s - 4, y + s - 4), colour, width)
                cv2.line(img, (x + 3, y + 3), (x + s - 4, y + s - 4), colour, width, cv2.LINE_AA)
        else:
            dotted(img, np.array([[[x + 2, y + 2], [x + s - 3, y + 2], [x + s - 3, y + s - 3],
                                   [x + 2, y + s - 3]]], np.int32))

    return draw


def swatch_ring(col: tuple[int, int, int], thick: int) -> Swatch:
    """A closed curve (a contour or a hole)."""

    def draw(img: np.ndarray, x: int, y: int, s: int) -> None:
        import cv2

        cv2.ellipse(img, (x + s // 2, y + s // 2), (s // 2 - 1, s // 2 - 3), 0, 0, 360, col,
                    thick, cv2.LINE_AA)

    return draw


def swatch_fill(col: tuple[int, int, int]) -> Swatch:
    """A filled square (a tint)."""

    def draw(img: np.ndarray, x: int, y: int, s: int) -> None:
        import cv2

        cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), col, -1)
        cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), (90, 90, 90), 1)

    return draw


def swatch_tag(img: np.ndarray, x: int, y: int, s: int) -> None:
    """A region id tag."""
    import cv2

    cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), (255, 255, 255), -1)
    cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), CONTOUR, 1)
    text(img, "0", (x + 3, y + s - 3), 0.4, LABEL_TEXT)


def swatch_bar(img: np.ndarray, x: int, y: int, s: int) -> None:
    """The colour bar, ``BAR`` swatches wide, from the colour map's start to its end."""
    import cv2

    w = BAR * s
    img[y : y + s, x : x + w] = score_colors(np.linspace(0, 1, w), 0, 1)[None]
    cv2.rectangle(img, (x, y), (x + w - 1, y + s - 1), (90, 90, 90), 1)


# ---------------------------------------------------------------------- legend
#: the colour bar's width in swatches
BAR = 8
#: one legend item: its swatch (None: text only) and its label
Entry = tuple[Swatch | None, str]


def score_row(color_by: str, values: np.ndarray) -> list[Entry]:
    """The legend's first items: the true min, the colour bar and the true max of the kept
    patches' ``color_by`` values (N,) and what they mean; or that nothing was kept."""
    finite = values[np.isfinite(values)]
    if len(values) == 0:
        return [(None, f"kept: none (no patch passed; {color_by} would colour them)")]
    if not len(finite):
        return [(None, f"kept {len(values)}: no finite {color_by} to colour them by")]
    lo, hi = float(finite.min()), float(finite.max())
    if hi == lo:
        return [(None, f"kept {len(values)}: {color_by} = {lo:.4g} for every one")]
    return [(None, f"{lo:.4g}"), (swatch_bar, ""), (None, f"{hi:.4g}"),
            (None, f"kept {len(values)}: colour = {color_by} from its min to its max")]


def legend_strip(width: int, color_by: str, values: np.ndarray, entries: list[Entry],
                 font: float = 0.45) -> np.ndarray:
    """The legend: an (h, max(width, 480), 3) uint8 white strip with :func:`score_row`, then one
    swatch and label per entry, flowed in rows of its width."""
    import cv2

    w = max(width, 480)
    row_h, sw = 22, 14
    rows: list[list[tuple[Swatch | None, str, int]]] = []
    for group in (score_row(color_by, values), entries):
        rows.append([])
        x = 10
        for draw, label in group:
            swatch_w = 0 if draw is None else (BAR * sw if draw is swatch_bar else sw) + 6
            need = swatch_w + (cv2.getTextSize(label, FONT, font, 1)[0][0] if label else 0) + 14
            if x + need > w and rows[-1]:
                rows.append([])
                x = 10
            rows[-1].append((draw, label, x))
            x += need
    strip = np.full((8 + row_h * len(rows) + 2, w, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        y = 8 + row_h * r
        for draw, label, x0 in row:
            if draw is not None:
                draw(strip, x0, y, sw)
                x0 += (BAR * sw if draw is swatch_bar else sw) + 6
            if label:
                text(strip, label, (x0, y + sw - 2), font)
    return strip


__all__ = [
    "CMAP_START",
    "NEUTRAL_REASON",
    "REASON_PALETTE",
    "colormap_lut",
    "dotted",
    "legend_strip",
    "reason_colors",
    "score_colors",
    "score_row",
]
