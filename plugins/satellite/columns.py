"""Where every patch is on Earth: its window, affine transform, bounds and EPSG code, as
per-patch columns of the h5 (``columns/<name>``) and of the table (and so of the GeoParquet).

=================================  ==========================================================
``col_off``, ``row_off``           level-0 window origin (px, int64; the patch's ``x``, ``y``)
``width``, ``height``              level-0 window size (px, int64)
``transform_a`` ... ``transform_f``  the chip's affine transform (float64): rasterio's
                                   ``window_transform(window)`` scaled by the chip's pixel
                                   size (equal to it for a patch read at level 0, unresized)
``left``, ``bottom``, ``right``, ``top``  bounds in the raster's CRS (float64)
``epsg``                           EPSG code of the CRS (int64; 0 when it has none)
``partial``                        bool: the patch holds data and also no-data or the outside
                                   of the raster (not a full chip of data; replaces the core's
                                   ``partial``, which flags only the outside)
=================================  ==========================================================
"""

from __future__ import annotations

import numpy as np

from gigapatch import ImageContext, hookimpl

from .geo import patch_bounds, patch_transforms
from .reader import RasterioImage
from .settings import DOMAIN

TRANSFORM = tuple(f"transform_{k}" for k in "abcdef")
BOUNDS = ("left", "bottom", "right", "top")


def georef_columns(coords: np.ndarray, size_level0: int, size: int, transform: object,
                   epsg: int | None) -> dict[str, np.ndarray]:
    """The columns above for patches at ``coords`` (N, 2) of ``size_level0`` level-0 px, read as
    chips of ``size`` px, on a raster of level-0 ``transform`` and EPSG code ``epsg``."""
    c = np.asarray(coords, np.int64).reshape(-1, 2)
    n = len(c)
    t = patch_transforms(c, size_level0, size, transform)
    b = patch_bounds(c, size_level0, transform)
    out: dict[str, np.ndarray] = {
        "col_off": c[:, 0].copy(), "row_off": c[:, 1].copy(),
        "width": np.full(n, size_level0, np.int64), "height": np.full(n, size_level0, np.int64),
    }
    out.update({name: t[:, k] for k, name in enumerate(TRANSFORM)})
    out.update({name: b[:, k] for k, name in enumerate(BOUNDS)})
    out["epsg"] = np.full(n, int(epsg or 0), np.int64)
    return out


@hookimpl
def gigapatch_patch_columns(coords: np.ndarray, context: ImageContext) -> dict[str, np.ndarray] | None:
    """Window, transform, bounds and EPSG of every placed patch of a georeferenced raster."""
    if context.domain != DOMAIN or not isinstance(context.image, RasterioImage):
        return None
    from .footprint import partial_patches

    geom = context.geometry
    assert geom is not None
    p = context.image.properties
    out = georef_columns(coords, geom.size_level0, geom.size, p["transform"], p["epsg"])
    out["partial"] = partial_patches(context, coords)
    return out


__all__ = ["BOUNDS", "TRANSFORM", "georef_columns"]
