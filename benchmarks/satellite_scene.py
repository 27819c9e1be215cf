"""A deterministic Landsat-like scene as a Cloud-Optimized GeoTIFF, of any size (40,000 px and
beyond), written block by block so memory stays flat.

Four uint16 bands (red, green, blue, near infrared; surface reflectance x 10000, colour
interpretations and band descriptions set), 30 m pixels in UTM zone 21S, nodata 0 outside a
footprint rotated by 10 degrees (the acquisition's swath inside the north-up grid, as Landsat's),
512 px deflate tiles, internal overviews (2x ... down to < 512 px, nodata-aware averages), COG
layout (GDAL's COG driver, from an uncompressed tiled GeoTIFF written first: each tile is
compressed once). The land cover (fields, a forest, a lake, clouds) comes from
``gigapatch_satellite.synth.synthetic_scene`` drawn at 1/32 of the side and upsampled
bilinearly; per-block sensor noise (seeded by the block's position) gives the full resolution
its texture. The same seed and side give the same pixels.

``python benchmarks/satellite_scene.py OUT.tif --side 40000`` (a 7 GB file; the uncompressed
temporary beside it takes 17 GB while it is written).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np

#: the footprint's rotation (degrees) and its half-side as a share of the scene
ANGLE = 10.0
HALF = 0.40
#: rows written at a time, and columns upsampled at a time
ROWS = 512
COLS = 8192
CRS = "EPSG:32721"
ORIGIN = (300000.0, 7500000.0)
PIXEL_M = 30.0


def footprint(rows: np.ndarray, cols: np.ndarray, side: int) -> np.ndarray:
    """(len(rows), len(cols)) bool: inside the rotated square swath."""
    t = math.radians(ANGLE)
    x = cols.astype(np.float64)[None, :] + 0.5 - side / 2
    y = rows.astype(np.float64)[:, None] + 0.5 - side / 2
    u = x * math.cos(t) + y * math.sin(t)
    v = y * math.cos(t) - x * math.sin(t)
    return (np.abs(u) < HALF * side) & (np.abs(v) < HALF * side)


def cover(seed: int, side: int) -> np.ndarray:
    """(4, n, n) float32 reflectance x 10000 at 1/32 of ``side`` (no footprint cut)."""
    from gigapatch_satellite.synth import synthetic_scene

    n = max(64, math.ceil(side / 32))
    bands, truth = synthetic_scene(seed, n, cloud_cover=0.03)
    out = bands.astype(np.float32)
    valid = truth["valid"]  # synthetic_scene cuts its own footprint: fill it with the mean
    out[:, ~valid] = out[:, valid].mean(axis=1)[:, None]
    return out


def block(low: np.ndarray, side: int, r0: int, r1: int, seed: int) -> np.ndarray:
    """(4, r1 - r0, side) uint16 rows ``r0:r1`` of the full-resolution scene."""
    import cv2

    n = low.shape[1]
    scale = n / side
    y0 = max(0, int(math.floor(r0 * scale)) - 2)
    y1 = min(n, int(math.ceil(r1 * scale)) + 2)
    # bilinear upsampling of the low-res rows y0:y1 onto full-res rows r0:r1, all columns
    src_rows = (np.arange(r0, r1) + 0.5) * scale - 0.5 - y0
    src_cols = (np.arange(side) + 0.5) * scale - 0.5
    map_y = np.broadcast_to(src_rows[:, None], (r1 - r0, COLS)).astype(np.float32)
    out = np.empty((4, r1 - r0, side), np.uint16)
    rng = np.random.default_rng([seed, r0])
    inside = footprint(np.arange(r0, r1), np.arange(side), side)
    for k in range(4):
        src = np.ascontiguousarray(low[k, y0:y1])
        up = np.empty((r1 - r0, side), np.float32)
        for c0 in range(0, side, COLS):  # cv2.remap takes at most 32767 px a side
            c1 = min(side, c0 + COLS)
            map_x = np.broadcast_to(src_cols[None, c0:c1], (r1 - r0, c1 - c0)).astype(np.float32)
            up[:, c0:c1] = cv2.remap(src, map_x, np.ascontiguousarray(map_y[:, : c1 - c0]),
                                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        noise = rng.standard_normal(up.shape, dtype=np.float32)
        noise *= np.float32(40.0)
        up += noise
        band = np.clip(np.round(up), 1, 65535).astype(np.uint16)
        band[~inside] = 0
        out[k] = band
    return out


def write_scene(path: str | Path, side: int, seed: int = 7) -> Path:
    """Write the scene (see the module docstring) to ``path`` unless it is there already."""
    import rasterio
    import rasterio.shutil
    from rasterio.enums import ColorInterp, Resampling
    from rasterio.transform import Affine

    path = Path(path)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.gtiff")
    low = cover(seed, side)
    profile = {
        "driver": "GTiff", "width": side, "height": side, "count": 4, "dtype": "uint16",
        "crs": CRS, "transform": Affine(PIXEL_M, 0, ORIGIN[0], 0, -PIXEL_M, ORIGIN[1]),
        "nodata": 0, "tiled": True, "blockxsize": 512, "blockysize": 512,
        "interleave": "pixel", "photometric": "RGB", "BIGTIFF": "YES",
    }  # uncompressed: the COG copy below compresses every tile once
    t0 = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=256), rasterio.open(tmp, "w", **profile) as ds:
        for r0 in range(0, side, ROWS):
            r1 = min(side, r0 + ROWS)
            ds.write(block(low, side, r0, r1, seed), window=((r0, r1), (0, side)))
        ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue,
                          ColorInterp.undefined]
        for i, name in enumerate(("red", "green", "blue", "nir"), start=1):
            ds.set_band_description(i, name)
        factors = [2 ** k for k in range(1, 12) if side // 2 ** k >= 256]
        ds.build_overviews(factors, Resampling.average)
    print(f"{path.name}: written and overviews built in {time.perf_counter() - t0:.0f} s")
    part = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with rasterio.Env(GDAL_CACHEMAX=256), rasterio.open(tmp) as src:
        rasterio.shutil.copy(src, part, driver="COG", compress="DEFLATE", predictor=2, level=1,
                             blocksize=512, overviews="FORCE_USE_EXISTING", BIGTIFF="YES",
                             NUM_THREADS="ALL_CPUS")
    tmp.unlink()
    os.replace(part, path)
    print(f"{path.name}: COG in {time.perf_counter() - t0:.0f} s, {path.stat().st_size / 1e9:.2f} GB")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--side", type=int, default=40000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    write_scene(a.out, a.side, a.seed)


if __name__ == "__main__":
    main()
