"""Patch reading and extraction (the fast path).

Patches are read across a thread pool in tile-raster order, so that with a :class:`TiffImage`
each stored tile is decoded once and then served from its cache, and a bounded window of work
is in flight at a time (memory does not grow with the number of patches). JPEG patches that
coincide with one stored JPEG tile are copied through without decoding.
"""

from __future__ import annotations

import math
import os
import shutil
import tarfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from .geometry import PatchGeometry
    from .image import Image

T = TypeVar("T")
R = TypeVar("R")

#: the tile cache is never grown beyond this by :func:`read_patches`
MAX_CACHE_BYTES = 1 << 30
_EXT = {"jpeg": "jpg", "png": "png"}


def _as_coords(coords: np.ndarray) -> np.ndarray:
    c = np.asarray(coords)
    if c.size == 0:
        return np.zeros((0, 2), np.int64)
    if c.ndim != 2 or c.shape[1] != 2:
        raise ValueError(f"coords must be an (N, 2) array of level-0 x, y; got shape {c.shape}")
    return c.astype(np.int64, copy=False)


def tile_order(image: Image, coords: np.ndarray, geometry: PatchGeometry) -> np.ndarray:
    """Permutation (N,) that sorts ``coords`` (N, 2) by the tile row, then x, of their top-left
    at ``geometry.level`` (plain raster order for images without tiles)."""
    c = _as_coords(coords)
    ds = image.level_downsamples[geometry.level]
    lx = np.floor(c[:, 0] / ds).astype(np.int64)
    ly = np.floor(c[:, 1] / ds).astype(np.int64)
    th = image.tile_shape(geometry.level)[0] if hasattr(image, "tile_shape") else 1
    return np.lexsort((lx, ly // max(1, th)))


def _reserve_cache(image: Image, geometry: PatchGeometry, workers: int, coords: np.ndarray) -> None:
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
    image.reserve_cache(min(MAX_CACHE_BYTES, tiles * th * tw * 3))


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


def read_patch(image: Image, xy: tuple[int, int], geometry: PatchGeometry) -> np.ndarray:
    """One patch at level-0 top-left ``xy``: (size, size, 3) uint8 RGB (read and resized)."""
    import cv2

    r = geometry.read_size
    patch = image.read_region((int(xy[0]), int(xy[1])), geometry.level, (r, r))
    if r != geometry.size:
        patch = cv2.resize(patch, (geometry.size, geometry.size), interpolation=cv2.INTER_AREA)
    return patch


def read_patches(
    image: Image, coords: np.ndarray, geometry: PatchGeometry, workers: int = 4
) -> Iterator[tuple[int, np.ndarray]]:
    """Read every patch, yielding ``(index into coords, (size, size, 3) uint8 RGB)``.

    Patches come in tile-raster order (not the order of ``coords``) from a thread pool with a
    bounded window in flight. For a tiled image the tile cache is grown (see
    :func:`_reserve_cache`) so that each tile is decoded once.
    """
    c = _as_coords(coords)
    if len(c) == 0:
        return
    _reserve_cache(image, geometry, workers, c)
    order = tile_order(image, c, geometry)

    def one(i: int) -> tuple[int, np.ndarray]:
        return int(i), read_patch(image, (c[i, 0], c[i, 1]), geometry)

    yield from windowed_map(one, order.tolist(), workers)


def patches_to_array(
    image: Image, coords: np.ndarray, geometry: PatchGeometry, workers: int = 4
) -> np.ndarray:
    """All patches as one (N, size, size, 3) uint8 array, in the order of ``coords``."""
    c = _as_coords(coords)
    out = np.empty((len(c), geometry.size, geometry.size, 3), np.uint8)
    for i, patch in read_patches(image, c, geometry, workers):
        out[i] = patch
    return out


def _passthrough(image: Image, geometry: PatchGeometry) -> Callable[[int, int], bytes | None] | None:
    """A function giving the stored JPEG bytes of the patch at (x, y) when it is exactly one
    stored tile (aligned, same size, inside the image), else None; None if that never happens."""
    level, size = geometry.level, geometry.size
    if geometry.read_size != size or geometry.resize_factor != 1:
        return None
    if not (hasattr(image, "raw_tile") and hasattr(image, "tile_is_jpeg")):
        return None
    if not image.tile_is_jpeg(level) or image.tile_shape(level) != (size, size):
        return None
    lw, lh = image.level_dimensions[level]
    ds = image.level_downsamples[level]

    def raw(x: int, y: int) -> bytes | None:
        lx, ly = math.floor(x / ds), math.floor(y / ds)
        if lx % size or ly % size or lx < 0 or ly < 0 or lx + size > lw or ly + size > lh:
            return None
        return image.raw_tile(level, lx // size, ly // size)

    return raw


def encode_patch(patch: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """Encode an (h, w, 3) uint8 RGB patch as JPEG (libjpeg-turbo, ``quality``) or PNG."""
    import imagecodecs

    if fmt == "png":
        return bytes(imagecodecs.png_encode(patch, level=1, strategy=3, filter=16))
    return bytes(imagecodecs.jpeg8_encode(patch, level=quality))


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file (no temporary name: for a staging directory)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _staging_dir(out: Path) -> Path | None:
    """A fresh hidden sibling of ``out`` to write the patches into and rename to ``out`` at the
    end (one rename instead of one a file: patch output is bound by file-system metadata), when
    ``out`` is missing or empty; None when it holds files (they are written one by one, each
    under a temporary name)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.{os.getpid()}.{threading.get_ident()}.partial"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    return stage


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        _write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _ShardWriter:
    """WebDataset-style tar shards ``shard-000000.tar`` of at most ``shard_size`` samples, each
    written under a temporary name and renamed when complete."""

    def __init__(self, out_dir: Path, shard_size: int) -> None:
        self.out_dir, self.shard_size = out_dir, max(1, shard_size)
        self.paths: list[Path] = []
        self._tar: tarfile.TarFile | None = None
        self._count = 0

    def add(self, name: str, data: bytes) -> None:
        if self._tar is None or self._count >= self.shard_size:
            self.close()
            path = self.out_dir / f"shard-{len(self.paths):06d}.tar"
            self.paths.append(path)
            self._tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            self._tar = tarfile.open(self._tmp, "w", format=tarfile.USTAR_FORMAT)
            self._count = 0
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        self._tar.addfile(info, BytesIO(data))
        self._count += 1

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            os.replace(self._tmp, self.paths[-1])
            self._tar = None

    def abort(self) -> None:
        """Drop the shard being written (its temporary file); completed shards stay."""
        if self._tar is not None:
            self._tar.close()
            self._tmp.unlink(missing_ok=True)
            self.paths.pop()
            self._tar = None


def extract_patches(
    image: Image,
    coords: np.ndarray,
    geometry: PatchGeometry,
    out_dir: str | Path,
    fmt: str = "jpeg",
    quality: int = 90,
    workers: int = 4,
    passthrough: bool = True,
    shard_size: int = 10_000,
) -> list[Path]:
    """Write every patch to ``out_dir`` and return the paths written.

    Parameters
    ----------
    image : the opened image.
    coords : (N, 2) level-0 top-left x, y of the patches.
    geometry : patch geometry (level, read size, output size).
    out_dir : output directory (created).
    fmt : ``"jpeg"`` -> ``<x>_<y>.jpg``; ``"png"`` -> ``<x>_<y>.png`` (lossless);
        ``"tar"`` -> WebDataset shards ``shard-000000.tar`` holding ``<x>_<y>.jpg``.
    quality : JPEG quality (1-100).
    workers : threads that read, encode and write.
    passthrough : copy a stored JPEG tile's bytes through when a patch is exactly that tile
        (same level and size, aligned, no resize); its quality is then the file's, not ``quality``.
    shard_size : samples per tar shard.

    Returns
    -------
    For jpeg / png, one path per patch in the order of ``coords``; for tar, the shard paths.
    Nothing is ever half-written: into a missing or empty ``out_dir`` the files go to a hidden
    sibling directory renamed to ``out_dir`` when all are written; into one that holds files,
    each is written under a temporary name and renamed.
    """
    if fmt in ("jpg",):
        fmt = "jpeg"
    if fmt not in ("jpeg", "png", "tar"):
        raise ConfigError(f"unknown patch format {fmt!r} (use jpeg, png or tar)")
    c = _as_coords(coords)
    out = Path(out_dir)
    if len(c) == 0 or fmt == "tar":
        out.mkdir(parents=True, exist_ok=True)
    if len(c) == 0:
        return []
    _reserve_cache(image, geometry, workers, c)
    raw = _passthrough(image, geometry) if passthrough and fmt != "png" else None
    codec = "png" if fmt == "png" else "jpeg"

    def encode(i: int) -> tuple[int, bytes]:
        x, y = int(c[i, 0]), int(c[i, 1])
        data = raw(x, y) if raw is not None else None
        if data is None:
            data = encode_patch(read_patch(image, (x, y), geometry), codec, quality)
        return i, data

    order = tile_order(image, c, geometry).tolist()
    if fmt == "tar":
        shards = _ShardWriter(out, shard_size)
        try:
            for i, data in windowed_map(encode, order, workers):
                shards.add(f"{c[i, 0]}_{c[i, 1]}.jpg", data)
        except BaseException:
            shards.abort()
            raise
        shards.close()
        return shards.paths

    ext = _EXT[fmt]
    stage = _staging_dir(out)
    if stage is None:
        out.mkdir(parents=True, exist_ok=True)

    def write(i: int) -> tuple[int, Path]:
        _, data = encode(i)
        name = f"{c[i, 0]}_{c[i, 1]}.{ext}"
        if stage is None:
            _atomic_write(out / name, data)
        else:
            _write_file(stage / name, data)
        return i, out / name

    paths: list[Any] = [None] * len(c)
    try:
        for i, path in windowed_map(write, order, workers):
            paths[i] = path
        if stage is not None:
            if out.exists():
                out.rmdir()  # empty (checked): the finished directory takes its place
            os.replace(stage, out)
    except BaseException:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        raise
    return paths


__all__ = [
    "encode_patch",
    "extract_patches",
    "patches_to_array",
    "read_patch",
    "read_patches",
    "tile_order",
    "windowed_map",
]
