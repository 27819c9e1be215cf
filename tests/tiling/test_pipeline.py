"""End-to-end pipeline on synthetic images with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gigapatch
from gigapatch import ArrayImage, PatchSet, load_config, tile_image


def he_like(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """Pink/purple textured 'tissue' where mask is True, near-white glass elsewhere."""
    rng = np.random.default_rng(seed)
    h, w = mask.shape
    img = np.empty((h, w, 3), np.float32)
    img[:] = (242, 242, 244)
    img += rng.normal(0, 2, (h, w, 1))
    tissue = np.array([215, 140, 190], np.float32) + rng.normal(0, 12, (h, w, 1)) * [0.5, 1, 0.6]
    img[mask] = tissue[mask]
    return np.clip(img, 0, 255).astype(np.uint8)


def two_blobs_with_hole() -> np.ndarray:
    """2048 x 1536 mask: a 768 x 768 square with a 256 x 256 hole, and a 512 x 256 rectangle."""
    m = np.zeros((1536, 2048), bool)
    m[256:1024, 256:1024] = True
    m[512:768, 512:768] = False  # the hole: exactly one 256 px grid cell
    m[1280:1536, 1280:1792] = True
    return m


@pytest.fixture()
def config():
    return load_config(
        "pathology",
        overrides={"patch.size": 256, "patch.min_foreground": 0.5, "score.sharpness": False,
                   "mask.downsample": 8, "refine.fill_holes_below": 0.1, "refine.drop_below": 0.1},
    )


def test_two_blobs_and_a_hole_give_the_expected_patches(config, tmp_path: Path) -> None:
    truth = two_blobs_with_hole()
    img = ArrayImage(he_like(truth), mpp=0.5, path=tmp_path / "blobs.tif")
    ps = tile_image(img, config, out_dir=tmp_path / "out")
    expected = {(x, y) for y in range(256, 1024, 256) for x in range(256, 1024, 256)} - {(512, 512)}
    expected |= {(1280, 1280), (1536, 1280)}
    assert {tuple(c) for c in ps.coords.tolist()} == expected
    assert np.all(ps.scores["foreground"] > 0.95)
    # two regions, the big one with one hole
    assert len(ps.regions) == 2
    assert sorted(len(r.holes) for r in ps.regions) == [0, 1]
    big = max(ps.regions, key=lambda r: r.area)
    assert big.area == pytest.approx(768 * 768 - 256 * 256, rel=0.03)
    # outputs on disk
    out = tmp_path / "out"
    back = PatchSet.read(out / "blobs.h5")
    np.testing.assert_array_equal(np.sort(back.coords, axis=0), np.sort(ps.coords, axis=0))
    for key in ("patch_size", "patch_level", "downsample", "level_dim", "patch_size_level0",
                "level0_magnification", "target_magnification", "overlap", "level0_width",
                "level0_height", "name", "mpp", "gigapatch_version", "config_hash"):
        assert key in back.attrs, key
    assert back.attrs["patch_size_level0"] == 256
    assert back.attrs["mpp"] == pytest.approx(0.5)
    assert (out / "blobs.yaml").is_file() and (out / "blobs_overlay.png").is_file()
    assert (out / "blobs.csv").read_text().startswith("image_id,x,y,level,size")
    assert not list(out.glob(".*tmp"))


def test_level_one_patches_are_in_level0_coordinates(config, tmp_path: Path) -> None:
    truth = np.zeros((4096, 4096), bool)
    truth[1024:3072, 1024:3072] = True
    img = ArrayImage(he_like(truth), downsamples=(2, 8), mpp=0.25)
    cfg = config.model_copy(deep=True)
    cfg.patch.level = 1
    cfg.mask.downsample = 16
    ps = tile_image(img, cfg)
    assert ps.attrs["patch_size_level0"] == 512 and ps.attrs["downsample"] == 2
    assert len(ps) == 16  # 2048 / 512 squared
    assert ps.coords.min() == 1024 and ps.coords.max() == 3072 - 512
    assert ps.attrs["effective_mpp"] == pytest.approx(0.5)


def test_mpp_target_resizes_from_the_best_level(config) -> None:
    truth = np.zeros((2048, 2048), bool)
    truth[512:1536, 512:1536] = True
    img = ArrayImage(he_like(truth), downsamples=(4,), mpp=0.25)
    cfg = config.model_copy(deep=True)
    cfg.patch.level = None
    cfg.patch.mpp = 0.5  # twice the level-0 mpp: read level 0 at 512 px, resize to 256
    ps = tile_image(img, cfg)
    assert ps.attrs["patch_level"] == 0 and ps.attrs["read_size"] == 512
    assert ps.attrs["resize_factor"] == pytest.approx(2.0)
    assert ps.attrs["patch_size_level0"] == 512
    assert ps.attrs["target_mpp"] == pytest.approx(0.5) and ps.attrs["effective_mpp"] == pytest.approx(0.5)


def test_blank_image_is_loud_but_valid(config, tmp_path: Path, caplog) -> None:
    img = ArrayImage(he_like(np.zeros((1024, 1024), bool)), path=tmp_path / "glass.png")
    with caplog.at_level("WARNING"):
        ps = tile_image(img, config, out_dir=tmp_path)
    assert len(ps) == 0
    assert "glass" in caplog.text and "foreground" in caplog.text
    back = PatchSet.read(tmp_path / "glass.h5")
    assert back.coords.shape == (0, 2)


def test_a_plugin_scorer_adds_a_column(config) -> None:
    pm = gigapatch.get_plugin_manager()

    class RowScorer:
        @gigapatch.hookimpl
        def gigapatch_score_patches(self, coords, context):
            return {"row": coords[:, 1].astype(np.float32)}

    plugin = RowScorer()
    pm.register(plugin, name="row-scorer")
    try:
        truth = two_blobs_with_hole()
        ps = tile_image(ArrayImage(he_like(truth)), config)
    finally:
        pm.unregister(plugin)
    np.testing.assert_array_equal(ps.scores["row"], ps.coords[:, 1])


def test_geojson_edit_drops_exactly_one_regions_patches(config, tmp_path: Path) -> None:
    """Export regions, delete one as a QuPath user would, re-tile with the edited file."""
    import json

    import shapely

    truth = two_blobs_with_hole()
    img = ArrayImage(he_like(truth), mpp=0.5, path=tmp_path / "blobs.tif")
    cfg = config.model_copy(deep=True)
    cfg.output.geojson = True
    ps = tile_image(img, cfg, out_dir=tmp_path / "a")
    fc = json.loads((tmp_path / "a" / "blobs.geojson").read_text())
    regions = [f for f in fc["features"] if f["properties"].get("objectType") == "annotation"]
    assert len(regions) == 2
    for f in regions:
        assert shapely.geometry.shape(f["geometry"]).is_valid
    small = min(regions, key=lambda f: shapely.geometry.shape(f["geometry"]).area)
    edited = dict(fc, features=[f for f in fc["features"] if f is not small])
    (tmp_path / "edited.geojson").write_text(json.dumps(edited))
    cfg2 = config.model_copy(deep=True)
    cfg2.annotations.path = tmp_path / "edited.geojson"
    ps2 = tile_image(img, cfg2)
    gone = shapely.geometry.shape(small["geometry"])
    in_small = np.array([gone.contains(shapely.Point(x + 128, y + 128)) for x, y in ps.coords])
    assert in_small.sum() == 2
    assert {tuple(c) for c in ps2.coords.tolist()} == {tuple(c) for c in ps.coords[~in_small].tolist()}


def test_plugin_columns_and_outputs_reach_every_file(config, tmp_path: Path) -> None:
    """``gigapatch_patch_columns`` data keeps its dtype in the h5 and the table, is never a score,
    and ``gigapatch_write_outputs`` files come back among the written paths."""
    import csv

    pm = gigapatch.get_plugin_manager()

    class Columns:
        @gigapatch.hookimpl
        def gigapatch_patch_columns(self, coords, context):
            x = coords[:, 0].astype(np.float64) + 0.123456789  # float64: kept exactly
            return {"easting": x, "label": np.where(coords[:, 1] > 300, "low", "high")}

        @gigapatch.hookimpl
        def gigapatch_write_outputs(self, patchset, context, out_dir):
            path = out_dir / f"{patchset.image_id}.labels.txt"
            path.write_text("\n".join(patchset.columns["label"]))
            return {"labels": path}

    plugin = Columns()
    pm.register(plugin, name="columns")
    try:
        img = ArrayImage(he_like(two_blobs_with_hole()), path=tmp_path / "blobs.png")
        ps = tile_image(img, config, out_dir=tmp_path)
    finally:
        pm.unregister(plugin)
    assert len(ps) > 0 and "easting" not in ps.scores
    np.testing.assert_array_equal(ps.columns["easting"], ps.coords[:, 0] + 0.123456789)
    back = PatchSet.read(tmp_path / "blobs.h5")
    assert back.columns["easting"].dtype == np.float64
    np.testing.assert_array_equal(back.columns["easting"], ps.columns["easting"])
    assert back.columns["label"].tolist() == ps.columns["label"].tolist()
    assert len(back.rejected_columns["label"]) == len(back.rejected_coords)
    with open(tmp_path / "blobs.csv") as f:
        rows = list(csv.DictReader(f))
    kept = [r for r in rows if r["kept"] == "True"]
    assert {r["label"] for r in kept} == set(ps.columns["label"].tolist())
    assert (tmp_path / "blobs.labels.txt").read_text().split("\n") == ps.columns["label"].tolist()


def test_mask_downsample_snaps_to_a_whole_multiple_of_a_stored_level():
    from types import SimpleNamespace

    from gigapatch.tiling.pipeline import mask_downsample_for

    class Pyramid:
        level_downsamples = (1.0, 4.0, 16.0, 64.0)

        def __init__(self, side: int) -> None:
            self.dimensions = (side, side)

        def get_best_level_for_downsample(self, d: float) -> int:
            return max(i for i, v in enumerate(self.level_downsamples) if v <= d * (1 + 1e-6))

    cfg = SimpleNamespace(mask=SimpleNamespace(downsample=8.0, max_side=1280))
    assert mask_downsample_for(Pyramid(40_000), cfg, 256) == 32.0  # 31.25 -> 2 x the 16 level
    assert mask_downsample_for(Pyramid(10_000), cfg, 256) == 8.0  # already 2 x the 4 level
    assert mask_downsample_for(Pyramid(100_000), cfg, 256) == 64.0  # a stored level (cap)
    # 12288 / 1280 = 9.6: 3 x 4 = 12 is more than 10 % coarser, so the target stays
    assert mask_downsample_for(Pyramid(12_288), cfg, 256) == pytest.approx(9.6)
