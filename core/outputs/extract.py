"""Patch extraction: the kept patches as image files or WebDataset shards.

Patches are read through :mod:`gigapatch.io.patches` (tile-raster order, threaded, bounded
memory). JPEG patches that coincide with one stored JPEG tile are copied through without
decoding.

WebDataset shards (``fmt="tar"``) hold one sample per patch under the key ``<prefix>/<x>_<y>``
(``prefix``: the image id when written by a run, so the shards of many images never share a
key): ``<key>.jpg`` and, when per-patch data is given, ``<key>.json`` (e.g. the image id, x, y,
level, size, region, scores and a plugin's labels; NaN as null). WebDataset takes everything up
to the first dot of the member's last path component as the key, so a dotted image id is safe.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tarfile
import threading
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gigapatch.errors import ConfigError
from gigapatch.io.atomic import write_failure
from gigapatch.io.patches import as_coords, read_patch, reserve_cache, tile_order, windowed_map

if TYPE_CHECKING:
    from gigapatch.io.geometry import PatchGeometry
    from gigapatch.io.image import Image

_EXT = {"jpeg": "jpg", "png": "png"}


def _passthrough(image: Image, geometry: PatchGeometry) -> Callable[[int, int], bytes | None] | None:
    """A function giving the stored JPEG bytes of the patch at (x, y) when it is exactly one
    stored tile (aligned, same size, inside the image), else None; None if that never happens."""
    level, size = geometry.level, geometry.size
    if geometry.read_size != size or geometry.resize_factor != 1:
        return None
    tile_is_jpeg = getattr(image, "tile_is_jpeg", None)
    tile_shape = getattr(image, "tile_shape", None)
    raw_tile = getattr(image, "raw_tile", None)
    if tile_is_jpeg is None or tile_shape is None or raw_tile is None:
        return None
    if not tile_is_jpeg(level) or tile_shape(level) != (size, size):
        return None
    lw, lh = image.level_dimensions[level]
    ds = image.level_downsamples[level]

    def raw(x: int, y: int) -> bytes | None:
        lx, ly = math.floor(x / ds), math.floor(y / ds)
        if lx % size or ly % size or lx < 0 or ly < 0 or lx + size > lw or ly + size > lh:
            return None
        return raw_tile(level, lx // size, ly // size)

    return raw


def encode_patch(patch: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """Encode an (h, w, 3) RGB or (h, w[, 1]) grey patch as JPEG (libjpeg-turbo,
    ``quality``; 8-bit only) or PNG (8- or 16-bit, the samples as they are)."""
    import imagecodecs

    if patch.ndim == 3 and patch.shape[2] == 1:
        patch = patch[:, :, 0]
    if fmt == "png":
        return bytes(imagecodecs.png_encode(patch, level=1, strategy=3, filter=16))
    return bytes(imagecodecs.jpeg8_encode(patch, level=quality))


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file (no temporary name: for a staging directory); a full disk
    or a file size limit is a one-line :class:`~gigapatch.errors.OutputError`."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0),
                     0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except OSError as e:
        raise (write_failure(path, e) or e) from None


def _staging_dir(out: Path, replace: bool = False) -> Path | None:
    """A fresh hidden sibling of ``out`` to write the patches into and rename to ``out`` at the
    end (one rename instead of one a file: patch output is bound by file-system metadata), when
    ``out`` is missing or empty, or ``replace``; None when it holds files (they are written one
    by one, each under a temporary name)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: a file stands where the patch folder goes")
    if not replace and out.exists() and any(out.iterdir()):
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.{os.getpid()}.{threading.get_ident()}.partial"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    return stage


def _swap_in(stage: Path | None, out: Path) -> None:
    """Put the finished folder ``stage`` in the place of ``out``: an empty ``out`` is removed, a
    full one renamed aside (a ``.partial`` name, which a later run clears if this one is killed
    here) and removed once ``stage`` took its place."""
    assert stage is not None
    old = None
    if out.exists():
        try:
            out.rmdir()
        except OSError:  # it holds files: out of the way first
            old = out.parent / f".{out.name}.{os.getpid()}.0.partial"
            if old.exists():
                shutil.rmtree(old)
            os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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

    def add(self, name: str, data: bytes, meta: tuple[str, bytes] | None = None) -> None:
        """Add one sample: ``name`` holding ``data``, then the optional (name, bytes) ``meta``
        member beside it (a sample's members stay together in one shard)."""
        if self._tar is None or self._count >= self.shard_size:
            self.close()
            path = self.out_dir / f"shard-{len(self.paths):06d}.tar"
            self.paths.append(path)
            self._tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            self._tar = tarfile.open(self._tmp, "w", format=tarfile.PAX_FORMAT)  # long ids too
            self._count = 0
        for member, payload in ((name, data), meta) if meta is not None else ((name, data),):
            info = tarfile.TarInfo(member)
            info.size, info.mode = len(payload), 0o644
            self._tar.addfile(info, BytesIO(payload))
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


def _sample_json(data: dict[str, np.ndarray] | None, n: int) -> Callable[[int], bytes] | None:
    """A function giving the JSON object (bytes) of sample ``i`` from the columns ``data`` (each
    (n,); NaN as null); None when there are none."""
    if not data:
        return None
    cols: dict[str, list[Any]] = {}
    for name, col in data.items():
        a = np.asarray(col)
        if a.shape[:1] != (n,):
            raise ValueError(f"sample column {name!r} has {a.shape[:1]} values for {n} patches")
        values = a.tolist()
        if a.dtype.kind == "f":
            values = [v if math.isfinite(v) else None for v in values]
        cols[name] = values
    names = list(cols)

    def member(i: int) -> bytes:
        return json.dumps({k: cols[k][i] for k in names}).encode()

    return member


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
    key_prefix: str | None = None,
    sample_data: dict[str, np.ndarray] | None = None,
    replace: bool = False,
) -> list[Path]:
    """Write every patch to ``out_dir`` and return the paths written.

    Parameters
    ----------
    image : the opened image.
    coords : (N, 2) level-0 top-left x, y of the patches.
    geometry : patch geometry (level, read size, output size).
    out_dir : output directory (created).
    fmt : ``"jpeg"`` -> ``<x>_<y>.jpg``; ``"png"`` -> ``<x>_<y>.png`` (lossless);
        ``"tar"`` -> WebDataset shards ``shard-000000.tar`` holding ``<key>.jpg`` (and
        ``<key>.json``), ``<key>`` = ``<key_prefix>/<x>_<y>``.
    quality : JPEG quality (1-100).
    workers : threads that read, encode and write.
    passthrough : copy a stored JPEG tile's bytes through when a patch is exactly that tile
        (same level and size, aligned, no resize); its quality is then the file's, not ``quality``.
    shard_size : samples per tar shard.
    key_prefix : tar only: the samples' keys are ``<key_prefix>/<x>_<y>`` (None: ``<x>_<y>``).
    sample_data : tar only: name -> (N,) per-patch values (in the order of ``coords``), written
        as each sample's ``<key>.json`` (NaN as null).
    replace : ``out_dir`` is replaced whole by the new patches (a run's own patch folder: a
        rerun with another patch size leaves no stale file); False adds to what it holds.

    Returns
    -------
    For jpeg / png, one path per patch in the order of ``coords``; for tar, the shard paths.
    Nothing is ever half-written: into a missing or empty ``out_dir`` the files go to a hidden
    sibling directory renamed to ``out_dir`` when all are written (with ``replace``, also
    when it holds files: the old folder is swapped out and removed); into one that holds files,
    each is written under a temporary name and renamed.
    """
    if fmt in ("jpg",):
        fmt = "jpeg"
    if fmt not in ("jpeg", "png", "tar"):
        raise ConfigError(f"unknown patch format {fmt!r} (use jpeg, png or tar)")
    c = as_coords(coords)
    out = Path(out_dir)
    if replace and out.is_dir() and (len(c) == 0 or fmt == "tar"):
        _swap_in(_staging_dir(out, replace=True), out)  # start from an empty folder
    if len(c) == 0 or fmt == "tar":
        out.mkdir(parents=True, exist_ok=True)
    if len(c) == 0:
        return []
    reserve_cache(image, geometry, workers, c)
    raw = _passthrough(image, geometry) if passthrough and fmt != "png" else None
    codec = "png" if fmt == "png" else "jpeg"
    # grey or 16-bit images give their own samples (bit for bit in PNG); JPEG holds 8 bits
    native = image.channels != 3 or image.dtype != np.uint8
    if native and codec == "jpeg" and image.dtype != np.uint8:
        raise ConfigError(f"{image.path or 'image'}: {image.bits}-bit samples need --format png "
                          "(JPEG holds 8 bits)")

    def encode(i: int) -> tuple[int, bytes]:
        x, y = int(c[i, 0]), int(c[i, 1])
        data = raw(x, y) if raw is not None else None
        if data is None:
            data = encode_patch(read_patch(image, (x, y), geometry, native), codec, quality)
        return i, data

    order = tile_order(image, c, geometry).tolist()
    if fmt == "tar":
        shards = _ShardWriter(out, shard_size)
        prefix = f"{key_prefix}/" if key_prefix else ""
        meta = _sample_json(sample_data, len(c))
        try:
            for i, data in windowed_map(encode, order, workers):
                key = f"{prefix}{c[i, 0]}_{c[i, 1]}"
                shards.add(f"{key}.jpg", data, None if meta is None else (f"{key}.json", meta(i)))
        except BaseException:
            shards.abort()
            raise
        shards.close()
        return shards.paths

    ext = _EXT[fmt]
    stage = _staging_dir(out, replace)
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
            _swap_in(stage, out)
    except BaseException:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        raise
    return paths


__all__ = [
    "encode_patch",
    "extract_patches",
]
