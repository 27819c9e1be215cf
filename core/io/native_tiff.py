"""NativeTiffImage: 8- or 16-bit grey or RGB TIFF in its own samples, tiled or striped, block by block.

Line-scan and industrial cameras write long strips (100,000+ lines) as grey 8- or 16-bit TIFF,
often in strips or one single strip and without a pyramid. This reader

* reads level 0 block by block (tiles, strips, or row bands of one uncompressed strip, by
  ``os.pread``) into a byte-bounded cache, never the whole image;
* serves the stored samples (``read_region_raw``: (h, w, 1 | 3) uint8 / uint16) and an 8-bit
  RGB view (``read_region``, see :mod:`gigapatch.io.samples`);
* uses the file's pyramid when it has one, else computes low-resolution levels (downsamples 8,
  32, 128...) in one streaming pass over level 0, in bands of a few MB, holding only the small
  levels (1/64 of level 0 and less);
* reads the pixel size from the resolution tags (an override comes through the config).

BigTIFF, any codec tifffile + imagecodecs decode, chunky or planar samples. A single *compressed*
strip cannot be read in parts: it is decoded whole when that fits :data:`MAX_WHOLE_BYTES`, else
refused with a one-line message that says how to rewrite it.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gigapatch.errors import GigapatchError, ImageError
from gigapatch.io.bad_tiles import BadJpeg, decode_jpeg
from gigapatch.io.image import Image, pad_region
from gigapatch.io.physical import PixelSize
from gigapatch.io.pixels import standalone_jpeg
from gigapatch.io.samples import fill_value, to_rgb8, white_level
from gigapatch.io.tiff import pyramid_pages, short_message
from gigapatch.io.tiff_checks import max_image_pixels, tifffile_complaints, warn_complaints
from gigapatch.io.tiff_metadata import resolution_mpp
from gigapatch.io.tile_cache import TileCache

#: photometric interpretations read natively (0 min-is-white, 1 min-is-black, 2 RGB)
PHOTOMETRIC = {0: "miniswhite", 1: "minisblack", 2: "rgb"}
#: a single compressed strip is decoded whole up to this many bytes of samples
MAX_WHOLE_BYTES = 256 << 20
#: default byte budget of the decoded-block cache (grown by patch reading when it must)
CACHE_BYTES = 24 << 20
#: level-0 bytes per band of the streaming pass that computes the low-resolution levels
BAND_BYTES = 8 << 20
#: downsample of the first computed level, and the step between computed levels
FIRST_FACTOR, STEP = 8, 4
#: computed levels stop before their shorter side falls under this
MIN_LEVEL_SIDE = 16
#: rows of one block of a single uncompressed strip: as many as fit this many bytes (at most 256)
RAW_BLOCK_BYTES = 4 << 20


@dataclass
class _Blocks:
    """One stored level: a grid of blocks (tiles, strips, or row bands of one raw strip)."""

    width: int
    height: int
    bw: int
    bh: int
    nbx: int
    nby: int
    offsets: np.ndarray
    counts: np.ndarray
    samples: int
    separate: bool
    decode: Callable[..., Any] | None  # None: raw uncompressed rows read by offset
    jpegtables: bytes | None
    raw_dtype: np.dtype
    planes: tuple[int, ...]  # raw rows: the byte where each plane's strip starts
    #: 8-bit chunky JPEG blocks, decoded strictly (see :mod:`gigapatch.io.bad_tiles`); an RGB
    #: stream without JFIF marks is told so (Adobe marker) rather than taken for YCbCr
    strict_jpeg: bool = False
    jpeg_rgb: bool = False
    tiled: bool = True

    @property
    def nseg(self) -> int:
        return self.nbx * self.nby

    def shapes(self, by: int) -> tuple[tuple[int, int], ...]:
        """The (height, width) block row ``by`` may declare (a last strip: its rows or all)."""
        if self.tiled:
            return ((self.bh, self.bw),)
        return ((min(self.bh, self.height - by * self.bh), self.bw), (self.bh, self.bw))


def native_problem(page: Any) -> str | None:
    """Why :class:`NativeTiffImage` cannot read ``page`` (a tifffile page), or None."""
    import tifffile

    if page.imagedepth > 1 or page.tiledepth > 1:
        return "3-D (volumetric) TIFF pages are not supported"
    if page.bitspersample not in (8, 16) or int(page.sampleformat) != 1:
        return (f"{page.bitspersample}-bit samples (format {int(page.sampleformat)}); the core "
                "reads 8- and 16-bit unsigned samples")
    ph = int(page.photometric)
    if ph not in PHOTOMETRIC:
        return f"photometric interpretation {ph} ({page.photometric.name}) is not read natively"
    if ph == 2 and int(page.samplesperpixel) < 3:
        return "an RGB page with fewer than 3 samples per pixel"
    comp = int(page.compression)
    if comp != 1 and comp not in tifffile.TIFF.DECOMPRESSORS:
        return f"TIFF compression {comp} has no decoder (imagecodecs)"
    return None


def _one_strip(page: Any) -> bool:
    """True when ``page`` holds its samples in one strip (one per plane when planar)."""
    planes = page.samplesperpixel if int(page.planarconfig) == 2 else 1
    return (not page.is_tiled and len(page.dataoffsets) == planes
            and int(page.rowsperstrip or page.imagelength) >= page.imagelength)


def _single_raw(page: Any) -> bool:
    return _one_strip(page) and int(page.compression) == 1 and page.imagelength > 1


def _blocks(page: Any, byteorder: str) -> _Blocks:
    """The block layout of ``page``; one raw uncompressed strip is cut into row bands."""
    w, h = int(page.imagewidth), int(page.imagelength)
    samples = int(page.samplesperpixel)
    separate = int(page.planarconfig) == 2 and samples > 1
    dtype = np.dtype(f"{'>' if byteorder == '>' else '<'}u{page.bitspersample // 8}")
    offsets = np.asarray(page.dataoffsets, np.int64)
    counts = np.asarray(page.databytecounts, np.int64)
    if _single_raw(page):
        row = w * dtype.itemsize * (1 if separate else samples)
        bh = int(max(1, min(256, RAW_BLOCK_BYTES // max(1, row))))
        nby = -(-h // bh)
        starts = np.arange(nby, dtype=np.int64) * bh * row
        lens = np.minimum(bh, h - np.arange(nby) * bh).astype(np.int64) * row
        return _Blocks(w, h, w, bh, 1, nby, starts, lens, samples, separate, None, None, dtype,
                       tuple(int(o) for o in offsets))
    if page.is_tiled:
        bw, bh = int(page.tilewidth), int(page.tilelength)
    else:
        bw, bh = w, min(h, int(page.rowsperstrip or h))
    strict = (int(page.compression) == 7 and dtype.itemsize == 1 and not separate
              and samples in (1, 3))
    return _Blocks(w, h, bw, bh, -(-w // bw), -(-h // bh), offsets, counts, samples, separate,
                   page.decode, page.jpegtables, dtype, (), strict_jpeg=strict,
                   jpeg_rgb=int(page.photometric) == 2 and not page.is_jfif,
                   tiled=bool(page.is_tiled))


def _blocks_problem(levels: list[_Blocks]) -> str | None:
    """Why the parsed levels cannot be read safely, before anything is allocated for them: more
    pixels than the cap (``GIGAPATCH_MAX_PIXELS``), or fewer stored blocks than the grid needs."""
    cap = max_image_pixels()
    for i, lv in enumerate(levels):
        if lv.width * lv.height > cap:
            return (f"level {i} declares {lv.width:,} x {lv.height:,} px, more than the {cap:,} px "
                    "allowed (GIGAPATCH_MAX_PIXELS raises the cap); a damaged or hostile header?")
        need = lv.nseg * (lv.samples if lv.separate and lv.decode is not None else 1)
        if lv.decode is not None and min(len(lv.offsets), len(lv.counts)) < need:
            return (f"level {i} stores {min(len(lv.offsets), len(lv.counts)):,} tiles or strips "
                    f"where its {lv.width:,} x {lv.height:,} px need {need:,}; a damaged header?")
    return None


class NativeTiffImage(Image):
    """An 8- or 16-bit grey or RGB TIFF read block by block in its own samples (thread-safe).

    Parameters
    ----------
    path : the TIFF (tiled or striped, pyramidal or not, BigTIFF).
    cache_bytes : byte budget of the decoded-block cache.

    Raises
    ------
    ImageError : not a TIFF, samples it does not read, or a single compressed strip too large
        to decode whole (one line).
    """

    reader_name = "tiff-native"

    def __init__(self, path: str | Path, cache_bytes: int = CACHE_BYTES) -> None:
        super().__init__(path)
        import tifffile

        self._fd: int | None = None
        file = Path(path)
        try:
            with tifffile_complaints() as complaints, tifffile.TiffFile(file) as tf:
                pages, _ = pyramid_pages(tf)
                if not pages:
                    raise ImageError(self.path, "holds no image")
                problem = next((p for p in map(native_problem, pages) if p), None)
                if problem:
                    raise ImageError(self.path, problem)
                p0 = pages[0]
                self._photometric = int(p0.photometric)
                self._dtype = np.dtype(f"u{p0.bitspersample // 8}")
                self._channels = 3 if self._photometric == 2 else 1
                stored = [_blocks(p, tf.byteorder) for p in pages]
                if problem := _blocks_problem(stored):
                    raise ImageError(self.path, problem)
                whole = self._whole_strip(tf, p0)
                self._meta(tf, p0, stored[0])
        except GigapatchError:
            raise
        except Exception as e:
            raise ImageError(self.path, f"not a readable TIFF ({short_message(e)})") from e
        warn_complaints(self.path, complaints)
        self._fd = os.open(file, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self.cache = TileCache(cache_bytes)
        # levels: stored blocks, or arrays held in memory (computed, or one decoded strip)
        self._levels: list[_Blocks | np.ndarray] = [whole] if whole is not None else list(stored)
        max_seen = self._compute_levels() if len(self._levels) == 1 else None
        w0, h0 = self.level_dimensions[0]
        self._downsamples = tuple((w0 / w + h0 / h) / 2 for w, h in self.level_dimensions)
        if max_seen is None:  # a stored pyramid: the smallest level tells the range
            small = self.read_region_raw((0, 0), self.level_count - 1,
                                         self.level_dimensions[-1])
            max_seen = float(small.max(initial=0))
        self._white = white_level(max_seen, self._dtype)

    # -------------------------------------------------------------- opening
    def _whole_strip(self, tf: Any, page: Any) -> np.ndarray | None:
        """Level 0 decoded whole when it is one compressed strip (no part of it can be decoded
        alone), or None for any other layout."""
        if not _one_strip(page) or _single_raw(page) or int(page.compression) == 1:
            return None
        nbytes = page.imagewidth * page.imagelength * page.samplesperpixel * self._dtype.itemsize
        if nbytes > MAX_WHOLE_BYTES:
            raise ImageError(self.path, f"one compressed strip of {nbytes / 2**20:.0f} MB cannot "
                             "be read in parts; rewrite it tiled or in strips (e.g. tifffile "
                             "imwrite(..., tile=(256, 256)) or vips tiffsave --tile)")
        arr = page.asarray()
        if arr.ndim == 2:
            arr = arr[:, :, None]
        elif int(page.planarconfig) == 2:
            arr = np.moveaxis(arr, 0, -1)
        return self._own_samples(arr)

    def _meta(self, tf: Any, page0: Any, lv0: _Blocks) -> None:
        res = resolution_mpp(page0)
        self._pixel_size = PixelSize(res[0], res[1], "um") if res else None
        self._properties = {
            "vendor": "generic-tiff",
            "mpp_sources": {"tiff_resolution": (res[0] + res[1]) / 2} if res else {},
            "mpp_x": res[0] if res else None,
            "mpp_y": res[1] if res else None,
            "dtype": str(self._dtype),
            "bits": int(page0.bitspersample),
            "channels": self._channels,
            "photometric": PHOTOMETRIC[self._photometric],
            "compression": int(page0.compression),
            "layout": "tiled" if page0.is_tiled else "striped",
            "block": (lv0.bw, lv0.bh),
            "bigtiff": bool(tf.is_bigtiff),
        }

    def _own_samples(self, arr: np.ndarray) -> np.ndarray:
        """(h, w, S) decoded samples -> (h, w, channels) native-endian (extra samples dropped)."""
        a = arr[..., : self._channels]
        return np.ascontiguousarray(a, dtype=self._dtype)

    # -------------------------------------------------------------- blocks
    def _read(self, offset: int, count: int) -> bytes:
        if self._fd is None:
            raise ImageError(self.path, "image is closed")
        data = os.pread(self._fd, count, offset)
        if len(data) != count:
            raise ImageError(self.path, f"truncated file: short read at byte {offset}")
        return data

    def _decode(self, lv: _Blocks, level: int, bx: int, by: int) -> np.ndarray:
        """Block (bx, by) of a stored level as (rows, cols, channels) native samples."""
        index = by * lv.nbx + bx
        planes = range(lv.samples) if lv.separate else range(1)
        parts = []
        for s in planes:
            if lv.decode is None:  # raw rows of one uncompressed strip
                count = int(lv.counts[index])
                data = self._read(lv.planes[s] + int(lv.offsets[index]), count)
                rows = count // (lv.width * lv.raw_dtype.itemsize * (1 if lv.separate
                                                                    else lv.samples))
                parts.append(np.frombuffer(data, lv.raw_dtype).reshape(rows, lv.width, -1))
                continue
            i = index + s * lv.nseg
            count, offset = int(lv.counts[i]), int(lv.offsets[i])
            if count == 0 or offset == 0:  # sparse block
                return np.full((lv.bh, lv.bw, self._channels), fill_value(self._dtype),
                               self._dtype)
            data = self._read(offset, count)
            try:
                if lv.strict_jpeg:
                    parts.append(decode_jpeg(standalone_jpeg(data, lv.jpegtables, lv.jpeg_rgb),
                                             lv.shapes(by), lv.samples))
                    continue
                arr = lv.decode(data, i, jpegtables=lv.jpegtables)[0]
            except (GigapatchError, ImportError, MemoryError):
                raise
            except Exception as e:
                why = str(e) if isinstance(e, BadJpeg) else short_message(e)
                raise ImageError(self.path, f"cannot decode block ({bx}, {by}) of level {level} "
                                 f"({why}); is the file truncated or corrupt?") from e
            parts.append(arr[0])
        block = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
        out = self._own_samples(block)
        out.flags.writeable = False
        return out

    def _block(self, level: int, bx: int, by: int, store: bool = True) -> np.ndarray:
        lv = self._levels[level]
        assert isinstance(lv, _Blocks)
        return self.cache.get((level, bx, by), lambda: self._decode(lv, level, bx, by), store)

    def _rows(self, lv: _Blocks, y0: int, y1: int, pool: ThreadPoolExecutor) -> np.ndarray:
        """Level-0 rows ``y0:y1`` (every column) decoded straight from the file, not cached."""
        out = np.empty((y1 - y0, lv.width, self._channels), self._dtype)
        keys = [(bx, by) for by in range(y0 // lv.bh, (y1 - 1) // lv.bh + 1)
                for bx in range(lv.nbx)]

        def put(key: tuple[int, int]) -> None:
            bx, by = key
            block = self._decode(lv, 0, bx, by)
            gx, gy = bx * lv.bw, by * lv.bh
            sy0, sy1 = max(y0, gy), min(y1, gy + block.shape[0], lv.height)
            sx1 = min(lv.width, gx + block.shape[1])
            out[sy0 - y0 : sy1 - y0, gx:sx1] = block[sy0 - gy : sy1 - gy, : sx1 - gx]

        list(pool.map(put, keys))
        return out

    # -------------------------------------------------------------- computed levels
    def _compute_levels(self) -> float:
        """Append levels of downsample 8, 32, 128... computed from level 0 in bands; returns the
        largest level-0 sample seen."""
        lv0 = self._levels[0]
        w, h = self.level_dimensions[0]
        factors = []
        f = FIRST_FACTOR
        while min(w, h) / f >= MIN_LEVEL_SIDE:
            factors.append(f)
            f *= STEP
        c = self._channels
        if isinstance(lv0, np.ndarray):  # decoded whole: levels straight from it
            first = _shrink(lv0, FIRST_FACTOR) if factors else None
            max_seen = float(lv0.max(initial=0))
        else:
            first = None
            if factors:
                first = np.empty((-(-h // FIRST_FACTOR), -(-w // FIRST_FACTOR), c), self._dtype)
            unit = math.lcm(FIRST_FACTOR, lv0.bh)
            rows = max(unit, int(BAND_BYTES // max(1, w * c * self._dtype.itemsize)) // unit * unit)
            max_seen = 0.0
            with ThreadPoolExecutor(min(4, os.cpu_count() or 1), "gigapatch-levels") as pool:
                for y0 in range(0, h, rows):
                    band = self._rows(lv0, y0, min(h, y0 + rows), pool)
                    max_seen = max(max_seen, float(band.max(initial=0)))
                    if first is not None:
                        small = _shrink(band, FIRST_FACTOR)
                        first[y0 // FIRST_FACTOR : y0 // FIRST_FACTOR + len(small)] = small
                    del band
        if first is not None:
            self._levels.append(first)
            for _ in factors[1:]:
                prev = self._levels[-1]
                assert isinstance(prev, np.ndarray)
                self._levels.append(_shrink(prev, STEP))
        return max_seen

    # -------------------------------------------------------------- Image protocol
    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((lv.width, lv.height) if isinstance(lv, _Blocks) else (lv.shape[1], lv.shape[0])
                     for lv in self._levels)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._downsamples

    @property
    def mpp(self) -> float | None:
        return self._pixel_size.mean if self._pixel_size is not None else None

    @property
    def pixel_size(self) -> PixelSize | None:
        return self._pixel_size

    @property
    def vendor(self) -> str | None:
        return "generic-tiff"

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self._properties)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def white(self) -> int:
        """The sample value the 8-bit view shows as 255."""
        return self._white

    def tile_shape(self, level: int) -> tuple[int, int]:
        """(block height, block width) of ``level`` (a level held in memory: (64, its width))."""
        lv = self._levels[level]
        if isinstance(lv, _Blocks):
            return lv.bh, lv.bw
        return 64, int(lv.shape[1])

    def reserve_cache(self, nbytes: int) -> None:
        """Grow the block cache to at least ``nbytes`` (never shrinks it)."""
        if nbytes > self.cache.max_bytes:
            self.cache.resize(nbytes)

    def read_region_raw(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        if not 0 <= level < len(self._levels):
            raise ValueError(f"level {level} out of range (image has {len(self._levels)} levels)")
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            raise ValueError(f"region size must be positive, got {size}")
        ds = self.level_downsamples[level]
        x, y = math.floor(location[0] / ds), math.floor(location[1] / ds)
        lv = self._levels[level]
        if isinstance(lv, np.ndarray):
            return pad_region(lv, x, y, (w, h), fill=fill_value(self._dtype))
        out = np.full((h, w, self._channels), fill_value(self._dtype), self._dtype)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, lv.width), min(y + h, lv.height)
        if x1 <= x0 or y1 <= y0:
            return out
        keys = [(bx, by) for by in range(y0 // lv.bh, (y1 - 1) // lv.bh + 1)
                for bx in range(x0 // lv.bw, (x1 - 1) // lv.bw + 1)]
        block_bytes = lv.bh * lv.bw * self._channels * self._dtype.itemsize
        store = len(keys) * block_bytes <= self.cache.max_bytes // 2
        for bx, by in keys:
            block = self._block(level, bx, by, store)
            gx, gy = bx * lv.bw, by * lv.bh
            sx0, sy0 = max(x0, gx), max(y0, gy)
            sx1, sy1 = min(x1, gx + block.shape[1]), min(y1, gy + block.shape[0])
            out[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = block[sy0 - gy : sy1 - gy,
                                                                sx0 - gx : sx1 - gx]
        return out

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        return to_rgb8(self.read_region_raw(location, level, size), self._white,
                       invert=self._photometric == 0)

    def iter_rows(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Level 0 in horizontal bands of ``rows`` rows: ``(y0, (rows, W, channels) samples)``,
        decoded straight from the file (nothing cached)."""
        lv0 = self._levels[0]
        h = self.level_dimensions[0][1]
        with ThreadPoolExecutor(min(4, os.cpu_count() or 1), "gigapatch-rows") as pool:
            for y0 in range(0, h, rows):
                if isinstance(lv0, np.ndarray):
                    yield y0, lv0[y0 : y0 + rows]
                else:
                    yield y0, self._rows(lv0, y0, min(h, y0 + rows), pool)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as (path, cache size): a copy in another process reopens the file."""
        return (type(self), (self.path, self.cache.max_bytes))

    @staticmethod
    def supports(path: str | Path) -> bool:
        """True when ``path`` is a TIFF whose main image this reader reads natively."""
        import tifffile

        try:
            with tifffile.TiffFile(path) as tf:
                pages, _ = pyramid_pages(tf)
                return bool(pages) and all(native_problem(p) is None for p in pages)
        except Exception:
            return False

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
            self.cache.clear()

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self.close()


def _shrink(arr: np.ndarray, f: int) -> np.ndarray:
    """(h, w, C) -> (ceil(h / f), ceil(w / f), C): the mean of every f x f block (edge blocks
    padded by repeating their last row / column), in the input's type."""
    import cv2

    h, w, c = arr.shape
    ph, pw = -(-h // f) * f - h, -(-w // f) * f - w
    a = arr if not (ph or pw) else cv2.copyMakeBorder(arr, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    a = a.reshape(h + ph, w + pw, c)
    small = cv2.resize(a, ((w + pw) // f, (h + ph) // f), interpolation=cv2.INTER_AREA)
    return small.reshape((h + ph) // f, (w + pw) // f, c)


#: a single-level striped TIFF larger than this (pixels) gets computed levels, not a whole read
STREAM_PIXELS = 64_000_000


def prefers_native(photometric: int, colour_samples: int, tiled: bool, n_levels: int,
                   pixels: int) -> bool:
    """Whether an 8-bit TIFF the RGB reader could decode is better read by
    :class:`NativeTiffImage`: grey samples (served as one channel, as stored), or one large
    level in strips (its low-resolution levels computed in a streaming pass rather than
    read whole)."""
    if photometric not in PHOTOMETRIC:
        return False
    if photometric in (0, 1) and colour_samples == 1:
        return True
    return not tiled and n_levels == 1 and pixels > STREAM_PIXELS


__all__ = ["MAX_WHOLE_BYTES", "STREAM_PIXELS", "NativeTiffImage", "native_problem",
           "prefers_native"]
