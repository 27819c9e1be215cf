"""Georeferencing is exact: every patch's window, transform, bounds and EPSG in the h5 and the
table against rasterio; WGS 84 footprints against pyproj; GeoParquet, GeoTIFF chips and STAC
read back by their own libraries; duplicates across two scenes in adjacent UTM zones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_paths import need

from gigapatch import PatchSet, load_config, tile_image
from gigapatch_satellite import (
    RasterioImage,
    patch_bounds,
    patch_polygons,
    patch_transforms,
    to_geojson,
    windows_of,
)
from gigapatch_satellite.columns import BOUNDS, TRANSFORM

rasterio = pytest.importorskip("rasterio")
Window = rasterio.windows.Window
#: rasterio's own window maths still multiplies Affine objects with *
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")

BYTE = "RGB.byte.tif"
COG = "RGB.byte.cog.tif"
LC08 = "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"


@pytest.fixture(scope="module")
def sat(satellite_dir: Path) -> Path:
    need(satellite_dir / BYTE, "rasterio's RGB.byte scene")
    return satellite_dir


def rotated_scene(path: Path, degrees: float = 25.0, size: int = 512) -> Path:
    """A 4-band uint16 scene on a rotated grid (its transform has b, d != 0)."""
    from affine import Affine

    from gigapatch_satellite.synth import synthetic_scene

    bands, _ = synthetic_scene(1, size)
    t = Affine.translation(600000, 5200000) * Affine.rotation(degrees) * Affine.scale(10, -10)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=4,
                       dtype="uint16", crs="EPSG:32633", transform=t, nodata=0, tiled=True) as ds:
        ds.write(bands)
    return path


def test_every_patch_carries_its_exact_georeferencing(sat: Path, tmp_path: Path) -> None:
    """h5 and table columns: window, transform == rasterio's window_transform to 1e-9, bounds
    == rasterio's window bounds, EPSG; on a north-up and on a rotated grid, level 0 and 1."""
    scenes = [(sat / LC08, 0), (sat / COG, 1), (rotated_scene(tmp_path / "rot.tif"), 0)]
    for path, level in scenes:
        cfg = load_config("satellite", overrides={"patch.size": 64, "patch.level": level,
                                                  "plugin.satellite.exclude": []})
        out = tmp_path / f"out-{path.stem}"
        with RasterioImage(path) as img:
            tile_image(img, cfg, out_dir=out)
        ps = PatchSet.read(out / f"{path.stem}.h5")
        assert len(ps) > 5
        with rasterio.open(path) as ds:
            size0 = ps.patch_size_level0
            k = size0 / 64  # chip pixel size in level-0 px
            for i, (x, y) in enumerate(ps.coords.tolist()):
                win = Window(x, y, size0, size0)
                assert (ps.columns["col_off"][i], ps.columns["row_off"][i]) == (x, y)
                assert ps.columns["width"][i] == ps.columns["height"][i] == size0
                want = ds.window_transform(win) * rasterio.Affine.scale(k)
                got = [ps.columns[c][i] for c in TRANSFORM]
                np.testing.assert_allclose(got, tuple(want)[:6], rtol=0, atol=1e-9)
                corners = np.array([ds.transform @ (x + dx, y + dy)
                                    for dx in (0, size0) for dy in (0, size0)])
                envelope = (*corners.min(axis=0), *corners.max(axis=0))  # left, bottom, ...
                got_b = [ps.columns[c][i] for c in BOUNDS]
                np.testing.assert_allclose(got_b, envelope, rtol=0, atol=1e-6)
                if not ds.transform.is_rectilinear:  # rasterio's bounds: two corners only
                    continue
                np.testing.assert_allclose(got_b, rasterio.windows.bounds(win, ds.transform),
                                           rtol=0, atol=1e-6)
                assert ps.columns["epsg"][i] == ds.crs.to_epsg()
        import csv

        with open(out / f"{path.stem}.csv") as f:
            kept = [r for r in csv.DictReader(f) if r["kept"] == "True"]
        for name in (*TRANSFORM, *BOUNDS):  # written in full (float64 round trip)
            np.testing.assert_array_equal([float(r[name]) for r in kept], ps.columns[name])
        assert [int(r["epsg"]) for r in kept] == ps.columns["epsg"].tolist()


def test_window_bounds_window_round_trip_is_exact(sat: Path) -> None:
    with rasterio.open(sat / LC08) as ds:
        t = ds.transform
    rng = np.random.default_rng(0)
    coords = rng.integers(-500, 3000, (1000, 2))
    b = patch_bounds(coords, 256, t)
    w = windows_of(b, t)
    np.testing.assert_array_equal(np.round(w).astype(np.int64),
                                  np.column_stack([coords, np.full((1000, 2), 256)]))
    assert np.abs(w - np.round(w)).max() < 1e-6  # 0 px off (to float rounding)


def test_rotated_transform_bounds_are_the_envelope() -> None:
    theta = np.deg2rad(30)
    transform = (2 * np.cos(theta), -2 * np.sin(theta), 1000.0, 2 * np.sin(theta),
                 2 * np.cos(theta), 5000.0)
    coords = np.array([[0, 0], [10, 20]])
    polys = patch_polygons(coords, 10, transform)
    for poly in polys:
        assert poly.area == pytest.approx(100 * 4) and poly.exterior.is_ccw
    np.testing.assert_allclose(patch_bounds(coords, 10, transform),
                               np.array([p.bounds for p in polys]))
    t = patch_transforms(coords, 10, 5, transform)  # 5 px chips of 2 level-0 px each
    np.testing.assert_allclose(t[:, [0, 1, 3, 4]], np.tile(np.array(transform)[[0, 1, 3, 4]] * 2, (2, 1)))
    fc = to_geojson(coords, 10, transform, crs="EPSG:3857")
    assert fc["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::3857"


def test_wgs84_geojson_matches_pyproj(sat: Path, tmp_path: Path) -> None:
    """RFC 7946: lon/lat vertices within 1e-7 degrees of pyproj, no crs member, CCW rings."""
    pyproj = pytest.importorskip("pyproj")
    import shapely

    cfg = load_config("satellite", overrides={
        "patch.size": 128, "plugin.satellite.exclude": [],
        "plugin.satellite.footprints": ["native", "wgs84"]})
    with RasterioImage(sat / LC08) as img:
        ps = tile_image(img, cfg, out_dir=tmp_path)
        transform = img.transform
    native = json.loads((tmp_path / f"{Path(LC08).stem}_footprints.geojson").read_text())
    wgs = json.loads((tmp_path / f"{Path(LC08).stem}_footprints_wgs84.geojson").read_text())
    assert "crs" not in wgs and native["crs"]["properties"]["name"].endswith("32621")
    assert len(wgs["features"]) == len(native["features"]) == len(ps)
    to_lonlat = pyproj.Transformer.from_crs(32621, 4326, always_xy=True)
    worst = 0.0
    for f_w, f_n in zip(wgs["features"], native["features"]):
        ring_w = np.array(f_w["geometry"]["coordinates"][0])
        ring_n = np.array(f_n["geometry"]["coordinates"][0])
        lon, lat = to_lonlat.transform(ring_n[:, 0], ring_n[:, 1])
        worst = max(worst, float(np.abs(ring_w - np.column_stack([lon, lat])).max()))
        assert shapely.geometry.shape(f_w["geometry"]).exterior.is_ccw
        x, y = f_n["properties"]["x"], f_n["properties"]["y"]
        corner = transform @ (x, y)
        assert any(np.allclose(p, corner, atol=1e-6) for p in ring_n)
    assert worst < 1e-7
    lo, la = to_lonlat.transform(*(transform @ (0, 0)))
    assert -60 < lo < -50 and -27 < la < -23  # Brazil, UTM zone 21S


def test_geoparquet_and_chips_read_back(sat: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    import shapely

    cfg = load_config("satellite", overrides={
        "patch.size": 256, "output.table": "parquet", "plugin.satellite.exclude": [],
        "plugin.satellite.chips": "geotiff", "plugin.satellite.stac": True})
    stem = Path(LC08).stem
    with RasterioImage(sat / LC08) as img:
        ps = tile_image(img, cfg, out_dir=tmp_path)
    table = pq.read_table(tmp_path / f"{stem}_patches.parquet")
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    col = geo["columns"]["geometry"]
    assert col["encoding"] == "WKB" and col["crs"]["id"]["code"] == 32621
    polys = shapely.from_wkb(table.column("geometry").to_pylist())
    n_all = len(ps) + len(ps.rejected_coords)
    assert len(polys) == n_all and table.column("epsg").to_pylist() == [32621] * n_all
    np.testing.assert_allclose(shapely.bounds(polys), np.column_stack(
        [table.column(k).to_numpy() for k in BOUNDS]), atol=1e-6)
    # chips: raw 16-bit bands, every band, the file's values, own transform, CRS and nodata
    chips = sorted((tmp_path / f"{stem}_chips").glob("*.tif"))
    assert len(chips) == len(ps)
    with rasterio.open(sat / LC08) as src:
        for path in chips[:: max(1, len(chips) // 8)]:
            x, y = (int(v) for v in path.stem.split("_"))
            with rasterio.open(path) as chip:
                assert chip.dtypes == ("uint16",) * 3 and chip.count == 3 and chip.nodata == 0
                assert chip.crs == src.crs and chip.block_shapes[0] == (256, 256)
                assert chip.profile["compress"] == "deflate"
                win = Window(x, y, 256, 256)
                np.testing.assert_allclose(tuple(chip.transform)[:6],
                                           tuple(src.window_transform(win))[:6], atol=1e-9)
                want = src.read(window=win, boundless=True, fill_value=0)
                np.testing.assert_array_equal(chip.read(), want)
                assert list(chip.descriptions) == ["blue", "green", "red"]
                assert chip.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"


def test_chips_on_a_rotated_grid_carry_rasterios_window_transform(tmp_path: Path) -> None:
    """A scene whose grid is rotated by 25 degrees (b, d != 0): every GeoTIFF chip's transform
    equals rasterio's ``window_transform(window)`` to 1e-9 and holds the window's pixels; the
    chip's corners land on the scene's own corners of the window."""
    path = rotated_scene(tmp_path / "rot.tif")
    cfg = load_config("satellite", overrides={"patch.size": 128, "plugin.satellite.exclude": [],
                                              "plugin.satellite.chips": "geotiff"})
    with RasterioImage(path) as img:
        ps = tile_image(img, cfg, out_dir=tmp_path / "out")
    assert len(ps) >= 4
    with rasterio.open(path) as src:
        assert not src.transform.is_rectilinear
        for x, y in ps.coords.tolist():
            win = Window(x, y, 128, 128)
            with rasterio.open(tmp_path / "out" / "rot_chips" / f"{x}_{y}.tif") as chip:
                np.testing.assert_allclose(tuple(chip.transform)[:6],
                                           tuple(src.window_transform(win))[:6], rtol=0,
                                           atol=1e-9)
                for dx, dy in ((0, 0), (128, 0), (0, 128), (128, 128)):
                    np.testing.assert_allclose(chip.transform @ (dx, dy),
                                               src.transform @ (x + dx, y + dy), atol=1e-6)
                assert chip.crs == src.crs
                # (edge: shift keeps every window inside; rasterio's boundless read goes
                # through a warped VRT that misplaces the pixels of a rotated grid)
                assert 0 <= x <= src.width - 128 and 0 <= y <= src.height - 128
                np.testing.assert_array_equal(chip.read(), src.read(window=win))


def test_stac_items_are_valid(sat: Path, tmp_path: Path) -> None:
    pystac = pytest.importorskip("pystac")
    from pystac.validation import validate_dict

    cfg = load_config("satellite", overrides={
        "patch.size": 512, "plugin.satellite.exclude": [], "plugin.satellite.chips": "geotiff",
        "plugin.satellite.stac": True})
    stem = Path(LC08).stem
    with RasterioImage(sat / LC08) as img:
        ps = tile_image(img, cfg, out_dir=tmp_path)
    cat = pystac.Catalog.from_file(str(tmp_path / f"{stem}_stac" / "catalog.json"))
    items = list(cat.get_items(recursive=True))
    assert len(items) == len(ps)
    for item in items:
        d = item.to_dict()
        # the core item schema (bundled with pystac; the projection extension's schema would be
        # fetched from the network, so its fields are checked against rasterio instead)
        validate_dict(d, extensions=[])
        assert item.datetime is not None and item.datetime.date().isoformat() == "2020-05-18"
        x, y = d["properties"]["gigapatch:x"], d["properties"]["gigapatch:y"]
        assert d["properties"]["proj:code"] == "EPSG:32621"
        with rasterio.open(sat / LC08) as ds:
            want = ds.window_transform(Window(x, y, 512, 512))
        np.testing.assert_allclose(d["properties"]["proj:transform"][:6], tuple(want)[:6])
        href = item.assets["data"].get_absolute_href()
        assert href is not None and Path(href).exists() and href.endswith(f"{x}_{y}.tif")


def test_stac_into_a_relative_output_folder(
    sat: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative --out (as `gigapatch demo --domain satellite --out d` gives): pystac once
    took the relative staging folder's name (``.<id>_stac.<pid>.partial``) for a file, wrote
    the catalog beside it and the rename failed."""
    pystac = pytest.importorskip("pystac")
    cfg = load_config("satellite", overrides={
        "patch.size": 512, "plugin.satellite.exclude": [], "plugin.satellite.chips": "geotiff",
        "plugin.satellite.stac": True})
    monkeypatch.chdir(tmp_path)
    with RasterioImage(sat / LC08) as img:
        ps = tile_image(img, cfg, out_dir=Path("rel") / "tiles")
    stem = Path(LC08).stem
    cat = pystac.Catalog.from_file(str(tmp_path / "rel" / "tiles" / f"{stem}_stac" /
                                       "catalog.json"))
    assert len(list(cat.get_items(recursive=True))) == len(ps) > 0
    assert not (tmp_path / "rel" / "tiles" / "catalog.json").exists()
    assert not list((tmp_path / "rel" / "tiles").glob(".*partial"))


def utm_pair(tmp: Path) -> tuple[Path, Path]:
    """Two 1024 px 10 m scenes, one in UTM zone 33N and one in zone 34N, over the same ground
    on both sides of 18 deg E (the zones' border), overlapping by about half."""
    from rasterio.warp import transform as warp

    from gigapatch_satellite.synth import synthetic_scene, write_geotiff

    x33, y33 = warp("EPSG:4326", "EPSG:32633", [18.0], [47.0])
    x34, y34 = warp("EPSG:4326", "EPSG:32634", [18.0], [47.0])
    a = write_geotiff(tmp / "zone33.tif", synthetic_scene(3, 1024)[0], crs="EPSG:32633",
                      origin=(round(x33[0]) - 7680, round(y33[0]) + 5120))
    b = write_geotiff(tmp / "zone34.tif", synthetic_scene(4, 1024)[0], crs="EPSG:32634",
                      origin=(round(x34[0]) - 2560, round(y34[0]) + 5120))
    return a, b


def test_scenes_in_adjacent_utm_zones_stay_native_and_duplicates_are_flagged(
        tmp_path: Path) -> None:
    import shapely
    from rasterio.warp import transform as warp

    a, b = utm_pair(tmp_path)
    out = tmp_path / "out"
    cfg = load_config("satellite", overrides={"plugin.satellite.exclude": []})
    sets = {}
    for path in (a, b):
        with RasterioImage(path) as img:
            sets[path.stem] = (tile_image(img, cfg, out_dir=out), img.transform)
    ps_a, t_a = sets["zone33"]
    ps_b, t_b = sets["zone34"]
    assert set(ps_a.columns["epsg"]) == {32633} and set(ps_b.columns["epsg"]) == {32634}
    dup_a = (out / "zone33_duplicates.csv").read_text().splitlines()
    rows = [r.split(",") for r in (out / "zone34_duplicates.csv").read_text().splitlines()[1:]]
    assert len(dup_a) == 1 and len(rows) >= 3  # the first image has none; the second names it
    # reference: every zone-34 patch whose area lies >= half under a zone-33 patch
    pa = patch_polygons(ps_a.coords, ps_a.patch_size_level0, t_a)
    corners = np.array([np.array(p.exterior.coords)[:4] for p in pa])
    x, y = warp("EPSG:32633", "EPSG:32634", corners[..., 0].ravel().tolist(),
                corners[..., 1].ravel().tolist())
    pa34 = shapely.polygons(np.stack([x, y], axis=1).reshape(-1, 4, 2))
    want = set()
    for poly, (px, py) in zip(patch_polygons(ps_b.coords, ps_b.patch_size_level0, t_b),
                              ps_b.coords.tolist()):
        share = shapely.area(shapely.intersection(poly, pa34)) / poly.area
        if share.max() >= 0.5:
            want.add((px, py))
    assert {(int(r[0]), int(r[1])) for r in rows} == want
    assert all(r[2] == "zone33" and float(r[5]) >= 0.5 for r in rows)
    record = json.loads((out / "zone34_raster.json").read_text())
    assert record["n_duplicates"] == len(rows) and record["epsg"] == 32634
    # --crs: tiled in one CRS through a warped VRT when asked
    cfg = load_config("satellite", overrides={"plugin.satellite.exclude": [],
                                              "plugin.satellite.crs": "EPSG:32633"})
    with RasterioImage(b) as img:
        ps = tile_image(img, cfg)
        assert img.crs.to_epsg() == 32633
    assert set(ps.columns["epsg"]) == {32633}


def test_gsd_reads_the_overview_at_or_below_it(sat: Path, tmp_path: Path) -> None:
    """``--gsd 1200`` on the COG (300 m pixels, overviews at 600 m and 1204 m): the 600 m
    overview, resized by 2; the chips' transform says 1200 m; ``--edge pad`` is recorded."""
    from helpers_cli import run_cli

    res = run_cli("tile", str(sat / COG), "--gsd", "1200", "--patch-size", "64", "--edge", "pad",
                  "--set", "plugin.satellite.exclude=[]", "--out", str(tmp_path), "--quiet")
    assert res.returncode == 0, res.stderr
    ps = PatchSet.read(tmp_path / "RGB.byte.cog.h5")
    assert ps.attrs["read_level"] == 1 and ps.attrs["read_size"] == 128
    assert ps.attrs["target_mpp"] == pytest.approx(1.2e9)
    with rasterio.open(sat / COG) as ds:
        res_x = ds.res[0]
    assert ps.patch_size_level0 == round(64 * 1200 / res_x)
    np.testing.assert_allclose(ps.columns["transform_a"], res_x * ps.patch_size_level0 / 64)
    assert "edge: pad" in (tmp_path / "RGB.byte.cog.yaml").read_text()
    assert ps.columns["partial"].any()  # the padded last column / row
