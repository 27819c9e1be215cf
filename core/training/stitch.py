"""Tile mosaics: pick the N best patches of an image and stitch them into one square picture.

This is the PANDA "tile concatenation" recipe: rank an image's patches (by foreground fraction),
take a group of N, read them, optionally flip each one, and lay them out row-major on a
``g x g`` grid with ``g = ceil(sqrt(N))``; cells without a patch stay white. Everything here is
numpy (no torch), so the tiling side of gigapatch runs without the training extras.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from gigapatch.io.image import Image

Group = Literal["first", "middle", "last", "random", "cycle"]
GROUPS: tuple[str, ...] = ("first", "middle", "last", "random", "cycle")


def grid_side(n_tiles: int) -> int:
    """Side ``g`` of the square grid holding ``n_tiles`` tiles: ``ceil(sqrt(n_tiles))``."""
    if n_tiles < 1:
        raise ValueError(f"n_tiles must be >= 1, got {n_tiles}")
    return math.isqrt(n_tiles - 1) + 1


def mosaic_positions(n_tiles: int, tile_size: int) -> np.ndarray:
    """Top-left (x, y) of every tile cell in the mosaic, row-major; (n_tiles, 2) int64."""
    g = grid_side(n_tiles)
    i = np.arange(n_tiles)
    return np.stack([(i % g) * tile_size, (i // g) * tile_size], axis=1).astype(np.int64)


def make_mosaic(patches: np.ndarray, n_tiles: int | None = None, *, fill: int = 255) -> np.ndarray:
    """Stitch patches row-major onto a square grid.

    Parameters
    ----------
    patches : (N, s, s, C) uint8 patches (C = 3 for RGB), in the order they are laid out.
    n_tiles : number of grid cells wanted (default N); the grid is ``g x g`` with
        ``g = ceil(sqrt(n_tiles))``. N may be smaller than ``n_tiles`` (missing cells are filled).
    fill : value of the cells without a patch (255 = white).

    Returns
    -------
    (g * s, g * s, C) array of ``patches.dtype``: patch i at rows ``(i // g) * s`` and columns
    ``(i % g) * s``.
    """
    patches = np.asarray(patches)
    if patches.ndim == 3:
        patches = patches[..., None]
    if patches.ndim != 4 or patches.shape[1] != patches.shape[2]:
        raise ValueError(f"patches must be (N, s, s, C), got shape {patches.shape}")
    n, s, _, c = patches.shape
    n_tiles = n if n_tiles is None else int(n_tiles)
    if n > n_tiles:
        raise ValueError(f"{n} patches do not fit a mosaic of {n_tiles} tiles")
    g = grid_side(max(n_tiles, 1))
    cells = np.full((g * g, s, s, c), fill, dtype=patches.dtype)
    cells[:n] = patches
    return cells.reshape(g, g, s, s, c).transpose(0, 2, 1, 3, 4).reshape(g * s, g * s, c)


def split_mosaic(mosaic: np.ndarray, tile_size: int) -> np.ndarray:
    """Inverse of :func:`make_mosaic`: (g*s, g*s, C) -> (g*g, s, s, C), row-major."""
    h, w = mosaic.shape[:2]
    if h != w or h % tile_size:
        raise ValueError(f"mosaic of shape {mosaic.shape} is not a grid of {tile_size} px tiles")
    g = h // tile_size
    c = mosaic.shape[2] if mosaic.ndim == 3 else 1
    m = mosaic.reshape(g, tile_size, g, tile_size, c).transpose(0, 2, 1, 3, 4)
    return m.reshape(g * g, tile_size, tile_size, c)


def rank_order(scores: np.ndarray, descending: bool = True) -> np.ndarray:
    """Indices of ``scores`` (M,) best first; ties keep their original order (stable)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    s = np.where(np.isnan(s), -np.inf if descending else np.inf, s)
    return np.argsort(-s if descending else s, kind="stable")


def tile_groups(n_patches: int, n: int) -> list[tuple[int, int]]:
    """Split ranks ``0..n_patches-1`` into consecutive groups of ``n``: a list of (start, stop).

    The last group is right-aligned (``start = n_patches - n``) so that every group is full; it
    may then overlap the previous one. With fewer than ``n`` patches there is one short group.
    Together the groups cover every rank.
    """
    if n < 1:
        raise ValueError(f"group size must be >= 1, got {n}")
    if n_patches <= n:
        return [(0, n_patches)]
    k = math.ceil(n_patches / n)
    starts = [i * n for i in range(k - 1)] + [n_patches - n]
    return [(s, s + n) for s in starts]


def select_tiles(
    scores: np.ndarray,
    n: int,
    *,
    group: Group = "first",
    rng: np.random.Generator | int | None = None,
    epoch: int = 0,
    descending: bool = True,
) -> np.ndarray:
    """Pick the patches of one mosaic.

    Patches are ranked by ``scores`` (e.g. the foreground fraction, best first), the ranking is
    split into consecutive groups of ``n`` (:func:`tile_groups`) and one group is returned:

    - ``"first"``: the ``n`` best patches (the usual choice for validation and prediction),
    - ``"middle"``: the middle group, ``"last"``: the last (right-aligned, so still ``n``),
    - ``"random"``: a group drawn from ``rng`` (a new one each epoch),
    - ``"cycle"``: group ``epoch % n_groups``, so that ``n_groups`` epochs see every patch.

    Parameters
    ----------
    scores : (M,) float ranking score of each candidate patch.
    n : tiles per mosaic.
    group : which group (see above).
    rng : numpy Generator or seed for ``"random"``.
    epoch : the epoch, for ``"cycle"``.
    descending : rank high scores first.

    Returns
    -------
    (min(n, M),) int64 indices into ``scores``, in rank order.
    """
    order = rank_order(scores, descending)
    groups = tile_groups(len(order), n)
    if group == "first":
        k = 0
    elif group == "last":
        k = len(groups) - 1
    elif group == "middle":
        k = len(groups) // 2
    elif group == "random":
        k = int(np.random.default_rng(rng).integers(len(groups)))
    elif group == "cycle":
        k = int(epoch) % len(groups)
    else:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    start, stop = groups[k]
    return order[start:stop].astype(np.int64)


def flip_tiles(
    patches: np.ndarray, rng: np.random.Generator | int | None = None, p: float = 0.5
) -> np.ndarray:
    """Flip each patch horizontally and (independently) vertically with probability ``p``.

    Parameters
    ----------
    patches : (N, s, s, C) array. A flipped copy is returned; the input is not changed.

    Returns
    -------
    (N, s, s, C) array, same dtype.
    """
    rng = np.random.default_rng(rng)
    out = np.array(patches, copy=True)
    n = len(out)
    h = rng.random(n) < p
    v = rng.random(n) < p
    out[h] = out[h][:, :, ::-1]
    out[v] = out[v][:, ::-1]
    return out


def flip_mosaic(
    image: np.ndarray, rng: np.random.Generator | int | None = None, p: float = 0.5
) -> np.ndarray:
    """Flip a whole (H, W, C) image horizontally and/or vertically, each with probability ``p``."""
    rng = np.random.default_rng(rng)
    out = image
    if rng.random() < p:
        out = out[:, ::-1]
    if rng.random() < p:
        out = out[::-1]
    return np.ascontiguousarray(out)


def read_tiles(
    image: Image,
    coords: np.ndarray,
    *,
    level: int,
    read_size: int,
    size: int | None = None,
) -> np.ndarray:
    """Read square patches of an image at their level-0 top-left ``coords``.

    Parameters
    ----------
    image : an open :class:`gigapatch.Image`.
    coords : (N, 2) level-0 top-left x, y.
    level : pyramid level to read.
    read_size : side of each patch at ``level``.
    size : output side (default ``read_size``); patches are resized (area) when it differs.

    Returns
    -------
    (N, size, size, 3) uint8.
    """
    size = read_size if size is None else size
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    out = np.empty((len(coords), size, size, 3), np.uint8)
    for i, (x, y) in enumerate(coords.tolist()):  # one read per patch: the reader is the cost
        tile = image.read_region((x, y), level, (read_size, read_size))
        if read_size != size:
            import cv2

            interp = cv2.INTER_AREA if read_size > size else cv2.INTER_LINEAR
            tile = cv2.resize(tile, (size, size), interpolation=interp)
        out[i] = tile
    return out


__all__ = [
    "GROUPS",
    "flip_mosaic",
    "flip_tiles",
    "grid_side",
    "make_mosaic",
    "mosaic_positions",
    "rank_order",
    "read_tiles",
    "select_tiles",
    "split_mosaic",
    "tile_groups",
]
