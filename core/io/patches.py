"""Reading patches at a patch geometry (the fast path).

Patches are read across a thread pool in tile-raster order, so that with a :class:`TiffImage`
each stored tile is decoded once and then served from its cache, and a bounded window of work
is in flight at a time (memory does not grow with the number of patches). JPEG patches that
coincide with one stored JPEG tile are copied through without decoding.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    from gigapatch.io.geometry import PatchGeometry
    from gigapatch.io.image import Image

T = TypeVar("T")
R = TypeVar("R")

#: the tile cache is never grown beyond this by :func:`read_patches`
MAX_CACHE_BYTES = 1 << 30


def as_coords(coords: np.ndarray) -> np.ndarray:
    """``coords`` as an (N, 2) int64 array of level-0 x, y (ValueError for any other shape)."""
    c = np.asarray(coords)
    if c.size == 0:
        return np.zeros((0, 2), np.int64)
    if c.ndim != 2 or c.shape[1] != 2:
        raise ValueError(f"coords must be an (N, 2) array of level-0 x, y; got shape {c.shape}")
    return c.astype(np.int64, copy=False)


def tile_order(image: Image, coords: np.ndarray, geometry: PatchGeometry) -> np.ndarray:
    """Permutation (N,) that sorts ``coords`` (N, 2) by the tile row, then x, of their top-left
    at ``geometry.level`` (plain raster order for images without tiles)."""
    c = as_coords(coords)
    ds = image.level_downsamples[geometry.level]
    lx = np.floor(c[:, 0] / ds).astype(np.int64)
    ly = np.floor(c[:, 1] / ds).astype(np.int64)
    th = image.tile_shape(geometry.level)[0] if hasattr(image, "tile_shape") else 1
    return np.lexsort((lx, ly // max(1, th)))


def reserve_cache(image: Image, geometry: PatchGeometry, workers: int, coords: np.ndarray) -> None:
    """Size a tiled image's cache to hold the tile rows one row of patches spans across the
    patches' horizontal extent, plus each worker's own patch tiles: every tile is then decoded
    once, and sparse tissue does not reserve a whole slide width."""
    if not (hasattr(image, "reserve_cache") and hasattr(image, "tile_shape")):
        return
    th, tw = image.tile_shape(geometry.level)
    ds = image.level_downsamples[geometry.level]
    lw = min(
        image.level_dimensions[geometry.level][0],
        int((coords[:, 0].max() - coords[:, 0].min()) / ds) + geometry.read_size + tw,
    )
    rows = math.ceil(geometry.read_size / th) + 1
    cols = math.ceil(geometry.read_size / tw) + 1
    tiles = rows * math.ceil(lw / tw) + max(1, workers) * rows * cols
    pixel = image.channels * image.dtype.itemsize  # bytes of one decoded pixel
    image.reserve_cache(min(MAX_CACHE_BYTES, tiles * th * tw * pixel))


def windowed_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int = 4, window: int | None = None
) -> Iterator[R]:
    """``map(fn, items)`` across ``workers`` threads, in order, with at most ``window`` (default
    4 x workers) results pending, so memory stays bounded. ``workers <= 1`` runs inline."""
    if workers <= 1:
        yield from map(fn, items)
        return
    window = window or 4 * workers
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="gigapatch-read") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def read_patch(
    image: Image, xy: tuple[int, int], geometry: PatchGeometry, native: bool = False
) -> np.ndarray:
    """One patch at level-0 top-left ``xy``: (size, size, 3) uint8 RGB (read and resized), or
    with ``native`` the stored samples, (size, size, ``image.channels``) of ``image.dtype``."""
    import cv2

    r = geometry.read_size
    xy0 = (int(xy[0]), int(xy[1]))
    if native:
        patch = image.read_region_raw(xy0, geometry.level, (r, r))
    else:
        patch = image.read_region(xy0, geometry.level, (r, r))
    if r != geometry.size:
        c = patch.shape[2]
        patch = cv2.resize(patch, (geometry.size, geometry.size), interpolation=cv2.INTER_AREA)
        patch = patch.reshape(geometry.size, geometry.size, c)
    return patch


def read_patches(
    image: Image, coords: np.ndarray, geometry: PatchGeometry, workers: int = 4,
    native: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Read every patch, yielding ``(index into coords, (size, size, 3) uint8 RGB)`` (with
    ``native``: the stored samples, see :func:`read_patch`).

    Patches come in tile-raster order (not the order of ``coords``) from a thread pool with a
    bounded window in flight. For a tiled image the tile cache is grown (see
    :func:`reserve_cache`) so that each tile is decoded once. When the image's
    :meth:`~gigapatch.Image.patch_groups` returns groups, each group is read by one thread, in
    the group's order, at most ``workers + 1`` groups in flight: an image whose decoded tiles
    are cached per reading handle (rasterio) then decodes a tile shared by neighbours once.
    """
    c = as_coords(coords)
    if len(c) == 0:
        return
    groups = image.patch_groups(c, geometry)
    if groups is not None:  # the image's own grouping: each group read by one thread, in order

        def many(group: list[int]) -> list[tuple[int, np.ndarray]]:
            return [(int(i), read_patch(image, (c[i, 0], c[i, 1]), geometry, native))
                    for i in group]

        for got in windowed_map(many, groups, workers, window=workers + 1):
            yield from got
        return
    reserve_cache(image, geometry, workers, c)
    order = tile_order(image, c, geometry)

    def one(i: int) -> tuple[int, np.ndarray]:
        return int(i), read_patch(image, (c[i, 0], c[i, 1]), geometry, native)

    yield from windowed_map(one, order.tolist(), workers)


def patches_to_array(
    image: Image, coords: np.ndarray, geometry: PatchGeometry, workers: int = 4,
    native: bool = False,
) -> np.ndarray:
    """All patches as one (N, size, size, 3) uint8 array, in the order of ``coords`` (with
    ``native``: (N, size, size, ``image.channels``) of ``image.dtype``)."""
    c = as_coords(coords)
    shape = (image.channels, image.dtype) if native else (3, np.dtype(np.uint8))
    out = np.empty((len(c), geometry.size, geometry.size, shape[0]), shape[1])
    for i, patch in read_patches(image, c, geometry, workers, native):
        out[i] = patch
    return out


__all__ = [
    "as_coords",
    "patches_to_array",
    "read_patch",
    "read_patches",
    "reserve_cache",
    "tile_order",
    "windowed_map",
]
