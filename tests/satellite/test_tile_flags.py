"""The satellite plugin's ``gigapatch tile`` flags (issue #14), run as a user runs them on the real
scenes: ``--bands`` / ``--sensor`` change the band roles recorded, exactly as ``--set`` does;
``--geojson wgs84`` writes lon/lat footprints; ``--extract --format geotiff`` writes GeoTIFF chips
(and no image files); ``--stac DIR`` a catalog pystac reads and validates; ``--crs`` reprojects;
the flags leave other domains' images alone; bad values and clashes are one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers_cli import run_cli

from gigapatch import PatchSet, TileOption, hookimpl
from gigapatch_satellite.columns import TRANSFORM

rasterio = pytest.importorskip("rasterio")
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")

RGBN = "rgbn.tif"  # 515 x 403, 4 bands uint8: red, green, blue (colour interpretation), NIR
BYTE = "RGB.byte.tif"  # 791 x 718, EPSG:32618


def tile(*args: str) -> None:
    res = run_cli("tile", *args, "--quiet")
    assert res.returncode == 0, res.stderr[-3000:]


def summary(out: Path) -> dict[str, dict[str, str]]:
    with (out / "summary.csv").open(newline="") as f:
        return {row["image_id"]: row for row in csv.DictReader(f)}


def one_line_error(*args: str) -> str:
    res = run_cli("tile", *args, "--quiet")
    err = res.stderr.strip()
    assert res.returncode == 2 and len(err.splitlines()) == 1, res.stderr
    return err


def test_help_lists_the_satellite_flags() -> None:
    res = run_cli("tile", "--help")
    assert res.returncode == 0, res.stderr
    for text in ("--bands", "R,G,B[,NIR[,SWIR1]]", "--sensor", "landsat8", "--nodata", "--crs",
                 "EPSG:N", "--stac", "DIR", "satellite options", "geotiff", "wgs84"):
        assert text in res.stdout, text


def test_bands_sets_the_roles_exactly_as_set_does(satellite_dir: Path, tmp_path: Path) -> None:
    scene = str(satellite_dir / RGBN)
    tile(scene, "--out", str(tmp_path / "default"), "--no-overlay")
    tile(scene, "--out", str(tmp_path / "flag"), "--no-overlay", "--bands", "3,2,1,4")
    tile(scene, "--out", str(tmp_path / "set"), "--no-overlay",
         "--set", "plugin.satellite.bands=3,2,1,4")
    roles = {name: json.loads((tmp_path / name / "rgbn_raster.json").read_text())["band_roles"]
             for name in ("default", "flag", "set")}
    assert roles["default"]["red"] == 1 and roles["default"]["blue"] == 3
    assert roles["default"]["source"] != "plugin.satellite.bands"
    assert roles["flag"] == roles["set"]
    assert (roles["flag"]["red"], roles["flag"]["green"], roles["flag"]["blue"],
            roles["flag"]["nir"]) == (3, 2, 1, 4)
    assert roles["flag"]["source"] == "plugin.satellite.bands"
    # the same config (hash) as --set: the flag is that key, nothing else
    hashes = {name: summary(tmp_path / name)["rgbn"]["config_hash"] for name in roles}
    assert hashes["flag"] == hashes["set"] != hashes["default"]
    # and --sensor is recorded the same way
    tile(scene, "--out", str(tmp_path / "sensor"), "--no-overlay", "--sensor", "landsat8")
    record = json.loads((tmp_path / "sensor" / "rgbn_raster.json").read_text())
    assert record["band_roles"]["sensor"] == "landsat8"


def test_geojson_wgs84_writes_lon_lat_footprints(satellite_dir: Path, tmp_path: Path) -> None:
    import pyproj

    out = tmp_path / "wgs84"
    tile(str(satellite_dir / BYTE), "--out", str(out), "--no-overlay", "--patch-size", "128",
         "--geojson", "wgs84")
    path = out / "RGB.byte_footprints_wgs84.geojson"
    data = json.loads(path.read_text())
    assert "crs" not in data  # RFC 7946
    assert not (out / "RGB.byte.geojson").exists()  # no QuPath export asked for
    assert not (out / "RGB.byte_footprints.geojson").exists()
    ps = PatchSet.read(out / "RGB.byte.h5")
    assert len(data["features"]) == len(ps) > 0
    to_lonlat = pyproj.Transformer.from_crs(32618, 4326, always_xy=True)
    for feature, left, top in zip(data["features"], ps.columns["left"], ps.columns["top"]):
        ring = np.asarray(feature["geometry"]["coordinates"][0])
        assert (np.abs(ring[:, 0]) <= 180).all() and (np.abs(ring[:, 1]) <= 90).all()
        lon, lat = to_lonlat.transform(left, top)  # the patch's north-west corner
        assert np.abs(ring - (lon, lat)).sum(axis=1).min() < 1e-7
    # the file's scene is in the Bahamas: UTM 18N, around 77-78 W, 24-25 N
    lon_lat = np.concatenate([np.asarray(f["geometry"]["coordinates"][0])
                              for f in data["features"]])
    assert (-79 < lon_lat[:, 0]).all() and (lon_lat[:, 0] < -76).all()
    assert (23 < lon_lat[:, 1]).all() and (lon_lat[:, 1] < 26).all()


def test_plain_geojson_is_still_the_qupath_export(satellite_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain"
    tile(str(satellite_dir / RGBN), "--out", str(out), "--no-overlay", "--geojson")
    assert (out / "rgbn.geojson").is_file()
    assert not list(out.glob("*_footprints*.geojson"))
    both = tmp_path / "both"
    tile(str(satellite_dir / RGBN), "--out", str(both), "--no-overlay", "--geojson",
         "--geojson=native", "--geojson", "wgs84")
    assert {p.name for p in both.glob("*.geojson")} == {
        "rgbn.geojson", "rgbn_footprints.geojson", "rgbn_footprints_wgs84.geojson"}


def test_extract_format_geotiff_writes_chips_and_no_images(satellite_dir: Path,
                                                            tmp_path: Path) -> None:
    scene = satellite_dir / BYTE
    out = tmp_path / "chips"
    tile(str(scene), "--out", str(out), "--no-overlay", "--patch-size", "128", "--extract",
         "--format", "geotiff")
    ps = PatchSet.read(out / "RGB.byte.h5")
    chips = sorted((out / "RGB.byte_chips").glob("*.tif"))
    assert len(chips) == len(ps) > 0
    assert not (out / "RGB.byte").exists()  # no JPEG / PNG patch folder
    assert not list(out.rglob("*.jpg")) and not list(out.rglob("*.png"))
    with rasterio.open(scene) as src:
        for i, (x, y) in enumerate(ps.coords.tolist()):
            with rasterio.open(out / "RGB.byte_chips" / f"{x}_{y}.tif") as chip:
                assert chip.crs == src.crs and chip.count == 3 and chip.dtypes[0] == "uint8"
                want = src.window_transform(rasterio.windows.Window(x, y, 128, 128))
                np.testing.assert_allclose(tuple(chip.transform)[:6], tuple(want)[:6],
                                           rtol=0, atol=1e-9)
                np.testing.assert_allclose(tuple(chip.transform)[:6],
                                           [ps.columns[k][i] for k in TRANSFORM], rtol=0,
                                           atol=1e-9)
    # --format alone says what --extract writes: nothing without it (as --format png)
    none = tmp_path / "none"
    tile(str(scene), "--out", str(none), "--no-overlay", "--patch-size", "128", "--format",
         "geotiff")
    assert not (none / "RGB.byte_chips").exists() and not (none / "RGB.byte").exists()


def test_stac_dir_holds_a_valid_catalog(satellite_dir: Path, tmp_path: Path) -> None:
    pystac = pytest.importorskip("pystac")
    from pystac.validation import validate_dict

    out, stac = tmp_path / "out", tmp_path / "catalogs"
    tile(str(satellite_dir / BYTE), str(satellite_dir / RGBN), "--out", str(out), "--no-overlay",
         "--patch-size", "128", "--extract", "--format", "geotiff", "--stac", str(stac),
         "--workers", "2")
    assert not (out / "RGB.byte_stac").exists()
    # DIR/catalog.json: one child catalog per image (two workers wrote them)
    root = pystac.Catalog.from_file(str(stac / "catalog.json"))
    validate_dict(root.to_dict(), extensions=[])
    assert sorted(c.id for c in root.get_children()) == ["RGB.byte-chips", "rgbn-chips"]
    assert len(list(root.get_items(recursive=True))) == (
        len(PatchSet.read(out / "RGB.byte.h5")) + len(PatchSet.read(out / "rgbn.h5")))
    cat = pystac.Catalog.from_file(str(stac / "RGB.byte" / "catalog.json"))
    # pystac's validator, offline: the core schemas it bundles (the projection extension's
    # schema would be fetched; its fields are checked against the h5 below)
    validate_dict(cat.to_dict(), extensions=[])
    items = list(cat.get_items(recursive=True))
    ps = PatchSet.read(out / "RGB.byte.h5")
    assert len(items) == len(ps) > 0
    ps_index = {(x, y): i for i, (x, y) in enumerate(ps.coords.tolist())}
    for item in items:
        validate_dict(item.to_dict(), extensions=[])
        assert item.properties["proj:code"] == "EPSG:32618"
        i = ps_index[(item.properties["gigapatch:x"], item.properties["gigapatch:y"])]
        np.testing.assert_allclose(item.properties["proj:transform"][:6],
                                   [ps.columns[k][i] for k in TRANSFORM], rtol=0, atol=1e-9)
        href = item.assets["data"].get_absolute_href()
        assert href is not None and Path(href).resolve().parent == (out / "RGB.byte_chips").resolve()
        assert Path(href).is_file()


def test_crs_tiles_in_that_crs(satellite_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "utm19"
    tile(str(satellite_dir / BYTE), "--out", str(out), "--no-overlay", "--patch-size", "128",
         "--crs", "EPSG:32619")
    ps = PatchSet.read(out / "RGB.byte.h5")
    assert len(ps) > 0 and set(ps.columns["epsg"].tolist()) == {32619}
    assert json.loads((out / "RGB.byte_raster.json").read_text())["epsg"] == 32619


def test_flags_leave_other_domains_alone(satellite_dir: Path, tmp_path: Path) -> None:
    """A plain PNG (generic) tiled beside the scene with satellite flags keeps its own config
    (same hash as without them) and its own extraction; the scene gets chips only."""
    from PIL import Image

    photo = np.full((512, 512, 3), 240, np.uint8)
    photo[64:448, 64:448] = (170, 40, 60)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    scene = satellite_dir / RGBN
    flags = ("--extract", "--format", "geotiff", "--bands", "3,2,1,4", "--geojson", "wgs84")
    out, plain = tmp_path / "mixed", tmp_path / "plain"
    common = ("--no-overlay", "--patch-size", "128", "--workers", "1")
    tile(str(scene), str(tmp_path / "photo.png"), "--out", str(out), *common, *flags)
    tile(str(tmp_path / "photo.png"), "--out", str(plain), *common, "--extract")
    rows = summary(out)
    assert rows["photo"]["domain"] == "generic" and rows["rgbn"]["domain"] == "satellite"
    assert rows["photo"]["config_hash"] == summary(plain)["photo"]["config_hash"]
    assert "satellite" not in (out / "photo.yaml").read_text()
    assert len(list((out / "photo").glob("*.jpg"))) == len(PatchSet.read(out / "photo.h5")) > 0
    assert len(list((out / "rgbn_chips").glob("*.tif"))) == len(PatchSet.read(out / "rgbn.h5"))
    assert not (out / "rgbn").exists()
    assert (out / "rgbn_footprints_wgs84.geojson").is_file()


def test_a_flag_for_another_domain_warns(satellite_dir: Path, tmp_path: Path) -> None:
    res = run_cli("tile", str(satellite_dir / RGBN), "--out", str(tmp_path / "o"), "--quiet",
                  "--domain", "generic", "--bands", "3,2,1", "--no-overlay")
    assert res.returncode == 0, res.stderr
    assert "--bands 3,2,1 is an option of the satellite domain: ignored for --domain generic" \
        in res.stderr
    assert "satellite" not in (tmp_path / "o" / "rgbn.yaml").read_text()


def test_bad_values_are_one_line(satellite_dir: Path, tmp_path: Path) -> None:
    scene = str(satellite_dir / RGBN)
    out = tmp_path / "o"
    err = one_line_error(scene, "--out", str(out), "--bands", "3,x")
    assert err.startswith("error: --bands 3,x: config key 'plugin.satellite.bands'")
    err = one_line_error(scene, "--out", str(out), "--sensor", "landsat9")
    assert err == "error: --sensor landsat9: expected one of landsat8, landsat7, sentinel2"
    err = one_line_error(scene, "--out", str(out), "--format", "tif")
    assert "jpeg, png, tar, geotiff (satellite)" in err
    err = one_line_error(scene, "--out", str(out), "--geojson=lonlat")
    assert err == "error: --geojson takes no value, or one of: native, wgs84"
    err = one_line_error(scene, "--out", str(out), "--crs", "EPSG:4326", "--set",
                         "plugin.satellite.crs=[1]")  # --set wins, and is validated too
    assert "plugin.satellite.crs" in err
    assert not out.exists()  # refused before any work


class _Clash:
    @hookimpl
    def gigapatch_tile_options(self) -> list[TileOption]:
        return [TileOption(("--bands",), key="plugin.other.bands", domain="other")]


def test_a_plugin_flag_clashing_with_the_satellite_one(capsys: pytest.CaptureFixture) -> None:
    from gigapatch.cli.app import main
    from gigapatch.plugin.manager import get_plugin_manager

    pm = get_plugin_manager()
    pm.register(_Clash(), name="other")
    try:
        with pytest.raises(SystemExit) as e:
            main(["tile", "--help"])
    finally:
        pm.unregister(name="other")
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert "plugin 'satellite'" in err and "'other'" in err and "--bands" in err
