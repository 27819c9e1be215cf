"""``<id>_satellite.png``: what the satellite plugin saw and kept, on the scene's view.

The low-resolution view (true colour, stretched) with: the valid-data footprint's outline
(cyan), water (blue wash), clouds (magenta wash), kept chips whole of data (yellow squares),
kept partial chips (part no-data or past the raster's edge, padded with no-data: orange),
patches rejected for no-data (thin red) and patches over data rejected for too little clear
land, i.e. under water, cloud or no-data (thin white), and a legend: each colour, its count or
share of the valid data, and whether a mask is excluded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: longest side of the picture (px)
MAX_SIDE = 1400
COLOURS = {  # RGB
    "footprint": (0, 230, 255), "water": (40, 110, 255), "cloud": (255, 60, 230),
    "kept": (255, 225, 0), "nodata": (255, 40, 40), "partial": (255, 150, 0),
    "other": (255, 255, 255),
}


def _boxes(img: np.ndarray, coords: np.ndarray, size0: float, scale: float,
           colour: tuple[int, int, int], width: int, inset: int = 0) -> None:
    """Outline each (N, 2) level-0 patch, ``inset`` px inside its edge (neighbouring kept
    chips stay two squares, and a rejected patch between them keeps its own outline)."""
    import cv2

    for x, y in np.asarray(coords, np.float64).reshape(-1, 2):
        p0 = (int(round(x * scale)) + inset, int(round(y * scale)) + inset)
        p1 = (int(round((x + size0) * scale)) - 1 - inset,
              int(round((y + size0) * scale)) - 1 - inset)
        cv2.rectangle(img, p0, p1, colour, width)


def draw(rgb: np.ndarray, ds: float, nodata: np.ndarray, masks: dict[str, np.ndarray],
         kept: np.ndarray, size0: float, rejected: np.ndarray, reasons: np.ndarray,
         partial: np.ndarray | None = None, excluded: tuple[str, ...] = ()) -> np.ndarray:
    """The picture as an (H, W, 3) uint8 array (see the module docstring).

    Parameters
    ----------
    rgb : (h, w, 3) uint8 view at ``ds`` level-0 px per px; nodata : (h, w) bool.
    masks : ``"water"`` / ``"cloud"`` (h, w) bool (missing ones are not drawn).
    kept : (N, 2) level-0 x, y of the kept patches; size0 : patch side in level-0 px.
    rejected, reasons : (M, 2) and (M,) str of the rejected candidates.
    partial : (N,) bool kept patches that hold no-data or overhang the raster, or None.
    excluded : names of the masks removed from the foreground (said so in the legend).
    """
    import cv2

    h, w = rgb.shape[:2]
    up = max(1.0, min(4.0, MAX_SIDE / max(h, w)))
    size = (int(round(w * up)), int(round(h * up)))
    base = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_NEAREST)
    out = base.astype(np.float32)
    for name in ("water", "cloud"):
        m = masks.get(name)
        if m is None:
            continue
        big = cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        out[big] = 0.45 * out[big] + 0.55 * np.array(COLOURS[name], np.float32)
    img = np.clip(out, 0, 255).astype(np.uint8)
    valid = cv2.resize((~nodata).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(valid, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, contours, -1, COLOURS["footprint"], 2)
    scale = up / ds
    rej = np.asarray(rejected).reshape(-1, 2)
    bad = np.asarray(reasons).astype(str) == "nodata"
    other = ~bad & _holds_data(rej, size0, ds, nodata)  # an empty corner of the grid: not drawn
    _boxes(img, rej[other], size0, scale, COLOURS["other"], 1)
    _boxes(img, rej[bad], size0, scale, COLOURS["nodata"], 1)
    k = np.asarray(kept).reshape(-1, 2)
    part = np.zeros(len(k), bool) if partial is None else np.asarray(partial, bool)
    inset = 3 if size0 * scale >= 24 else 0
    _boxes(img, k[~part], size0, scale, COLOURS["kept"], 2, inset)
    _boxes(img, k[part], size0, scale, COLOURS["partial"], 2, inset)
    labels = {"footprint": "valid-data footprint (outline)"}
    for name in ("water", "cloud"):
        if name in masks:
            how = "excluded" if name in excluded else "scored only"
            labels[name] = f"{name} {_share(masks, name, nodata)} of the data ({how})"
    return _legend(img, {
        **labels,
        "kept": f"kept chip, all data: {int((~part).sum())}",
        "partial": f"kept chip, partial (edge / no-data): {int(part.sum())}",
        "nodata": f"rejected, over half no-data: {int(bad.sum())}",
        "other": f"rejected, too little clear land: {int(other.sum())}"},
        title=f"{len(k)} chips kept of {len(k) + len(rej)} candidates")


def _holds_data(coords: np.ndarray, size0: float, ds: float, nodata: np.ndarray) -> np.ndarray:
    """(N,) bool: the (N, 2) level-0 patches hold some valid pixel of the (h, w) view."""
    h, w = nodata.shape
    out = np.zeros(len(coords), bool)
    for i, (x, y) in enumerate(coords.tolist()):
        c0, r0 = max(0, int(x / ds)), max(0, int(y / ds))
        c1, r1 = min(w, int(np.ceil((x + size0) / ds))), min(h, int(np.ceil((y + size0) / ds)))
        out[i] = c1 > c0 and r1 > r0 and not nodata[r0:r1, c0:c1].all()
    return out


def _share(masks: dict[str, np.ndarray], name: str, nodata: np.ndarray) -> str:
    m = masks.get(name)
    valid = ~nodata
    if m is None or not valid.any():
        return "-"
    return f"{100 * float(m[valid].mean()):.1f} %"


def _legend(img: np.ndarray, labels: dict[str, str], title: str = "") -> np.ndarray:
    """The picture over a white legend bar: ``title``, then a swatch and text per label, in
    two columns (three on a wide picture)."""
    import cv2

    rows = 22
    cols = 3 if img.shape[1] >= 1200 else 2
    top = rows if title else 0
    bar = np.full((top + rows * ((len(labels) + cols - 1) // cols) + 8, img.shape[1], 3), 255,
                  np.uint8)
    if title:
        cv2.putText(bar, title, (8, 6 + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1,
                    cv2.LINE_AA)
    col_w = img.shape[1] // cols
    for i, (key, text) in enumerate(labels.items()):
        x0, y0 = 8 + (i % cols) * col_w, 6 + top + (i // cols) * rows
        cv2.rectangle(bar, (x0, y0 + 3), (x0 + 14, y0 + 15), COLOURS[key], -1)
        cv2.rectangle(bar, (x0, y0 + 3), (x0 + 14, y0 + 15), (90, 90, 90), 1)  # white shows
        cv2.putText(bar, text, (x0 + 20, y0 + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20),
                    1, cv2.LINE_AA)
    return np.concatenate([img, bar], axis=0)


def write_picture(path: Path, picture: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB picture as PNG (temporary name, then renamed)."""
    import cv2

    from gigapatch import atomic_path

    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        if not ok:  # pragma: no cover - cv2 encodes any uint8 RGB array
            raise ValueError("PNG encoding failed")
        Path(tmp).write_bytes(data.tobytes())
    return path


__all__: list[Any] = ["draw", "write_picture"]
