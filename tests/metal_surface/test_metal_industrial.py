"""Metal surfaces at industrial depth (issue #16): metrics checked against hand-computed and
brute-force answers, candidates merged across patch borders, the review order, composite
strips, and the CLI on a 16-bit striped strip with its true boxes."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from helpers_cli import run_cli

from gigapatch import PatchSet
from gigapatch.tiling.select import percent_budget, select_patches
from gigapatch_metal_surface import metrics as M
from gigapatch_metal_surface.candidates import merge, regions, review_order
from gigapatch_metal_surface.composite import composite_strip, neu_defects, strip_rows, whole


# ------------------------------------------------------------------------- AUPRO
def test_aupro_hand_computed() -> None:
    """Two regions (2 px and 1 px) and 5 normal pixels; scores descend one pixel at a time.

    threshold order: a1 (region A), n1, a2, b1, n2, n3, n4, n5
    FPR : 0, .2, .2, .2, .4, ...      PRO = mean(share of A, share of B): .25, .25, .5, 1
    Up to FPR 0.3: area = 0.2 * (0.25 + 0.25) / 2 (first step, PRO from 0 -> 0.25 at FPR 0,
    then flat 0.25 to FPR .2) ... computed below segment by segment.
    """
    scores = np.array([[9, 8, 7, 6, 5, 4, 3, 2]], float)
    mask = np.array([[1, 0, 1, 0, 0, 0, 0, 0]], bool)  # A = px 0 and px 2 are not 8-connected
    # regions: px 0 (A, size 1) and px 2 (B, size 1); normal: px 1, 3..7 (6 px)
    # curve points: (0, 0) -> a: (0, .5) -> n1: (1/6, .5) -> b: (1/6, 1) -> n3: (2/6, 1) ...
    # area to 0.3: 0.5 * 1/6 + 1 * (0.3 - 1/6) = 0.2167; / 0.3 = 0.7222
    assert M.aupro(scores, mask, 0.3) == pytest.approx((0.5 / 6 + (0.3 - 1 / 6)) / 0.3, abs=1e-9)


def _aupro_brute(maps: list[np.ndarray], masks: list[np.ndarray], limit: float) -> float:
    """AUPRO by one threshold per distinct score, every region's overlap counted directly."""
    import cv2

    regions_, normal, flat = [], [], []
    for a, b in zip(maps, masks):
        n, lab = cv2.connectedComponents(b.astype(np.uint8), connectivity=8)
        regions_ += [a[lab == k] for k in range(1, n)]
        normal.append(a[lab == 0])
        flat.append(a.ravel())
    bg = np.concatenate(normal)
    pts = [(0.0, 0.0)]
    for t in np.unique(np.concatenate(flat))[::-1]:
        pts.append(((bg >= t).mean(), np.mean([(r >= t).mean() for r in regions_])))
    f, p = np.array(pts).T
    keep = f <= limit
    i = int(np.argmax(~keep)) if (~keep).any() else len(f)
    fx, px = list(f[:i]), list(p[:i])
    if i < len(f):
        fx.append(limit)
        px.append(p[i - 1] + (p[i] - p[i - 1]) * (limit - f[i - 1]) / (f[i] - f[i - 1]))
    return float(np.trapezoid(px, fx) / limit)


def test_aupro_equals_the_definition_on_random_maps() -> None:
    rng = np.random.default_rng(3)
    maps, masks = [], []
    for _ in range(3):
        m = np.zeros((30, 40), bool)
        for _ in range(3):
            y, x = rng.integers(0, 25), rng.integers(0, 35)
            m[y : y + rng.integers(2, 6), x : x + rng.integers(2, 6)] = True
        maps.append(rng.normal(0, 1, m.shape) + 1.5 * m + rng.integers(0, 3, m.shape) * 0.5)
        masks.append(m)
    for limit in (0.05, 0.3, 1.0):
        assert M.aupro(maps, masks, limit) == pytest.approx(_aupro_brute(maps, masks, limit),
                                                            abs=1e-9)


# ------------------------------------------------------------------------- oracle
def test_oracle_is_the_best_selection() -> None:
    rng = np.random.default_rng(1)
    held = rng.random((12, 15)) < 0.18
    for k in (1, 2, 3, 4):
        best = max(held[list(c)].any(axis=0).sum() for c in itertools.combinations(range(12), k))
        recall, chosen = M.oracle_recall(held, k)
        assert len(chosen) <= k and recall == pytest.approx(best / 15)
        assert M.recall_at(held, chosen) == pytest.approx(recall)


def test_top_percent_rule() -> None:
    from gigapatch import load_config

    assert [percent_budget(n, 5) for n in (1, 19, 20, 21, 100)] == [1, 1, 1, 2, 5]
    scores = {"foreground": np.r_[np.ones(40), np.zeros(10)], "s": np.arange(50.0)}
    cfg = load_config(overrides={"score.top_percent": 10, "score.rank_by": "s"}).score
    keep, reason = select_patches(scores, cfg, 0.5)
    assert keep.sum() == 4 and set(np.flatnonzero(keep)) == {36, 37, 38, 39}
    assert (reason[:36] == "top_percent").all() and (reason[40:] == "foreground").all()
    cfg = load_config(overrides={"score.top_percent": 10, "score.top_n": 2,
                                 "score.rank_by": "s"}).score
    keep, reason = select_patches(scores, cfg, 0.5)
    assert keep.sum() == 2 and (reason[36:38] == "top_n").all()


# ------------------------------------------------------------------------- candidates
def test_a_defect_across_patch_borders_is_one_record() -> None:
    score = np.zeros((16, 16), np.float32)
    score[6:10, 3:13] = 20.0  # one blob across the seams of 4 x 4-cell patches
    score[7, 7] = 0.0  # a hole, and a detached piece two cells away
    score[8:10, 14] = 15.0
    score[1, 1] = 30.0  # a separate defect
    c = regions(score, 10.0, (0, 0), 32)
    assert len(c) == 3
    one = merge(c, 0.1, grow=64)
    assert len(one) == 2 and sorted(one.cells.tolist()) == [1, 39 + 2]
    assert one.boxes[np.argmax(one.cells)].tolist() == [96.0, 192.0, 480.0, 320.0]


def test_review_order_spends_the_budget_on_distinct_defects() -> None:
    """With overlapping patches a plain ranking shows the strongest defect several times; the
    review order shows each defect once before any second view."""
    coords = np.array([[x, 0] for x in range(0, 1024, 64)])  # stride 64, side 128
    boxes = np.array([[100, 20, 140, 60], [500, 20, 540, 60], [900, 20, 940, 60]], float)
    own = np.array([3.0 - 0.01 * abs(x - 60) for x, _ in coords])  # the first defect is loudest
    r = review_order(coords, 128, boxes, np.array([3.0, 2.0, 1.0]), own)
    top = M.top_k(r, 3)
    held = M.holds(coords, 128, boxes)
    assert M.recall_at(held, top) == 1.0
    assert M.recall_at(held, M.top_k(own, 3)) < 1.0


# ------------------------------------------------------------------------- composite strips
def test_composite_strip_is_deterministic_and_band_invariant(metal_surface_dir: Path) -> None:
    defects = neu_defects(metal_surface_dir)
    assert len(defects) > 100 and {d.boxes[0][0] for d in defects} >= {"crazing", "scratches"}
    s = composite_strip(metal_surface_dir, 4, (3000, 700), 12, defects=defects)
    again = composite_strip(metal_surface_dir, 4, (3000, 700), 12, defects=defects)
    assert s.boxes() == again.boxes() and len(s.boxes()) >= 12
    a = whole(s)
    assert a.shape == (3000, 700) and a.dtype == np.uint8
    np.testing.assert_allclose(strip_rows(s, 1000, 600), strip_rows(s, 0, 3000)[1000:1600],
                               atol=1e-3)
    edge = [b for b in s.boxes() if b[3] > 3000 - 3000 % 256 or b[2] > 700 - 700 % 256]
    assert len(edge) >= 2  # some defects in the strips a grid of whole patches leaves
    clean = composite_strip(metal_surface_dir, 4, (3000, 700), 0, defects=defects)
    diff = np.abs(whole(clean).astype(int) - a) > 0
    inside = np.zeros_like(diff)
    for p in s.placed:  # the defects change only their own cut-outs
        h, w = p.defect.grey.shape
        inside[p.y : p.y + h, p.x : p.x + w] = True
    assert diff.any() and not (diff & ~inside).any()


# ------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def strip16(metal_surface_dir: Path, tmp_path_factory) -> tuple[Path, list]:
    from gigapatch_metal_surface.composite import write_strip

    s = composite_strip(metal_surface_dir, 21, (6000, 1000), 20)
    path, _ = write_strip(s, tmp_path_factory.mktemp("strip") / "strip16.tif", "uint16",
                          "striped", pixel_size_mm=(0.1, 0.1))
    return path, s.boxes()


@pytest.mark.slow
def test_cli_on_a_16bit_striped_strip(strip16: tuple[Path, list], tmp_path: Path) -> None:
    import cv2
    import tifffile

    path, boxes = strip16
    res = run_cli("tile", str(path), "--domain", "metal_surface", "--out", str(tmp_path),
                  "--quiet")
    assert res.returncode == 0, res.stderr
    ps = PatchSet.read(tmp_path / "strip16.h5")
    assert len(ps) > 0 and {"defect", "normal", "review"} <= set(ps.scores)
    assert {"label", "label_overlap", "defects_held"} <= set(ps.columns)
    for suffix in ("_defects.csv", "_defects.geojson", "_defects.xml", "_defects.npz",
                   "_review.png"):
        assert (tmp_path / f"strip16{suffix}").is_file(), suffix
    # the budget, extracted as the camera wrote them
    out = tmp_path / "top"
    res = run_cli("tile", str(path), "--domain", "metal_surface", "--top-percent", "5",
                  "--extract", "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    top = PatchSet.read(out / "strip16.h5")
    assert len(top) == percent_budget(len(top) + int(
        np.isin(top.rejected_reason, ("top_percent",)).sum()), 5)
    src = tifffile.imread(path)
    for f in sorted((out / "strip16").glob("*.png")):
        x, y = (int(v) for v in f.stem.split("_"))
        got = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint16 and got.ndim == 2
        np.testing.assert_array_equal(got, src[y : y + 256, x : x + 256])
    # metrics from the outputs and the VOC beside the image
    res = run_cli("metrics", str(tmp_path))
    assert res.returncode == 0, res.stderr
    head, row = res.stdout.splitlines()[:2]
    figs = dict(zip(head.split("\t"), row.split("\t")))
    assert int(figs["defects"]) == len(boxes)
    assert float(figs["recall@10%"]) >= 0.7 * float(figs["oracle@10%"])
    assert float(figs["recall@10%"]) >= 3 * float(figs["random@10%"])
    assert float(figs["aupro@0.3"]) > 0.8 and float(figs["duplicates"]) <= 0.05


@pytest.mark.slow
def test_fit_normal_model_scores_a_strip(metal_surface_dir: Path, strip16: tuple[Path, list],
                                          tmp_path: Path) -> None:
    from gigapatch_metal_surface.composite import write_strip

    clean = composite_strip(metal_surface_dir, 22, (3000, 1000), 0)
    normal, _ = write_strip(clean, tmp_path / "clean.tif", "uint16", "striped")
    model = tmp_path / "model.npz"
    res = run_cli("fit-normal", "--domain", "metal_surface", str(normal), "--out", str(model))
    assert res.returncode == 0 and model.is_file(), res.stderr
    bad = run_cli("fit-normal", "--domain", "pathology", str(normal), "--out", str(model))
    assert bad.returncode != 0 and "metal_surface" in bad.stderr and "Traceback" not in bad.stderr
    path, boxes = strip16
    res = run_cli("tile", str(path), "--domain", "metal_surface", "--out", str(tmp_path / "o"),
                  "--set", f"plugin.metal_surface.normal_model={model}", "--quiet")
    assert res.returncode == 0, res.stderr
    ps = PatchSet.read(tmp_path / "o" / "strip16.h5")
    held = M.holds(np.concatenate([ps.coords, ps.rejected_coords]), 256, M.rects(boxes))
    normal_col = np.concatenate([ps.scores["normal"], ps.rejected_scores["normal"]])
    on = held.any(axis=1)
    assert normal_col[on].mean() > 2 * normal_col[~on].mean()


def test_neu_images_keep_patches_with_defaults(metal_surface_dir: Path, tmp_path: Path) -> None:
    """A 200 px NEU-DET image under the default 256 px patch: the shift edge policy keeps one
    patch on it, labelled from its VOC boxes."""
    res = run_cli("tile", str(metal_surface_dir / "inclusion_1.jpg"), "--domain",
                  "metal_surface", "--out", str(tmp_path), "--quiet")
    assert res.returncode == 0, res.stderr
    ps = PatchSet.read(tmp_path / "inclusion_1.h5")
    assert len(ps) == 1 and ps.columns["label"].tolist() == ["inclusion"]


@pytest.mark.slow
def test_train_on_voc_labelled_patches(metal_surface_dir: Path, tmp_path: Path) -> None:
    """VOC boxes become per-patch labels, and the shared trainer's patch arm trains on them:
    accuracy and a confusion matrix per fold."""
    pytest.importorskip("timm")
    images = tmp_path / "neu"
    images.mkdir()
    for cls in ("inclusion", "patches", "scratches"):
        for k in (1, 2, 3):
            for ext in (".jpg", ".xml"):
                (images / f"{cls}_{k}{ext}").symlink_to(metal_surface_dir / f"{cls}_{k}{ext}")
    res = run_cli("tile", str(images), "--domain", "metal_surface", "--patch-size", "100",
                  "--out", str(tmp_path / "tiles"), "--quiet")
    assert res.returncode == 0, res.stderr
    labels = PatchSet.read(tmp_path / "tiles" / "inclusion_1.h5").columns["label"]
    assert set(labels.tolist()) <= {"inclusion", "normal"} and "inclusion" in labels
    run = tmp_path / "run"
    res = run_cli("train", "--domain", "metal_surface", "--data", str(tmp_path / "tiles"),
                  "--out", str(run), "--epochs", "1", "--folds", "2", "--model", "resnet18",
                  "--batch-size", "8", "--workers", "0", "--device", "cpu", timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "accuracy" in res.stderr + res.stdout and "confusion" in res.stderr + res.stdout
    assert (run / "fold0" / "confusion.png").is_file() and (run / "metrics.csv").is_file()
    table = (run / "patches" / "labels.csv").read_text().splitlines()
    assert table[0] == "image_id,label" and len(table) == 1 + 9 * 4
