"""Training: ordinal heads, models, config validation, label tables (generic and PANDA), datasets,
and train/predict/resume end to end on tiny synthetic cohorts (CPU, a few seconds per run); the
pathology plugin's side (ISUP grades, its cohort, its training hook) is in
tests/pathology/test_pathology_training.py."""

from __future__ import annotations

import csv
import math
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers_paths import REPO

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("sklearn")

import gigapatch  # noqa: E402
from gigapatch import ArrayImage, ConfigError, ImageError, PatchSet  # noqa: E402
from gigapatch.training import DataConfig, load_samples  # noqa: E402
from gigapatch.training.config import load_train_config, validate_train_config  # noqa: E402
from gigapatch.training.datasets import (  # noqa: E402
    MosaicDataset,
    PatchDataset,
    ResizeDataset,
    SlideItem,
)
from gigapatch.training.models import (  # noqa: E402
    create_model,
    ordinal_decode,
    ordinal_encode,
    ordinal_probs,
)
from gigapatch.training.trainer import (  # noqa: E402
    fold_assignment,
    load_checkpoint,
    quadratic_kappa,
)
from gigapatch_pathology.cohort import CohortSpec, write_cohort  # noqa: E402
from gigapatch_pathology.panda import PANDA_DATA, with_panda_defaults  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


# ---------------------------------------------------------------------- ordinal head
def test_ordinal_encoding_and_decoding() -> None:
    labels = torch.arange(6)
    t = ordinal_encode(labels, 6)
    assert t.shape == (6, 5)
    for k in range(6):  # label k -> k leading ones
        assert t[k].tolist() == [1.0] * k + [0.0] * (5 - k)
    logits = (t * 2 - 1) * 4.0  # confident logits for each target
    assert ordinal_decode(logits).tolist() == list(range(6))
    p = ordinal_probs(logits)
    assert p.shape == (6, 6)
    torch.testing.assert_close(p.sum(1), torch.ones(6))
    assert p.argmax(1).tolist() == list(range(6))
    # non-monotone outputs still give valid probabilities
    q = ordinal_probs(torch.tensor([[3.0, -3.0, 3.0, -3.0, -3.0]]))
    assert (q >= 0).all() and math.isclose(float(q.sum()), 1.0, rel_tol=1e-6)


def test_qwk_is_sklearn_quadratic_kappa() -> None:
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 50)
    p = np.clip(y + rng.integers(-1, 2, 50), 0, 5)
    assert quadratic_kappa(y, p, 6) == pytest.approx(cohen_kappa_score(y, p, weights="quadratic"))
    assert quadratic_kappa(y, y, 6) == pytest.approx(1.0)
    assert quadratic_kappa(np.zeros(4, int), np.zeros(4, int), 6) == 0.0  # undefined -> 0


def test_stratified_folds() -> None:
    labels = np.repeat(np.arange(6), 8)
    f = fold_assignment(labels, 4, seed=0)
    for k in range(4):  # each fold holds 2 of each class
        assert np.bincount(labels[f == k], minlength=6).tolist() == [2] * 6
    np.testing.assert_array_equal(f, fold_assignment(labels, 4, seed=0))


# ---------------------------------------------------------------------- models
@pytest.mark.parametrize(("head", "outputs"), [("classification", 6), ("ordinal", 5)])
def test_create_model_heads(head: str, outputs: int) -> None:
    m = create_model("resnet18", 6, head=head).eval()
    with torch.no_grad():
        assert m(torch.zeros(2, 3, 64, 64)).shape == (2, outputs)


def test_pretrained_is_local_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never downloads"):
        create_model("resnet18", 6, pretrained="imagenet")
    with pytest.raises(ConfigError, match="never downloads"):
        create_model("resnet18", 6, pretrained=True)
    with pytest.raises(ConfigError, match="not found"):
        create_model("resnet18", 6, pretrained=tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="unknown timm model"):
        create_model("no_such_net", 6)
    # a local "ImageNet" file: backbone loaded, 1000-class classifier skipped
    src = create_model("resnet18", 1000)
    torch.save(src.state_dict(), tmp_path / "in1k.pth")
    m = create_model("resnet18", 6, head="ordinal", pretrained=tmp_path / "in1k.pth")
    torch.testing.assert_close(m.conv1.weight, src.conv1.weight)
    assert m.fc.weight.shape == (5, 512)


# ---------------------------------------------------------------------- config
def test_shipped_configs_validate() -> None:
    mosaic = load_train_config(REPO / "configs" / "panda-mosaic.yaml")
    assert (mosaic.arm, mosaic.model, mosaic.mosaic.n_tiles, mosaic.mosaic.level) == (
        "mosaic", "resnext50_32x4d", 36, 1,
    )
    assert mosaic.input_size == 1536 and mosaic.folds == 4 and mosaic.optim.lr == 1e-3
    resize = load_train_config(REPO / "configs" / "panda-resize.yaml")
    assert (resize.arm, resize.model, resize.input_size) == ("resize", "seresnext50_32x4d", 256)
    # one flag switches the arm; flags override the file
    other = load_train_config(REPO / "configs" / "panda-mosaic.yaml", {"arm": "resize", "epochs": 1})
    assert other.arm == "resize" and other.input_size == 256 and other.epochs == 1
    assert (mosaic.domain, mosaic.num_classes, mosaic.data.csv, mosaic.data.suffix) == (
        "pathology", 6, "train.csv", ".tiff",
    )
    for name in ("synthetic-mosaic.yaml", "synthetic-resize.yaml"):
        syn = load_train_config(REPO / "configs" / name)
        assert (syn.model, syn.domain, syn.num_classes) == ("resnet18", "pathology", 6)


def test_a_flag_replaces_the_file_keys_it_conflicts_with(tmp_path: Path) -> None:
    """``--folds`` runs every fold of its split: it replaces the file's ``fold`` list (whose
    indices belong to the file's fold count) unless ``--fold`` is given too; other file keys stay."""
    from gigapatch.training.config import read_train_config

    f = tmp_path / "t.yaml"
    f.write_text("folds: 4\nfold: [0]\nepochs: 3\n")
    assert load_train_config(f).fold == [0]
    cfg = load_train_config(f, {"folds": 2, "fold": None})
    assert (cfg.folds, cfg.fold, cfg.epochs) == (2, None, 3)  # None: every fold
    assert load_train_config(f, {"folds": 2, "fold": [1]}).fold == [1]
    assert load_train_config(f, {"epochs": 1}).fold == [0]  # an unrelated flag keeps it
    assert "fold" not in read_train_config(f, {"folds": 2})
    assert "fold" in read_train_config(f, {"seed": 3})


def test_workers_fit_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    from gigapatch.training import config as tc

    monkeypatch.setattr(tc, "available_cores", lambda: 2)
    assert tc.resolve_workers(None) == (2, None)  # the default: the cores, at most 8
    n, note = tc.resolve_workers(8)
    assert n == 2 and note == "workers: 8 asked for, 2 CPU cores available: using 2 loader workers"
    assert tc.resolve_workers(1) == (1, None) and tc.resolve_workers(0) == (0, None)
    monkeypatch.setattr(tc, "available_cores", lambda: 64)
    assert tc.resolve_workers(None) == (8, None)
    monkeypatch.undo()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun: the node's cores are shared
    assert tc.available_cores() == max(1, len(__import__("os").sched_getaffinity(0)) // 2)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"epoch": 3}, "epoch"),
        ({"mosaic": {"tiles": 4}}, "mosaic.tiles"),
        ({"arm": "crop"}, "arm"),
        ({"folds": 2, "fold": [2]}, "outside"),
        ({"num_classes": 3, "data": {"label_names": ["a", "b"]}}, "label_names"),
    ],
)
def test_bad_config_is_one_line(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        validate_train_config(data, "run.yaml")
    assert "\n" not in str(e.value) and str(e.value).startswith("run.yaml: ")


# ---------------------------------------------------------------------- data tables
def test_panda_table_errors(tmp_path: Path) -> None:
    panda = DataConfig(**{**PANDA_DATA, "group_column": None})
    with pytest.raises(ConfigError, match="no train.csv"):
        load_samples(tmp_path, panda)
    with pytest.raises(ConfigError, match="no labels.csv"):  # the generic layout by default
        load_samples(tmp_path)
    (tmp_path / "train_images").mkdir()
    (tmp_path / "train.csv").write_text("image_id,isup_grade\na,1\nb,7\n")
    (tmp_path / "train_images" / "a.tiff").write_bytes(b"x")
    with pytest.raises(ImageError, match="b.tiff"):
        load_samples(tmp_path, panda)
    (tmp_path / "train_images" / "b.tiff").write_bytes(b"x")
    with pytest.raises(ConfigError, match="row 3"):
        load_samples(tmp_path, panda, num_classes=6)
    with pytest.raises(ConfigError, match="no column 'data_provider'"):
        load_samples(tmp_path, DataConfig(**PANDA_DATA))
    (tmp_path / "train.csv").write_text("image_id,grade\na,1\n")
    with pytest.raises(ConfigError, match="no column 'isup_grade'"):
        load_samples(tmp_path, panda)


def test_generic_table_any_suffix(tmp_path: Path) -> None:
    """labels.csv + images/<id>.<any image suffix>; sidecars ignored; ambiguity is an error."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.v2.tiff", "c.jpg", "c.json", "d.ome.tiff", "notes.txt"):
        (images / name).write_bytes(b"x")
    (tmp_path / "labels.csv").write_text("image_id,label\na,0\nb.v2,2\nc,1\nd,0\n")
    samples = load_samples(tmp_path)
    assert [(s.image_id, s.path.name, s.label) for s in samples] == [
        ("a", "a.png", 0), ("b.v2", "b.v2.tiff", 2), ("c", "c.jpg", 1), ("d", "d.ome.tiff", 0),
    ]
    (images / "a.jpg").write_bytes(b"x")
    with pytest.raises(ImageError, match=r"ambiguous \(a.jpg, a.png\); set data.suffix") as e:
        load_samples(tmp_path)
    assert "labels.csv row 2" in str(e.value)
    assert load_samples(tmp_path, DataConfig(suffix=".png", limit=1))[0].path.name == "a.png"
    (tmp_path / "labels.csv").write_text("image_id,label\ne,1\n")
    with pytest.raises(ImageError, match="labels.csv row 2 not found"):
        load_samples(tmp_path)
    (tmp_path / "labels.csv").write_text("image_id,label\nd,-1\n")
    with pytest.raises(ConfigError, match="row 2: label '-1' is not an integer"):
        load_samples(tmp_path)


# ---------------------------------------------------------------------- datasets
_ARRAYS: dict[str, np.ndarray] = {}
_OPENED: list[str] = []


def _array_opener(path: Path) -> ArrayImage:
    _OPENED.append(str(path))
    return ArrayImage(_ARRAYS[str(path)], downsamples=(4,))


def _unnormalise(x: torch.Tensor) -> np.ndarray:
    return np.clip(np.round((x.permute(1, 2, 0).numpy() * STD + MEAN) * 255), 0, 255).astype(np.uint8)


def _colour_grid() -> tuple[np.ndarray, np.ndarray]:
    """A 256 px image of 16 flat 64 px cells with distinct colours; (image, colours (16, 3))."""
    colours = np.stack([np.arange(16) * 12 + 10, 200 - np.arange(16) * 9, np.full(16, 77)], 1)
    img = np.zeros((256, 256, 3), np.uint8)
    for i, c in enumerate(colours):
        img[(i // 4) * 64 : (i // 4 + 1) * 64, (i % 4) * 64 : (i % 4 + 1) * 64] = c
    return img, colours.astype(np.uint8)


def test_mosaic_dataset_takes_the_best_tiles_in_rank_order() -> None:
    img, colours = _colour_grid()
    _ARRAYS["grid"] = img
    coords = np.array([[(i % 4) * 64, (i // 4) * 64] for i in range(16)])
    scores = np.random.default_rng(1).permutation(16).astype(np.float32)
    item = SlideItem("grid", Path("grid"), 3, coords=coords, scores=scores, level=0, read_size=64)
    ds = MosaicDataset([item], n_tiles=9, tile_size=32, opener=_array_opener)
    x, y = ds[0]
    assert y == 3 and x.shape == (3, 96, 96) and x.dtype == torch.float32
    pic = _unnormalise(x)
    best = np.argsort(-scores)[:9]
    for cell, tile in enumerate(best):  # cell i holds the i-th best tile (resized 64 -> 32 px)
        r, c = divmod(cell, 3)
        np.testing.assert_array_equal(pic[r * 32 : (r + 1) * 32, c * 32 : (c + 1) * 32],
                                      np.broadcast_to(colours[tile], (32, 32, 3)))
    # groups: "last" with 16 candidates and N=9 takes ranks 7..15
    ds.group = "last"
    np.testing.assert_array_equal(ds.tile_indices(0), np.argsort(-scores)[7:16])
    # augmentation flips tiles in place: each cell is a flip of the same tile, differing by epoch
    _ARRAYS["noise"] = np.random.default_rng(4).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    noisy = SlideItem("noise", Path("noise"), 0, coords=coords, scores=scores, level=0, read_size=64)
    aug = MosaicDataset([noisy], n_tiles=16, tile_size=64, augment=True, opener=_array_opener)
    plain = aug.picture(0, augment=False)
    flipped = 0
    for epoch in range(3):
        aug.set_epoch(epoch)
        pic = aug.picture(0)
        for cell in range(16):
            r, c = divmod(cell, 4)
            a = plain[r * 64 : (r + 1) * 64, c * 64 : (c + 1) * 64]
            b = pic[r * 64 : (r + 1) * 64, c * 64 : (c + 1) * 64]
            flips = [a, a[:, ::-1], a[::-1], a[::-1, ::-1]]
            k = [np.array_equal(b, f) for f in flips].index(True)
            flipped += k > 0
    assert 0 < flipped < 48


def test_lru_keeps_at_most_max_open_images() -> None:
    rng = np.random.default_rng(2)
    items = []
    for i in range(5):
        _ARRAYS[f"img{i}"] = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        items.append(SlideItem(f"img{i}", Path(f"img{i}"), i % 2, coords=np.array([[0, 0], [32, 32]]),
                               scores=np.array([1.0, 0.5]), read_size=32))
    _OPENED.clear()
    ds = MosaicDataset(items, n_tiles=2, tile_size=32, max_open=2, opener=_array_opener)
    for i in [0, 1, 0, 2, 3, 0, 4]:
        ds[i]
        assert len(ds.cache) <= 2
    # 0 is reopened after 1, 2 pushed it out; cached hits do not reopen
    assert _OPENED == ["img0", "img1", "img2", "img3", "img0", "img4"]


def test_resize_and_patch_datasets() -> None:
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 255, (512, 384, 3), dtype=np.uint8)
    _ARRAYS["big"] = arr
    item = SlideItem("big", Path("big"), 1)
    rs = ResizeDataset([item], size=64, level=-1, opener=_array_opener)
    x, y = rs[0]
    assert x.shape == (3, 64, 64) and y == 1
    import cv2

    low = ArrayImage(arr, downsamples=(4,))
    want = cv2.resize(low.read_region((0, 0), 1, low.level_dimensions[1]), (64, 64),
                      interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(_unnormalise(x), want)
    pitem = SlideItem("big", Path("big"), 0, coords=np.array([[100, 200]]), read_size=32)
    px, _ = PatchDataset([pitem], size=32, opener=_array_opener)[0]
    np.testing.assert_array_equal(_unnormalise(px), arr[200:232, 100:132])


# ---------------------------------------------------------------------- end to end
SPEC = CohortSpec(size=512)


def _grid_coords(samples, out: Path, tile: int) -> Path:
    """PatchSets of a plain grid (tissue fraction from a threshold): coords without the pipeline."""
    out.mkdir(parents=True, exist_ok=True)
    for s in samples:
        with gigapatch.open_image(s.path) as img:
            thumb = img.read_level_downsampled(tile / 4)
        fg = (thumb.min(axis=2) < 225).astype(np.float32)
        gh, gw = fg.shape[0] // 4, fg.shape[1] // 4
        frac = fg[: gh * 4, : gw * 4].reshape(gh, 4, gw, 4).mean(axis=(1, 3))
        ys, xs = np.nonzero(frac > 0.25)
        PatchSet(s.image_id, np.stack([xs * tile, ys * tile], 1), {"foreground": frac[ys, xs]},
                 {"patch_level": 0, "read_size": tile, "patch_size": tile}).write_h5(out / f"{s.image_id}.h5")
    return out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cohort")
    samples = write_cohort(root, 12, seed=3, spec=SPEC)
    return root, _grid_coords(samples, root / "coords", 32)


def _cfg(coords: Path, **kw) -> dict:
    """A tiny run on the cohort (PANDA layout: the pathology defaults beneath these keys)."""
    cfg = {
        "arm": "mosaic", "model": "resnet18", "epochs": 2, "batch_size": 4, "workers": 0,
        "folds": 2, "fold": [0], "seed": 1,
        "mosaic": {"n_tiles": 4, "tile_size": 32, "level": 0, "group": "random"},
        "data": {"coords_dir": str(coords)},
    }
    cfg.update(kw)
    return with_panda_defaults(cfg)


def _metrics(out: Path) -> list[dict]:
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_train_predict_resume(
    cohort: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from gigapatch.training import predict, train

    data, coords = cohort
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="gigapatch"):
        summary = train(_cfg(coords), data, out)
    rows = _metrics(out)
    assert [int(r["epoch"]) for r in rows] == [0, 1] and {r["fold"] for r in rows} == {"0"}
    logged = [m for m in caplog.messages if m.startswith("fold 0 epoch ")]  # the same numbers
    assert [m.split()[3] for m in logged] == ["0", "1"]
    assert list(rows[0]) == ["epoch", "fold", "train_loss", "val_loss", "qwk", "accuracy", "lr", "seconds"]
    assert all(-1 <= float(r["qwk"]) <= 1 for r in rows)
    assert float(rows[0]["lr"]) == pytest.approx(1e-3) and float(rows[1]["lr"]) < 1e-3  # cosine
    best = summary["folds"][0]
    assert best["best_qwk"] == pytest.approx(max(float(r["qwk"]) for r in rows), abs=1e-5)
    for name in ("best.pt", "last.pt", "confusion.png", "val_predictions.csv"):
        assert (out / "fold0" / name).is_file(), name
    ck = load_checkpoint(out / "fold0" / "last.pt")
    dc = ck["data_config"]
    assert (dc["arm"], dc["n_tiles"], dc["tile_size"], dc["input_size"], dc["num_classes"]) == (
        "mosaic", 4, 32, 64, 6,
    )
    assert dc["mean"] == pytest.approx(list(MEAN)) and set(ck["versions"]) >= {"gigapatch", "torch", "timm"}
    assert {"optimizer", "scheduler", "scaler"} <= set(ck)
    val = [r for r in csv.DictReader(open(data / "train.csv"))]
    folds = {r["image_id"]: r["fold"] for r in csv.DictReader(open(out / "folds.csv"))}
    assert len(folds) == len(val) == 12

    # predict reloads the checkpoint and grades images; the same pictures -> the same grades
    images = sorted((data / "train_images").glob("*.tiff"))[:3]
    res = predict(out / "fold0" / "best.pt", images, tmp_path / "pred", coords_dir=coords)
    assert [r["image_id"] for r in res] == [p.stem for p in images]
    assert all(0 <= r["grade"] < 6 and sum(r["probs"]) == pytest.approx(1, abs=1e-4) for r in res)
    assert all(np.argmax(r["probs"]) == r["grade"] for r in res)
    import cv2

    pic = cv2.imread(str(tmp_path / "pred" / f"{images[0].stem}_mosaic.png"))
    assert pic.shape == (64, 64, 3)
    pred_rows = list(csv.DictReader(open(tmp_path / "pred" / "predictions.csv")))
    assert [int(r["grade"]) for r in pred_rows] == [r["grade"] for r in res]
    again = predict(out / "fold0" / "best.pt", images, tmp_path / "pred2", coords_dir=coords)
    np.testing.assert_allclose([r["probs"] for r in again], [r["probs"] for r in res], atol=1e-5)

    # resume: one more epoch continues from last.pt; the earlier rows are kept as they were
    train(_cfg(coords, epochs=3, resume=True), data, out)
    rows3 = _metrics(out)
    assert [int(r["epoch"]) for r in rows3] == [0, 1, 2]
    assert rows3[:2] == rows
    ck3 = load_checkpoint(out / "fold0" / "last.pt")
    assert ck3["epoch"] == 2 and len(ck3["history"]) == 3
    assert float(rows3[2]["lr"]) > 0  # the schedule was stretched to 3 epochs, not restarted
    with pytest.raises(ImageError, match="not a gigapatch training checkpoint"):
        torch.save({"x": 1}, tmp_path / "other.pt")
        load_checkpoint(tmp_path / "other.pt")


def test_resize_arm_ordinal_ddp_world_of_one(
    cohort: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resize arm with an ordinal head, under a torchrun-like environment (gloo, world 1)."""
    import torch.distributed as dist

    from gigapatch.training import train

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "1",
                 "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(k, v)
    data, coords = cohort
    cfg = _cfg(coords, arm="resize", head="ordinal", epochs=1, resize={"size": 64})
    summary = train(cfg, data, tmp_path / "ddp")
    assert not dist.is_initialized()  # the process group is torn down
    rows = _metrics(tmp_path / "ddp")
    assert len(rows) == 1 and summary["arm"] == "resize"
    ck = load_checkpoint(tmp_path / "ddp" / "fold0" / "best.pt")
    assert ck["model"]["fc.weight"].shape[0] == 5  # ordinal: C - 1 outputs
    assert not any(k.startswith("module.") for k in ck["model"])  # saved unwrapped


@pytest.mark.slow
def test_cli_train_and_errors(
    cohort: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture,
) -> None:
    from gigapatch.cli.app import main

    data, coords = cohort
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"), "--quiet"])
    assert e.value.code == 2
    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        f"mosaic: {{n_tiles: 4, tile_size: 32, level: 0}}\ndata: {{coords_dir: {coords}}}\n"
        "workers: 8\nfold: [1]\n"
    )
    out = tmp_path / "cli"
    # --folds 2 trains both folds although the file lists fold 1 only; 8 workers on a machine
    # of 1 core are capped to 1 with one info line, and torch has nothing to warn about
    monkeypatch.setattr("gigapatch.training.config.available_cores", lambda: 1)
    with caplog.at_level("INFO", logger="gigapatch"), warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        main(["train", "--domain", "pathology", "--config", str(cfg), "--data", str(data), "--out",
              str(out), "--epochs", "1", "--model", "resnet18", "--batch-size", "4", "--folds",
              "2", "--arm", "mosaic"])
    rows = _metrics(out)
    assert [(r["epoch"], r["fold"]) for r in rows] == [("0", "0"), ("0", "1")]
    assert "workers: 8 asked for, 1 CPU cores available: using 1 loader workers" in caplog.messages
    assert not [str(w.message) for w in warned if "worker" in str(w.message)]
    logged = [m.split(":")[0] for m in caplog.messages if m.startswith("fold ")]
    assert logged == ["fold 0 epoch 0 of 0-0", "fold 1 epoch 0 of 0-0"]  # as in metrics.csv
    assert capsys.readouterr().out.splitlines()[:2] == [
        f"fold {k}: best QWK {float(rows[k]['qwk']):.4f} at epoch 0 -> {out / f'fold{k}' / 'best.pt'}"
        for k in (0, 1)
    ]
    with pytest.raises(SystemExit) as e:
        main(["train", "--config", str(cfg), "--data", str(data), "--out", str(out), "--arm", "crop",
              "--quiet"])
    assert e.value.code == 2
    main(["predict", "--checkpoint", str(out / "fold1" / "best.pt"), str(data / "train_images"),
          "--out", str(tmp_path / "p"), "--coords-dir", str(coords), "--quiet"])
    assert len(list(csv.DictReader(open(tmp_path / "p" / "predictions.csv")))) == 12


def test_items_from_the_tiling_pipeline_and_from_patch_folders(
    cohort: tuple[Path, Path], tmp_path: Path
) -> None:
    from gigapatch.training.config import TrainConfig
    from gigapatch.training.datasets import build_items

    data, _ = cohort
    cfg = TrainConfig(mosaic={"n_tiles": 4, "tile_size": 32, "level": 0, "min_foreground": 0.5},
                      data={**PANDA_DATA, "limit": 2}, workers=1)
    samples = load_samples(data, cfg.data)
    cache = tmp_path / "tiles"
    items = build_items(samples, cfg, cache)
    for it, s in zip(items, samples):
        assert it.n_candidates > 4 and it.read_size == 32 and it.level == 0
        assert (it.coords % 32 == 0).all() and (it.scores >= 0.5).all()
        with gigapatch.open_image(s.path) as img:  # tiles lie on the tissue, not on the glass
            best = img.read_region(tuple(int(v) for v in it.coords[np.argmax(it.scores)]), 0, (32, 32))
        assert best.mean() < 225
    stamp = [(cache / f"{s.image_id}.h5").stat().st_mtime_ns for s in samples]
    again = build_items(samples, cfg, cache)  # same tiling config: read from the cache
    assert [(cache / f"{s.image_id}.h5").stat().st_mtime_ns for s in samples] == stamp
    np.testing.assert_array_equal(again[0].coords, items[0].coords)

    # extracted patch folders "<x>_<y>.png" ranked by the PatchSet written beside them
    import cv2

    s = samples[0]
    folder = tmp_path / "patches" / s.image_id
    folder.mkdir(parents=True)
    shades = [40, 120, 200]
    for (x, y), v in zip([(0, 0), (32, 0), (64, 0)], shades):
        cv2.imwrite(str(folder / f"{x}_{y}.png"), np.full((32, 32, 3), v, np.uint8))
    PatchSet(s.image_id, np.array([[0, 0], [32, 0], [64, 0]]),
             {"foreground": np.array([0.2, 0.9, 0.5], np.float32)}).write_h5(
        tmp_path / "patches" / f"{s.image_id}.h5")
    cfg2 = TrainConfig(mosaic={"n_tiles": 4, "tile_size": 32}, data={**PANDA_DATA, "limit": 1,
                       "patches_dir": str(tmp_path / "patches")})
    it = build_items(samples[:1], cfg2)[0]
    ds = MosaicDataset([it], n_tiles=4, tile_size=32)
    pic = ds.picture(0)
    assert [int(pic[r, c, 0]) for r, c in [(0, 0), (0, 32), (32, 0), (32, 32)]] == [120, 200, 40, 255]


def test_too_few_images_for_the_folds() -> None:
    with pytest.raises(ConfigError, match="cannot be split into 4 stratified folds"):
        fold_assignment(np.arange(6), 4, seed=0)


# ---------------------------------------------------------------------- generic layout
@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """labels.csv + images/ of 9 small images, 3 classes (a colour each), mixed suffixes."""
    import cv2

    root = tmp_path_factory.mktemp("labelled")
    (root / "images").mkdir()
    colours = [(200, 60, 60), (60, 200, 60), (60, 60, 200)]
    rng = np.random.default_rng(0)
    rows = ["image_id,label"]
    for i in range(9):
        label = i % 3
        rgb = np.clip(np.array(colours[label]) + rng.integers(-20, 20, (96, 96, 3)), 0, 255)
        rgb = rgb.astype(np.uint8)
        suffix = (".png", ".jpg", ".tiff")[i // 3]
        if suffix == ".tiff":
            gigapatch.write_pyramidal_tiff(root / "images" / f"img{i}.tiff", rgb, downsamples=(2,),
                                           tile=32)
        else:
            cv2.imwrite(str(root / "images" / f"img{i}{suffix}"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        rows.append(f"img{i},{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_generic_training_infers_the_classes(labelled_folder: Path, tmp_path: Path) -> None:
    """``gigapatch train`` without a domain: labels.csv + images/ of any suffix, C from the labels."""
    from gigapatch.cli.app import main

    out = tmp_path / "generic"
    main(["train", "--data", str(labelled_folder), "--out", str(out), "--arm", "resize",
          "--model", "resnet18", "--epochs", "1", "--batch-size", "3", "--folds", "3", "--fold", "0",
          "--workers", "0", "--quiet"])
    folds = list(csv.DictReader(open(out / "folds.csv")))
    assert len(folds) == 9 and {r["label"] for r in folds} == {"0", "1", "2"}
    ck = load_checkpoint(out / "fold0" / "best.pt")
    assert ck["config"]["num_classes"] == 3 and ck["config"]["domain"] is None
    assert ck["data_config"]["num_classes"] == 3 and ck["data_config"]["label_names"] == ["0", "1", "2"]
    assert ck["model"]["fc.weight"].shape[0] == 3
    main(["predict", "--checkpoint", str(out / "fold0" / "best.pt"), str(labelled_folder / "images"),
          "--out", str(tmp_path / "p"), "--quiet"])
    pred = list(csv.DictReader(open(tmp_path / "p" / "predictions.csv")))
    assert sorted(r["image_id"] for r in pred) == [f"img{i}" for i in range(9)]
    assert [k for k in pred[0] if k.startswith("prob_")] == ["prob_0", "prob_1", "prob_2"]
    # label_names give the classes when num_classes is left out; one class is an error
    assert validate_train_config({"data": {"label_names": ["r", "g", "b"]}}).num_classes == 3
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "images").symlink_to(labelled_folder / "images")
    (tmp_path / "one" / "labels.csv").write_text("image_id,label\nimg0,0\nimg3,0\n")
    with pytest.raises(ConfigError, match="fewer than 2 classes; set num_classes"):
        gigapatch.training.train({"arm": "resize", "workers": 0}, tmp_path / "one", tmp_path / "o")
