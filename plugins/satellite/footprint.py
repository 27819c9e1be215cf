"""Per-patch no-data: an estimate from the valid-data footprint of the view, measured on finer
pixels where a patch straddles the footprint's edge.

The view's valid fraction (computed once, on an overview) gives every patch's no-data fraction
exactly where the patch lies wholly inside or outside the footprint; along its edge an overview
pixel mixes data and no-data (and a nodata-aware overview calls it valid when any pixel under
it is), so the patches whose estimate is strictly between 0 and 1 are read again, their valid
mask only: at the coarsest level that still gives :data:`MIN_SIDE` px across a patch when the
estimate is within :data:`NEAR` of ``plugin.satellite.max_nodata`` (where the rule's decision
needs it), at one that gives :data:`COARSE_SIDE` px for the others (their value and ``partial``
flag). The
fractions are of the part of a patch inside the raster: a patch that reaches past the raster's
edge (``patch.edge: pad``, a raster smaller than a patch) is judged on the data it holds, and
flagged ``partial`` (its chip is padded with the no-data value).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gigapatch import ImageContext, mask_fraction

from .masks import valid_fraction
from .reader import RasterioImage
from .settings import settings

#: pixels across a patch at the level the footprint's edge patches near the no-data bar are
#: measured on, and the others
MIN_SIDE = 64
COARSE_SIDE = 16
#: an estimate this close to ``max_nodata`` is measured at :data:`MIN_SIDE`
NEAR = 0.2


def measure_level(image: RasterioImage, size_level0: int, side: int = MIN_SIDE) -> int:
    """The coarsest level with at least ``side`` px across a patch of ``size_level0`` level-0
    px (level 0 when none is that fine)."""
    best = 0
    for k, d in enumerate(image.level_downsamples):
        if size_level0 / d >= side and d >= image.level_downsamples[best]:
            best = k
    return best


def inside_fraction(coords: np.ndarray, size_level0: int, dims: tuple[int, int]) -> np.ndarray:
    """(N,) float64 share of each patch that lies inside the raster (``dims`` (width, height)
    level-0 px): 1 unless it reaches past the edge (``patch.edge: pad``, a raster smaller than a
    patch)."""
    c = np.asarray(coords, np.float64).reshape(-1, 2)
    s = float(size_level0)
    w = np.clip(np.minimum(c[:, 0] + s, dims[0]) - np.maximum(c[:, 0], 0), 0, s)
    h = np.clip(np.minimum(c[:, 1] + s, dims[1]) - np.maximum(c[:, 1], 0), 0, s)
    return (w * h) / (s * s)


#: least side (level px) of the chunks :func:`measured_nodata` reads, and the most (a
#: striped file's strips are cut)
CHUNK_MIN = 256
CHUNK_MAX = 2048


def _chunk_side(block: int) -> int:
    """A chunk side of whole stored blocks, at least :data:`CHUNK_MIN`, at most
    :data:`CHUNK_MAX` (a strip as wide as the raster is cut)."""
    block = max(1, int(block))
    side = block * -(-CHUNK_MIN // block) if block < CHUNK_MIN else block
    return min(side, CHUNK_MAX)


def measured_nodata(image: RasterioImage, coords: np.ndarray, size_level0: int,
                    workers: int = 2, side: int = MIN_SIDE) -> np.ndarray:
    """(N,) float32 no-data share of the part of each patch inside the raster, read at
    :func:`measure_level` (``side`` px across a patch).

    The valid pixels are read chunk by chunk (whole stored blocks), each chunk once over the
    bounding box of the patch windows that touch it, and every patch's count is summed from the
    chunks' integral images: each block is decoded once and there is one read per chunk
    instead of one per patch (a 40k COG's ~700 edge patches: ~90 reads instead of ~700). The
    values are those of reading each patch's window on its own (the same pixels)."""
    c = np.asarray(coords, np.int64).reshape(-1, 2)
    if len(c) == 0:
        return np.zeros(0, np.float32)
    level = measure_level(image, size_level0, side)
    ds = image.level_downsamples[level]
    n = max(1, int(round(size_level0 / ds)))
    lw, lh = image.level_dimensions[level]
    # each patch's window at the level, clipped to it (as read_bands reads it)
    col = np.floor(c[:, 0] / ds).astype(np.int64)
    row = np.floor(c[:, 1] / ds).astype(np.int64)
    x0, y0 = np.clip(col, 0, lw), np.clip(row, 0, lh)
    x1, y1 = np.clip(col + n, 0, lw), np.clip(row + n, 0, lh)
    inside = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    bh, bw = image.block_shape(level)
    ch, cw = _chunk_side(bh), _chunk_side(bw)
    has = inside > 0
    # the (patch, chunk) pairs: a patch window spans a few chunks
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if has.any():
        gx0, gx1 = x0 // cw, (x1 - 1) // cw
        gy0, gy1 = y0 // ch, (y1 - 1) // ch
        for dy in range(int((gy1 - gy0)[has].max()) + 1):
            for dx in range(int((gx1 - gx0)[has].max()) + 1):
                sel = np.flatnonzero(has & (gy0 + dy <= gy1) & (gx0 + dx <= gx1))
                pairs.append((sel, gy0[sel] + dy, gx0[sel] + dx))
    idx = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0, np.int64)
    gy = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0, np.int64)
    gx = np.concatenate([p[2] for p in pairs]) if pairs else np.zeros(0, np.int64)
    # each pair's rectangle inside its chunk (level px)
    rx0, rx1 = np.maximum(x0[idx], gx * cw), np.minimum(x1[idx], (gx + 1) * cw)
    ry0, ry1 = np.maximum(y0[idx], gy * ch), np.minimum(y1[idx], (gy + 1) * ch)
    key = gy * (lw // cw + 2) + gx
    order = np.lexsort((gx, gy))  # chunks in raster order
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    chunks = np.split(order, cuts) if len(order) else []
    # a thread reads the chunks of one chunk row (neighbours share blocks on its handle)
    rows = np.array([gy[g[0]] for g in chunks], np.int64)
    bands = np.split(np.arange(len(chunks)), np.flatnonzero(np.diff(rows)) + 1) if chunks else []

    def one(band: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        got = []
        for k in band.tolist():
            g = chunks[k]
            bx0, by0 = int(rx0[g].min()), int(ry0[g].min())
            bx1, by1 = int(rx1[g].max()), int(ry1[g].max())
            valid = image.read_valid(level, (bx0, by0, bx1 - bx0, by1 - by0))
            integral = np.zeros((by1 - by0 + 1, bx1 - bx0 + 1), np.int64)
            np.cumsum(np.cumsum(valid, axis=0, dtype=np.int64), axis=1, out=integral[1:, 1:])
            top, bottom = ry0[g] - by0, ry1[g] - by0
            left, right = rx0[g] - bx0, rx1[g] - bx0
            got.append((idx[g], integral[bottom, right] - integral[top, right]
                        - integral[bottom, left] + integral[top, left]))
        return got

    count = np.zeros(len(c), np.int64)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for got in pool.map(one, bands):
            for i, v in got:
                np.add.at(count, i, v)
    return (1.0 - count / np.maximum(1, inside)).astype(np.float32)


def nodata_fractions(context: ImageContext, coords: np.ndarray) -> np.ndarray:
    """(N,) float32 no-data share of the part of each patch (``coords`` (N, 2) level-0 top-left
    x, y) inside the raster (the padding past its edge is not no-data: ``partial`` flags it);
    the view's estimate, measured on finer pixels for the patches on the footprint's edge (each
    patch once per image: the values are kept in the context's plugin cache)."""
    assert context.geometry is not None and context.rgb is not None
    size0 = context.geometry.size_level0
    valid = valid_fraction(context.rgb, context.image)
    c = np.asarray(coords, np.int64).reshape(-1, 2)
    inside = inside_fraction(c, size0, context.image.dimensions)
    whole = mask_fraction(valid, c, size0, context.mask_downsample).astype(np.float64)
    est = np.clip(1.0 - whole / np.maximum(inside, 1e-12), 0.0, 1.0).astype(np.float32)
    image = context.image
    if not isinstance(image, RasterioImage) or len(c) == 0:
        return est
    known: dict[tuple[int, int], float] = context.plugin_cache("satellite").setdefault(
        "measured_nodata", {})
    edge = np.flatnonzero((est > 1e-6) & (est < 1 - 1e-6))
    limit = settings(context.config).max_nodata
    todo = [i for i in edge.tolist() if (int(c[i, 0]), int(c[i, 1])) not in known]
    near = [i for i in todo if abs(float(est[i]) - limit) < NEAR]
    far = [i for i in todo if abs(float(est[i]) - limit) >= NEAR]
    for group, side in ((near, MIN_SIDE), (far, COARSE_SIDE)):
        if group:
            got = measured_nodata(image, c[group], size0, context.config.score.workers, side)
            known.update({(int(c[i, 0]), int(c[i, 1])): float(v) for i, v in zip(group, got)})
    for i in edge.tolist():
        est[i] = known[(int(c[i, 0]), int(c[i, 1]))]
    return est


def partial_patches(context: ImageContext, coords: np.ndarray) -> np.ndarray:
    """(N,) bool: the patch holds data, and also no-data or the outside of the raster (it is not
    a full chip of data)."""
    assert context.geometry is not None
    f = nodata_fractions(context, coords)
    out = inside_fraction(coords, context.geometry.size_level0, context.image.dimensions) < 1
    return (f < 1 - 1e-6) & (out | (f > 1e-6))


__all__ = ["CHUNK_MAX", "CHUNK_MIN", "COARSE_SIDE", "MIN_SIDE", "NEAR", "inside_fraction", "measure_level", "measured_nodata", "nodata_fractions",
           "partial_patches"]
