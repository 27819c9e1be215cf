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


def covered(valid: np.ndarray, coords: np.ndarray, size: int) -> np.ndarray:
    """(H, W) bool: valid pixels under any of the (N, 2) level-0 patches."""
    paint = np.zeros_like(valid)
    for x, y in coords.tolist():
        paint[max(0, y) : y + size, max(0, x) : x + size] = True
    return paint & valid


@pytest.mark.parametrize("edge", ["skip", "pad", "shift"])
def test_edge_policies_are_recorded_and_decide_the_edge_strip(sat: Path, tmp_path: Path,
                                                              edge: str) -> None:
    """The LC08 crop holds data up to its right and bottom edges; 64 px patches: skip keeps
    whole patches only and loses the leftover strip, pad overhangs the edge (those patches
    flagged partial), shift ends the last row / column at the edge; none keeps a patch that is
    mostly no-data, and the policy is recorded with the run."""
    valid = truth_valid(sat / LC08)
    h, w = valid.shape
    cfg = load_config("satellite", overrides={"patch.size": 64, "patch.edge": edge,
                                              "plugin.satellite.exclude": []})
    with RasterioImage(sat / LC08) as img:
        ps = tile_image(img, cfg, out_dir=tmp_path)
    recorded = "inside" if edge == "skip" else edge  # 'skip' is recorded by its core name
    assert f"edge: {recorded}" in (tmp_path / f"{Path(LC08).stem}.yaml").read_text()
    assert nodata_under(valid, ps.coords, 64).max() <= 0.5
    every = np.concatenate([ps.coords, ps.rejected_coords])
    partial = np.concatenate([ps.columns["partial"], ps.rejected_columns["partial"]])
    is_kept = np.r_[np.ones(len(ps), bool), np.zeros(len(ps.rejected_coords), bool)]
    right, bottom = every[:, 0].max() + 64, every[:, 1].max() + 64
    over = (every[:, 0] + 64 > w) | (every[:, 1] + 64 > h)
    got = covered(valid, every[is_kept | partial], 64)
    share = got.sum() / valid.sum()
    assert every.min() >= 0
    if edge == "skip":
        assert not over.any() and right <= w and bottom <= h and (right < w or bottom < h)
        assert share < 0.99  # the strip past the last whole patch is lost...
        assert valid[:, right:].any() or valid[bottom:, :].any()  # ...and it held data
    elif edge == "pad":
        assert over.any() and partial[over].all()  # overhanging patches are flagged
        assert w <= right < w + 64 and h <= bottom < h + 64  # the first reaching the edge
        assert share >= 0.999
    else:
        assert not over.any() and (right, bottom) == (w, h)  # the last ones end at the edge
        assert share >= 0.999


def test_padded_chips_hold_nodata_past_the_edge(sat: Path, tmp_path: Path) -> None:
    """--edge pad with GeoTIFF chips on the LC08 crop: a chip past the raster's edge holds the
    file's values inside it and its no-data value outside, with the exact transform of its
    (overhanging) window."""
    cfg = load_config("satellite", overrides={
        "patch.size": 256, "patch.edge": "pad", "plugin.satellite.exclude": [],
        "plugin.satellite.chips": "geotiff"})
    with RasterioImage(sat / LC08) as img:
        ps = tile_image(img, cfg, out_dir=tmp_path)
        fill = img.nodata  # untagged file: the Landsat fill value 0, from the product id
    Window = rasterio.windows.Window
    with rasterio.open(sat / LC08) as src:
        w, h = src.width, src.height
        over = [i for i, (x, y) in enumerate(ps.coords.tolist()) if x + 256 > w or y + 256 > h]
        assert over and fill is not None
        for i in over:
            x, y = (int(v) for v in ps.coords[i])
            assert ps.columns["partial"][i]
            win = Window(x, y, 256, 256)
            with rasterio.open(tmp_path / f"{Path(LC08).stem}_chips" / f"{x}_{y}.tif") as chip:
                data = chip.read()
                np.testing.assert_allclose(tuple(chip.transform)[:6],
                                           tuple(src.window_transform(win))[:6], rtol=0, atol=1e-9)
                assert chip.nodata == fill
            np.testing.assert_array_equal(data, src.read(window=win, boundless=True,
                                                         fill_value=fill))
            assert (data[:, h - y :, :] == fill).all() and (data[:, :, w - x :] == fill).all()


@pytest.mark.parametrize("striped", [False, True])
def test_chunked_edge_measure_is_the_per_patch_read(sat: Path, tmp_path: Path,
                                                    striped: bool) -> None:
    """measured_nodata reads chunks of whole blocks once; its values are those of reading each
    patch's window alone (tiled COG overviews, and a striped file), patches past the edge and
    wholly outside included."""
    from gigapatch_satellite.footprint import measure_level, measured_nodata

    path = sat / LC08
    if striped:
        with rasterio.open(path) as ds:
            profile = {**ds.profile, "tiled": False, "blockysize": 3}
            profile.pop("blockxsize", None)
            data = ds.read()
        path = tmp_path / "striped.tif"
        with rasterio.open(path, "w", **profile) as out:
            out.write(data)
            out.build_overviews([2, 4])
    rng = np.random.default_rng(3)
    coords = np.column_stack([rng.integers(-300, 2300, 300), rng.integers(-300, 2100, 300)])
    with RasterioImage(path) as img:
        for size0, side in ((256, 64), (256, 16), (512, 64), (200, 16)):
            level = measure_level(img, size0, side)
            d = img.level_downsamples[level]
            n = max(1, int(round(size0 / d)))
            want = []
            for x, y in coords.tolist():
                _, valid, inside = img.read_bands((x, y), level, (n, n), img.roles.rgb)
                want.append(1.0 - float(valid.sum()) / max(1, int(inside.sum())))
            for workers in (1, 2):
                got = measured_nodata(img, coords, size0, workers, side)
                np.testing.assert_array_equal(got, np.array(want, np.float32))
