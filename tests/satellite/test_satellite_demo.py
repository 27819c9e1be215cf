"""The satellite demo through the CLI, checked against its own ground truth (clear land kept,
water, cloud and no-data left out, footprints in the scene's CRS); and a GeoTIFF tiled without a
domain is taken as a satellite scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_cli import run_demo, tile_without_domain

from gigapatch import PatchSet


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
    assert not valid[0, 0] and not valid[-1, -1] and valid[768, 768]  # rotated footprint
    _, truth = synthetic_scene(2, 1536)
    assert np.array_equal(truth["valid"], valid)
    assert truth["water"].any() and truth["cloud"].any()
    # kept: the grid cells (of the run's grid) that are mostly clear land, and no others
    clear = truth["valid"] & ~truth["water"] & ~truth["cloud"]
    size = ps.patch_size_level0
    x0, y0 = ps.coords.min(axis=0) % size
    cells = {(x, y): clear[y : y + size, x : x + size].mean()
             for y in range(y0, 1536 - size + 1, size) for x in range(x0, 1536 - size + 1, size)}
    kept_cells = {(int(x), int(y)) for x, y in ps.coords}
    assert kept_cells <= set(cells) and min(cells[c] for c in kept_cells) > 0.45
    mostly_clear = {c for c, f in cells.items() if f >= 0.6}
    assert len(mostly_clear & kept_cells) >= 0.95 * len(mostly_clear)
    # footprints: one polygon a patch, in the scene's CRS, inside its bounds
    geo = json.loads(paths["footprints"].read_text())
    assert len(geo["features"]) == kept
    assert geo["crs"]["properties"]["name"].endswith("32633")
    left, bottom, right, top = geo["bbox"]
    assert bounds.left <= left < right <= bounds.right and bounds.bottom <= bottom < top <= bounds.top


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
