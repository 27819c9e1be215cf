from __future__ import annotations

import cv2
import numpy as np
import pytest

from gigapatch import ArrayImage, ConfigError, Region
from gigapatch.config import PatchConfig
from gigapatch.io.geometry import resolve_geometry
from gigapatch.outputs.overlay import (
    REASON_COLORS,
    contact_sheet,
    overlay_image,
    segmentation_warning,
    write_overlay,
)

DS = 16.0


def _scene():
    """A 1024 x 1024 level-0 scene: glass with one tissue square (level-0 256..768)."""
    rgb = np.full((64, 64, 3), 240, np.uint8)
    rgb[16:48, 16:48] = (200, 120, 180)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    region = Region(exterior=np.array([[256, 256], [768, 256], [768, 768], [256, 768]], float),
                    holes=[np.array([[400, 400], [500, 400], [500, 500], [400, 500]], float)])
    coords = np.array([[256, 256], [512, 256], [256, 512], [512, 512]])
    scores = {"foreground": np.array([1.0, 0.9, 0.8, 0.7]), "sharpness": np.array([1, 2, 3, np.nan])}
    rej = np.array([[0, 0], [768, 768]])
    reason = np.array(["foreground", "pen"])
    return rgb, mask, region, coords, scores, rej, reason


def test_overlay_draws_mask_boxes_and_legend():
    rgb, mask, region, coords, scores, rej, reason = _scene()
    out = overlay_image(rgb, mask, DS, [region], coords, 256, scores, "foreground", rej, reason,
                        min_side=512, max_side=512)
    assert out.dtype == np.uint8 and out.shape == (512 + 46, 512, 3)
    z = 512 / 1024  # drawing px per level-0 px
    # foreground keeps its colour, the background is shaded
    assert tuple(out[int(600 * z), int(300 * z)]) == (200, 120, 180)
    assert out[20, 480].max() < 220 and out[20, 480, 2] > out[20, 480, 0]
    # the pen-rejected box edge carries the pen colour
    edge = out[int(768 * z) + 40, int(768 * z)]
    assert tuple(edge) == REASON_COLORS["pen"]
    # kept boxes are coloured by the score: the best (1.0) and worst (0.7) differ
    top = out[int(256 * z) + 20, int(256 * z)]
    worst = out[int(512 * z) + 20, int(512 * z)]
    assert tuple(top) != tuple(worst)
    # legend strip is white with dark text
    legend = out[512:]
    assert (legend == 255).mean() > 0.6 and legend.min() < 80


def test_overlay_without_scores_or_mask(tmp_path):
    rgb, _, _, coords, _, _, _ = _scene()
    out = overlay_image(rgb, None, DS, None, coords, 256)
    assert out.shape[1] == 1024  # small thumbnails are enlarged to min_side
    p = write_overlay(tmp_path / "o" / "x.png", rgb=rgb, mask=None, mask_downsample=DS,
                      regions=None, coords=np.zeros((0, 2)), size_level0=256)
    back = cv2.imread(str(p))
    assert back is not None and back.shape[0] == 1024 + 46
    assert not list((tmp_path / "o").glob(".*"))


def _square(x0: float, y0: float, x1: float, y1: float) -> Region:
    return Region(exterior=np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float))


def test_overlay_tags_each_region_with_its_id_by_its_contour():
    """Pure white appears only on the id tags (glass is shaded, tissue keeps its colour): one
    tag per region, inside a big region just under its top edge, above a tiny one."""
    rgb = np.full((64, 64, 3), 240, np.uint8)
    rgb[8:28, 8:28] = rgb[36:56, 36:60] = rgb[6:7, 40:41] = (200, 120, 180)
    mask = np.any(rgb != 240, axis=2)
    regions = [_square(128, 128, 448, 448), _square(576, 576, 960, 896),
               _square(640, 96, 656, 112)]  # the third: 8 drawing px, too small for its tag
    out = overlay_image(rgb, mask, DS, regions, np.zeros((0, 2)), 256, min_side=512,
                        max_side=512)[:512]
    white = np.all(out == 255, axis=2).astype(np.uint8)
    white = cv2.morphologyEx(white, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))  # glyph gaps
    n, _, stats, _ = cv2.connectedComponentsWithStats(white)
    tags = sorted(stats[1:, :4].tolist(), key=lambda t: (t[1], t[0]))  # x, y, w, h; by top
    assert n - 1 == 3, tags
    small, a, b = tags  # level-0 / 2 = drawing px
    assert 64 < a[0] < 80 and 64 < a[1] <= 72 and a[0] + a[2] < 224  # inside A, under its top
    assert 288 < b[0] < 300 and 288 < b[1] <= 296 and b[0] + b[2] < 480
    assert small[1] + small[3] <= 48 and small[0] < 324 < small[0] + small[2]  # above the dot
    # the tags carry different ids: dark glyph pixels in different places
    ink = [np.any(out[t[1] : t[1] + 12, t[0] : t[0] + 8] < 120, axis=2) for t in (a, b)]
    assert ink[0].any() and ink[1].any() and (ink[0] != ink[1]).any()


def test_contact_sheet_top_and_bottom(tmp_path):
    rng = np.random.default_rng(0)
    arr = np.full((512, 1024, 3), 255, np.uint8)
    coords = np.array([[x, y] for y in (0, 256) for x in range(0, 1024, 256)])
    values = rng.permutation(8).astype(float)
    for (x, y), v in zip(coords, values):  # patch brightness encodes its score
        arr[y : y + 256, x : x + 256] = int(20 + 25 * v)
    img = ArrayImage(arr)
    geom = resolve_geometry(img, PatchConfig(size=256, level=0))
    sheet = contact_sheet(img, coords, geom, {"s": values}, "s", n=3, path=tmp_path / "cs.png",
                          thumb=64, columns=3)
    assert (tmp_path / "cs.png").exists()
    # the top section starts with the best patch (score 7); the bottom section shows the three
    # lowest in descending order (2, 1, 0)
    first = sheet[24 + 10, 4 + 10]
    assert abs(int(first[0]) - (20 + 25 * 7)) <= 2
    cell_h = 64 + 30 + 4
    bottom_first = sheet[24 + cell_h + 24 + 10, 4 + 10]
    assert abs(int(bottom_first[0]) - (20 + 25 * 2)) <= 2
    with pytest.raises(ConfigError, match="unknown score 'nope'"):
        contact_sheet(img, coords, geom, {"s": values}, "nope")


def test_segmentation_warning():
    assert segmentation_warning(0.2, "slide1") is None
    w = segmentation_warning(0.0004, "slide1")
    assert w is not None and w.startswith("WARNING") and "slide1" in w and "0.040%" in w
    assert segmentation_warning(0.005, "s", threshold=0.001) is None
    assert "background" in segmentation_warning(0.999, "s")
    assert segmentation_warning(0.999, "s", high=None) is None
    assert segmentation_warning(float("nan"), "s") is not None
