"""The satellite reader on real GeoTIFFs (the satellite folder of the real test data, see its
PROVENANCE.md): routing, band roles, no-data sources, the display stretch, raw bands, ``info``."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from helpers_cli import run_cli
from helpers_paths import need

from gigapatch import ConfigError, ImageError, load_config, open_image, tile_image
from gigapatch_satellite import RasterioImage, is_geotiff, valid_mask
from gigapatch_satellite.bands import choose_roles, sensor_from_name

rasterio = pytest.importorskip("rasterio")
Window = rasterio.windows.Window

BYTE = "RGB.byte.tif"  # 791 x 718 uint8 RGB, nodata=0 corners, no overviews
COG = "RGB.byte.cog.tif"  # the same pixels as a COG with 2x and 4x overviews
LC08 = "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"  # 2041 x 1860 uint16 B, G, R; 0 = fill
RGBN = "rgbn.tif"  # 515 x 403 uint8 R, G, B, NIR


@pytest.fixture(scope="module")
def sat(satellite_dir: Path) -> Path:
    """The satellite scenes of the real test data (the tests skip without them)."""
    need(satellite_dir / BYTE, "rasterio's RGB.byte scene")
    return satellite_dir


def write_tif(path: Path, data: np.ndarray, **kw: object) -> Path:
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
               "count": data.shape[0], "dtype": str(data.dtype), "crs": "EPSG:32633",
               "transform": rasterio.Affine(10, 0, 500000, 0, -10, 4000000), **kw}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


# ----------------------------------------------------------------------------- domain, routing


def test_domain_is_declared_with_its_defaults() -> None:
    from gigapatch.plugin.manager import list_domains

    assert "satellite" in list_domains()
    cfg = load_config("satellite")
    assert cfg.domain == "satellite" and cfg.patch.edge == "shift"
    assert cfg.patch.size == 256 and cfg.patch.min_foreground == 0.5
    assert cfg.plugin["satellite"]["exclude"] == ["cloud", "water"]


def test_bad_plugin_setting_is_one_line_config_error(sat: Path) -> None:
    for key, value in (("plugin.satellite.clouds", 3), ("plugin.satellite.bands", "3,x,1"),
                       ("plugin.satellite.sensor", "landsat99")):
        cfg = load_config("satellite", overrides={key: value})
        with RasterioImage(sat / BYTE) as img, pytest.raises(ConfigError) as e:
            tile_image(img, cfg)
        assert key in str(e.value) and "\n" not in str(e.value)


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
    for name in (BYTE, COG, LC08, RGBN):
        assert is_geotiff(sat / name), name
    for name in ("CMU-1-Small-Region.svs", "CMU-1-Small-Region.generic-pyramid.tiff",
                 "CMU-1-Small-Region.pyramid.ome.tiff", "kidney-48-5.tif"):
        assert not is_geotiff(pathology_dir / name), name
    big = write_tif(tmp_path / "big.tif", np.ones((1, 64, 64), np.uint8), BIGTIFF="YES")
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
    five = write_tif(tmp_path / "five.tif", np.ones((5, 8, 8), np.uint8))
    with pytest.raises(ImageError, match="no band layout for 5 bands"):
        RasterioImage(five, sensor="sentinel2")


def test_cog_overviews_are_pyramid_levels(sat: Path) -> None:
    with RasterioImage(sat / COG) as img, rasterio.open(sat / COG) as ds:
        dims = [(ds.width, ds.height)]
        for k in range(len(ds.overviews(1))):
            with rasterio.open(sat / COG, overview_level=k) as ov:
                dims.append((ov.width, ov.height))
        assert img.level_dimensions == tuple(dims) and img.level_count == 3
        assert img.level_downsamples[1] == pytest.approx(2.0, abs=0.01)
        with rasterio.open(sat / COG, overview_level=0) as ov:
            want = ov.read(window=Window(100, 80, 64, 48)).transpose(1, 2, 0)
            valid = ov.dataset_mask(window=Window(100, 80, 64, 48)) > 0
        x0 = int(np.ceil(100 * img.level_downsamples[1]))
        y0 = int(np.ceil(80 * img.level_downsamples[1]))
        got = img.read_region((x0, y0), 1, (64, 48))
        assert got.shape == (48, 64, 3) and got.dtype == np.uint8 and valid.mean() > 0.9
        np.testing.assert_array_equal(got[valid], want[valid])
        corner = img.read_region((-10, -10), 0, (20, 20))  # outside white, no-data black
        assert (corner[:10, :] == 255).all() and (corner[10:, 10:] == 0).all()


# ----------------------------------------------------------------------------- band roles


def test_product_ids_name_their_sensor() -> None:
    assert sensor_from_name(LC08) == ("landsat8", "L1")
    assert sensor_from_name("LC09_L2SP_014032_20220101_20220103_02_T1_SR_B4.TIF") == (
        "landsat8", "L2")
    assert sensor_from_name("LE07_L1TP_224078_20000518_20170101_01_T1.tif") == ("landsat7", "L1")
    assert sensor_from_name("S2B_MSIL2A_20230601T101559_N0509_R065_T32TQM.tif") == (
        "sentinel2", "L2")
    assert sensor_from_name("scene.tif") == (None, None)


def test_band_roles_follow_the_documented_order() -> None:
    undefined = ["gray", "undefined", "undefined"]
    # file colour interpretation wins over the file name, the user over both
    rgb = choose_roles(3, ["blue", "green", "red"], [None] * 3, LC08)
    assert rgb.rgb == (3, 2, 1) and rgb.source == "colour interpretation"
    named = choose_roles(3, undefined, [None] * 3, LC08)
    assert named.rgb == (3, 2, 1) and named.source == "file name (landsat8)" and named.nir is None
    user = choose_roles(3, undefined, [None] * 3, LC08, bands=[1, 2, 3])
    assert user.rgb == (1, 2, 3) and user.source == "plugin.satellite.bands"
    plain = choose_roles(3, undefined, [None] * 3, "scene.tif")
    assert plain.rgb == (1, 2, 3) and plain.source == "first bands"
    # band descriptions; a sensor preset by band count; a fourth undefined band beside R, G, B
    desc = choose_roles(4, ["undefined"] * 4, ["nir", "Blue", "green", "RED"], "x.tif")
    assert (desc.rgb, desc.nir, desc.source) == ((4, 3, 2), 1, "band descriptions")
    s2 = choose_roles(13, ["undefined"] * 13, [None] * 13, "x.tif", sensor="sentinel2")
    assert (s2.rgb, s2.nir, s2.swir1) == ((4, 3, 2), 8, 12)
    l8 = choose_roles(7, ["undefined"] * 7, [None] * 7, "x.tif", sensor="landsat8")
    assert (l8.rgb, l8.nir, l8.swir1) == ((4, 3, 2), 5, 6)
    rgbn = choose_roles(4, ["red", "green", "blue", "undefined"], [None] * 4, "rgbn.tif")
    assert rgbn.nir == 4
    alpha = choose_roles(4, ["red", "green", "blue", "alpha"], [None] * 4, "x.tif")
    assert alpha.nir is None and alpha.alpha == (4,)
    grey = choose_roles(1, ["gray"], [None], "dem.tif", bands=[1])
    assert grey.rgb == (1, 1, 1)
    with pytest.raises(ValueError, match="do not name"):
        choose_roles(3, undefined, [None] * 3, "x.tif", bands=[1, 2, 4])


def test_landsat_stored_blue_green_red_is_shown_as_true_colour(sat: Path) -> None:
    with rasterio.open(sat / LC08) as ds:
        raw = ds.read()
    fill = (raw == 0).all(axis=0)
    with RasterioImage(sat / LC08) as img:  # no flag: the product id says landsat8, 3 bands
        assert img.bands == (3, 2, 1) and img.properties["band_roles"]["sensor"] == "landsat8"
        assert img.nodata == 0 and img.properties["nodata_source"] == "sensor landsat8 fill value"
        assert img.reflectance == (2e-5, -0.1)
        rgb = img.read_region((0, 0), 0, img.dimensions)
    np.testing.assert_array_equal(~valid_mask(rgb), fill)
    valid = rgb[~fill]
    inner = (valid > 1).all(axis=1) & (valid < 255).all(axis=1)  # not clipped by the stretch
    corr = np.array([[np.corrcoef(raw[b][~fill][inner].astype(np.float64), valid[inner, c])[0, 1]
                      for b in range(3)] for c in range(3)])  # (shown channel, file band)
    assert corr.argmax(axis=1).tolist() == [2, 1, 0]  # red is band 3, blue band 1
    assert corr.max(axis=1).min() > 0.999  # a linear stretch of that band
    for band in range(3):  # the 2-98 % stretch of the valid pixels: ~2 % clip at each end
        assert 0.005 < (valid[:, band] == 255).mean() < 0.05
        assert 0.005 < (valid[:, band] <= 1).mean() < 0.05


def test_user_band_choice_and_settings_reach_the_reader(sat: Path) -> None:
    cfg = load_config("satellite", overrides={"plugin.satellite.bands": "1,2,3",
                                              "plugin.satellite.percentiles": [1, 99],
                                              "plugin.satellite.exclude": []})
    with RasterioImage(sat / LC08) as img:
        tile_image(img, cfg)
        assert img.bands == (1, 2, 3) and img.properties["band_roles"]["source"] == \
            "plugin.satellite.bands"
        assert img.properties["percentiles"] == [1.0, 99.0]
        tile_image(img, load_config("satellite"))  # defaults again: back to the file's roles
        assert img.bands == (3, 2, 1)


# ----------------------------------------------------------------------------- no-data


def test_nodata_comes_from_the_user_the_file_or_a_mask_never_assumed(tmp_path: Path,
                                                                    sat: Path) -> None:
    from rasterio.enums import ColorInterp

    data = np.random.default_rng(0).integers(1, 255, (3, 40, 60), dtype=np.uint8)
    data[:, :, :10] = 0  # zeros that are data: no nodata declared, no sensor
    plain = write_tif(tmp_path / "zeros.tif", data)
    with RasterioImage(plain) as img:
        assert img.nodata is None and img.properties["nodata_source"] == "none"
        assert not img.nodata_mask(1).any()  # 0 is never assumed to be no-data
        rgb = img.read_region((0, 0), 0, (60, 40))
        assert (rgb[:, :10] == 1).all()  # valid pixels are never black
    with RasterioImage(plain, nodata=0) as img:  # the user's value
        assert img.properties["nodata_source"] == "plugin.satellite.nodata"
        assert img.nodata_mask(1)[:, :10].all() and not img.nodata_mask(1)[:, 10:].any()
    with RasterioImage(sat / BYTE) as img:
        assert img.nodata == 0 and img.properties["nodata_source"] == "file nodata value"
    rgba = np.concatenate([data, np.full((1, 40, 60), 255, np.uint8)])
    rgba[3, :, 50:] = 0
    path = write_tif(tmp_path / "rgba.tif", rgba, photometric="RGB", alpha="YES")
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    with RasterioImage(path) as img:
        assert img.properties["nodata_source"] == "alpha band" and img.nir_band is None
        m = img.nodata_mask(1)
        assert m[:, 50:].all() and not m[:, :50].any()
    masked = write_tif(tmp_path / "masked.tif", data)
    with rasterio.open(masked, "r+") as ds:
        mask = np.full((40, 60), 255, np.uint8)
        mask[:20] = 0
        ds.write_mask(mask)
    with RasterioImage(masked) as img:
        assert img.properties["nodata_source"] == "internal mask"
        assert img.nodata_mask(1)[:20].all() and not img.nodata_mask(1)[20:].any()


def test_float_bands_nan_and_nodata_are_masked_and_stretched(tmp_path: Path) -> None:
    dem = np.linspace(100.0, 900.0, 60 * 80, dtype=np.float32).reshape(1, 60, 80)
    dem[0, :10] = -9999.0
    dem[0, 10:15, :5] = np.nan
    path = write_tif(tmp_path / "dem.tif", dem, nodata=-9999.0)
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
        assert grey.min() <= 1 and grey.max() == 255
        assert np.all(np.diff(rgb[30, 5:, 0].astype(int)) >= 0)


def test_stretch_percentiles_ignore_nodata_and_are_recorded(sat: Path) -> None:
    with rasterio.open(sat / LC08) as ds:
        raw = ds.read()
    valid = ~(raw == 0).all(axis=0)
    with RasterioImage(sat / LC08) as img:
        lo_hi = np.array(img.properties["stretch"])
    for i, band in enumerate((3, 2, 1)):  # a 1024 px view: within 2 % of the full raster's
        want = np.percentile(raw[band - 1][valid], (2, 98))
        np.testing.assert_allclose(lo_hi[i], want, rtol=0.02)
        assert lo_hi[i, 0] > 0  # the fill (0) was left out


# ----------------------------------------------------------------------------- raw bands


def test_raw_bands_are_the_files_values(sat: Path) -> None:
    with RasterioImage(sat / LC08) as img, rasterio.open(sat / LC08) as ds:
        raw, valid, inside = img.read_bands((300, 200), 0, (256, 128))
        want = ds.read(window=Window(300, 200, 256, 128))
        assert raw.dtype == np.uint16 and raw.shape == (3, 128, 256) and inside.all()
        np.testing.assert_array_equal(raw, want)
        np.testing.assert_array_equal(valid, (want != 0).any(axis=0))
        edge, _, inside = img.read_bands((2000, 1800), 0, (64, 64))
        assert (edge[:, ~inside] == 0).all() and inside.sum() == 41 * 60
        np.testing.assert_array_equal(edge[:, :60, :41],
                                      ds.read(window=Window(2000, 1800, 41, 60)))


def test_reads_from_threads_run_on_their_own_handles(sat: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    coords = [(x, y) for y in range(0, 1600, 256) for x in range(0, 1792, 256)]
    with RasterioImage(sat / LC08) as img:
        one = [img.read_bands(c, 0, (256, 256))[0] for c in coords]
        with ThreadPoolExecutor(4) as pool:
            many = list(pool.map(lambda c: img.read_bands(c, 0, (256, 256))[0], coords))
        barrier = threading.Barrier(2)

        def hold(_: int) -> int:
            with img.borrow(0) as ds:  # two threads at once: two handles, not one locked
                barrier.wait(timeout=30)
                return id(ds)

        with ThreadPoolExecutor(2) as pool:
            held = list(pool.map(hold, range(2)))
        assert held[0] != held[1]
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)


def test_a_thread_gets_the_handle_it_had_back(sat: Path) -> None:
    """GDAL caches decoded tiles per handle: a thread reading on must find its own handle again,
    not the one another thread left (a FIFO of handles alternated them)."""
    from concurrent.futures import ThreadPoolExecutor

    with RasterioImage(sat / LC08) as img:
        barrier = threading.Barrier(2)

        def run(_: int) -> list[int]:
            with img.borrow(0) as ds:  # both at once: two handles, one each
                barrier.wait(timeout=30)
                got = [id(ds)]
            for _k in range(5):
                with img.borrow(0) as ds:
                    got.append(id(ds))
                barrier.wait(timeout=30)  # both threads return their handle between reads
            return got

        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(run, range(2))
        assert len(set(a)) == 1 and len(set(b)) == 1 and a[0] != b[0]


def test_grouped_reads_are_the_one_by_one_reads(sat: Path) -> None:
    """read_chips and the core's read_patches (through RasterioImage.patch_groups) give every
    patch exactly as read alone, at 1 and 2 workers, patches past the edge included; the groups
    hold every index once, cut between tile columns."""
    from gigapatch import patches_to_array, resolve_geometry
    from gigapatch_satellite import read_chips
    from gigapatch_satellite.chips import tile_groups

    coords = np.array([(x, y) for y in range(-100, 1900, 200) for x in range(-60, 2100, 230)],
                      np.int64)
    with RasterioImage(sat / LC08) as img:
        geom = resolve_geometry(img, load_config("satellite").patch)
        groups = tile_groups(img, coords, 0, most=8)
        assert sorted(i for g in groups for i in g) == list(range(len(coords)))
        th, tw = img.block_shape(0)
        col = coords[:, 0] // tw
        for g, h in zip(groups, groups[1:]):
            if coords[g[-1], 1] // th == coords[h[0], 1] // th:  # a cut inside a tile row
                assert col[g[-1]] != col[h[0]] and len(g) >= 8
        alone = []
        for x, y in coords.tolist():
            raw, valid, _ = img.read_bands((x, y), 0, (256, 256))
            raw[:, ~valid] = 0
            alone.append(raw)
        rgb_alone = np.stack([img.read_region((x, y), 0, (256, 256)) for x, y in coords.tolist()])
        for workers in (1, 2):
            np.testing.assert_array_equal(read_chips(img, coords, 256, workers=workers),
                                          np.stack(alone))
            np.testing.assert_array_equal(patches_to_array(img, coords, geom, workers=workers),
                                          rgb_alone)


# ----------------------------------------------------------------------------- info


def test_info_shows_crs_pixel_size_bands_nodata_and_overviews(sat: Path) -> None:
    res = run_cli("info", str(sat / LC08), str(sat / COG))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "crs: EPSG:32621" in out and "pixel size: 30 m" in out
    assert "bands: 3 x uint16: 1=blue (gray), 2=green (undefined), 3=red (undefined)" in out
    assert "band roles from: file name (landsat8)" in out
    assert "nodata: 0.0 (sensor landsat8 fill value)" in out
    assert "crs: EPSG:32618" in out and "pixel size: 300.04 m" in out
    assert "overviews: 2, 4" in out and "overviews: none" in out


def test_the_stretch_lookup_table_is_the_float_stretch() -> None:
    """The per-band lookup table of 16- and 8-bit bands gives the very bytes of the float32
    stretch ``clip((v - low) * 255 / (high - low) + 0.5, 0, 255)``; no-data black, valid never
    black."""
    from gigapatch_satellite.stretch import stretch_lut, to_rgb8

    rng = np.random.default_rng(0)
    stretch = np.array([[300.0, 4000.0], [250.5, 3900.25], [100.0, 101.0]])
    for dtype in (np.uint16, np.uint8):
        top = np.iinfo(dtype).max + 1
        raw = rng.integers(0, top, (3, 64, 80)).astype(dtype)
        raw[:, :2, :] = 0  # all-black valid pixels are lifted to 1
        valid = rng.random((64, 80)) > 0.1
        s = stretch if dtype == np.uint16 else stretch / 20
        lut = stretch_lut(s, np.dtype(dtype))
        assert lut is not None and lut.shape == (3, top)
        got = to_rgb8(raw, valid, s, lut)
        lo = s[:, 0].reshape(3, 1, 1).astype(np.float32)
        k = (255.0 / (s[:, 1] - s[:, 0])).reshape(3, 1, 1).astype(np.float32)
        want = np.clip((raw.astype(np.float32) - lo) * k + 0.5, 0, 255).astype(np.uint8)
        want = np.ascontiguousarray(want.transpose(1, 2, 0))
        want[~valid] = 0
        want[valid & (want.max(axis=2) == 0)] = 1
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(to_rgb8(raw, valid, s, None), want)  # the float path
    assert stretch_lut(stretch, np.dtype(np.float32)) is None
    assert stretch_lut(None, np.dtype(np.uint16)) is None
