"""Decoded TIFF samples to RGB: YCbCr, grey, palette and alpha; TIFF JPEG segments as .jpg files.

Functions on numpy arrays, shared by the tiled reader (:mod:`gigapatch.io.tiff`) and the plain
image readers (:mod:`gigapatch.io.readers`).
"""

from __future__ import annotations

import numpy as np

_ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"  # APP14, transform 0 = RGB


def _ycbcr_luts() -> tuple[np.ndarray, ...]:
    i = np.arange(256, dtype=np.float64) - 128
    r_cr = np.round(1.402 * i).astype(np.int32)
    g_cb = np.round(65536 * (0.5 - 0.34414 * i)).astype(np.int32)
    g_cr = np.round(65536 * (-0.71414 * i)).astype(np.int32)
    b_cb = np.round(1.772 * i).astype(np.int32)
    return r_cr, g_cb, g_cr, b_cb


_YCC = _ycbcr_luts()


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Full-range (JFIF) YCbCr (h, w, 3) uint8 to RGB, rounded as OpenSlide does for Aperio 33003."""
    r_cr, g_cb, g_cr, b_cb = _YCC
    y = ycc[..., 0].astype(np.int32)
    cb, cr = ycc[..., 1], ycc[..., 2]
    out = np.empty(ycc.shape[:2] + (3,), np.int32)
    out[..., 0] = y + r_cr[cr]
    out[..., 1] = y + ((g_cb[cb] + g_cr[cr]) >> 16)
    out[..., 2] = y + b_cb[cb]
    return np.clip(out, 0, 255).astype(np.uint8)


def composite_on_white(rgb: np.ndarray, alpha: np.ndarray, premultiplied: bool = False) -> np.ndarray:
    """Composite (h, w, 3) uint8 colour with (h, w) uint8 alpha onto white; (h, w, 3) uint8."""
    a = alpha.astype(np.uint16)[..., None]
    if premultiplied:
        return np.minimum(rgb.astype(np.uint16) + (255 - a), 255).astype(np.uint8)
    return ((rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def to_rgb(
    arr: np.ndarray,
    photometric: int,
    extrasamples: tuple[int, ...] = (),
    colormap: np.ndarray | None = None,
    ycbcr: bool = False,
) -> np.ndarray:
    """Decoded TIFF samples (h, w, s) uint8 to (h, w, 3) uint8 RGB.

    Grey (min-is-black / min-is-white), palette, RGB(A) and grey+alpha are handled; associated
    (1) or unassociated (2) alpha is composited onto white; other extra samples are dropped.
    ``ycbcr`` converts full-range YCbCr samples (Aperio JPEG 2000 33003) to RGB.
    """
    if arr.ndim == 2:
        arr = arr[..., None]
    s = arr.shape[2]
    n_colour = 3 if s >= 3 and photometric != 3 else 1
    alpha_at = s - len(extrasamples)
    alpha_kind = extrasamples[0] if extrasamples and n_colour <= alpha_at < s else 0
    if photometric == 3 and colormap is not None:
        lut = (np.asarray(colormap, np.uint16) >> 8).astype(np.uint8).T  # (2**bps, 3)
        rgb = lut[arr[..., 0]]
    elif n_colour == 1:
        grey = arr[..., 0]
        if photometric == 0:
            grey = 255 - grey
        rgb = np.repeat(grey[..., None], 3, axis=2)
    else:
        rgb = np.ascontiguousarray(arr[..., :3])
        if ycbcr:
            rgb = ycbcr_to_rgb(rgb)
    if alpha_kind in (1, 2):
        rgb = composite_on_white(rgb, arr[..., alpha_at], premultiplied=alpha_kind == 1)
    return rgb


def standalone_jpeg(data: bytes, tables: bytes | None, rgb: bool) -> bytes:
    """A TIFF JPEG segment as a self-contained .jpg: tables merged in, and an Adobe APP14 marker
    (transform 0) inserted for RGB-coded streams (Aperio) so that decoders do not assume YCbCr."""
    if tables and len(tables) > 4:
        head = tables[:-2] if tables.endswith(b"\xff\xd9") else tables
        data = head + data[2:]
    if rgb and b"\xff\xee" not in data[:512] and b"JFIF" not in data[:32]:
        data = data[:2] + _ADOBE_RGB + data[2:]
    return data
