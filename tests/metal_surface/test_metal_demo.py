"""The metal_surface demo through the CLI, checked against its own ground truth: a synthetic steel
strip whose defect boxes are exact, kept under patches and ranked first by the defect score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_cli import run_cli, run_demo

from gigapatch import PatchSet


def rank_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (Mann-Whitney)."""
    ranks = np.empty(len(score))
    ranks[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.mark.slow
def test_metal_demo_keeps_and_ranks_the_true_defects(tmp_path: Path) -> None:
    import shapely
    import tifffile

    from gigapatch_metal_surface import box_overlap, read_voc_boxes

    paths, kept = run_demo("metal_surface", tmp_path / "demo")
    assert {"demo image", "boxes", "h5", "table", "overlay", "config", "patches"} <= set(paths)
    with tifffile.TiffFile(paths["demo image"]) as tf:  # one grey channel, tiled, a pyramid
        page = tf.pages[0]
        assert page.samplesperpixel == 1 and page.is_tiled and len(tf.series[0].levels) >= 2
    ps = PatchSet.read(paths["h5"])
    assert ps.attrs["domain"] == "metal_surface"
    boxes = read_voc_boxes(paths["boxes"])
    assert len(boxes) == 8 and len({b[0] for b in boxes}) == 5
    # every true box lies under kept patches
    size = ps.patch_size_level0
    kept_area = shapely.union_all(shapely.box(*ps.coords.T, *(ps.coords + size).T))
    for name, x0, y0, x1, y1 in boxes:
        box = shapely.box(x0 - 1, y0 - 1, x1, y1)
        assert box.intersection(kept_area).area / box.area > 0.95, name
    # and the defect score finds them: patches on a box outrank the rest
    on_box = box_overlap(ps.coords, size, boxes) > 0
    assert rank_auc(on_box, ps.scores["defect"]) > 0.75
    rank = np.empty(kept, int)
    rank[np.argsort(-ps.scores["defect"])] = np.arange(kept)
    for box in boxes:  # every defect has a patch in the top quarter
        assert rank[box_overlap(ps.coords, size, [box]) > 0.05].min() < kept / 4, box


def test_metal_strip_is_deterministic_and_its_boxes_exact() -> None:
    from gigapatch_metal_surface.synth import BOX_MIN_DELTA, steel_strip

    a, boxes = steel_strip(3, (768, 2048))
    b, again = steel_strip(3, (768, 2048))
    c, _ = steel_strip(4, (768, 2048))
    assert np.array_equal(a, b) and boxes == again and not np.array_equal(a, c)
    clean, none = steel_strip(3, (768, 2048), n_defects=0)
    assert none == []
    changed = np.abs(a.astype(np.int16) - clean.astype(np.int16)) >= BOX_MIN_DELTA
    inside = np.zeros_like(changed)
    for _, x0, y0, x1, y1 in boxes:
        inside[y0 - 1 : y1, x0 - 1 : x1] = True
        assert changed[y0 - 1 : y1, x0 - 1 : x1].any()
    assert not (changed & ~inside).any()  # nothing changes outside the boxes


def test_metal_demo_too_small_is_one_line_error(tmp_path: Path) -> None:
    res = run_cli("demo", "--domain", "metal_surface", "--size", "300", "--out", str(tmp_path))
    assert res.returncode != 0 and "--size" in res.stderr
    assert "Traceback" not in res.stderr
