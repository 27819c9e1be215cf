"""Satellite masks on the low-resolution view: valid data, clouds, water and vegetation.

The index functions work on reflectance arrays of any shape (the reader's view gives every band
role in reflectance, :meth:`RasterioImage.view_extras`):

* NDVI ``(NIR - R) / (NIR + R)`` (vegetation above ``ndvi_threshold``);
* NDWI (McFeeters 1996) ``(G - NIR) / (G + NIR)`` and, when the raster has a SWIR1 band, MNDWI
  (Xu 2006) ``(G - SWIR1) / (G + SWIR1)``: water above ``ndwi_threshold`` / ``mndwi_threshold``;
  without NIR, a colour rule on the shown RGB (red well below blue, not green, not bright);
* clouds: bright (mean visible reflectance), white (Fmask's whiteness: the bands stay close to
  their mean) and hazy (the haze-optimised transform ``B - 0.5 R - 0.08 > 0``, which bright bare
  ground, gravel and roofs fail: their blue is below their red; for 8-bit display values, which
  are not reflectance, the same test against the scene's own clear line).

The hooks below wire them in for ``domain == "satellite"``: the foreground is every pixel that
holds data; ``plugin.satellite.exclude`` masks are removed from it; every mask is a per-patch
score column of its name, as is ``nodata``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gigapatch import ImageContext, hookimpl, mask_fraction

from .bands import GUESSED_SCALES
from .reader import RasterioImage
from .settings import DOMAIN, MASK_NAMES, SatelliteSettings, settings


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) / (a + b)`` as float64 rounded to 1e-6, NaN where ``a + b == 0`` or an input is
    NaN. The rounding absorbs the float32 error of the view's reflectances (~1e-7), so that a
    ratio that is exactly a threshold (60 and 40 give 0.2) stays exactly it, as on the raw
    values; two 8-bit ratios are never closer than ~4e-6."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 1:
        af, bf = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
        return _normalized_difference(af, bf)
    out = np.empty(a.shape, np.float64)
    step = max(1, ROWS_VALUES // max(1, a[0].size))
    for y in range(0, a.shape[0], step):  # row blocks: float64 temporaries stay small
        out[y : y + step] = _normalized_difference(np.asarray(a[y : y + step], np.float64),
                                                   np.asarray(b[y : y + step], np.float64))
    return out


#: values of the row blocks the per-pixel indices are computed in (bounds their temporaries)
ROWS_VALUES = 1 << 18


def _normalized_difference(af: np.ndarray, bf: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.round((af - bf) / (af + bf), 6)
    out[~np.isfinite(out)] = np.nan
    return out


def ndvi(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    """NDVI ``(NIR - R) / (NIR + R)`` (float64, NaN where undefined)."""
    return normalized_difference(nir, red)


def ndwi(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """McFeeters' NDWI ``(G - NIR) / (G + NIR)`` (float64, NaN where undefined)."""
    return normalized_difference(green, nir)


def mndwi(green: np.ndarray, swir1: np.ndarray) -> np.ndarray:
    """Xu's MNDWI ``(G - SWIR1) / (G + SWIR1)`` (float64, NaN where undefined)."""
    return normalized_difference(green, swir1)


def above(index: np.ndarray, threshold: float) -> np.ndarray:
    """Bool ``index > threshold`` (False where the index is NaN)."""
    i = np.asarray(index)
    if i.dtype.kind == "f" and np.isfinite(threshold):  # NaN compares False: no copy needed
        with np.errstate(invalid="ignore"):
            return np.greater(i, threshold)
    return np.nan_to_num(i, nan=-np.inf) > threshold


def valid_mask(rgb: np.ndarray) -> np.ndarray:
    """(h, w) bool: True where the pixel holds data, i.e. is not all-zero (no-data is black).

    :class:`RasterioImage` renders no-data as ``(0, 0, 0)`` and never renders a valid pixel all
    zero, so this is exact for its views; for other images it treats pure black as no-data.
    """
    return np.asarray(rgb)[..., :3].max(axis=-1) > 0


def hot_residual(red: np.ndarray, blue: np.ndarray, valid: np.ndarray | None = None
                 ) -> np.ndarray:
    """The haze-optimised transform against the scene's own clear line (float32, NaN where an
    input is): ``B - (a R + c)``, with ``a``, ``c`` fitted by least squares on the valid pixels
    darker than the scene's 80th percentile of ``(R + B) / 2`` (clouds are brighter, and few),
    divided by 1.4826 x the median absolute deviation of those pixels' residuals, so that a
    clear pixel is within a few units of 0."""
    r = np.asarray(red, np.float32)
    b = np.asarray(blue, np.float32)
    ok = np.isfinite(r) & np.isfinite(b) & (True if valid is None else valid)
    out = np.full(r.shape, np.nan, np.float32)
    if ok.sum() < 16:
        return out
    bright = (r + b) / 2
    fit = ok & (bright <= np.percentile(bright[ok], 80))
    a, c = np.linalg.lstsq(np.stack([r[fit], np.ones(int(fit.sum()), np.float32)], axis=1),
                           b[fit], rcond=None)[0]
    res = b - (a * r + c)
    mad = float(np.median(np.abs(res[fit] - np.median(res[fit])))) * 1.4826
    out[ok] = res[ok] / max(mad, 1e-6)
    return out


def cloud_mask(
    red: np.ndarray, green: np.ndarray, blue: np.ndarray, *, min_brightness: float = 0.3,
    max_whiteness: float = 0.7, hot: str = "fixed", min_hot: float = 0.0,
    min_scene_hot: float = 3.0,
) -> np.ndarray:
    """(h, w) bool clouds from visible reflectance (any equal shapes).

    Bright: ``mean(R, G, B) >= min_brightness``; white: ``sum |band - mean| / mean <=
    max_whiteness`` (Fmask's whiteness); hazy: ``hot="fixed"``, the haze-optimised transform
    ``B - 0.5 R - 0.08 > min_hot`` (Zhang et al. 2002, TOA reflectance; bright bare ground,
    gravel and roofs fail it: their blue is below their red); ``hot="scene"``, the same against
    the scene's own clear line (:func:`hot_residual` above ``min_scene_hot``), for values that are
    not reflectance (8-bit display images); ``hot="none"``: no haze test. NaN (no-data) is never
    cloud.
    """
    r, g, b = (np.asarray(x, np.float32) for x in (red, green, blue))
    if hot != "scene" and r.ndim >= 1 and r.shape == g.shape == b.shape and r.size > ROWS_VALUES:
        # per pixel: row blocks keep the float temporaries small
        out_all = np.empty(r.shape, bool)
        step = max(1, ROWS_VALUES // max(1, r[0].size))
        for y in range(0, r.shape[0], step):
            sl = slice(y, y + step)
            out_all[sl] = cloud_mask(r[sl], g[sl], b[sl], min_brightness=min_brightness,
                                     max_whiteness=max_whiteness, hot=hot, min_hot=min_hot,
                                     min_scene_hot=min_scene_hot)
        return out_all
    mean = (r + g + b) / 3
    with np.errstate(divide="ignore", invalid="ignore"):
        white = (np.abs(r - mean) + np.abs(g - mean) + np.abs(b - mean)) / mean
    out = (np.nan_to_num(mean, nan=-1.0) >= min_brightness) & (
        np.nan_to_num(white, nan=np.inf) <= max_whiteness)
    if hot == "fixed":
        out &= np.nan_to_num(b - 0.5 * r - 0.08, nan=-np.inf) > min_hot
    elif hot == "scene":
        out &= np.nan_to_num(hot_residual(r, b), nan=-np.inf) > min_scene_hot
    elif hot != "none":
        raise ValueError(f"hot must be fixed, scene or none, got {hot!r}")
    return out


def rgb_water(rgb: np.ndarray, *, max_brightness: int = 200, max_red_ratio: float = 0.6,
              max_green_ratio: float = 1.25) -> np.ndarray:
    """(h, w) bool open water from the shown RGB alone (a raster without NIR): red at most
    ``max_red_ratio`` times blue (water absorbs red), green at most ``max_green_ratio`` times
    blue (not vegetation), darker than ``max_brightness`` (not cloud); no-data (black) is never
    water."""
    f = np.asarray(rgb)[..., :3].astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    return (valid_mask(rgb) & (r <= max_red_ratio * b) & (g <= max_green_ratio * b)
            & (f.max(axis=-1) < max_brightness))


def masks_of(rgb: np.ndarray, extras: dict[str, np.ndarray] | None,
             s: SatelliteSettings, reflectance_is_guess: bool = True) -> dict[str, np.ndarray]:
    """``{"cloud", "water", "vegetation"}`` (h, w) bool masks of a view (a pixel is at most
    one of them: cloud first, then water).

    ``extras`` is the reader's :meth:`~RasterioImage.view_extras` (reflectance per band role);
    without it (another image), the shown RGB / 255 stands in for visible reflectance.
    ``reflectance_is_guess``: the values are not known to be reflectance (an 8-bit image's /
    255): ``cloud_hot: auto`` then tests haze against the scene's own clear line.
    """
    e = extras or {}
    a = np.asarray(rgb)[..., :3]
    vis = [e[k] if k in e else a[..., i].astype(np.float32) / 255 for i, k in
           enumerate(("red", "green", "blue"))]
    if not e:
        for v in vis:
            v[~valid_mask(a)] = np.nan
    hot = s.cloud_hot
    if hot == "auto":  # the fixed clear line needs reflectance; display values get the scene's
        hot = "scene" if reflectance_is_guess else "fixed"
    cloud = cloud_mask(*vis, min_brightness=s.cloud_min_brightness,
                       max_whiteness=s.cloud_max_whiteness, hot=hot, min_hot=s.cloud_min_hot,
                       min_scene_hot=s.cloud_min_scene_hot)
    if "nir" in e:
        water = above(ndwi(e["green"], e["nir"]), s.ndwi_threshold)
        if "swir1" in e:
            water |= above(mndwi(e["green"], e["swir1"]), s.mndwi_threshold)
        vegetation = above(ndvi(e["nir"], e["red"]), s.ndvi_threshold)
    else:
        water = rgb_water(a, max_brightness=s.water_max_brightness,
                          max_red_ratio=s.water_max_red_ratio,
                          max_green_ratio=s.water_max_green_ratio)
        vegetation = np.zeros(a.shape[:2], bool)
    water &= ~cloud
    return {"cloud": cloud, "water": water, "vegetation": vegetation & ~cloud & ~water}


def view_extras(rgb: np.ndarray, image: Any) -> dict[str, np.ndarray] | None:
    """The valid fraction and band reflectances the image's reader knows for this view."""
    return image.view_extras(rgb) if isinstance(image, RasterioImage) else None


def nodata_of(rgb: np.ndarray, image: Any = None) -> np.ndarray:
    """(h, w) bool no-data of a view: no valid pixel under it (the reader's exact mask), else
    all-zero pixels."""
    extras = view_extras(rgb, image)
    if extras is not None:
        return extras["nodata"]
    return ~valid_mask(rgb)


def valid_fraction(rgb: np.ndarray, image: Any = None) -> np.ndarray:
    """(h, w) float32 fraction of each view pixel that holds data."""
    extras = view_extras(rgb, image)
    if extras is not None:
        return extras["valid"]
    return valid_mask(rgb).astype(np.float32)


def context_masks(context: ImageContext) -> dict[str, np.ndarray]:
    """:func:`masks_of` the context's view, computed once per image (``plugin_cache``)."""
    cache = context.plugin_cache(DOMAIN)
    if "masks" not in cache:
        assert context.rgb is not None
        image = context.image
        guess = (not isinstance(image, RasterioImage)
                 or image.properties["reflectance"]["source"] in GUESSED_SCALES)
        cache["masks"] = masks_of(context.rgb, view_extras(context.rgb, image),
                                  settings(context.config), guess)
    masks: dict[str, np.ndarray] = cache["masks"]
    return masks


# --------------------------------------------------------------------------- hooks


@hookimpl
def gigapatch_foreground_mask(rgb: np.ndarray, context: ImageContext) -> np.ndarray | None:
    """Satellite foreground: every pixel that holds some data."""
    if context.domain != DOMAIN:
        return None
    return ~nodata_of(rgb, context.image) & valid_mask(rgb)


@hookimpl
def gigapatch_exclusion_masks(
    rgb: np.ndarray, context: ImageContext
) -> dict[str, np.ndarray] | None:
    """The masks named in ``plugin.satellite.exclude`` (default: clouds and water)."""
    if context.domain != DOMAIN:
        return None
    wanted = settings(context.config).exclude
    if not wanted:
        return None
    masks = context_masks(context)
    return {name: masks[name] for name in wanted}


@hookimpl
def gigapatch_score_patches(coords: np.ndarray, context: ImageContext) -> dict[str, np.ndarray] | None:
    """Per candidate: ``nodata`` (see :func:`gigapatch_satellite.footprint.nodata_fractions`),
    the fraction of every mask that is not excluded (the excluded ones are scored by the
    pipeline already), and, when a candidate reaches past the raster's edge, every candidate's
    ``foreground`` of the part inside the raster (the same as the mask's for the others)."""
    if context.domain != DOMAIN:
        return None
    from .footprint import inside_fraction, nodata_fractions

    assert context.geometry is not None and context.rgb is not None  # set before the scores
    assert context.mask is not None
    c = np.asarray(coords).reshape(-1, 2)
    size0 = context.geometry.size_level0
    ds = context.mask_downsample
    out = {"nodata": nodata_fractions(context, c)}
    inside = inside_fraction(c, size0, context.image.dimensions)
    if (inside < 1).any() and not context.config.patch.per_region:
        # a patch past the raster's edge is judged on the part inside it (its padding is
        # neither foreground nor no-data; it is flagged partial)
        fg = mask_fraction(context.mask, c, size0, ds) / np.maximum(inside, 1e-12)
        out["foreground"] = np.clip(fg, 0.0, 1.0).astype(np.float32)
    excluded = set(settings(context.config).exclude)
    masks = context_masks(context)
    for name in MASK_NAMES:
        if name not in excluded:
            out[name] = mask_fraction(masks[name], c, size0, ds)
    return out


@hookimpl
def gigapatch_reject_patches(scores: dict[str, np.ndarray], context: ImageContext
                             ) -> dict[str, np.ndarray] | None:
    """``nodata``: more no-data than ``plugin.satellite.max_nodata`` in the part of the patch
    inside the raster."""
    if context.domain != DOMAIN or "nodata" not in scores:
        return None
    limit = settings(context.config).max_nodata
    return {"nodata": np.nan_to_num(scores["nodata"], nan=0.0) > limit + 1e-9}
