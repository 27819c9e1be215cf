"""A deterministic synthetic pyramidal SVS-like slide, written in seconds at gigapixel sizes.

The slide mimics an Aperio SVS from a scanner: 256 px JPEG (YCbCr 4:2:0) tiles, levels at
downsamples 1/4/16/64, an Aperio ImageDescription carrying ``MPP`` and ``AppMag`` (OpenSlide reports
vendor ``aperio``; tifffile sees ``is_svs``), real encoded glass tiles (not sparse), and tissue as a
few irregular blobs covering ~``tissue_fraction`` of the area with an H&E-like texture (eosin-pink
stroma, purple nuclei, pale lumina).

Speed comes from pre-encoding: a small bank of distinct tissue tiles and glass tiles is JPEG-encoded
once; interior tiles are picked from the bank by a hash of their position, and only the tiles that
straddle the tissue boundary (and the reduced levels, ~1/15 of the tiles) are encoded one by one.
Every level is consistent with level 0: a reduced tile is the mosaic of the area-downsampled bank
tiles under the same smooth tissue field.

Run ``python benchmarks/synthetic_slide.py OUT.svs --side 40000`` to write one.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: level-0 pixels per sample of the smooth tissue field
FIELD_STEP = 64
GLASS, TISSUE, EDGE = 0, 1, 2


@dataclass
class SlideInfo:
    """What :func:`make_slide` wrote.

    Attributes
    ----------
    path : the slide file.
    side : level-0 width = height in px.
    tile : tile side in px.
    levels : downsample of each level.
    mpp : microns per level-0 px.
    tile_class : (nty, ntx) uint8 class of every level-0 tile: 0 glass, 1 tissue, 2 tissue edge.
    tissue_fraction : fraction of level-0 pixels that are tissue (from the field, exact at its
        resolution).
    seconds : time taken to write the file.
    """

    path: Path
    side: int
    tile: int
    levels: tuple[int, ...]
    mpp: float
    tile_class: np.ndarray
    tissue_fraction: float
    seconds: float = 0.0

    @property
    def tissue_tiles(self) -> np.ndarray:
        """(K, 2) int64 (ty, tx) of the level-0 tiles holding any tissue, row-major."""
        return np.argwhere(self.tile_class != GLASS).astype(np.int64)


# ---------------------------------------------------------------------- content
def tissue_field(side: int, tissue_fraction: float, seed: int) -> np.ndarray:
    """Smooth signed field, one sample per :data:`FIELD_STEP` level-0 px; tissue where > 0.

    A few ellipses whose outlines are perturbed by low-frequency noise; the threshold is the
    quantile that makes exactly ``tissue_fraction`` of the samples positive.

    Returns
    -------
    (g, g) float32 with g = ceil(side / FIELD_STEP).
    """
    import cv2

    rng = np.random.default_rng(seed)
    g = max(8, math.ceil(side / FIELD_STEP))
    yy, xx = np.mgrid[0:g, 0:g].astype(np.float32) / g
    field = np.full((g, g), -1.0, np.float32)
    n_blobs = int(rng.integers(3, 6))
    for _ in range(n_blobs):
        cx, cy = rng.uniform(0.2, 0.8, 2)
        rx, ry = rng.uniform(0.12, 0.3, 2)
        ang = rng.uniform(0, np.pi)
        dx, dy = xx - cx, yy - cy
        u = (dx * np.cos(ang) + dy * np.sin(ang)) / rx
        v = (-dx * np.sin(ang) + dy * np.cos(ang)) / ry
        field = np.maximum(field, 1.0 - np.sqrt(u * u + v * v))
    # irregular outlines: coarse noise (a few wiggles per blob) plus finer roughness
    for scale, amp in ((g / 12.0, 0.35), (g / 48.0, 0.08)):
        noise = rng.standard_normal((g, g)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), max(scale, 0.5))
        noise /= max(float(noise.std()), 1e-6)
        field += amp * noise
    thr = np.quantile(field, 1.0 - tissue_fraction)
    return (field - thr).astype(np.float32)


def tissue_bank(n: int, tile: int, seed: int) -> np.ndarray:
    """``n`` distinct H&E-like RGB tiles: pink stroma with fibres, purple nuclei, pale lumina.

    Returns
    -------
    (n, tile, tile, 3) uint8.
    """
    import cv2

    rng = np.random.default_rng(seed + 1)
    out = np.empty((n, tile, tile, 3), np.uint8)
    eosin = np.array([236, 160, 196], np.float32)
    hema = np.array([92, 56, 148], np.float32)
    for i in range(n):
        # stroma: eosin with fibrous low-frequency shading
        shade = cv2.GaussianBlur(rng.standard_normal((tile, tile)).astype(np.float32), (0, 0), 6)
        shade /= max(float(shade.std()), 1e-6)
        img = eosin[None, None] * (1.0 + 0.08 * shade[..., None])
        # lumina: a few pale holes
        lum = np.zeros((tile, tile), np.uint8)
        for _ in range(int(rng.integers(0, 3))):
            c = rng.integers(0, tile, 2)
            ax = rng.integers(8, 28, 2)
            cv2.ellipse(lum, (int(c[0]), int(c[1])), (int(ax[0]), int(ax[1])),
                        float(rng.uniform(0, 180)), 0, 360, 1, -1)
        lum_soft = cv2.GaussianBlur(lum.astype(np.float32), (0, 0), 2)[..., None]
        img = img * (1 - 0.8 * lum_soft) + np.float32(245) * 0.8 * lum_soft
        # nuclei: dark purple ellipses, blurred edges
        nuc = np.zeros((tile, tile), np.uint8)
        for _ in range(int(rng.integers(60, 140))):
            c = rng.integers(0, tile, 2)
            ax = rng.integers(2, 6, 2)
            cv2.ellipse(nuc, (int(c[0]), int(c[1])), (int(ax[0]), int(ax[1])),
                        float(rng.uniform(0, 180)), 0, 360, 1, -1)
        nuc_soft = cv2.GaussianBlur(nuc.astype(np.float32), (0, 0), 0.8)[..., None]
        img = img * (1 - 0.85 * nuc_soft) + hema[None, None] * 0.85 * nuc_soft
        img += rng.normal(0, 4, img.shape).astype(np.float32)  # sensor noise
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def glass_tiles(n: int, tile: int, seed: int) -> np.ndarray:
    """``n`` near-white glass tiles with faint shading and sensor noise; (n, tile, tile, 3) uint8."""
    import cv2

    rng = np.random.default_rng(seed + 2)
    out = np.empty((n, tile, tile, 3), np.uint8)
    for i in range(n):
        shade = cv2.GaussianBlur(rng.standard_normal((tile, tile)).astype(np.float32), (0, 0), 24)
        shade /= max(float(shade.std()), 1e-6)
        base = np.array([243, 242, 240], np.float32) + 1.5 * shade[..., None]
        img = base + rng.normal(0, 1.5, (tile, tile, 3)).astype(np.float32)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def _tile_hash(ty: np.ndarray, tx: np.ndarray, seed: int, n: int) -> np.ndarray:
    h = (ty.astype(np.uint64) * np.uint64(73856093)) ^ (tx.astype(np.uint64) * np.uint64(19349663))
    h ^= np.uint64(seed * 83492791 + 12345)
    h = (h * np.uint64(2654435761)) >> np.uint64(7)
    return (h % np.uint64(n)).astype(np.int32)


def _classify(field: np.ndarray, ds: int, tile: int, nty: int, ntx: int) -> np.ndarray:
    """Class of every tile of the level with downsample ``ds``: glass, tissue or edge.

    A level-``ds`` pixel (px, py) samples the field bilinearly at level-0 position
    ((p + 0.5) * ds) / FIELD_STEP - 0.5, a convex combination of its 4 neighbours, so a tile whose
    field window is all positive (all <= 0) is all tissue (all glass).
    """
    span = tile * ds / FIELD_STEP  # field samples per tile
    a = 0.5 * ds / FIELD_STEP - 0.5
    g = field.shape[0]

    def windows(n: int) -> np.ndarray:
        i = np.arange(n)
        lo = np.clip(np.floor(i * span + a).astype(np.int64), 0, g - 1)
        hi = np.clip(np.floor((i + 1) * span - a - 1.0).astype(np.int64) + 1, 0, g - 1)
        return np.stack([lo, hi + 1], axis=1).ravel()  # [lo, hi] inclusive, for reduceat

    fpad = np.pad(field, ((0, 1), (0, 1)), mode="edge")
    wy, wx = windows(nty), windows(ntx)
    rmin = np.minimum.reduceat(fpad, wy, axis=0)[::2]
    rmax = np.maximum.reduceat(fpad, wy, axis=0)[::2]
    cmin = np.minimum.reduceat(rmin, wx, axis=1)[:, ::2]
    cmax = np.maximum.reduceat(rmax, wx, axis=1)[:, ::2]
    out = np.full((nty, ntx), EDGE, np.uint8)
    out[cmin > 0] = TISSUE
    out[cmax <= 0] = GLASS
    return out


class _TileSource:
    """Encoded bytes of any tile of the pyramid, in the order tifffile asks for them."""

    def __init__(self, side: int, tile: int, levels: tuple[int, ...], field: np.ndarray,
                 seed: int, quality: int, n_bank: int = 24, n_glass: int = 4) -> None:
        import cv2
        import imagecodecs

        self.side, self.tile, self.levels, self.field, self.q = side, tile, levels, field, quality
        self.enc = imagecodecs.jpeg8_encode
        self.bank = tissue_bank(n_bank, tile, seed)
        self.glass = glass_tiles(n_glass, tile, seed)
        self.bank_bytes = [self.enc(t, level=quality) for t in self.bank]
        self.glass_bytes = [self.enc(t, level=quality) for t in self.glass]
        nty0 = ntx0 = -(-side // tile)
        ty, tx = np.mgrid[0:nty0, 0:ntx0]
        self.idx0 = _tile_hash(ty, tx, seed, n_bank)  # bank tile of every level-0 tile
        self.gidx0 = _tile_hash(tx, ty, seed + 7, n_glass)
        # area-downsampled bank / glass for the reduced levels
        self.small: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for d in levels:
            if d == 1:
                continue
            s = max(1, tile // d)
            self.small[d] = (
                np.stack([cv2.resize(t, (s, s), interpolation=cv2.INTER_AREA) for t in self.bank]),
                np.stack([cv2.resize(t, (s, s), interpolation=cv2.INTER_AREA) for t in self.glass]),
            )
        self.classes = []
        for d in levels:
            h = max(1, side // d)
            n = -(-h // tile)
            self.classes.append(_classify(field, d, tile, n, n))
        self.n_encoded = 0

    def _mask(self, d: int, ty: int, tx: int) -> np.ndarray:
        """(tile, tile) bool tissue mask of tile (ty, tx) of the level with downsample d."""
        import cv2

        p = (np.arange(self.tile, dtype=np.float32) + 0.5) * d / FIELD_STEP - 0.5
        mx = np.broadcast_to(p[None, :] + tx * self.tile * d / FIELD_STEP, (self.tile, self.tile))
        my = np.broadcast_to(p[:, None] + ty * self.tile * d / FIELD_STEP, (self.tile, self.tile))
        vals = cv2.remap(self.field, np.ascontiguousarray(mx, np.float32),
                         np.ascontiguousarray(my, np.float32), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        return vals > 0

    def _mosaic(self, d: int, ty: int, tx: int) -> tuple[np.ndarray, np.ndarray]:
        """Tissue and glass pixels of a level-d tile: mosaics of the level-0 tiles it covers."""
        t = self.tile
        if d == 1:
            return self.bank[self.idx0[ty, tx]], self.glass[self.gidx0[ty, tx]]
        bank, glass = self.small[d]
        s = bank.shape[1]
        k = t // s  # level-0 tiles per side of this tile
        n0 = self.idx0.shape[0]
        ys = np.clip(np.arange(ty * k, ty * k + k), 0, n0 - 1)
        xs = np.clip(np.arange(tx * k, tx * k + k), 0, n0 - 1)
        ti = self.idx0[np.ix_(ys, xs)]
        gi = self.gidx0[np.ix_(ys, xs)]
        tis = bank[ti].transpose(0, 2, 1, 3, 4).reshape(k * s, k * s, 3)
        gla = glass[gi].transpose(0, 2, 1, 3, 4).reshape(k * s, k * s, 3)
        return tis, gla

    def pixels(self, li: int, ty: int, tx: int) -> np.ndarray:
        """(tile, tile, 3) uint8 RGB of tile (ty, tx) of level ``li``, before JPEG."""
        d = self.levels[li]
        c = self.classes[li][ty, tx]
        tis, gla = self._mosaic(d, ty, tx)
        if c == GLASS:
            return gla
        if c == EDGE:
            m = self._mask(d, ty, tx)
            tis = np.where(m[..., None], tis, gla)
        return np.ascontiguousarray(tis)

    def __call__(self, li: int, ty: int, tx: int) -> bytes:
        """The stored JPEG bytes of tile (ty, tx) of level ``li``."""
        d = self.levels[li]
        c = self.classes[li][ty, tx]
        if d == 1 and c == TISSUE:
            return self.bank_bytes[self.idx0[ty, tx]]
        if c == GLASS:
            return self.glass_bytes[self.gidx0[min(ty, self.gidx0.shape[0] - 1),
                                                min(tx, self.gidx0.shape[1] - 1)]]
        self.n_encoded += 1
        return self.enc(self.pixels(li, ty, tx), level=self.q)

    def thumbnail(self, max_side: int = 1024) -> np.ndarray:
        """The whole slide from its smallest level, resized to at most ``max_side``."""
        import cv2

        li = len(self.levels) - 1
        n = self.classes[li].shape[0]
        t = self.tile
        full = np.empty((n * t, n * t, 3), np.uint8)
        for ty in range(n):
            for tx in range(n):
                full[ty * t : ty * t + t, tx * t : tx * t + t] = self.pixels(li, ty, tx)
        side = max(1, self.side // self.levels[li])
        full = full[:side, :side]
        s = max(1, min(max_side, side))
        return cv2.resize(full, (s, s), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------------- writer
def _level_tiles(src: _TileSource, li: int, nty: int, ntx: int):
    for ty in range(nty):
        for tx in range(ntx):
            yield src(li, ty, tx)


def _write_svs(path: Path, side: int, src: _TileSource, *, tile: int, quality: int,
               mpp: float) -> None:
    """Write the pyramid in Aperio's page order with tifffile, from iterators of pre-encoded
    JPEG tiles: baseline (tiled), thumbnail (stripped JPEG), then the reduced levels (tiled), all
    with NewSubfileType 0 as Aperio writes them (tifffile's SVS parser relies on this order).

    (``gigapatch.io.tiff_write.write_tiled_tiff_from_tiles`` is not used: its per-level generator
    binds the level index late, and it writes reduced levels as subfiletype 1 with no thumbnail,
    which tifffile then does not see as SVS levels.)
    """
    import tifffile

    from gigapatch.io.atomic import atomic_path

    mag = 10.0 / mpp
    meta = f"|AppMag = {mag:g}|MPP = {mpp:.4f}"
    head = f"Aperio Image Library v12.0.0\r\n{side}x{side} [0,0 {side}x{side}] ({tile}x{tile})"
    thumb = src.thumbnail()
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=side * side * 3 > 2**31) as tw:
        for li, d in enumerate(src.levels):
            h = w = max(1, side // d)
            n = -(-h // tile)
            res = 1e4 / (mpp * d)  # pixels per centimetre
            if li == 0:
                desc = f"{head} JPEG/RGB Q={quality}{meta}"
            else:
                desc = f"{head} -> {w}x{h} JPEG/RGB Q={quality}"
            tw.write(
                _level_tiles(src, li, n, n), shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile),
                compression="jpeg", photometric="ycbcr", subsampling=(2, 2), subfiletype=0,
                resolution=(res, res), resolutionunit="CENTIMETER", description=desc,
                metadata=None,
            )
            if li == 0:
                th, tw_ = thumb.shape[:2]
                tw.write(thumb, compression="jpeg",
                         compressionargs={"level": quality}, photometric="rgb", rowsperstrip=16,
                         subfiletype=0, metadata=None,
                         description=f"Aperio Image Library v12.0.0\n{side}x{side} -> "
                                     f"{tw_}x{th} - {meta}")


def make_slide(
    path: str | Path,
    side: int,
    tissue_fraction: float = 0.25,
    seed: int = 0,
    tile: int = 256,
    levels: tuple[int, ...] = (1, 4, 16, 64),
    mpp: float = 0.25,
    quality: int = 90,
) -> SlideInfo:
    """Write a deterministic synthetic pyramidal SVS-like slide.

    Parameters
    ----------
    path : output file (``.svs`` or ``.tiff``); written to a temporary name, then renamed.
    side : level-0 width = height in px (e.g. 10_000, 40_000, 100_000).
    tissue_fraction : fraction of the area covered by tissue.
    seed : random seed; the same arguments give the same file.
    tile : tile side in px (a multiple of the largest downsample's ratio to it is not needed).
    levels : downsample of each level; the first must be 1.
    mpp : microns per level-0 px (AppMag = 10 / mpp).
    quality : JPEG quality of the tiles.

    Returns
    -------
    SlideInfo with the level-0 tile classes (ground truth for the benchmarks).
    """
    if levels[0] != 1:
        raise ValueError("levels must start with 1 (level 0)")
    t0 = time.perf_counter()
    path = Path(path)
    field = tissue_field(side, tissue_fraction, seed)
    src = _TileSource(side, tile, tuple(levels), field, seed, quality)
    _write_svs(path, side, src, tile=tile, quality=quality, mpp=mpp)
    frac = float((field > 0).mean())
    info = SlideInfo(path, side, tile, tuple(levels), mpp, src.classes[0], frac,
                     time.perf_counter() - t0)
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", type=Path)
    ap.add_argument("--side", type=int, default=40_000)
    ap.add_argument("--tissue-fraction", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    info = make_slide(a.path, a.side, a.tissue_fraction, a.seed)
    n = info.tile_class.size
    print(f"{info.path}: {a.side} px, {n} level-0 tiles, {len(info.tissue_tiles)} with tissue, "
          f"tissue fraction {info.tissue_fraction:.3f}, {info.path.stat().st_size / 1e6:.0f} MB, "
          f"written in {info.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
