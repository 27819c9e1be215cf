"""Mask refinement (core/refine.py): morphology, holes, small objects, smoothing, padding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gigapatch.tiling.refine import (
    fill_holes,
    pad_mask,
    refine_mask,
    remove_small_objects,
    unpad_mask,
)
from gigapatch.tiling.segment import segment_mask


def holes_mask() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 60 x 80 square of tissue with a 2 x 2 hole and a 20 x 20 hole."""
    m = np.zeros((100, 120), bool)
    m[10:70, 10:90] = True
    small = np.zeros_like(m)
    small[20:22, 20:22] = True
    big = np.zeros_like(m)
    big[30:50, 50:70] = True
    return m & ~small & ~big, small, big


def test_fill_holes_fills_small_keeps_big() -> None:
    m, small, big = holes_mask()
    out = refine_mask(m, fill_holes_below=50)
    assert out[small].all()
    assert not out[big].any()
    assert (out == (m | small)).all()
    # the threshold is strict: a hole of exactly 4 px needs fill_holes_below > 4
    assert not refine_mask(m, fill_holes_below=4)[small].any()
    assert refine_mask(m, fill_holes_below=5)[small].all()
    assert refine_mask(m, fill_holes_below=401)[big].all()


def test_background_touching_the_border_is_not_a_hole() -> None:
    m = np.ones((30, 30), bool)
    m[0:5, 10:15] = False  # a notch open to the image edge, area 25
    m[12:14, 12:14] = False  # a true hole
    out = fill_holes(m, 100)
    assert not out[0:5, 10:15].any()
    assert out[12:14, 12:14].all()


def test_holes_are_4_connected() -> None:
    # a background pixel touching the outside only diagonally is a hole (as for findContours)
    m = np.ones((5, 5), bool)
    m[0, 0] = False
    m[1, 1] = False
    out = fill_holes(m, 2)
    assert out[1, 1] and not out[0, 0]


def test_drop_small_components_exactly() -> None:
    rng = np.random.default_rng(3)
    m = rng.random((80, 80)) < 0.3
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.view(np.uint8), connectivity=8)
    for thr in (1, 2, 5, 20):
        expected = np.isin(labels, np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= thr)) & m
        assert (remove_small_objects(m, thr) == expected).all()
        assert (refine_mask(m, drop_below=thr) == expected).all()


def test_close_bridges_gap_but_not_to_the_border() -> None:
    m = np.zeros((40, 60), bool)
    m[10:30, 5:25] = True
    m[10:30, 27:50] = True  # 2-px gap between the two blocks
    out = refine_mask(m, close=2)
    assert out[12:28, 25:27].all()  # gap bridged
    assert (out[m]).all()  # closing never removes
    # a block 1 px from the image edge must not be glued to it
    e = np.zeros((30, 30), bool)
    e[5:25, 1:20] = True
    assert not refine_mask(e, close=3)[:, 0].any()


def test_open_removes_specks_and_dilate_grows() -> None:
    m = np.zeros((50, 50), bool)
    m[10:40, 10:40] = True
    m[2, 2] = m[45, 47] = True
    opened = refine_mask(m, open=1)
    assert not opened[2, 2] and not opened[45, 47]
    assert opened[12:38, 12:38].all()
    one = np.zeros((21, 21), bool)
    one[10, 10] = True
    grown = refine_mask(one, dilate=3)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)).astype(bool)
    assert (grown[7:14, 7:14] == kernel).all() and grown.sum() == kernel.sum()


def test_drop_happens_before_dilation() -> None:
    m = np.zeros((40, 40), bool)
    m[5, 5] = True  # speck
    m[20:30, 20:30] = True
    out = refine_mask(m, drop_below=4, dilate=2)
    assert not out[:10, :10].any()
    assert out[18:32, 20:30].all()


def test_smooth_removes_spike_keeps_body() -> None:
    m = np.zeros((60, 60), bool)
    m[10:50, 10:50] = True
    m[50:58, 30] = True  # 1-px wide spike
    out = refine_mask(m, smooth=2)
    assert not out[52:58, 30].any()
    assert out[14:46, 14:46].all()
    assert abs(int(out.sum()) - 1600) < 80  # the square keeps about its area


def test_identity_and_edge_cases() -> None:
    rng = np.random.default_rng(0)
    m = rng.random((17, 23)) < 0.5
    assert (refine_mask(m) == m).all()
    assert refine_mask(m.astype(np.uint8) * 255).dtype == bool
    assert refine_mask(np.zeros((0, 5), bool)).shape == (0, 5)
    assert not refine_mask(np.zeros((8, 8), bool), close=2, fill_holes_below=10, dilate=1).any()
    with pytest.raises(ValueError):
        refine_mask(np.zeros((2, 2, 2), bool))


def test_pad_unpad_and_offset_in_segmentation() -> None:
    m = np.zeros((20, 30), bool)
    m[0:8, 0:10] = True  # touches the top-left image corner
    m[12:20, 22:30] = True  # touches the bottom-right corner
    padded, offset = pad_mask(m, 3)
    assert padded.shape == (26, 36) and offset == (3, 3)
    assert not padded[:3].any() and not padded[:, :3].any()
    assert (unpad_mask(padded, offset) == m).all()
    assert (unpad_mask(padded, 3) == m).all()
    ds = 4.0
    direct = segment_mask(m, ds)
    via_pad = segment_mask(padded, ds, origin=(-offset[0] * ds, -offset[1] * ds))
    assert len(direct) == len(via_pad) == 2
    for a, b in zip(direct, via_pad):
        assert a.bbox == b.bbox and a.area == b.area
    assert pad_mask(m, 0)[1] == (0, 0)
    with pytest.raises(ValueError):
        pad_mask(m, -1)
