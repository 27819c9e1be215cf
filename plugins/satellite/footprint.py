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


def measured_nodata(image: RasterioImage, coords: np.ndarray, size_level0: int,
                    workers: int = 2, side: int = MIN_SIDE) -> np.ndarray:
    """(N,) float32 no-data share of the part of each patch inside the raster, read at
    :func:`measure_level` (``side`` px across a patch)."""
    level = measure_level(image, size_level0, side)
    ds = image.level_downsamples[level]
    n = max(1, int(round(size_level0 / ds)))
    rgb = image.roles.rgb

    def one(xy: np.ndarray) -> float:
        _, valid, inside = image.read_bands((int(xy[0]), int(xy[1])), level, (n, n), rgb)
        return 1.0 - float(valid.sum()) / max(1, int(inside.sum()))

    c = np.asarray(coords).reshape(-1, 2)
    if len(c) == 0:
        return np.zeros(0, np.float32)
    order = np.lexsort((c[:, 0], c[:, 1]))  # raster order: neighbours share GDAL's cached blocks
    out = np.empty(len(c), np.float32)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        out[order] = list(pool.map(one, c[order]))
    return out


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


__all__ = ["COARSE_SIDE", "MIN_SIDE", "NEAR", "inside_fraction", "measure_level", "measured_nodata", "nodata_fractions",
           "partial_patches"]
