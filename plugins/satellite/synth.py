"""A synthetic 4-band (R, G, B, NIR) satellite scene with known land cover, for the demo and tests.

:func:`synthetic_scene` draws surface reflectances and returns them as uint16 digital numbers
(reflectance x 10000, as Sentinel-2 L2A stores them; 0 is no-data):

* a rotated footprint: the acquisition's swath, tilted by 8-12 degrees inside the north-up grid,
  leaves no-data corners, as a Landsat scene's does;
* fields: an irregular grid of parcels (itself slightly rotated) of crops (with sowing rows),
  pasture and bare soil, crossed by a few roads;
* a forest: a large irregular stand of dark, textured, strongly near-infrared vegetation;
* a lake: dark water, blue above red and almost no near infrared (NDWI ~ 0.4);
* clouds: bright grey puffs over about ``cloud_cover`` of the footprint, with their shadows.

The ground truth comes back with the bands: the valid footprint, water and cloud (bool masks,
level 0). :func:`write_geotiff` writes the scene as a tiled GeoTIFF in a UTM CRS with nodata 0,
band colour interpretations red / green / blue / undefined (the NIR) and internal overviews.
Everything is deterministic per seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: surface reflectance (R, G, B, NIR) of each cover
REFLECTANCE: dict[str, tuple[float, float, float, float]] = {
    "crop": (0.045, 0.085, 0.040, 0.38),
    "pasture": (0.070, 0.100, 0.055, 0.30),
    "soil": (0.210, 0.165, 0.120, 0.27),
    "forest": (0.045, 0.075, 0.040, 0.30),
    "road": (0.170, 0.165, 0.160, 0.20),
    "water": (0.030, 0.050, 0.065, 0.015),
    "cloud": (0.720, 0.730, 0.750, 0.700),
}
#: field covers and how often a parcel has each
FIELD_COVERS = (("crop", 0.5), ("pasture", 0.3), ("soil", 0.2))
#: where clouds are at least this opaque, the truth calls the pixel cloud
CLOUD_TRUTH_ALPHA = 0.5
#: the default CRS (WGS 84 / UTM zone 33N) and upper-left corner (m) of the demo scene
CRS = "EPSG:32633"
ORIGIN = (399960.0, 5300040.0)


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """(h, w) float32 Gaussian noise with unit std and feature size ~``cell`` px."""
    import cv2

    c = max(1.0, float(cell))
    gh, gw = int(h / c) + 4, int(w / c) + 4
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    up = cv2.resize(g, (math.ceil(gw * c), math.ceil(gh * c)), interpolation=cv2.INTER_CUBIC)
    up = up[:h, :w]
    return (up - up.mean()) / (up.std() + 1e-6)


def _rotated(h: int, w: int, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) float32 coordinates (u, v) of every pixel about the centre, rotated by
    ``degrees``."""
    t = math.radians(degrees)
    x = np.arange(w, dtype=np.float32)[None, :] - w / 2
    y = np.arange(h, dtype=np.float32)[:, None] - h / 2
    return x * math.cos(t) + y * math.sin(t), y * math.cos(t) - x * math.sin(t)


def _near_edges(coord: np.ndarray, cell: np.ndarray, edges: np.ndarray, chosen: np.ndarray,
                half_width: float) -> np.ndarray:
    """(h, w) bool: within ``half_width`` of a chosen edge. ``cell`` is
    ``searchsorted(edges, coord)``: pixel lies between ``edges[cell - 1]`` and ``edges[cell]``."""
    lo = np.concatenate([[-np.inf], edges]).astype(np.float32)
    hi = np.concatenate([edges, [np.inf]]).astype(np.float32)
    lo_on = np.concatenate([[False], chosen])
    hi_on = np.concatenate([chosen, [False]])
    return ((lo_on[cell] & (coord - lo[cell] < half_width))
            | (hi_on[cell] & (hi[cell] - coord < half_width)))


def footprint(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w) bool valid data: a square swath 80 % of the scene wide, rotated by 8-12 degrees."""
    u, v = _rotated(h, w, rng.uniform(8, 12) * rng.choice([-1, 1]))
    return (np.abs(u) < 0.40 * w) & (np.abs(v) < 0.40 * h)


def fields(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(4, h, w) float32 reflectance of parcels of crops, pasture and bare soil, with roads
    along some parcel edges."""
    p, q = _rotated(h, w, rng.uniform(-15, 15))
    side = 1.5 * max(h, w)
    cols = np.cumsum(rng.uniform(60, 180, int(side / 60) + 2)) - side / 2
    rows = np.cumsum(rng.uniform(50, 140, int(side / 50) + 2)) - side / 2
    ci, ri = np.searchsorted(cols, p), np.searchsorted(rows, q)
    parcel = ci * (len(rows) + 1) + ri
    n = (len(cols) + 1) * (len(rows) + 1)
    names = [c for c, _ in FIELD_COVERS]
    kind = rng.choice(len(names), n, p=[f for _, f in FIELD_COVERS])
    table = np.array([REFLECTANCE[c] for c in names], np.float32)[kind]  # (n, 4)
    table *= rng.uniform(0.85, 1.15, (n, 1)).astype(np.float32)  # parcel-to-parcel variety
    out = table[parcel].transpose(2, 0, 1)  # (4, h, w)
    crop = kind[parcel] == names.index("crop")
    out *= 1.0 + 0.04 * np.sin(2 * np.pi * p / 6.0) * crop  # sowing rows
    out *= 1.0 + 0.05 * smooth_noise(rng, h, w, 12)  # soil moisture, growth
    roads = (_near_edges(p, ci, cols, rng.random(len(cols)) < 0.2, 1.2)
             | _near_edges(q, ri, rows, rng.random(len(rows)) < 0.15, 1.2))
    out[:, roads] = np.array(REFLECTANCE["road"], np.float32)[:, None]
    return out


def _blob(rng: np.random.Generator, h: int, w: int, centre: tuple[float, float],
          radii: tuple[float, float], wiggle: float) -> np.ndarray:
    """(h, w) bool irregular blob: an ellipse whose radius varies by ~``wiggle``."""
    y, x = np.mgrid[:h, :w].astype(np.float32)
    r = np.hypot((x - centre[0]) / radii[0], (y - centre[1]) / radii[1])
    return r + wiggle * smooth_noise(rng, h, w, 0.5 * min(radii)) < 1.0


def clouds(rng: np.random.Generator, h: int, w: int, cover: float) -> np.ndarray:
    """(h, w) float32 cloud opacity in [0, 1], opaque (>= 0.5) over about ``cover`` of the
    scene: two octaves of smooth noise cut at their ``1 - cover`` quantile, with soft edges."""
    cell = max(h, w) / 12
    n = smooth_noise(rng, h, w, cell) + 0.35 * smooth_noise(rng, h, w, cell / 4)
    cut = float(np.quantile(n[::8, ::8], 1 - cover))
    return np.clip(0.5 + (n - cut) / 0.6, 0, 1).astype(np.float32)


def synthetic_scene(seed: int, size: int = 2048, cloud_cover: float = 0.02
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A 4-band (R, G, B, NIR) scene of ``size`` x ``size`` px (10 m pixels) and its truth.

    Parameters
    ----------
    seed : random seed (the same seed draws the same scene).
    size : side in px.
    cloud_cover : fraction of the scene under opaque cloud (before the footprint is cut).

    Returns
    -------
    bands : (4, size, size) uint16 digital numbers (reflectance x 10000), 0 outside the
        footprint and never 0 inside it.
    truth : ``{"valid", "water", "cloud"}`` (size, size) bool; water and cloud only where valid,
        and water only where no opaque cloud hides it.
    """
    h = w = int(size)
    rng = np.random.default_rng(seed)
    valid = footprint(rng, h, w)
    refl = fields(rng, h, w)
    forest = _blob(rng, h, w, (w * rng.uniform(0.25, 0.75), h * rng.uniform(0.2, 0.35)),
                   (w * 0.16, h * 0.09), 0.35)
    tex = 1.0 + 0.12 * smooth_noise(rng, h, w, 3)  # crowns
    refl[:, forest] = (np.array(REFLECTANCE["forest"], np.float32)[:, None] * tex[forest])
    lake = _blob(rng, h, w, (w * rng.uniform(0.35, 0.65), h * rng.uniform(0.55, 0.7)),
                 (w * 0.11, h * 0.07), 0.3)
    refl[:, lake] = np.array(REFLECTANCE["water"], np.float32)[:, None] * (
        1.0 + 0.05 * rng.standard_normal(int(lake.sum()), dtype=np.float32))
    alpha = clouds(rng, h, w, cloud_cover)
    shift = (int(0.02 * h), int(0.03 * w))  # shadows fall south-east of their clouds
    shadow = np.zeros_like(alpha)
    shadow[shift[0]:, shift[1]:] = alpha[: h - shift[0], : w - shift[1]]
    refl *= 1.0 - 0.45 * shadow
    cloud = np.array(REFLECTANCE["cloud"], np.float32)[:, None, None]
    refl = refl * (1 - alpha) + cloud * alpha * (0.95 + 0.05 * smooth_noise(rng, h, w, 20))
    refl += 0.002 * rng.standard_normal(refl.shape, dtype=np.float32)  # sensor noise
    dn = np.clip(np.round(refl * 10000), 1, 65535).astype(np.uint16)
    dn[:, ~valid] = 0
    opaque = alpha >= CLOUD_TRUTH_ALPHA
    truth = {"valid": valid, "water": lake & valid & ~opaque, "cloud": opaque & valid}
    return dn, truth


def write_geotiff(path: str | Path, bands: np.ndarray, *, pixel_m: float = 10.0,
                  crs: str = CRS, origin: tuple[float, float] = ORIGIN) -> Path:
    """Write (4, H, W) uint16 R, G, B, NIR as a tiled, deflate-compressed GeoTIFF.

    North-up ``pixel_m`` pixels from the upper-left corner ``origin`` (m) in ``crs``; nodata 0;
    colour interpretations red, green, blue, undefined and band descriptions red, green, blue,
    nir; internal overviews at 2x, 4x, 8x (nodata-aware averages). Written to a temporary name,
    then renamed.
    """
    import rasterio
    from rasterio.enums import ColorInterp, Resampling
    from rasterio.transform import Affine

    from gigapatch import atomic_path

    p = Path(path)
    count, h, w = bands.shape
    profile = {
        "driver": "GTiff", "width": w, "height": h, "count": count, "dtype": "uint16",
        "crs": crs, "transform": Affine(pixel_m, 0.0, origin[0], 0.0, -pixel_m, origin[1]),
        "nodata": 0, "tiled": True, "blockxsize": 256, "blockysize": 256,
        "compress": "deflate", "predictor": 2, "interleave": "pixel", "photometric": "RGB",
    }
    names = ("red", "green", "blue", "nir")[:count]
    with atomic_path(p) as tmp, rasterio.open(tmp, "w", **profile) as ds:
        ds.write(bands)
        ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue,
                          *[ColorInterp.undefined] * (count - 3)]
        for i, name in enumerate(names, start=1):
            ds.set_band_description(i, name)
        factors = [f for f in (2, 4, 8) if min(h, w) // f >= 64]
        ds.build_overviews(factors, Resampling.average)
        ds.update_tags(ns="rio_overview", resampling="average")
    return p
