"""The low-resolution view of a raster: shown RGB, valid fraction and the reflectance of every
band role, area-averaged over the valid pixels only (no-data never darkens a valid edge pixel).

The masks (:mod:`.masks`) are computed on it, once per image, from the coarsest stored level at
or below the view's scale, read in row bands so that memory stays flat in the raster's size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .reader import RasterioImage

#: source values per band of one row band of the view (bounds memory: ~20 B a value)
BAND_VALUES = 250_000


def _area_resize(stack: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """(h, w, C) float32 -> (out_h, out_w, C) by area averaging (cv2, 4 channels at a time)."""
    import cv2

    if stack.shape[:2] == (out_h, out_w):
        return stack
    parts = [cv2.resize(stack[..., k : k + 4], (out_w, out_h), interpolation=cv2.INTER_AREA)
             .reshape(out_h, out_w, -1) for k in range(0, stack.shape[2], 4)]
    return np.concatenate(parts, axis=2)


def lowres_view(image: RasterioImage, downsample: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The whole raster at ``downsample`` (level-0 px per view px).

    Returns
    -------
    rgb : (h, w, 3) uint8 shown bands (stretched), black where no pixel under it is valid,
        never all-zero elsewhere; (h, w) = (ceil(H0 / downsample), ceil(W0 / downsample)).
    extras : ``"valid"`` (h, w) float32 fraction of valid level pixels; ``"nodata"`` (h, w)
        bool, no valid pixel; and the (h, w) float32 reflectance of every role the raster has
        (``"red"``, ``"green"``, ``"blue"``, ``"nir"``, ``"swir1"``), NaN where no-data.
    """
    roles = image.roles
    names = [r for r in ("red", "green", "blue", "nir", "swir1") if getattr(roles, r) is not None]
    idx = [int(getattr(roles, r)) for r in names]
    uniq = list(dict.fromkeys(idx))
    pos = [uniq.index(b) for b in idx]
    w0, h0 = image.dimensions
    out_w, out_h = max(1, math.ceil(w0 / downsample)), max(1, math.ceil(h0 / downsample))
    level = image.get_best_level_for_downsample(downsample)
    lds = image.level_downsamples[level]
    lw, lh = image.level_dimensions[level]
    sums = np.zeros((len(uniq), out_h, out_w), np.float32)  # planar: a band's plane is contiguous
    frac = np.zeros((out_h, out_w), np.float32)
    rows_per_band = max(1, int(BAND_VALUES / max(1, lw * (downsample / lds))))
    for oy in range(0, out_h, rows_per_band):
        oh = min(rows_per_band, out_h - oy)
        y0 = round(oy * downsample / lds)
        y1 = max(y0 + 1, min(lh, round((oy + oh) * downsample / lds)))
        raw, valid, _ = image.read_bands((0, math.ceil(y0 * lds)), level, (lw, y1 - y0), uniq)
        stack = np.empty((*valid.shape, len(uniq) + 1), np.float32)  # bands x valid, valid
        vf = stack[..., -1]
        vf[...] = valid
        for k in range(len(uniq)):
            plane = stack[..., k]
            plane[...] = raw[k]
            if raw.dtype.kind == "f":  # (integers hold no NaN)
                np.nan_to_num(plane, copy=False)
            plane *= vf
        del raw, valid
        small = _area_resize(stack, out_w, oh)
        sums[:, oy : oy + oh] = small[..., :-1].transpose(2, 0, 1)
        frac[oy : oy + oh] = small[..., -1]
    nodata = frac <= 0
    # raw band values averaged over the valid pixels (0 where none is: drawn black, NaN below)
    mean = sums
    mean /= np.maximum(frac, 1e-12)[None]
    rgb_raw = mean[:3] if pos[:3] == [0, 1, 2] else mean[[pos[0], pos[1], pos[2]]]
    rgb = image.to_rgb8(rgb_raw, ~nodata)
    del rgb_raw
    scale, offset = image.reflectance
    extras: dict[str, np.ndarray] = {"valid": np.clip(frac, 0, 1), "nodata": nodata}
    for name, p in zip(names, pos):
        if pos.count(p) == 1:  # the band's plane becomes its reflectance, in place
            refl = mean[p]
            refl *= np.float32(scale)
            refl += np.float32(offset)
        else:  # a band with two roles (a grey raster): a copy each
            refl = mean[p] * np.float32(scale) + np.float32(offset)
        refl[nodata] = np.nan
        extras[name] = refl
    return rgb, extras


__all__ = ["lowres_view"]
