"""``<id>_satellite.png``: what the satellite plugin saw and kept, on the scene's view.

The low-resolution view (true colour, stretched) with: the valid-data footprint's outline
(cyan), water (blue wash), clouds (magenta wash), kept chips (yellow squares), patches rejected
for no-data (thin red) and partial patches (padded past the raster's edge: orange), and a
legend with the counts.
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
}


def _boxes(img: np.ndarray, coords: np.ndarray, size0: float, scale: float,
           colour: tuple[int, int, int], width: int) -> None:
    import cv2

    for x, y in np.asarray(coords, np.float64).reshape(-1, 2):
        p0 = (int(round(x * scale)), int(round(y * scale)))
        p1 = (int(round((x + size0) * scale)) - 1, int(round((y + size0) * scale)) - 1)
        cv2.rectangle(img, p0, p1, colour, width)


def draw(rgb: np.ndarray, ds: float, nodata: np.ndarray, masks: dict[str, np.ndarray],
         kept: np.ndarray, size0: float, rejected: np.ndarray, reasons: np.ndarray,
         partial: np.ndarray | None = None) -> np.ndarray:
    """The picture as an (H, W, 3) uint8 array (see the module docstring).

    Parameters
    ----------
    rgb : (h, w, 3) uint8 view at ``ds`` level-0 px per px; nodata : (h, w) bool.
    masks : ``"water"`` / ``"cloud"`` (h, w) bool (missing ones are not drawn).
    kept : (N, 2) level-0 x, y of the kept patches; size0 : patch side in level-0 px.
    rejected, reasons : (M, 2) and (M,) str of the rejected candidates.
    partial : (N,) bool kept patches padded past the raster's edge, or None.
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
    bad = np.asarray(reasons).astype(str) == "nodata"
    _boxes(img, np.asarray(rejected).reshape(-1, 2)[bad], size0, scale, COLOURS["nodata"], 1)
    k = np.asarray(kept).reshape(-1, 2)
    part = np.zeros(len(k), bool) if partial is None else np.asarray(partial, bool)
    _boxes(img, k[~part], size0, scale, COLOURS["kept"], 2)
    _boxes(img, k[part], size0, scale, COLOURS["partial"], 2)
    return _legend(img, {
        "footprint": "valid-data footprint", "water": f"water {_share(masks, 'water', nodata)}",
        "cloud": f"cloud {_share(masks, 'cloud', nodata)}",
        "kept": f"kept chips {int((~part).sum())}", "partial": f"partial (padded) {int(part.sum())}",
        "nodata": f"rejected: mostly no-data {int(bad.sum())}"})


def _share(masks: dict[str, np.ndarray], name: str, nodata: np.ndarray) -> str:
    m = masks.get(name)
    valid = ~nodata
    if m is None or not valid.any():
        return "-"
    return f"{100 * float(m[valid].mean()):.1f} %"


def _legend(img: np.ndarray, labels: dict[str, str]) -> np.ndarray:
    import cv2

    rows = 22
    bar = np.full((rows * ((len(labels) + 2) // 3) + 8, img.shape[1], 3), 255, np.uint8)
    col_w = img.shape[1] // 3
    for i, (key, text) in enumerate(labels.items()):
        x0, y0 = 8 + (i % 3) * col_w, 6 + (i // 3) * rows
        cv2.rectangle(bar, (x0, y0 + 3), (x0 + 14, y0 + 15), COLOURS[key], -1)
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
