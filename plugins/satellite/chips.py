"""Chips: the kept patches as raw bands, in memory or as GeoTIFF files with their own
georeferencing.

A chip holds every band of the raster (or the ones asked for) at the file's data type, values
untouched (reflectance stays reflectance; the display stretch is never applied). Outside the
raster it holds the no-data value. Reads run on threads, each with its own dataset handle, in
raster order so that neighbouring chips share GDAL's cached blocks.

A GeoTIFF chip (``<id>_chips/<x>_<y>.tif``) is a COG (GDAL's COG driver: one tile of the
chip's side when that is a multiple of 16, header first), deflate-compressed (horizontal
predictor for integers), with the chip's
affine transform (:func:`gigapatch_satellite.geo.patch_transforms`), the raster's CRS, its
no-data value (or a mask of the valid pixels when the file has a mask instead), band
descriptions and colour interpretations; the directory is written under a hidden name and
renamed whole.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .geo import patch_transforms
from .reader import RasterioImage

T = TypeVar("T")
R = TypeVar("R")


def _resize(raw: np.ndarray, valid: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, h, w) raw bands and (h, w) valid -> (C, size, size), (size, size) by area
    averaging over the valid pixels (integers rounded back to their type)."""
    import cv2

    vf = valid.astype(np.float32)
    out_v = cv2.resize(vf, (size, size), interpolation=cv2.INTER_AREA)
    bands = np.empty((raw.shape[0], size, size), raw.dtype)
    for k in range(raw.shape[0]):
        s = cv2.resize(raw[k].astype(np.float32) * vf, (size, size), interpolation=cv2.INTER_AREA)
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(out_v > 0, s / out_v, 0.0)
        bands[k] = np.round(m).astype(raw.dtype) if raw.dtype.kind in "iu" else m
    return bands, out_v >= 0.5


def read_chip(image: RasterioImage, xy: tuple[int, int], level: int, read_size: int, size: int,
              indexes: tuple[int, ...] | None = None, out: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """One chip at level-0 top-left ``xy``: ``read_size`` px of ``level``, resized to ``size``.
    ``out``: a (C, size, size) array that a chip read without resizing and wholly inside the
    raster is read into (see :meth:`RasterioImage.read_bands`).

    Returns
    -------
    raw : (C, size, size) band values at the file's dtype (no-data value where not valid):
        ``out`` itself when the chip was read into it.
    valid : (size, size) bool.
    """
    raw, valid, _ = image.read_bands(xy, level, (read_size, read_size), indexes,
                                     out=out if read_size == size else None)
    if read_size != size:
        raw, valid = _resize(raw, valid, size)
    if image.nodata is not None and not valid.all():  # (a whole valid chip: nothing to fill)
        raw[:, ~valid] = raw.dtype.type(image.nodata)
    return raw, valid


def bounded_map(fn: Callable[[T], R], items: list[T], workers: int, window: int | None = None
                ) -> Iterator[R]:
    """``map(fn, items)`` on ``workers`` threads, in order, with at most ``window`` (default
    ``4 x workers``) results pending (memory stays bounded); inline for ``workers <= 1``."""
    if workers <= 1:
        yield from map(fn, items)
        return
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="gigapatch-chips") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= (window or 4 * workers):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def tile_groups(image: RasterioImage, coords: np.ndarray, level: int,
                most: int | None = None) -> list[list[int]]:
    """Indexes into ``coords`` (N, 2) level-0 top-left x, y grouped by the row of stored tiles
    (of ``level``) their top-left lies in, tile by tile within a group (a tile's patches one
    after the other); with ``most``, a group is cut between tile columns once it holds at least
    ``most`` patches (the memory of a group's patches held at once stays bounded)."""
    c = np.asarray(coords, np.int64).reshape(-1, 2)
    if len(c) == 0:
        return []
    tile_h, tile_w = image.block_shape(level)
    ds = image.level_downsamples[level]
    band = np.floor(c[:, 1] / ds).astype(np.int64) // max(1, tile_h)
    column = np.floor(c[:, 0] / ds).astype(np.int64) // max(1, tile_w)
    order = np.lexsort((c[:, 0], c[:, 1], column, band))  # a tile's chips one after the other
    cuts = np.flatnonzero(np.diff(band[order])) + 1
    groups = np.split(order, cuts)
    if most is None:
        return [g.tolist() for g in groups]
    out: list[list[int]] = []
    for g in groups:
        col = column[g]
        start = 0
        for k in (np.flatnonzero(np.diff(col)) + 1).tolist():  # tile column changes
            if k - start >= most:
                out.append(g[start:k].tolist())
                start = k
        out.append(g[start:].tolist())
    return out


def for_each_chip(image: RasterioImage, coords: np.ndarray, level: int, read_size: int,
                  size: int, fn: Callable[[int, np.ndarray, np.ndarray], None],
                  indexes: tuple[int, ...] | None = None, workers: int = 2,
                  out: np.ndarray | None = None) -> None:
    """Call ``fn(index into coords, raw, valid)`` for every chip (see :func:`read_chip`), in
    the reading threads; with ``out`` (N, C, size, size), chip ``i`` is read into ``out[i]``
    where it can be (``raw`` is then that view).

    The chips are grouped by the row of stored tiles their top-left lies in, tile by tile
    within a group (:func:`tile_groups`: a few decoded tiles are all GDAL needs to keep), and
    each group is read by one thread, which gets the same dataset handle back for each read
    (:class:`.handles.Handles`): GDAL caches decoded tiles per handle, so a tile shared by
    neighbouring chips is decoded once (chips dealt one by one to two threads would decode it
    twice). At most ``workers + 1`` groups are in flight and ``fn`` holds no chip: memory
    stays flat in the number of chips."""
    c = np.asarray(coords, np.int64).reshape(-1, 2)
    groups = tile_groups(image, c, level)

    def one(group: list[int]) -> None:
        for i in group:
            raw, valid = read_chip(image, (int(c[i, 0]), int(c[i, 1])), level, read_size, size,
                                   indexes, None if out is None else out[i])
            fn(i, raw, valid)

    for _ in bounded_map(one, groups, workers, window=workers + 1):
        pass


def read_chips(image: RasterioImage, coords: np.ndarray, size: int, level: int = 0,
               indexes: tuple[int, ...] | None = None, workers: int = 2) -> np.ndarray:
    """Every chip as one (N, C, size, size) array at the file's dtype, in the order of
    ``coords`` (N, 2) level-0 top-left x, y; read at ``level`` without resizing. A chip wholly
    inside the raster is read straight into its place in the array (no copy)."""
    c = np.asarray(coords, np.int64).reshape(-1, 2)
    n_bands = len(indexes) if indexes else image.count
    out = np.empty((len(c), n_bands, size, size), image.dtype)

    def store(i: int, raw: np.ndarray, _: np.ndarray) -> None:
        if raw.base is not out:  # (not read in place: overhanging the raster)
            out[i] = raw

    for_each_chip(image, c, level, size, size, store, indexes, workers, out=out)
    return out


#: creation options of the COG copy (the in-memory GTiff takes the others)
COG_ONLY = ("compress", "predictor", "blocksize")


def _profile(image: RasterioImage, size: int, count: int) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": size, "height": size, "count": count,
        "dtype": str(image.dtype), "crs": image.crs, "compress": "deflate",
        "interleave": "pixel",
    }
    if size % 16 == 0:
        profile["blocksize"] = size  # one tile per chip
    if image.dtype.kind in "iu":
        profile["predictor"] = 2
    if image.nodata is not None:
        profile["nodata"] = image.nodata
    return profile


def write_chip(path: Path, raw: np.ndarray, valid: np.ndarray, transform: np.ndarray,
               profile: dict[str, Any], descriptions: list[str | None],
               colorinterp: list[Any] | None) -> None:
    """Write one chip (C, h, w) with its (6,) transform as a GeoTIFF in COG layout at ``path``:
    built in memory, then copied by GDAL's COG driver (header and tile index before the
    pixels)."""
    import rasterio
    import rasterio.shutil
    from affine import Affine
    from rasterio.io import MemoryFile

    mem_profile = {k: v for k, v in profile.items() if k not in COG_ONLY}
    with MemoryFile() as mem:
        with mem.open(transform=Affine(*transform), **mem_profile) as ds:
            ds.write(raw)
            for k, d in enumerate(descriptions, start=1):
                if d:
                    ds.set_band_description(k, d)
            if colorinterp is not None:
                ds.colorinterp = colorinterp
            if "nodata" not in profile and not valid.all():
                ds.write_mask(valid.astype(np.uint8) * 255)
        with mem.open() as src:
            rasterio.shutil.copy(src, path, driver="COG", **{k: profile[k] for k in COG_ONLY
                                                              if k in profile})


def _band_labels(image: RasterioImage) -> tuple[list[str | None], list[Any] | None]:
    from rasterio.enums import ColorInterp

    roles = image.roles
    names: dict[int, str] = {}
    for role in ("red", "green", "blue", "nir", "swir1"):
        b = getattr(roles, role)
        if b and b not in names:
            names[b] = role
    own = image.properties["descriptions"]
    desc = [own[k - 1] or names.get(k) for k in range(1, image.count + 1)]
    colour = {"red": ColorInterp.red, "green": ColorInterp.green, "blue": ColorInterp.blue}
    ci = [colour.get(names.get(k, ""), ColorInterp.undefined) for k in range(1, image.count + 1)]
    if len(set(roles.rgb)) < 3:  # a grey raster: leave GDAL's own interpretation
        return desc, None
    return desc, ci


def write_chips(image: RasterioImage, coords: np.ndarray, geometry: Any, out_dir: Path,
                workers: int = 2) -> list[Path]:
    """Every kept patch as ``out_dir/<x>_<y>.tif`` (see the module docstring); returns the paths
    in the order of ``coords``. ``geometry`` is the run's :class:`gigapatch.PatchGeometry`."""
    c = np.asarray(coords, np.int64).reshape(-1, 2)
    t = patch_transforms(c, geometry.size_level0, geometry.size, image.transform)
    profile = _profile(image, geometry.size, image.count)
    desc, ci = _band_labels(image)
    out_dir = Path(out_dir)
    stage = out_dir.parent / f".{out_dir.name}.{os.getpid()}.{threading.get_ident()}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    paths: list[Path] = [out_dir / f"{x}_{y}.tif" for x, y in c.tolist()]
    try:
        def write(i: int, raw: np.ndarray, valid: np.ndarray) -> None:
            write_chip(stage / paths[i].name, raw, valid, t[i], profile, desc, ci)

        for_each_chip(image, c, geometry.level, geometry.read_size, geometry.size, write,
                      None, workers)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return paths


__all__ = ["bounded_map", "for_each_chip", "tile_groups", "read_chip", "read_chips", "write_chip", "write_chips"]
