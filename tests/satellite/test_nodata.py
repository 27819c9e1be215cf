"""No-data and edges on real scenes, checked against level-0 truth: no kept patch is mostly
no-data, every valid pixel lies in a kept or partial patch, the nodata score is the truth, and a
raster smaller than a patch is kept, padded and flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_paths import need

from gigapatch import load_config, tile_image
from gigapatch_satellite import RasterioImage

rasterio = pytest.importorskip("rasterio")

BYTE = "RGB.byte.tif"
LC08 = "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"


@pytest.fixture(scope="module")
def sat(satellite_dir: Path) -> Path:
    need(satellite_dir / LC08, "the Landsat 8 crop")
    return satellite_dir


def truth_valid(path: Path) -> np.ndarray:
    """(H, W) bool valid pixels of level 0: any band not 0 (both files' fill is 0)."""
    with rasterio.open(path) as ds:
        return (ds.read() != 0).any(axis=0)


def nodata_under(valid: np.ndarray, coords: np.ndarray, size: int) -> np.ndarray:
    """Level-0 no-data share of the part of each patch inside the raster."""
    h, w = valid.shape
    out = []
    for x, y in coords.tolist():
        win = valid[max(0, y) : min(h, y + size), max(0, x) : min(w, x + size)]
        out.append(1.0 - float(win.mean()))
    return np.array(out)


@pytest.mark.parametrize("name, size", [(LC08, 256), (BYTE, 256), (BYTE, 64)])
def test_no_kept_patch_is_mostly_nodata_and_no_valid_pixel_is_lost(sat: Path, name: str,
                                                                   size: int) -> None:
    valid = truth_valid(sat / name)
    cfg = load_config("satellite", overrides={"patch.size": size, "plugin.satellite.exclude": []})
    with RasterioImage(sat / name) as img:
        ps = tile_image(img, cfg)
    kept = nodata_under(valid, ps.coords, size)
    assert len(ps) > 3 and kept.max() <= 0.5  # 0 kept patches with > 50 % no-data
    np.testing.assert_allclose(ps.scores["nodata"], kept, atol=1e-6)  # measured at level 0
    rejected = ps.rejected_coords
    np.testing.assert_allclose(ps.rejected_scores["nodata"], nodata_under(valid, rejected, size),
                               atol=1e-6)
    every = np.concatenate([ps.coords, rejected])
    partial = np.concatenate([ps.columns["partial"], ps.rejected_columns["partial"]])
    is_kept = np.r_[np.ones(len(ps), bool), np.zeros(len(rejected), bool)]
    truth_partial = nodata_under(valid, every, size)
    np.testing.assert_array_equal(partial, (truth_partial > 0) & (truth_partial < 1))
    paint = np.zeros_like(valid)
    for x, y in every[is_kept | partial].tolist():
        paint[y : y + size, x : x + size] = True
    assert (paint & valid).sum() / valid.sum() >= 0.999
    # the edge policy: the last column and row end at the raster's edge, wholly inside it
    h, w = valid.shape
    assert every[:, 0].max() == w - size and every[:, 1].max() == h - size
    assert every.min() >= 0


def test_a_raster_smaller_than_a_patch_is_kept_padded_and_flagged(tmp_path: Path) -> None:
    from gigapatch_satellite.synth import synthetic_scene, write_geotiff

    bands, truth = synthetic_scene(0, 512)
    crop = np.ascontiguousarray(bands[:, 150:300, 150:350])  # 200 x 150 px, all data
    assert truth["valid"][150:300, 150:350].all()
    path = write_geotiff(tmp_path / "small.tif", crop)
    out = tmp_path / "out"
    cfg = load_config("satellite", overrides={"plugin.satellite.chips": "geotiff"})
    with RasterioImage(path) as img:
        ps = tile_image(img, cfg, out_dir=out)
    assert ps.coords.tolist() == [[0, 0]] and ps.columns["partial"].tolist() == [True]
    assert ps.scores["nodata"][0] == 0.0  # the padding is not no-data...
    assert ps.scores["mask_foreground"][0] < 0.5  # ...though it is half the patch
    with rasterio.open(out / "small_chips" / "0_0.tif") as chip:
        data = chip.read()
        assert chip.width == chip.height == 256 and chip.nodata == 0
    np.testing.assert_array_equal(data[:, :150, :200], crop)
    assert (data[:, 150:, :] == 0).all() and (data[:, :, 200:] == 0).all()  # padded with nodata
