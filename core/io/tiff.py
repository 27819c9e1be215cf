"""TiffImage: tiled / pyramidal TIFF read tile by tile on demand through tifffile + imagecodecs.

Aperio SVS, OME-TIFF with SubIFD pyramids, generic pyramids, BigTIFF; JPEG, JPEG 2000, LZW, deflate,
uncompressed. Level 0 is never read whole: tiles are read with ``os.pread`` and decoded into a
thread-safe, byte-bounded LRU cache. Pixels are bit-identical to OpenSlide's for Aperio JPEG /
JPEG 2000 tiles. JPEG tiles are decoded strictly (a decoder warning or a wrong size is a bad
tile: an error, or skipped and recorded under ``read.on_bad_tile: skip``; see
:mod:`gigapatch.io.bad_tiles`); cut files and oversized headers are refused before parsing
(:mod:`gigapatch.io.tiff_checks`).
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gigapatch.errors import GigapatchError, ImageError
from gigapatch.io.bad_tiles import BadJpeg, BadTiles, check_jpeg, decode_jpeg
from gigapatch.io.image import COPY_BAND_BYTES, Image
from gigapatch.io.pixels import standalone_jpeg, to_rgb
from gigapatch.io.tiff_checks import (  # noqa: F401  (re-exported: readers, tests)
    MAX_IMAGE_PIXELS,
    MAX_SEGMENT_BYTES,
    declared_size_problem,
    max_image_pixels,
    tifffile_complaints,
    truncation,
    warn_complaints,
)
from gigapatch.io.tiff_metadata import ome_metadata, resolution_mpp, svs_metadata, to_float
from gigapatch.io.tile_cache import DEFAULT_CACHE_BYTES, TileCache

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_JPEG_COMPRESSIONS = (6, 7)
_VALID_PHOTOMETRIC = {0: "miniswhite", 1: "minisblack", 2: "rgb", 3: "palette", 6: "ycbcr"}
_region_pool: ThreadPoolExecutor | None = None
_region_pool_lock = threading.Lock()


def short_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ---------------------------------------------------------------------------- TIFF structure
@dataclass
class _Level:
    width: int
    height: int
    tw: int
    th: int
    ntx: int
    nty: int
    offsets: np.ndarray
    counts: np.ndarray
    decode: Callable[..., Any]
    jpegtables: bytes | None
    compression: int
    photometric: int
    samples: int
    separate: bool
    extrasamples: tuple[int, ...]
    colormap: np.ndarray | None
    tiled: bool
    jfif: bool

    @property
    def nseg(self) -> int:
        return self.ntx * self.nty

    @property
    def strict_jpeg(self) -> bool:
        """True when the segments are 8-bit grey or 3-channel JPEG streams (compression 7) that
        :func:`gigapatch.io.bad_tiles.decode_jpeg` decodes (warnings as errors)."""
        return (self.compression == 7 and not self.separate and self.samples in (1, 3)
                and self.photometric in (0, 1, 2, 6))

    def segment_shapes(self, ty: int) -> tuple[tuple[int, int], ...]:
        """The (height, width) a segment of row ``ty`` may declare: a tile's, or a strip's
        (the last one's rows, or a whole strip's, as some writers pad it)."""
        if self.tiled:
            return ((self.th, self.tw),)
        return ((min(self.th, self.height - ty * self.th), self.tw), (self.th, self.tw))


def _page_problem(page: Any) -> str | None:
    """Why TiffImage cannot decode ``page``, or None."""
    import tifffile

    if page.imagedepth > 1 or page.tiledepth > 1:
        return "3-D (volumetric) TIFF pages are not supported"
    if page.bitspersample != 8 or page.sampleformat != 1:
        return (f"{page.bitspersample}-bit samples (format {int(page.sampleformat)}); the core "
                "readers take 8-bit images (a domain plugin may read others)")
    comp = int(page.compression)
    if comp != 1 and comp not in tifffile.TIFF.DECOMPRESSORS:
        return f"TIFF compression {comp} has no decoder (imagecodecs)"
    ph = int(page.photometric)
    if ph not in _VALID_PHOTOMETRIC:
        return f"photometric interpretation {ph} ({page.photometric.name}) is not supported"
    if ph == 6 and comp not in _JPEG_COMPRESSIONS:
        return "YCbCr samples outside JPEG are not supported"
    return None


def pyramid_pages(tf: Any) -> tuple[list[Any], str | None]:
    """The level pages of a TIFF's main image (largest first) and a reason it cannot be read."""
    if not tf.series:
        return [], "holds no image"
    series = tf.series[0]
    if len(series) != 1:
        return [], (f"series 0 has {len(series)} image planes (axes {series.axes}); the core reader "
                    "takes one RGB or grey plane")
    pages = [lvl.keyframe for lvl in series.levels]
    if len(pages) == 1 and not (tf.is_svs or tf.is_ome) and pages[0].is_tiled:
        # older generic pyramids: successive tiled pages, each smaller, without 'reduced' flags
        for page in tf.pages[1:]:
            prev = pages[-1]
            if (getattr(page, "is_tiled", False) and page.imagewidth < prev.imagewidth
                    and page.imagelength < prev.imagelength
                    and page.samplesperpixel == prev.samplesperpixel):
                pages.append(page)
    pages.sort(key=lambda p: -p.imagewidth)
    for page in pages:
        problem = _page_problem(page)
        if problem:
            return pages, problem
    return pages, None


def _drop_offsets(pages: list[Any]) -> None:
    """Free the tile/strip offset and byte-count tuples of parsed tifffile pages (the levels
    keep their own int64 copies): tifffile's pages hold reference cycles, so without this the
    tuples (~36 bytes a tile) live until a garbage collection."""
    for page in pages:
        for code in (273, 279, 324, 325):
            with contextlib.suppress(Exception):
                while code in page.tags:
                    del page.tags[code]
        with contextlib.suppress(AttributeError):
            page.dataoffsets = page.databytecounts = ()


def _levels_problem(levels: list[_Level]) -> str | None:
    """Why the parsed levels cannot be read safely (before anything per tile is allocated): more
    pixels than :func:`~gigapatch.io.tiff_checks.max_image_pixels`, or fewer stored tiles or
    strips than the level's grid needs (a damaged size or tile tag)."""
    cap = max_image_pixels()
    for i, lv in enumerate(levels):
        if lv.width * lv.height > cap:
            return (f"level {i} declares {lv.width:,} x {lv.height:,} px, more than the {cap:,} px "
                    "allowed (GIGAPATCH_MAX_PIXELS raises the cap); a damaged or hostile header?")
        need = lv.nseg * (lv.samples if lv.separate else 1)
        if len(lv.offsets) < need or len(lv.counts) < need:
            return (f"level {i} stores {min(len(lv.offsets), len(lv.counts)):,} tiles or strips "
                    f"where its {lv.width:,} x {lv.height:,} px need {need:,}; a damaged header?")
    return None


def _make_level(page: Any) -> _Level:
    w, h = int(page.imagewidth), int(page.imagelength)
    if page.is_tiled:
        tw, th = int(page.tilewidth), int(page.tilelength)
    else:
        tw, th = w, min(h, int(page.rowsperstrip or h))
    ntx, nty = -(-w // tw), -(-h // th)
    samples = int(page.samplesperpixel)
    separate = int(page.planarconfig) == 2 and samples > 1
    cmap = page.colormap if int(page.photometric) == 3 else None
    return _Level(
        width=w, height=h, tw=tw, th=th, ntx=ntx, nty=nty,
        offsets=np.asarray(page.dataoffsets, np.int64),
        counts=np.asarray(page.databytecounts, np.int64),
        decode=page.decode, jpegtables=page.jpegtables,
        compression=int(page.compression), photometric=int(page.photometric), samples=samples,
        separate=separate, extrasamples=tuple(int(e) for e in (page.extrasamples or ())),
        colormap=None if cmap is None else np.asarray(cmap), tiled=bool(page.is_tiled),
        jfif=bool(page.is_jfif),
    )


# ---------------------------------------------------------------------------- TiffImage
class TiffImage(Image):
    """A tiled or pyramidal TIFF read tile by tile through tifffile (thread-safe).

    Parameters
    ----------
    path : the TIFF file (SVS, OME-TIFF, generic pyramid, BigTIFF...).
    cache_bytes : byte budget of the decoded-tile LRU cache (see :meth:`reserve_cache`).

    Raises
    ------
    ImageError : not a TIFF, truncated, or samples / compression the reader does not decode.
    """

    reader_name = "tifffile"

    def __init__(self, path: str | Path, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        super().__init__(path)
        import tifffile

        self._fd: int | None = None
        file = Path(path)
        cut = truncation(file, data=False)  # before tifffile: a cut file says so, and only once
        if cut:
            raise ImageError(self.path, cut)
        try:
            with tifffile_complaints() as complaints, tifffile.TiffFile(file) as tf:
                pages, problem = pyramid_pages(tf)
                if problem:
                    raise ImageError(self.path, problem)
                self._levels = [_make_level(p) for p in pages]
                if problem := _levels_problem(self._levels):
                    raise ImageError(self.path, problem)
                self._read_metadata(tf, pages[0])
                _drop_offsets(pages)
        except GigapatchError:
            raise
        except Exception as e:
            raise ImageError(self.path, f"not a readable TIFF ({short_message(e)})") from e
        size = file.stat().st_size
        end = max(int((lv.offsets + lv.counts).max(initial=0)) for lv in self._levels)
        if end > size:
            raise ImageError(self.path, f"truncated file ({size:,} bytes): its image data runs "
                                        f"to byte {end:,}; copy or download it again")
        warn_complaints(self.path, complaints)
        w0, h0 = self._levels[0].width, self._levels[0].height
        self._downsamples = tuple((w0 / lv.width + h0 / lv.height) / 2 for lv in self._levels)
        self._fd = os.open(file, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._io_lock = threading.Lock()
        self.cache = TileCache(cache_bytes)
        self._store_tiles = True
        #: the tiles that did not decode cleanly, and the policy for them (read.on_bad_tile)
        self.bad_tiles = BadTiles()
        #: per level, one byte a segment: 1 once it decoded (or was checked) cleanly or was
        #: recorded bad, so a passthrough copy checks a tile at most once
        self._checked = [bytearray(lv.nseg) for lv in self._levels]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as (path, cache size): a copy in another process reopens the file."""
        return (type(self), (self.path, self.cache.max_bytes))

    @staticmethod
    def supports(path: str | Path) -> bool:
        """True when ``path`` is a TIFF whose main image this reader decodes (cheap: parses IFDs)."""
        import tifffile

        try:
            with open(path, "rb") as f:
                if f.read(4) not in TIFF_MAGIC:
                    return False
            with tifffile.TiffFile(path) as tf:
                return TiffImage.supports_tiff(tf)
        except (OSError, ValueError, KeyError, IndexError, struct.error):
            return False

    @staticmethod
    def supports_tiff(tf: Any, release: bool = False) -> bool:
        """:meth:`supports` for a file already open as a ``tifffile.TiffFile`` (a caller that
        looked at its tags need not parse it twice). Raises what parsing a broken file raises.
        ``release``: drop the level pages' tile offsets from ``tf`` once answered (tifffile keeps
        them as tuples of Python ints, ~12 MB for a 100k px slide, and its pages hold reference
        cycles, so they would stay until the next garbage collection)."""
        pages, problem = pyramid_pages(tf)
        if release:
            _drop_offsets(pages)
        return bool(pages) and problem is None

    def _read_metadata(self, tf: Any, page0: Any) -> None:
        props: dict[str, Any] = {}
        sources: dict[str, float] = {}
        mag = None
        mpp_xy = None
        description = page0.description or ""
        if tf.is_svs:
            self._vendor = "aperio"
            svs = svs_metadata(description)
            props["aperio"] = svs
            if (m := to_float(svs.get("MPP"))) is not None:
                sources["svs"] = m
                mpp_xy = (m, m)
            mag = to_float(svs.get("AppMag"))
        elif tf.is_ome:
            self._vendor = "ome"
            ome_mpp, mag = ome_metadata(tf.ome_metadata or "")
            if ome_mpp is not None:
                sources["ome"] = (ome_mpp[0] + ome_mpp[1]) / 2
                mpp_xy = ome_mpp
        else:
            self._vendor = "generic-tiff"
        res = resolution_mpp(page0)
        if res is not None:
            sources["tiff_resolution"] = (res[0] + res[1]) / 2
            mpp_xy = mpp_xy or res
        self._mpp = (mpp_xy[0] + mpp_xy[1]) / 2 if mpp_xy else None
        self._magnification = mag
        lv0 = self._levels[0]
        props.update({
            "vendor": self._vendor,
            "mpp_sources": sources,
            "mpp_x": mpp_xy[0] if mpp_xy else None,
            "mpp_y": mpp_xy[1] if mpp_xy else None,
            "magnification": mag,
            "compression": lv0.compression,
            "photometric": _VALID_PHOTOMETRIC.get(lv0.photometric),
            "tile_size": (lv0.tw, lv0.th) if lv0.tiled else None,
            "bigtiff": bool(tf.is_bigtiff),
            "description": description[:2000],
        })
        self._properties = props

    # -------------------------------------------------------------- Image protocol
    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((lv.width, lv.height) for lv in self._levels)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._downsamples

    @property
    def mpp(self) -> float | None:
        return self._mpp

    @property
    def magnification(self) -> float | None:
        return self._magnification

    @property
    def vendor(self) -> str | None:
        return self._vendor

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self._properties)

    def tile_shape(self, level: int) -> tuple[int, int]:
        """(tile height, tile width) of ``level`` (a strip is a tile as wide as the image)."""
        lv = self._level(level)
        return lv.th, lv.tw

    def tile_grid(self, level: int) -> tuple[int, int]:
        """(tiles across, tiles down) of ``level``."""
        lv = self._level(level)
        return lv.ntx, lv.nty

    def tile_is_jpeg(self, level: int) -> bool:
        """True when ``level``'s tiles are 3-channel JPEG streams that :meth:`raw_tile` returns
        as standalone .jpg files."""
        lv = self._level(level)
        return (lv.compression == 7 and lv.tiled and not lv.separate and lv.samples == 3
                and lv.photometric in (2, 6))

    def _level(self, level: int) -> _Level:
        if not 0 <= level < len(self._levels):
            raise ValueError(f"level {level} out of range (image has {len(self._levels)} levels)")
        return self._levels[level]

    def _read_bytes(self, offset: int, count: int) -> bytes:
        if self._fd is None:
            raise ImageError(self.path, "image is closed")
        if hasattr(os, "pread"):
            data = os.pread(self._fd, count, offset)
        else:  # pragma: no cover - Windows
            with self._io_lock:
                os.lseek(self._fd, offset, os.SEEK_SET)
                data = os.read(self._fd, count)
        if len(data) != count:
            raise ImageError(self.path, f"truncated file: short read at byte {offset}")
        return data

    def _segment(self, lv: _Level, index: int) -> bytes | None:
        count = int(lv.counts[index])
        if count == 0 or int(lv.offsets[index]) == 0:
            return None
        return self._read_bytes(int(lv.offsets[index]), count)

    def raw_tile(self, level: int, tx: int, ty: int) -> bytes | None:
        """The compressed bytes of tile (tx, ty), or None for a sparse (empty) tile.

        For JPEG tiles (:meth:`tile_is_jpeg`) the bytes are a standalone .jpg (tables merged);
        other codecs return the raw TIFF segment.
        A JPEG tile not decoded yet is checked first (:func:`gigapatch.io.bad_tiles.check_jpeg`:
        a copy is never made of bytes the decoder would warn about); a bad one raises
        :class:`~gigapatch.io.bad_tiles.BadTileError`, or under ``bad_tiles.policy == "skip"``
        is recorded and gives None (the caller then reads the patch: white).
        """
        lv = self._level(level)
        self._check_tile(lv, level, tx, ty)
        index = ty * lv.ntx + tx
        data = self._segment(lv, index)
        if data is not None and lv.compression == 7:
            data = standalone_jpeg(data, lv.jpegtables, rgb=lv.photometric == 2 and not lv.jfif)
            if lv.strict_jpeg and not self._checked[level][index]:
                problem = check_jpeg(data, lv.segment_shapes(ty))
                self._checked[level][index] = 1
                if problem is not None:
                    self._bad(level, tx, ty, problem)
                    return None
        return data

    def _bad(self, level: int, tx: int, ty: int, problem: str) -> None:
        """Tile (tx, ty) of ``level`` is bad: raise, or record it (``bad_tiles.policy``)."""
        lv, ds = self._levels[level], self._downsamples[level]
        box = (math.floor(tx * lv.tw * ds), math.floor(ty * lv.th * ds),
               math.ceil(min((tx + 1) * lv.tw, lv.width) * ds),
               math.ceil(min((ty + 1) * lv.th, lv.height) * ds))
        self.bad_tiles.met(self.path, (level, tx, ty), box, problem)

    def check_tiles(self, level: int, keys: np.ndarray, workers: int = 4) -> None:
        """Decode (or for JPEG, check at 1/8 scale) every tile ``keys`` (K, 2) (tx, ty) of
        ``level`` not looked at yet, nothing cached: a bad one raises or is recorded as
        :meth:`read_tile` would (see :mod:`gigapatch.io.bad_tiles`)."""
        lv = self._level(level)
        done = self._checked[level]
        todo = [(int(tx), int(ty)) for tx, ty in np.asarray(keys).reshape(-1, 2)
                if not done[int(ty) * lv.ntx + int(tx)]]

        def one(key: tuple[int, int]) -> None:
            tx, ty = key
            if lv.strict_jpeg:
                self.raw_tile(level, tx, ty)
            else:
                self._decode_tile(level, tx, ty)

        if len(todo) > 8 and workers > 1:
            for _ in _pool().map(one, todo):
                pass
        else:
            for key in todo:
                one(key)

    def _check_tile(self, lv: _Level, level: int, tx: int, ty: int) -> None:
        if not (0 <= tx < lv.ntx and 0 <= ty < lv.nty):
            raise ValueError(f"tile ({tx}, {ty}) outside level {level}'s {lv.ntx} x {lv.nty} grid")

    def _planes(self, lv: _Level, index: int, ty: int) -> list[np.ndarray] | None:
        """The decoded sample planes of segment ``index`` (row ``ty``), None when sparse.
        Raises BadJpeg (strict JPEG) or what the codec raises."""
        indices = [index + s * lv.nseg for s in range(lv.samples)] if lv.separate else [index]
        planes: list[np.ndarray] = []
        for i in indices:
            data = self._segment(lv, i)
            if data is None:
                return None
            if lv.strict_jpeg:
                jpeg = standalone_jpeg(data, lv.jpegtables,
                                       rgb=lv.photometric == 2 and not lv.jfif)
                planes.append(decode_jpeg(jpeg, lv.segment_shapes(ty), lv.samples))
            else:
                planes.append(lv.decode(data, i, jpegtables=lv.jpegtables)[0][0])
        return planes

    def _decode_tile(self, level: int, tx: int, ty: int) -> np.ndarray:
        lv = self._levels[level]
        index = ty * lv.ntx + tx
        try:
            planes = self._planes(lv, index, ty)
        except (GigapatchError, ImportError):
            raise
        except MemoryError:
            raise ImageError(self.path, f"tile ({tx}, {ty}) of level {level} does not fit in "
                             "memory decoded; a damaged header?") from None
        except Exception as e:  # a codec's error, or a strict JPEG decoder's warning
            self._bad(level, tx, ty, str(e) if isinstance(e, BadJpeg) else short_message(e))
            planes = None  # skipped (recorded): white
        self._checked[level][index] = 1
        if planes is None:
            tile = np.full((lv.th, lv.tw, 3), 255, np.uint8)
        else:
            arr = planes[0] if len(planes) == 1 else np.concatenate(planes, axis=2)
            tile = to_rgb(arr, lv.photometric, lv.extrasamples, lv.colormap,
                          ycbcr=lv.compression == 33003)
            if tile.shape[:2] != (lv.th, lv.tw):
                full = np.full((lv.th, lv.tw, 3), 255, np.uint8)
                h, w = min(lv.th, tile.shape[0]), min(lv.tw, tile.shape[1])
                full[:h, :w] = tile[:h, :w]
                tile = full
        tile.flags.writeable = False
        return tile

    def read_tile(self, level: int, tx: int, ty: int, store: bool = True) -> np.ndarray:
        """Decoded tile (tx, ty) of ``level`` as a read-only (th, tw, 3) uint8 RGB array, through
        the cache. Edge tiles keep their stored padding; sparse tiles are white."""
        lv = self._level(level)
        self._check_tile(lv, level, tx, ty)
        return self.cache.get((level, tx, ty), lambda: self._decode_tile(level, tx, ty), store)

    def reserve_cache(self, nbytes: int) -> None:
        """Grow the tile cache to at least ``nbytes`` (never shrinks it)."""
        if nbytes > self.cache.max_bytes:
            self.cache.resize(nbytes)

    def read_level_downsampled(self, downsample: float) -> np.ndarray:
        """As :meth:`Image.read_level_downsampled`; the tiles of the level it read are then
        dropped from the cache (a whole-level view is read once; patches come from level 0)."""
        level = self.get_best_level_for_downsample(downsample)
        lv = self._level(level)
        w0, h0 = self.dimensions
        out_w, out_h = max(1, math.ceil(w0 / downsample)), max(1, math.ceil(h0 / downsample))
        ratio = downsample / self.level_downsamples[level]
        k = round(ratio)
        if (lv.width, lv.height) == (out_w, out_h):
            # a stored level read as is: each tile decoded once, straight into the output (no
            # band buffer, nothing cached)
            out = np.empty((out_h, out_w, 3), np.uint8)
            self._decode_rows(level, 0, lv.nty, out)
            return out
        if (abs(ratio - k) < 1e-9 and k > 1 and lv.th % k == 0
                and (lv.width, lv.height) == (out_w * k, out_h * k)):
            # an exact k x k shrink of a stored level: a box average, so bands of whole tile
            # rows give the very pixels of one whole-level resize; each tile decoded once
            import cv2

            out = np.empty((out_h, out_w, 3), np.uint8)
            rows = max(1, int(COPY_BAND_BYTES // (lv.width * 3 * lv.th)))  # tile rows a band
            buf = np.empty((rows * lv.th, lv.width, 3), np.uint8)
            for ty in range(0, lv.nty, rows):
                ty1 = min(lv.nty, ty + rows)
                y0, y1 = ty * lv.th, min(lv.height, ty1 * lv.th)
                band = buf[: y1 - y0]
                self._decode_rows(level, ty, ty1, band)
                cv2.resize(band, (out_w, (y1 - y0) // k), dst=out[y0 // k : y1 // k],
                           interpolation=cv2.INTER_AREA)
            return out
        self._store_tiles = False  # the resized bands' tiles are not kept either
        try:
            return super().read_level_downsampled(downsample)
        finally:
            self._store_tiles = True
            self.cache.discard(lambda key: key[0] != level)

    def _decode_rows(self, level: int, ty0: int, ty1: int, out: np.ndarray) -> None:
        """Decode tile rows ``ty0:ty1`` of ``level`` (every column) into ``out``, whose row 0 is
        the level's row ``ty0 * th`` and which is as wide as the level; on the region threads,
        nothing cached."""
        lv = self._level(level)
        h, w = out.shape[:2]
        top = ty0 * lv.th

        def put(key: tuple[int, int]) -> None:
            tx, ty = key
            x0, y0 = tx * lv.tw, ty * lv.th - top
            x1, y1 = min(x0 + lv.tw, w), min(y0 + lv.th, h)
            out[y0:y1, x0:x1] = self._decode_tile(level, tx, ty)[: y1 - y0, : x1 - x0]

        keys = [(tx, ty) for ty in range(ty0, ty1) for tx in range(lv.ntx)]
        if len(keys) > 8:
            for _ in _pool().map(put, keys):
                pass
        else:
            for key in keys:
                put(key)

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        lv = self._level(level)
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            raise ValueError(f"region size must be positive, got {size}")
        ds = self.level_downsamples[level]
        x, y = math.floor(location[0] / ds), math.floor(location[1] / ds)
        out = np.full((h, w, 3), 255, np.uint8)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, lv.width), min(y + h, lv.height)
        if x1 <= x0 or y1 <= y0:
            return out
        keys = [(tx, ty) for ty in range(y0 // lv.th, (y1 - 1) // lv.th + 1)
                for tx in range(x0 // lv.tw, (x1 - 1) // lv.tw + 1)]
        tile_bytes = lv.th * lv.tw * 3
        store = self._store_tiles and len(keys) * tile_bytes <= self.cache.max_bytes // 2
        if len(keys) > 8:
            tiles: Iterable[np.ndarray] = _pool().map(
                lambda k: self.read_tile(level, k[0], k[1], store), keys)
        else:
            tiles = (self.read_tile(level, tx, ty, store) for tx, ty in keys)
        for (tx, ty), tile in zip(keys, tiles):
            gx, gy = tx * lv.tw, ty * lv.th
            sx0, sy0 = max(x0, gx), max(y0, gy)
            sx1, sy1 = min(x1, gx + lv.tw), min(y1, gy + lv.th)
            out[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = tile[sy0 - gy : sy1 - gy, sx0 - gx : sx1 - gx]
        return out

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
            self.cache.clear()

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self.close()


def _pool() -> ThreadPoolExecutor:
    global _region_pool
    with _region_pool_lock:
        if _region_pool is None:
            _region_pool = ThreadPoolExecutor(min(4, os.cpu_count() or 1), "gigapatch-region")
        return _region_pool


# ---------------------------------------------------------------------------- PlainImage
