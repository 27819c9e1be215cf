"""The satellite picture draws what its legend says: the footprint's outline, the water and
cloud washes, kept chips (whole / partial) and rejected patches, each where it belongs."""

from __future__ import annotations

import numpy as np

from gigapatch_satellite.picture import COLOURS, draw


def colour_at(img: np.ndarray, name: str) -> np.ndarray:
    return (img == np.array(COLOURS[name], np.uint8)).all(axis=2)


def test_the_picture_marks_footprint_masks_and_chips_where_they_are() -> None:
    """A 200 x 200 view at 4 level-0 px a px (an 800 px scene; the picture is upscaled 4x to
    800 px, one picture px per level-0 px; 128 px patches): data in the left 150 view columns
    (600 level-0 px), water and cloud blocks, two kept chips (one partial), one patch rejected
    over water, one empty grid corner rejected (not drawn) and one rejected for no-data."""
    rgb = np.full((200, 200, 3), 90, np.uint8)
    nodata = np.zeros((200, 200), bool)
    nodata[:, 150:] = True
    rgb[nodata] = 0
    water = np.zeros_like(nodata)
    water[100:140, 10:40] = True
    cloud = np.zeros_like(nodata)
    cloud[160:190, 60:100] = True
    kept = np.array([[0, 0], [512, 0]])  # the second straddles the no-data edge at x = 600
    rejected = np.array([[0, 384], [672, 640], [640, 384]])
    reasons = np.array(["foreground", "foreground", "nodata"])
    pic = draw(rgb, 4.0, nodata, {"water": water, "cloud": cloud}, kept, 128.0, rejected,
               reasons, np.array([False, True]), excluded=("water",))
    view = pic[:800]  # the legend below
    assert pic.shape[0] > 800 and view.shape[:2] == (800, 800)
    # footprint outline along the data's right edge (view col 150 -> picture col ~600)
    assert colour_at(view, "footprint")[:, 595:602].any(axis=1).mean() > 0.9
    assert not colour_at(view, "footprint")[:, 610:].any()
    # the washes: blend of the view and the mask's colour, inside the mask only
    w = view[515:555, 60:140].astype(int)  # (clear of the chip outlines above)
    assert (w[..., 2] > w[..., 0] + 60).all()  # blue over the water block
    c = view[660:740, 260:380].astype(int)
    assert (c[..., 0] > 150).all() and (c[..., 2] > 150).all() and (c[..., 1] < 110).all()
    assert (view[20:100, 200:300] == 90).all()  # plain land untouched
    # kept whole chip (yellow) at picture (0..128, 0..128) inset by 3 px; the partial one
    # (orange) at 512..640 across the no-data edge
    assert colour_at(view, "kept")[3:125, 3].all() and colour_at(view, "kept")[3, 3:125].all()
    assert not colour_at(view, "kept")[:, :2].any()  # inset: clear of the patch edge
    assert colour_at(view, "partial")[3:125, 515].all() and colour_at(view, "partial")[3, 515:637].all()
    assert not colour_at(view, "kept")[:, 512:].any()
    # rejected over data (white) drawn; the empty corner not; the no-data one red
    assert colour_at(view, "other")[384:512, 0].all()
    assert not colour_at(view, "other")[640:, 672:].any()
    assert colour_at(view, "nodata")[384:512, 640].all()


def test_the_legend_counts_and_says_what_is_excluded() -> None:
    """Cloud scored only, water excluded: the legend text differs (different pixels), and the
    counts move the drawn text."""
    import cv2

    rgb = np.full((64, 64, 3), 90, np.uint8)
    nodata = np.zeros((64, 64), bool)
    masks = {"water": np.zeros_like(nodata), "cloud": np.zeros_like(nodata)}
    args = (rgb, 1.0, nodata, masks, np.array([[0, 0]]), 32.0, np.zeros((0, 2)), np.array([]))
    a = draw(*args, excluded=("water", "cloud"))
    b = draw(*args, excluded=("water",))
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert np.array_equal(a[:256], b[:256])  # the picture itself is the same
    gray = cv2.cvtColor(a[256:], cv2.COLOR_RGB2GRAY)
    assert (gray < 100).sum() > 500  # text is written on the legend bar
