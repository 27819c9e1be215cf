"""Prediction reads tiles at the physical resolution the model was trained at (recorded in the
checkpoint), on PANDA-like pyramids and on one-level copies of the same slides, or refuses with
one line when an image's resolution cannot be matched."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("sklearn")

import gigapatch  # noqa: E402
from gigapatch import ArrayImage, ImageError, PatchSet  # noqa: E402
from gigapatch.training.config import TrainConfig  # noqa: E402
from gigapatch.training.inference import check_image_resolution  # noqa: E402
from gigapatch.training.trainer import load_checkpoint  # noqa: E402
from gigapatch_pathology.cohort import CohortSpec, write_cohort, write_slide  # noqa: E402
from gigapatch_pathology.panda import with_panda_defaults  # noqa: E402

TILE = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list]:
    """A model trained on level 1 (downsample 4: 2 um/px) of PANDA-like 0.5 um/px pyramids."""
    from gigapatch.training import train

    root = tmp_path_factory.mktemp("panda_like")
    samples = write_cohort(root, 12, seed=5, spec=CohortSpec(size=512))
    cfg = with_panda_defaults({
        "arm": "mosaic", "model": "resnet18", "epochs": 1, "batch_size": 4, "workers": 0,
        "folds": 2, "fold": [0], "seed": 1,
        "mosaic": {"n_tiles": 4, "tile_size": TILE, "level": 1},
    })
    train(cfg, root, root / "run")
    return root, root / "run" / "fold0" / "best.pt", samples


def _one_level_copies(samples: list, out: Path, mpp: float | None) -> list[Path]:
    """Level 0 of each slide rewritten as a one-level TIFF (no pyramid), with or without mpp."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in samples:
        with gigapatch.open_image(s.path) as img:
            assert img.level_count == 2 and img.mpp == pytest.approx(0.5)
            rgb = img.read_region((0, 0), 0, img.dimensions)
        paths.append(write_slide(out / s.path.name, rgb, mpp=mpp, downsamples=()) if mpp else
                     gigapatch.write_pyramidal_tiff(out / s.path.name, rgb, downsamples=(),
                                                    tile=256, quality=90))
    return paths


def _pictures(folder: Path, ids: list[str]) -> np.ndarray:
    import cv2

    return np.stack([cv2.imread(str(folder / f"{i}_mosaic.png")).astype(np.int16) for i in ids])


@pytest.mark.slow
def test_predict_reads_at_the_trained_resolution(trained: tuple[Path, Path, list],
                                                 tmp_path: Path) -> None:
    from gigapatch.cli.app import main
    from gigapatch.training import predict  # the facade, its module already imported above

    root, best, samples = trained
    dc = load_checkpoint(best)["data_config"]
    assert (dc["level"], dc["mpp"], dc["downsample"]) == (1, pytest.approx(2.0), pytest.approx(4.0))
    assert dc["mpp_range"] == [pytest.approx(2.0), pytest.approx(2.0)]
    some = samples[:4]
    ids = [s.image_id for s in some]

    pyramid = predict(best, [s.path for s in some], tmp_path / "pyr")
    flat_paths = _one_level_copies(some, tmp_path / "flat", mpp=0.5)
    flat = predict(best, flat_paths, tmp_path / "flat_pred")
    for i in ids:  # one level: read at level 0, 4 x the tile side, resized to 2 um/px
        a = PatchSet.read(tmp_path / "flat_pred" / "tiles" / f"{i}.h5").attrs
        assert a["effective_mpp"] == pytest.approx(2.0) and a["read_size"] == 4 * TILE
        assert a["patch_size_level0"] == 4 * TILE
        b = PatchSet.read(tmp_path / "pyr" / "tiles" / f"{i}.h5").attrs
        assert b["effective_mpp"] == pytest.approx(2.0) and b["read_size"] == TILE
    p, q = _pictures(tmp_path / "pyr", ids), _pictures(tmp_path / "flat_pred", ids)
    # the same tissue at the same scale (the pyramid's own downsample vs our resize, JPEG)
    assert np.abs(p - q).mean() < 6, np.abs(p - q).mean()
    # what the old behaviour fed the model: 32 px crops of level 0 (0.5 um/px), far apart
    with gigapatch.open_image(flat_paths[0]) as img:
        crops = [img.read_region((x, y), 0, (TILE, TILE)) for x, y in
                 PatchSet.read(tmp_path / "flat_pred" / "tiles" / f"{ids[0]}.h5").coords[:1]]
    zoomed = np.abs(crops[0].astype(np.int16) - q[0, :TILE, :TILE, ::-1]).mean()
    assert zoomed > 2 * np.abs(p - q).mean()
    np.testing.assert_allclose([r["probs"] for r in flat], [r["probs"] for r in pyramid], atol=0.05)

    # a one-level copy that records no mpp: refused in one line, or read with --slide-mpp
    bare = _one_level_copies(some[:1], tmp_path / "bare", mpp=None)
    with pytest.raises(ImageError, match="records no mpp.*2 um/px: pass --slide-mpp") as e:
        predict(best, bare, tmp_path / "bare_pred")
    assert e.value.path == str(bare[0])
    again = predict(best, bare, tmp_path / "bare_pred", slide_mpp=0.5)
    assert np.abs(_pictures(tmp_path / "bare_pred", ids[:1]) - q[:1]).mean() < 1
    assert again[0]["grade"] == flat[0]["grade"]
    with pytest.raises(SystemExit) as ex:
        main(["predict", "--checkpoint", str(best), str(bare[0]), "--out", str(tmp_path / "c"),
              "--quiet"])
    assert ex.value.code == 2
    main(["predict", "--checkpoint", str(best), str(bare[0]), "--out", str(tmp_path / "c"),
          "--slide-mpp", "0.5", "--quiet"])
    assert len(list(csv.DictReader(open(tmp_path / "c" / "predictions.csv")))) == 1


def test_precomputed_tiles_of_another_resolution_are_refused(
    trained: tuple[Path, Path, list], tmp_path: Path
) -> None:
    from gigapatch.training import predict  # the facade, its module already imported above

    _, best, samples = trained
    s = samples[0]
    coords = tmp_path / "coords"
    coords.mkdir()
    PatchSet(s.image_id, np.array([[0, 0]]), {"foreground": np.array([1.0])},
             {"patch_level": 0, "read_size": TILE, "patch_size": TILE, "patch_size_level0": TILE,
              "effective_mpp": 0.5}).write_h5(coords / f"{s.image_id}.h5")
    with pytest.raises(ImageError, match=r"holds tiles of 0\.5 um/px; the model was trained on "
                                         r"tiles of 2 um/px"):
        predict(best, [s.path], tmp_path / "p", coords_dir=coords)


def test_the_facade_names_the_function() -> None:
    """``gigapatch.training.predict`` is the function even after its module was imported."""
    import gigapatch.training
    import gigapatch.training.inference

    assert callable(gigapatch.training.predict)


def test_a_model_without_mpp_needs_the_same_downsample() -> None:
    """Trained on images without mpp: the configured level must have the trained downsample."""
    cfg = TrainConfig(mosaic={"level": 1, "tile_size": TILE})
    dc = {"mpp": None, "downsample": 4.0, "level": 1}
    rgb = np.full((256, 256, 3), 200, np.uint8)
    pyramid = ArrayImage(rgb, downsamples=(4,))
    check_image_resolution(pyramid, cfg, dc)  # level 1 is downsample 4: fine
    with pytest.raises(ImageError, match="level 0 has downsample 1 .* cannot be matched"):
        check_image_resolution(ArrayImage(rgb, downsamples=()), cfg, dc)
    check_image_resolution(ArrayImage(rgb, downsamples=()), cfg, {"mpp": None})  # old checkpoint
