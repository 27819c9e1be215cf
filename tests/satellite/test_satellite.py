"""The satellite plugin on real GeoTIFFs (the satellite folder of the real test data, see its PROVENANCE.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_paths import need

import gigapatch
from gigapatch import ConfigError, ImageError, load_config, open_image, tile_image
from gigapatch_satellite import (
    RasterioImage,
    cloud_mask,
    patch_bounds,
    patch_polygons,
    to_geojson,
    valid_mask,
    water_mask,
    write_geojson,
)

rasterio = pytest.importorskip("rasterio")
Window = rasterio.windows.Window
window_bounds = rasterio.windows.bounds

BYTE = "RGB.byte.tif"  # 791 x 718 uint8 RGB, nodata=0 corners, no overviews
COG = "RGB.byte.cog.tif"  # the same pixels as a COG with 2x and 4x overviews
LC08 = "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"  # 2041 x 1860 uint16 B, G, R; 0 = fill
RGBN = "rgbn.tif"  # 515 x 403 uint8 R, G, B, NIR


@pytest.fixture(scope="module")
def sat(satellite_dir: Path) -> Path:
    """The satellite scenes of the real test data (the tests skip without them)."""
    need(satellite_dir / BYTE, "rasterio's RGB.byte scene")
    return satellite_dir


def true_nodata(path: Path) -> np.ndarray:
    """(H, W) bool no-data of level 0, straight from GDAL's dataset mask."""
    with rasterio.open(path) as ds:
        return ds.dataset_mask() == 0


def fraction_under(mask: np.ndarray, coords: np.ndarray, size: int) -> np.ndarray:
    return np.array([mask[y : y + size, x : x + size].mean() for x, y in coords])


# ----------------------------------------------------------------------------- domain / config


def test_domain_is_declared_with_its_defaults() -> None:
    from gigapatch.plugin.manager import list_domains

    assert "satellite" in list_domains()
    cfg = load_config("satellite")
    assert cfg.domain == "satellite"
    assert cfg.patch.size == 256 and cfg.patch.min_foreground == 0.5
    assert cfg.plugin["satellite"]["exclude"] == ["cloud", "water"]


def test_bad_plugin_setting_is_one_line_config_error(sat: Path) -> None:
    cfg = load_config("satellite", overrides={"plugin.satellite.clouds": 3})
    with RasterioImage(sat / BYTE) as img, pytest.raises(ConfigError) as e:
        tile_image(img, cfg)
    assert "plugin.satellite.clouds" in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------- reader


def test_open_image_routes_by_domain(sat: Path, pathology_dir: Path) -> None:
    for domain in ("satellite", None):  # with no domain, a GeoTIFF goes to rasterio
        with open_image(sat / COG, domain=domain) as img:
            assert isinstance(img, RasterioImage)
    for domain in ("pathology", "metal_surface"):  # another domain named: not ours
        with open_image(sat / COG, domain=domain) as img:
            assert not isinstance(img, RasterioImage)
    for slide in ("CMU-1-Small-Region.svs", "CMU-1-Small-Region.generic-pyramid.tiff"):
        with open_image(pathology_dir / slide) as img:  # plain TIFFs never go through rasterio
            assert not isinstance(img, RasterioImage)
    with open_image(sat / COG, reader="rasterio") as img:
        assert isinstance(img, RasterioImage)


def test_geotiffs_are_told_by_their_header(sat: Path, pathology_dir: Path, tmp_path: Path) -> None:
    from gigapatch_satellite import is_geotiff

    for name in (BYTE, COG, LC08, RGBN):
        assert is_geotiff(sat / name), name
    for name in ("CMU-1-Small-Region.svs", "CMU-1-Small-Region.generic-pyramid.tiff",
                 "CMU-1-Small-Region.pyramid.ome.tiff", "kidney-48-5.tif"):
        assert not is_geotiff(pathology_dir / name), name
    big = tmp_path / "big.tif"  # BigTIFF, with and without georeferencing
    with rasterio.open(big, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=rasterio.transform.Affine(1, 0, 0, 0, -1, 64),
                       BIGTIFF="YES") as ds:
        ds.write(np.ones((1, 64, 64), np.uint8))
    assert big.read_bytes()[2] == 43 and is_geotiff(big)
    import tifffile

    tifffile.imwrite(tmp_path / "plain-big.tif", np.ones((64, 64), np.uint8), bigtiff=True)
    assert not is_geotiff(tmp_path / "plain-big.tif")
    for name, data in (("png.tif", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64), ("short.tif", b"II*\x00"),
                       ("offset.tif", b"II*\x00\xff\xff\xff\x7f" + b"\x00" * 64)):
        (tmp_path / name).write_bytes(data)
        assert not is_geotiff(tmp_path / name), name
    assert not is_geotiff(tmp_path / "missing.tif")


def test_a_georeferenced_raster_claims_the_satellite_domain(sat: Path, pathology_dir: Path) -> None:
    from gigapatch.plugin.manager import image_domain

    with open_image(sat / COG) as img:
        assert image_domain(img) == "satellite"
    with open_image(pathology_dir / "CMU-1-Small-Region.svs") as img:
        assert image_domain(img) == "pathology"
    # rasterio forced onto a file without a CRS: not a satellite scene
    with open_image(pathology_dir / "CMU-1-Small-Region.generic-pyramid.tiff",
                    reader="rasterio") as img:
        assert img.crs is None and image_domain(img) != "satellite"


def test_broken_files_are_one_line_image_errors(tmp_path: Path, sat: Path) -> None:
    bad = tmp_path / "garbage.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 64)
    with pytest.raises(ImageError) as e:
        RasterioImage(bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ImageError):
        open_image(bad, domain="satellite")
    with pytest.raises(ImageError, match="bands"):
        RasterioImage(sat / BYTE, bands=(1, 2, 7))


def test_cog_overviews_are_pyramid_levels(sat: Path) -> None:
    with RasterioImage(sat / COG) as img, rasterio.open(sat / COG) as ds:
        dims = [(ds.width, ds.height)]
        for k in range(len(ds.overviews(1))):
            with rasterio.open(sat / COG, overview_level=k) as ov:
                dims.append((ov.width, ov.height))
        assert img.level_dimensions == tuple(dims) and img.level_count == 3
        assert img.level_downsamples[1] == pytest.approx(2.0, abs=0.01)
        # an inside window of level 1 is the overview's pixels (8-bit: no stretch)
        with rasterio.open(sat / COG, overview_level=0) as ov:
            want = ov.read(window=Window(100, 80, 64, 48)).transpose(1, 2, 0)
            valid = ov.dataset_mask(window=Window(100, 80, 64, 48)) > 0
        x0 = int(np.ceil(100 * img.level_downsamples[1]))
        y0 = int(np.ceil(80 * img.level_downsamples[1]))
        got = img.read_region((x0, y0), 1, (64, 48))
        assert got.shape == (48, 64, 3) and got.dtype == np.uint8
        assert valid.mean() > 0.9
        np.testing.assert_array_equal(got[valid], want[valid])
        # outside the raster is white, no-data inside it black
        corner = img.read_region((-10, -10), 0, (20, 20))
        assert (corner[:10, :] == 255).all() and (corner[10:, 10:] == 0).all()


def test_properties_carry_the_georeferencing(sat: Path) -> None:
    with RasterioImage(sat / BYTE) as img, rasterio.open(sat / BYTE) as ds:
        p = img.properties
        assert img.mpp is None
        assert p["crs"] == "EPSG:32618" and p["epsg"] == 32618
        assert p["transform"] == pytest.approx(tuple(ds.transform)[:6])
        assert p["bounds"] == pytest.approx(tuple(ds.bounds))
        assert p["pixel_size_m"] == pytest.approx(300.04, abs=0.01)
        assert p["nodata"] == 0


def test_nodata_mask_is_the_files_mask(sat: Path) -> None:
    truth = true_nodata(sat / BYTE)
    assert 0.3 < truth.mean() < 0.35
    with RasterioImage(sat / BYTE) as img:
        np.testing.assert_array_equal(img.nodata_mask(1), truth)
        rgb = img.read_level_downsampled(1)
        np.testing.assert_array_equal(~valid_mask(rgb), truth)  # no-data is black, data never
        coarse = img.nodata_mask(8)
        assert coarse.shape == (90, 99)
        assert abs(coarse.mean() - truth.mean()) < 0.01


def test_16bit_bands_are_stretched_and_fill_is_nodata(sat: Path) -> None:
    with rasterio.open(sat / LC08) as ds:
        raw = ds.read()
    fill = (raw == 0).all(axis=0)  # no nodata declared: 0 is Landsat fill
    with RasterioImage(sat / LC08, bands=(3, 2, 1)) as img:
        assert img.properties["dtype"] == "uint16" and img.bands == (3, 2, 1)
        rgb = img.read_region((0, 0), 0, img.dimensions)
    assert rgb.dtype == np.uint8
    np.testing.assert_array_equal(~valid_mask(rgb), fill)
    valid = rgb[~fill]
    for band in range(3):  # 2-98 % stretch: about 2 % of the valid pixels clip at each end
        assert 0.005 < (valid[:, band] == 255).mean() < 0.05
        assert 0.005 < (valid[:, band] <= 1).mean() < 0.05
    # red is shown as red: band 3 of the file (B, G, R order) ranks like the red channel
    red = raw[2][~fill].astype(np.float64)
    assert np.corrcoef(red, valid[:, 0])[0, 1] > 0.9


def test_alpha_band_and_float_nodata_are_masked(tmp_path: Path) -> None:
    from rasterio.enums import ColorInterp

    transform = rasterio.Affine(10, 0, 500000, 0, -10, 4000000)
    rng = np.random.default_rng(0)
    rgba = rng.integers(1, 255, (4, 60, 80), dtype=np.uint8)
    rgba[3] = 255
    rgba[3, :, :20] = 0  # transparent left strip
    path = tmp_path / "rgba.tif"
    with rasterio.open(path, "w", driver="GTiff", width=80, height=60, count=4, dtype="uint8",
                       crs="EPSG:32633", transform=transform, photometric="RGB", alpha="YES") as ds:
        ds.write(rgba)
        ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    with RasterioImage(path) as img:
        assert img.bands == (1, 2, 3) and img.nir_band is None  # alpha is neither
        nodata = img.nodata_mask(1)
        assert nodata[:, :20].all() and not nodata[:, 20:].any()
        rgb = img.read_region((0, 0), 0, (80, 60))
        assert (rgb[:, :20] == 0).all()
        np.testing.assert_array_equal(rgb[:, 20:], rgba[:3, :, 20:].transpose(1, 2, 0))
    # float band with a nodata value and NaNs, shown as grey and stretched
    dem = np.linspace(100.0, 900.0, 60 * 80, dtype=np.float32).reshape(60, 80)
    dem[:10] = -9999.0
    dem[10:15, :5] = np.nan
    path = tmp_path / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=80, height=60, count=1, dtype="float32",
                       crs="EPSG:32633", transform=transform, nodata=-9999.0) as ds:
        ds.write(dem, 1)
    with RasterioImage(path) as img:
        assert img.bands == (1, 1, 1)
        rgb = img.read_region((0, 0), 0, (80, 60))
        bad = np.zeros((60, 80), bool)
        bad[:10] = True
        bad[10:15, :5] = True
        np.testing.assert_array_equal(~valid_mask(rgb), bad)
        np.testing.assert_array_equal(img.nodata_mask(1), bad)
        grey = rgb[~bad][:, 0].astype(int)
        assert (rgb[..., 0] == rgb[..., 2]).all()
        assert grey.min() <= 1 and grey.max() == 255  # stretched to the full range
        assert np.all(np.diff(rgb[30, 5:, 0].astype(int)) >= 0)  # monotone, like the ramp


# ----------------------------------------------------------------------------- tiling


def test_tiling_keeps_no_patch_on_nodata_corners(sat: Path) -> None:
    size = 64
    cfg = load_config("satellite", overrides={"patch.size": size, "plugin.satellite.exclude": []})
    truth = true_nodata(sat / BYTE)
    with RasterioImage(sat / BYTE) as img:
        ps = gigapatch.tile_image(img, cfg)
    true_frac = fraction_under(truth, ps.coords, size)
    assert len(ps) > 80
    # no kept patch is mostly no-data (min_foreground 0.5; one mask pixel of slack)
    assert true_frac.max() <= 0.5 + 0.1
    assert (true_frac > 0).sum() > 10  # edge patches are tested, not only the interior
    np.testing.assert_allclose(ps.scores["nodata"], true_frac, atol=0.1)
    # every grid cell that is mostly data is kept
    ys, xs = np.mgrid[0 : 718 - size + 1 : size, 0 : 791 - size + 1 : size]
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
    mostly_data = grid[fraction_under(truth, grid, size) < 0.4]
    kept = {tuple(c) for c in ps.coords.tolist()}
    assert {tuple(c) for c in mostly_data.tolist()} <= kept
    assert {"cloud", "water", "nodata"} <= set(ps.scores)


def test_default_tiling_excludes_water_and_clouds(sat: Path) -> None:
    cfg = load_config("satellite", overrides={"patch.size": 64})
    with RasterioImage(sat / BYTE) as img:
        ps = tile_image(img, cfg)
    assert 0 < len(ps) < 40  # the island, not the sea
    assert np.all(ps.scores["water"] + ps.scores["cloud"] + ps.scores["nodata"] <= 0.5 + 0.1)


def test_cloud_and_water_masks_find_sea_cloud_and_land(sat: Path) -> None:
    with RasterioImage(sat / BYTE) as img:
        rgb = img.read_level_downsampled(1)
    water, cloud = water_mask(rgb), cloud_mask(rgb)

    def box(m: np.ndarray, x: int, y: int, s: int = 30) -> float:
        return float(m[y : y + s, x : x + s].mean())

    assert box(water, 80, 430) > 0.9 and box(cloud, 80, 430) < 0.05  # open sea, west
    assert box(cloud, 440, 80) > 0.8 and box(water, 440, 80) < 0.05  # the big cloud
    assert box(water, 390, 560) < 0.1 and box(cloud, 390, 560) < 0.1  # the island, south
    assert not water[~valid_mask(rgb)].any()  # no-data is never water


def test_nir_band_gives_ndwi_water(sat: Path) -> None:
    with RasterioImage(sat / RGBN) as img:
        assert img.nir_band == 4
        rgb = img.read_level_downsampled(2)
        extras = img.view_extras(rgb)
        assert img.view_extras(rgb.copy()) is None  # only the very array the reader returned
    assert extras is not None and extras["nir"].shape == rgb.shape[:2]
    with rasterio.open(sat / RGBN) as ds:
        g, n = ds.read(2).astype(np.float64), ds.read(4).astype(np.float64)
    assert extras["nir"].mean() == pytest.approx(n.mean(), rel=0.01)
    assert extras["green"].mean() == pytest.approx(g.mean(), rel=0.01)
    green = np.array([[100.0, 100.0, 50.0]])
    nir = np.array([[20.0, 90.0, 50.0]])  # NDWI 0.67, 0.05, 0
    grey = np.full((1, 3, 3), 90, np.uint8)
    assert water_mask(grey, green, nir, ndwi_threshold=0.3).tolist() == [[True, False, False]]


# ----------------------------------------------------------------------------- georeferencing


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # rasterio's own Affine use
def test_patch_bounds_match_rasterio_window_bounds(sat: Path) -> None:
    cfg = load_config("satellite", overrides={"patch.size": 64, "patch.level": 1,
                                              "plugin.satellite.exclude": []})
    with RasterioImage(sat / COG) as img, rasterio.open(sat / COG) as ds:
        ps = tile_image(img, cfg)
        assert ps.patch_size_level0 == 128 and len(ps) > 10
        got = patch_bounds(ps.coords, ps.patch_size_level0, img.transform)
        size = ps.patch_size_level0
        want = np.array([window_bounds(Window(x, y, size, size), ds.transform)
                         for x, y in ps.coords])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_geojson_footprints_in_the_image_crs(sat: Path, tmp_path: Path) -> None:
    cfg = load_config("satellite", overrides={"patch.size": 128, "plugin.satellite.exclude": []})
    with RasterioImage(sat / BYTE) as img:
        ps = tile_image(img, cfg)
        path = write_geojson(tmp_path / "patches.geojson", ps, img)
        res_x, res_y = img.properties["res"]
        left, bottom, right, top = img.properties["bounds"]
    data = json.loads(path.read_text())
    assert data["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32618"
    assert len(data["features"]) == len(ps)
    import shapely

    polys = [shapely.geometry.shape(f["geometry"]) for f in data["features"]]
    for poly, f, (x, y) in zip(polys, data["features"], ps.coords.tolist(), strict=True):
        assert poly.area == pytest.approx(128 * res_x * 128 * res_y, rel=1e-9)
        assert poly.exterior.is_ccw
        assert (f["properties"]["x"], f["properties"]["y"]) == (x, y)
        minx, _, _, maxy = poly.bounds
        assert minx == pytest.approx(left + x * res_x) and maxy == pytest.approx(top - y * res_y)
    assert set(ps.scores) <= set(data["features"][0]["properties"])
    assert left <= data["bbox"][0] and data["bbox"][2] <= right
    assert bottom <= data["bbox"][1] and data["bbox"][3] <= top


def test_rotated_transform_bounds_are_the_envelope() -> None:
    theta = np.deg2rad(30)
    a, b = 2 * np.cos(theta), -2 * np.sin(theta)
    d, e = 2 * np.sin(theta), 2 * np.cos(theta)
    transform = (a, b, 1000.0, d, e, 5000.0)
    coords = np.array([[0, 0], [10, 20]])
    polys = patch_polygons(coords, 10, transform)
    for poly in polys:
        assert poly.area == pytest.approx(100 * 4)  # a 10 px square of 2 m pixels
    got = patch_bounds(coords, 10, transform)
    np.testing.assert_allclose(got, np.array([p.bounds for p in polys]))
    fc = to_geojson(coords, 10, transform, crs="EPSG:3857")
    assert fc["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::3857"
    first = np.array(fc["features"][0]["geometry"]["coordinates"][0])
    assert first.shape == (5, 2) and np.allclose(first[0], first[-1])
