"""Writers of synthetic test TIFFs with known pixels (shared by the reader and extraction tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile


def smooth_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An (h, w, 3) uint8 image of smooth colour gradients plus blobs: compresses well as JPEG,
    so lossy round trips stay close to the source, yet no two nearby patches are equal."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.005, 0.03, 2).tolist() + [rng.uniform(0, 6.28)]
        out[..., c] = 128 + 90 * np.sin(xx * fx + ph) * np.cos(yy * fy)
    return np.clip(out, 0, 255).astype(np.uint8)


def random_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(h, w, 3) uint8 white noise: every pixel differs, so any misplaced copy is caught."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def decimated_levels(level0: np.ndarray, n_levels: int) -> list[np.ndarray]:
    """Level k = level0[::2**k, ::2**k] (exact, known ground truth for every level)."""
    return [np.ascontiguousarray(level0[:: 2**k, :: 2**k]) for k in range(n_levels)]


def write_pyramid(
    path: Path,
    levels: list[np.ndarray],
    tile: int | None = 256,
    compression: Any = None,
    subifds: bool = True,
    photometric: str = "rgb",
    bigtiff: bool = False,
    planarconfig: str | None = None,
    extrasamples: tuple[str, ...] | None = None,
    rowsperstrip: int | None = None,
    resolution_mpp: float | None = None,
    resolution_unit: str = "CENTIMETER",
    ome_metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``levels`` (largest first) as one pyramidal TIFF: level 0 plus SubIFDs, or level 0
    plus pages flagged reduced-resolution (subfiletype 1) when ``subifds`` is False."""
    opts: dict[str, Any] = {"compression": compression, "photometric": photometric}
    if tile is not None:
        opts["tile"] = (tile, tile)
    elif rowsperstrip is not None:
        opts["rowsperstrip"] = rowsperstrip
    if planarconfig is not None:
        opts["planarconfig"] = planarconfig
    if extrasamples is not None:
        opts["extrasamples"] = extrasamples
    first = dict(opts)
    if resolution_mpp is not None:
        per_unit = 1e4 if resolution_unit == "CENTIMETER" else 25400.0
        first["resolution"] = (per_unit / resolution_mpp, per_unit / resolution_mpp)
        first["resolutionunit"] = resolution_unit
    if planarconfig == "separate":  # tifffile takes separate planes as (samples, h, w)
        levels = [np.moveaxis(lv, -1, 0) for lv in levels]
    ome = ome_metadata is not None
    with tifffile.TiffWriter(path, bigtiff=bigtiff, ome=ome) as tw:
        meta = ome_metadata if ome else None
        if subifds and len(levels) > 1:
            tw.write(levels[0], subifds=len(levels) - 1, metadata=meta, **first)
        else:
            tw.write(levels[0], metadata=meta, **first)
        for lv in levels[1:]:
            tw.write(lv, subfiletype=1, metadata=None, **opts)
    return path


def make_sparse(path: Path, page: int, tile_index: int) -> None:
    """Mark one tile of ``page`` as sparse (offset 0, byte count 0) in place."""
    with tifffile.TiffFile(path, mode="r+b") as tf:
        p = tf.pages[page]
        for name in ("TileByteCounts", "TileOffsets"):
            tag = p.tags[name]
            values = list(tag.value)
            values[tile_index] = 0
            tag.overwrite(values)
