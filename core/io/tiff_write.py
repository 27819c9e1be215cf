"""Write tiled pyramidal TIFFs (generic, PANDA-like, or Aperio-SVS-like) with tifffile.

Used by the demo, the tests and the benchmarks to make slides with known content.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from gigapatch.io.atomic import atomic_path


def _level_array(rgb: np.ndarray, downsample: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, w // downsample), max(1, h // downsample)), interpolation=cv2.INTER_AREA)


def write_pyramidal_tiff(
    path: str | Path,
    rgb: np.ndarray,
    *,
    downsamples: tuple[int, ...] = (4, 16),
    tile: int = 256,
    compression: str | None = "jpeg",
    quality: int = 90,
    mpp: float | None = None,
    magnification: float | None = None,
    svs: bool = False,
) -> Path:
    """Write ``rgb`` (H, W, 3) uint8 as a tiled pyramid: level 0 then one reduced page per downsample.

    ``svs=True`` writes an Aperio-style ImageDescription (``... |MPP = x|AppMag = y``) so readers treat
    the file as SVS; otherwise X/YResolution carry the mpp (pixels per centimetre). Written to a
    temporary file, then renamed.
    """
    import tifffile

    path = Path(path)
    h, w = rgb.shape[:2]
    downsamples = tuple(d for d in downsamples if min(h, w) // d >= 64)  # no postage stamps
    levels = [rgb] + [_level_array(rgb, d) for d in downsamples]
    thumbnail = _level_array(rgb, max(1, -(-max(h, w) // 768))) if svs else None
    return _write_levels(
        path, [(lv.shape[:2], _array_tiles(lv, tile)) for lv in levels], [1, *downsamples],
        tile=tile, compression=compression, quality=quality, mpp=mpp,
        magnification=magnification, svs=svs, tifffile=tifffile, thumbnail=thumbnail,
    )


def _array_tiles(arr: np.ndarray, tile: int) -> Iterator[np.ndarray]:
    h, w = arr.shape[:2]
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            t = arr[y : y + tile, x : x + tile]
            if t.shape[:2] != (tile, tile):
                # replicate the edge: zero padding would bleed dark chroma into JPEG edge blocks
                t = np.pad(t, ((0, tile - t.shape[0]), (0, tile - t.shape[1]), (0, 0)), mode="edge")
            yield np.ascontiguousarray(t)


def _write_levels(
    path: Path,
    levels: Sequence[tuple[tuple[int, ...], Iterator[np.ndarray]]],
    dss: Sequence[int],
    *,
    tile: int,
    compression: str | None,
    quality: int,
    mpp: float | None,
    magnification: float | None,
    svs: bool,
    tifffile: ModuleType,
    thumbnail: np.ndarray | None = None,
) -> Path:
    """Write ``levels`` ((h, w) and an iterator of (tile, tile, 3) uint8 tiles, row-major, each)
    as the pages of one tiled TIFF at ``path``; ``dss`` are their downsamples."""
    h0, w0 = levels[0][0]
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=h0 * w0 * 3 > 2**31) as tw:
        for i, ((h, w), tiles) in enumerate(levels):
            # RGB in; with JPEG tifffile stores 2x2-subsampled YCbCr, as scanners do
            kwargs: dict[str, Any] = {"photometric": "rgb", "compression": compression}
            if compression == "jpeg":
                kwargs["compressionargs"] = {"level": quality}
            if mpp is not None:
                res = 1e4 / (mpp * dss[i])  # pixels per centimetre
                kwargs["resolution"] = (res, res)
                kwargs["resolutionunit"] = "CENTIMETER"
            desc: str | None = None
            if svs and i == 0:
                desc = (
                    f"Aperio Image Library v12.0.0\r\n{w0}x{h0} [0,0 {w0}x{h0}] ({tile}x{tile}) "
                    f"JPEG/RGB Q={quality}"
                )
                if magnification is not None:
                    desc += f"|AppMag = {magnification:g}"
                if mpp is not None:
                    desc += f"|MPP = {mpp:.4f}"
            tw.write(
                tiles, shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile),
                subfiletype=0 if (i == 0 or svs) else 1, description=desc, metadata=None, **kwargs,
            )
            if svs and i == 0 and thumbnail is not None:
                # Aperio puts a stripped thumbnail second; readers find the levels after it
                tw.write(thumbnail, photometric="rgb", compression="jpeg", metadata=None,
                         description="Aperio Image Library thumbnail")
    return path
