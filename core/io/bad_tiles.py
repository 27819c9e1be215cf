"""Bad stored tiles: strict JPEG decoding, the tiles an image met that did not decode cleanly,
and the patches over them.

A JPEG tile whose entropy-coded data is damaged often still decodes: libjpeg-turbo repairs what
it can and only *warns* ("Corrupt JPEG data: premature end of data segment", "... extraneous
bytes before marker 0xd9", "bad Huffman code"), and imagecodecs / tifffile drop the warning, so
the damaged pixels were used silently. Here a JPEG tile is decoded by simplejpeg (libjpeg-turbo,
the same pixels bit for bit) with ``strict=True``: a warning is an error, and so is a tile whose
JPEG header declares another size than the TIFF's tile. What then happens is the image's
policy (config ``read.on_bad_tile``):

* ``"fail"`` (default): :class:`BadTileError`, one line naming the file, the level, the tile's
  (column, row) and its level-0 position;
* ``"skip"``: the tile reads as white, is recorded in the image's :class:`BadTiles` with a
  warning, and :func:`check_tiles_under` checks the tiles under the kept patches and
  :func:`patches_over` tells which cover a bad one (the pipeline drops
  them and reports the count).

A changed byte that keeps the Huffman stream valid (only a coefficient's magnitude bits) decodes
without any warning: JPEG carries no checksum, so no decoder can tell that tile from a clean one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from gigapatch.errors import ImageError

log = logging.getLogger(__name__)

Policy = Literal["fail", "skip"]
POLICIES: tuple[str, ...] = ("fail", "skip")
#: the downscale of the check-only decode (every coefficient is still entropy-decoded, so every
#: warning still fires; the inverse DCT and colour conversion work on 1/64 of the pixels)
CHECK_FACTOR = 8
#: bad tiles of one image logged one by one at WARNING (the rest at DEBUG; the pipeline's
#: warning gives the count)
WARN_TILES = 3


class BadJpeg(ValueError):
    """A JPEG stream the strict decoder refuses (its message: the decoder's, one line)."""


class BadTileError(ImageError):
    """A stored tile that does not decode cleanly, under ``read.on_bad_tile: fail``."""

    def __init__(self, path: object, level: int, tx: int, ty: int, xy0: tuple[int, int],
                 problem: str) -> None:
        self.level, self.tile, self.xy0 = level, (tx, ty), xy0
        super().__init__(path, f"bad tile ({tx}, {ty}) of level {level} at level-0 "
                               f"x={xy0[0]}, y={xy0[1]}: {problem}; the file is corrupt "
                               "(--on-bad-tile skip drops the patches over such tiles)")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _size_problem(h: int, w: int, shapes: tuple[tuple[int, int], ...]) -> str | None:
    if (h, w) in shapes:
        return None
    return f"its JPEG header declares {w} x {h} px for a {shapes[0][1]} x {shapes[0][0]} px tile"


def decode_jpeg(data: bytes, shapes: tuple[tuple[int, int], ...], channels: int,
                out: np.ndarray | None = None) -> np.ndarray:
    """Decode one standalone JPEG strictly.

    Parameters
    ----------
    data : a complete JPEG stream (tables merged, see :func:`gigapatch.io.pixels.standalone_jpeg`).
    shapes : the (height, width) the stream may declare (the TIFF's tile or strip size).
    channels : 3 (decoded to RGB: YCbCr converted, RGB with an Adobe marker kept) or 1 (grey).
    out : optional C-contiguous (height, width, channels) uint8 array to decode into.

    Returns
    -------
    (height, width, channels) uint8 array.

    Raises
    ------
    BadJpeg : a decoder error or warning, or a declared size not in ``shapes``.
    """
    import simplejpeg

    try:
        h, w, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as e:
        raise BadJpeg(_first_line(e)) from None
    if (problem := _size_problem(h, w, shapes)) is not None:
        raise BadJpeg(problem)
    try:
        return simplejpeg.decode_jpeg(data, colorspace="rgb" if channels == 3 else "gray",
                                      strict=True, buffer=out)
    except ValueError as e:
        raise BadJpeg(_first_line(e)) from None


def check_jpeg(data: bytes, shapes: tuple[tuple[int, int], ...]) -> str | None:
    """Why the JPEG stream ``data`` is bad (as :func:`decode_jpeg` would say), or None; decoded
    at 1/:data:`CHECK_FACTOR` scale (every coefficient still entropy-decoded, so every warning of
    a full decode fires), about a third of a full decode's time."""
    import simplejpeg

    try:
        h, w, _, _ = simplejpeg.decode_jpeg_header(data)
        if (problem := _size_problem(h, w, shapes)) is not None:
            return problem
        simplejpeg.decode_jpeg(data, colorspace="gray", strict=True, min_factor=CHECK_FACTOR)
    except ValueError as e:
        return _first_line(e)
    return None


class BadTiles:
    """The tiles of one image that did not decode cleanly, and its policy (thread-safe).

    Attributes
    ----------
    policy : ``"fail"`` or ``"skip"`` (config ``read.on_bad_tile``).
    found : (level, tx, ty) -> (problem, level-0 box (x0, y0, x1, y1)).
    """

    def __init__(self, policy: Policy = "fail") -> None:
        self.policy: Policy = policy
        self.found: dict[tuple[int, int, int], tuple[str, tuple[int, int, int, int]]] = {}
        self._lock = threading.Lock()

    def met(self, path: object, key: tuple[int, int, int], box: tuple[int, int, int, int],
            problem: str) -> None:
        """Tile ``key`` = (level, tx, ty), covering level-0 ``box``, is bad: raise
        :class:`BadTileError` under ``"fail"``, else record it (a warning for the first
        :data:`WARN_TILES` of the image)."""
        level, tx, ty = key
        if self.policy != "skip":
            raise BadTileError(path, level, tx, ty, (box[0], box[1]), problem)
        with self._lock:
            new = key not in self.found
            self.found[key] = (problem, box)
            n = len(self.found)
        if new:
            log.log(logging.WARNING if n <= WARN_TILES else logging.DEBUG,
                    "%s: bad tile (%d, %d) of level %d at level-0 x=%d, y=%d skipped: %s",
                    path, tx, ty, level, box[0], box[1], problem)

    def boxes(self) -> np.ndarray:
        """(K, 4) int64 level-0 boxes (x0, y0, x1, y1) of the bad tiles met so far."""
        with self._lock:
            rows = [box for _, box in self.found.values()]
        return np.asarray(rows, np.int64).reshape(-1, 4)

    def describe(self, limit: int = 3) -> str:
        """The first ``limit`` bad tiles in words (level, column, row)."""
        with self._lock:
            keys = sorted(self.found)
        text = ", ".join(f"level {lv} ({tx}, {ty})" for lv, tx, ty in keys[:limit])
        return text + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def set_policy(image: Any, policy: str) -> None:
    """Set ``image``'s bad-tile policy (``read.on_bad_tile``) when its reader keeps one (its
    ``bad_tiles`` attribute); other readers raise on a tile they cannot decode."""
    if policy not in POLICIES:
        raise ValueError(f"on_bad_tile must be one of {POLICIES}, got {policy!r}")
    tiles = getattr(image, "bad_tiles", None)
    if isinstance(tiles, BadTiles):
        tiles.policy = policy  # type: ignore[assignment]


def covered_tiles(coords: np.ndarray, read_size: int, ds: float, tile_hw: tuple[int, int],
                  grid: tuple[int, int]) -> np.ndarray:
    """The tiles a level's patches cover.

    Parameters
    ----------
    coords : (N, 2) level-0 top-left x, y of the patches.
    read_size : side of a patch at the level, in the level's pixels.
    ds : the level's downsample.
    tile_hw : (tile height, tile width) of the level.
    grid : (tiles across, tiles down) of the level.

    Returns
    -------
    (K, 2) int64 (tx, ty) of every tile at least one patch covers, in raster order.
    """
    ntx, nty = grid
    th, tw = tile_hw
    hit = np.zeros((nty, ntx), bool)
    if len(coords) == 0:
        return np.zeros((0, 2), np.int64)
    lx = np.floor(np.asarray(coords)[:, 0] / ds).astype(np.int64)
    ly = np.floor(np.asarray(coords)[:, 1] / ds).astype(np.int64)
    tx0, ty0 = np.clip(lx // tw, 0, ntx - 1), np.clip(ly // th, 0, nty - 1)
    tx1 = np.clip((lx + read_size - 1) // tw, 0, ntx - 1)
    ty1 = np.clip((ly + read_size - 1) // th, 0, nty - 1)
    span_x, span_y = int((tx1 - tx0).max()), int((ty1 - ty0).max())
    for dy in range(span_y + 1):  # a patch spans a few tiles: one vectorised pass an offset
        for dx in range(span_x + 1):
            ok = (tx0 + dx <= tx1) & (ty0 + dy <= ty1)
            hit[ty0[ok] + dy, tx0[ok] + dx] = True
    ty, tx = np.nonzero(hit)
    return np.stack([tx, ty], axis=1).astype(np.int64)


def patches_over(boxes: np.ndarray, coords: np.ndarray, size_level0: int) -> np.ndarray:
    """(N,) bool: which patches (level-0 top-left ``coords``, side ``size_level0``) overlap one
    of the level-0 ``boxes`` (K, 4) (x0, y0, x1, y1)."""
    c = np.asarray(coords, np.int64).reshape(-1, 2)
    bad = np.zeros(len(c), bool)
    for x0, y0, x1, y1 in np.asarray(boxes, np.int64).reshape(-1, 4):
        bad |= ((c[:, 0] < x1) & (c[:, 0] + size_level0 > x0)
                & (c[:, 1] < y1) & (c[:, 1] + size_level0 > y0))
    return bad


def check_tiles_under(image: Any, coords: np.ndarray, level: int, read_size: int,
                      workers: int = 4) -> None:
    """Check every tile of ``level`` under the patches that was not decoded yet
    (``image.check_tiles``), so that a patch never lists, nor an extraction copies, pixels of a
    tile nobody looked at: a bad one raises or is recorded by the image's policy.

    Parameters
    ----------
    image : the open image (readers without ``check_tiles`` are left alone).
    coords : (N, 2) level-0 top-left x, y of the patches.
    level, read_size : the level the patches are read from and their side there.
    workers : threads checking tiles.
    """
    check: Callable[..., None] | None = getattr(image, "check_tiles", None)
    if check is None or len(coords) == 0:
        return
    keys = covered_tiles(coords, read_size, image.level_downsamples[level],
                         image.tile_shape(level), image.tile_grid(level))
    check(level, keys, workers)


def bad_tiles_of(image: Any) -> BadTiles:
    """``image``'s :class:`BadTiles` (an empty one for readers that keep none)."""
    tiles = getattr(image, "bad_tiles", None)
    return tiles if isinstance(tiles, BadTiles) else BadTiles()


__all__ = [
    "BadJpeg",
    "BadTileError",
    "BadTiles",
    "check_jpeg",
    "covered_tiles",
    "decode_jpeg",
    "bad_tiles_of",
    "check_tiles_under",
    "patches_over",
    "set_policy",
]
