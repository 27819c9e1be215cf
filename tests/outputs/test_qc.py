from __future__ import annotations

import cv2
import numpy as np
import pytest

from gigapatch import ArrayImage, ConfigError, Region
from gigapatch.config import PatchConfig
from gigapatch.io.geometry import resolve_geometry
from gigapatch.outputs.marks import (
    CMAP_START,
    DOTS,
    HALO,
    LIGHT_HALO,
    NEUTRAL,
    REASON_PALETTE,
    colormap_lut,
    reason_colors,
    score_colors,
)
from gigapatch.outputs.overlay import (
    contact_sheet,
    overlay_drawing,
    overlay_image,
    segmentation_warning,
    write_overlay,
)

DS = 16.0
TISSUE = (200, 120, 180)


def _scene():
    """A 1024 x 1024 level-0 scene: glass with one tissue square (level-0 256..768), its 64 px
    view (downsample 16), the mask, a region with a hole, four kept patches of 256 px and two
    rejected ones: (768, 256) for pen, right of the kept (512, 256), and (0, 0) for foreground."""
    level0 = np.full((1024, 1024, 3), 240, np.uint8)
    level0[256:768, 256:768] = TISSUE
    image = ArrayImage(level0, downsamples=(16,))
    rgb = cv2.resize(level0, (64, 64), interpolation=cv2.INTER_AREA)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    region = Region(exterior=np.array([[256, 256], [768, 256], [768, 768], [256, 768]], float),
                    holes=[np.array([[400, 400], [500, 400], [500, 500], [400, 500]], float)])
    coords = np.array([[256, 256], [512, 256], [256, 512], [512, 512]])
    scores = {"foreground": np.array([1.0, 0.9, 0.8, 0.7]), "sharpness": np.array([1, 2, 3, np.nan])}
    rej = np.array([[0, 0], [768, 256]])
    reason = np.array(["foreground", "pen"])
    return image, rgb, mask, region, coords, scores, rej, reason


def _draw(**kw):
    image, rgb, mask, region, coords, scores, rej, reason = _scene()
    args = dict(rgb=rgb, mask=mask, mask_downsample=DS, regions=[region], coords=coords,
                size_level0=256, scores=scores, color_by="foreground", rejected_coords=rej,
                rejected_reason=reason, image=image, min_side=512, max_side=512)
    args.update(kw)
    return args


def test_overlay_draws_mask_boxes_and_a_legend_naming_every_mark():
    d = overlay_drawing(**_draw())
    out = d.picture
    assert out.shape == (512, 512, 3) and d.scale == 2.0  # read from the image at 512 px
    # the foreground keeps its colour, the background is tinted
    assert tuple(out[300, 300]) == TISSUE
    assert out[20, 480].max() < 220 and out[20, 480, 2] > out[20, 480, 0]
    assert d.labels == [
        "tinted: outside the mask", "kept 4", "rejected: too little foreground 1",
        "rejected: pen 1", "region contour", "region id", "hole in a region",
    ]
    # kept outlines: the halo, then the colour of the score from its true min to max
    colours = reason_colors(["pen", "foreground"])
    lut = colormap_lut()
    best, worst = out[128 + 40, 128 + 2], out[256 + 40, 256 + 2]  # kept 1.0 and 0.7, left edges
    assert tuple(best) == tuple(lut[-1]) and tuple(worst) == tuple(lut[0])
    assert tuple(out[128 + 40, 128]) == HALO
    # the pen-rejected cell: its outline in the pen colour, in a light halo, further in
    row = out[128 + 60, 384:400]
    assert tuple(colours["pen"]) in {tuple(p) for p in row}
    assert tuple(LIGHT_HALO) in {tuple(p) for p in row}
    assert colours["foreground"] == NEUTRAL
    # the foreground-rejected cell (0, 0): a dotted outline, dark and light pixels alternating
    edge = [tuple(p) for p in out[40:80, 0:12].reshape(-1, 3)]
    assert DOTS[0] in edge and DOTS[1] in edge
    full = overlay_image(**_draw())
    legend = full[512:]
    assert full.shape[1] == 512 and (legend == 255).mean() > 0.6 and legend.min() < 80
    for col in (colours["pen"], *DOTS):  # the reasons' swatches (foreground's dotted)
        assert (legend == col).all(axis=2).any(), col
    index = {tuple(c): i for i, c in enumerate(lut)}
    bar = [index[tuple(p)] for p in legend.reshape(-1, 3) if tuple(p) in index]
    assert min(bar) <= 5 and max(bar) >= 250  # the colour bar spans the whole map


def test_a_kept_and_a_rejected_neighbour_differ_along_their_shared_edge():
    """Kept (512, 256) and pen-rejected (768, 256) share the level-0 edge x = 768 (drawing 384):
    each is outlined inside its own square, so along the edge the kept cell's last columns are
    its halo and colour, the rejected cell's first columns are still the image, and the
    rejected outline (pen colour) lies further in."""
    d = overlay_drawing(**_draw(regions=None))  # the region's contour runs along that edge
    out, img = d.picture, overlay_drawing(**_draw(coords=np.zeros((0, 2)), rejected_coords=None,
                                                  regions=None)).picture
    kept_colour = tuple(score_colors(np.array([0.9]), 0.7, 1.0)[0])
    pen = reason_colors(["pen"])["pen"]
    for y in range(140, 250, 7):  # rows along the shared edge, clear of the corners
        left = [tuple(p) for p in out[y, 376:384]]   # inside the kept cell
        right = [tuple(p) for p in out[y, 384:400]]  # inside the rejected cell
        assert HALO in left and kept_colour in left
        assert HALO not in right and kept_colour not in right
        assert np.array_equal(out[y, 384:386], img[y, 384:386])  # a gap of image between
        assert pen in right


def test_native_scale_never_an_upscale(tmp_path):
    """An image smaller than the thumbnail is drawn at its own pixels (read from the image, not
    the 16x coarser view upscaled); without the image, the view is never enlarged either."""
    rng = np.random.default_rng(0)
    level0 = rng.integers(0, 255, (200, 300, 3), np.uint8)  # fine detail: blur would show
    image = ArrayImage(level0, downsamples=())
    view = cv2.resize(level0, (19, 13), interpolation=cv2.INTER_AREA)
    d = overlay_drawing(view, None, 300 / 19, None, np.zeros((0, 2)), 64, image=image)
    assert d.picture.shape == (200, 300, 3) and d.scale == 1.0
    np.testing.assert_array_equal(d.picture, level0)
    small = overlay_drawing(view, None, 300 / 19, None, np.zeros((0, 2)), 64)
    assert small.picture.shape == (13, 19, 3)
    big = overlay_image(view, None, 300 / 19, None, np.array([[0, 0]]), 64, image=image)
    assert big.shape[1] == 480 and big.shape[0] > 200  # padded to the legend's width
    np.testing.assert_array_equal(big[100:200, 100:300], level0[100:200, 100:300])


def test_no_kept_patch_says_none_and_no_nan():
    d = overlay_drawing(**_draw(coords=np.zeros((0, 2)), scores={}))
    assert not any(label.startswith("kept") for label in d.labels)
    assert all("nan" not in label for label in d.labels)
    from gigapatch.outputs.marks import score_row

    (row,) = score_row("foreground", d.values)
    assert row[0] is None and row[1].startswith("kept: none") and "nan" not in row[1]
    legend = overlay_image(**_draw(coords=np.zeros((0, 2)), scores={}))[512:]
    lut = {tuple(c) for c in colormap_lut()}
    assert not any(tuple(p) in lut for p in legend.reshape(-1, 3)[::7])  # no colour bar
    # NaN scores: no nan either
    nan = overlay_drawing(**_draw(scores={"foreground": np.full(4, np.nan)}))
    assert "kept, no score to colour by" in nan.labels
    (row,) = score_row("foreground", nan.values)
    assert "nan" not in row[1]


def test_reason_colours_are_stable_distinct_and_any_plugins():
    a = reason_colors(["pen", "blur", "foreground"])
    b = reason_colors(["foreground", "blur", "pen", "pen"])
    assert a == b and a["foreground"] == NEUTRAL
    many = reason_colors(["nodata", "cloud", "pen", "blur", "top_n", "keep"])
    assert len(set(many.values())) == 6 and set(many.values()) <= set(REASON_PALETTE)
    # the palette: distinct for the common colour-vision deficiencies (Machado et al. 2009,
    # severity 1), in CIELAB distance
    sims = {
        "deutan": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                   [-0.011820, 0.042940, 0.968881]],
        "protan": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                   [-0.003882, -0.048116, 1.051998]],
    }
    rgb = np.asarray(REASON_PALETTE, np.float64) / 255
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    for m in sims.values():
        sim = np.clip(lin @ np.asarray(m).T, 0, 1)
        srgb = np.where(sim <= 0.0031308, sim * 12.92, 1.055 * sim ** (1 / 2.4) - 0.055)
        lab = cv2.cvtColor((srgb[None] * 255).round().astype(np.uint8), cv2.COLOR_RGB2LAB)[0]
        lab = lab.astype(np.float64) * [100 / 255, 1, 1] - [0, 128, 128]
        dist = np.linalg.norm(lab[:, None] - lab[None], axis=2) + np.eye(len(lab)) * 1e9
        assert dist.min() > 10, dist.min()


def test_the_colour_map_is_monotonic_in_lightness_and_not_dark():
    """Viridis without its darkest quarter: order readable by lightness alone (any colour
    vision, grey print), its dark end light enough to show on purple H&E and dark scenes."""
    lab = cv2.cvtColor(colormap_lut()[None], cv2.COLOR_RGB2LAB)[0].astype(np.float64)
    light = lab[:, 0] * 100 / 255
    assert (np.diff(light) >= -0.5).all() and light[0] > 30 and light[-1] > 85
    assert CMAP_START == 0.25
    assert tuple(score_colors(np.array([5.0]), 5.0, 5.0)[0]) == tuple(colormap_lut()[128])


def test_overlay_without_scores_or_mask(tmp_path):
    image, rgb, _, _, coords, _, _, _ = _scene()
    out = overlay_image(rgb, None, DS, None, coords, 256, image=image)
    assert out.shape[1] == 1024  # read from the image at min_side (its native size)
    p = write_overlay(tmp_path / "o" / "x.png", rgb=rgb, mask=None, mask_downsample=DS,
                      regions=None, coords=np.zeros((0, 2)), size_level0=256)
    back = cv2.imread(str(p))
    assert back is not None and back.shape[1] == 480  # the 64 px view, padded to the legend
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
    level0 = cv2.resize(rgb, (1024, 1024), interpolation=cv2.INTER_NEAREST)
    out = overlay_image(rgb, mask, DS, regions, np.zeros((0, 2)), 256, min_side=512,
                        max_side=512, image=ArrayImage(level0, downsamples=(16,)))[:512]
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
