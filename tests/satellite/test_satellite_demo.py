"""The satellite demo through the CLI, checked against its own ground truth (clear land kept,
water, cloud and no-data left out, chips and footprints where the patches are); and a GeoTIFF
tiled without a domain is taken as a satellite scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_cli import run_demo, tile_without_domain

from gigapatch import PatchSet


@pytest.mark.slow
def test_satellite_demo_keeps_clear_land_only(tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio")
    from gigapatch_satellite.synth import synthetic_scene

    paths, kept = run_demo("satellite", tmp_path / "demo", "--size", "1536", "--seed", "2")
    ps = PatchSet.read(paths["h5"])
    assert ps.attrs["domain"] == "satellite"
    with rasterio.open(paths["demo image"]) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.count == 4 and ds.dtypes[0] == "uint16"
        assert ds.nodata == 0 and ds.overviews(1) == [2, 4, 8]
        valid = ds.dataset_mask() > 0
        bounds = ds.bounds
        transform = ds.transform
    _, truth = synthetic_scene(2, 1536)
    assert np.array_equal(truth["valid"], valid)
    # kept: mostly clear land; every grid cell that is mostly clear land is kept
    clear = truth["valid"] & ~truth["water"] & ~truth["cloud"]
    size = ps.patch_size_level0
    fraction = {(int(x), int(y)): clear[y : y + size, x : x + size].mean() for x, y in ps.coords}
    assert min(fraction.values()) > 0.45
    cells = {(x, y): clear[y : y + size, x : x + size].mean()
             for y in range(0, 1536 - size + 1, size) for x in range(0, 1536 - size + 1, size)}
    mostly_clear = {c for c, f in cells.items() if f >= 0.6}
    assert len(mostly_clear & set(fraction)) >= 0.95 * len(mostly_clear)
    # the picture, the footprints (scene CRS and WGS 84), the chips and their STAC catalog
    assert paths["picture"].stat().st_size > 10_000
    geo = json.loads(paths["footprints"].read_text())
    assert len(geo["features"]) == kept and geo["crs"]["properties"]["name"].endswith("32633")
    left, bottom, right, top = geo["bbox"]
    assert bounds.left <= left < right <= bounds.right and bounds.bottom <= bottom < top <= bounds.top
    wgs = json.loads(paths["wgs84"].read_text())
    lon0, lat0, lon1, lat1 = wgs["bbox"]
    assert 13 < lon0 < lon1 < 14 and 47 < lat0 < lat1 < 48  # UTM 33N near 13.7 E, 47.8 N
    chips = sorted(paths["chips"].glob("*.tif"))
    assert len(chips) == kept
    x, y = (int(v) for v in chips[0].stem.split("_"))
    with rasterio.open(chips[0]) as chip, rasterio.open(paths["demo image"]) as ds:
        assert chip.count == 4 and chip.dtypes[0] == "uint16"  # raw 16-bit bands, NIR included
        np.testing.assert_array_equal(chip.read(), ds.read(window=((y, y + size), (x, x + size))))
        assert chip.transform == transform @ transform.translation(x, y)
    catalog = json.loads(paths["stac"].read_text())
    assert sum(link["rel"] == "item" for link in catalog["links"]) == kept
    record = json.loads(paths["raster"].read_text())
    assert record["edge"] == "shift" and record["band_roles"]["nir"] == 4


def test_a_geotiff_is_tiled_as_a_satellite_scene(tmp_path: Path) -> None:
    pytest.importorskip("rasterio")
    from gigapatch_satellite.synth import synthetic_scene, write_geotiff

    bands, _ = synthetic_scene(0, 768)
    scene = write_geotiff(tmp_path / "scene.tif", bands)
    loaded = tile_without_domain(tmp_path / "out", scene)
    assert "rasterio" in loaded
    ps = PatchSet.read(tmp_path / "out" / "scene.h5")
    assert ps.attrs["domain"] == "satellite" and ps.attrs["reader"] == "rasterio"
    assert "domain: satellite" in (tmp_path / "out" / "scene.yaml").read_text()
    assert ps.columns["epsg"].tolist() == [32633] * len(ps)
