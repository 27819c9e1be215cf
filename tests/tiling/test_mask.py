"""Foreground masks: Otsu on saturation with a brightness guard (core/mask.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gigapatch.tiling.mask import foreground_fraction, otsu_saturation_mask, otsu_threshold


def synthetic_he(seed: int, shape: tuple[int, int] = (384, 512)):
    """H&E-like view: pink and purple textured blobs on near-white glass with a grey smear.

    Returns (rgb, truth, grey_glass): truth is the union of the blobs, grey_glass the smear
    (which no blob overlaps).
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = (243, 242, 245)
    grey_glass = np.zeros(shape, bool)
    grey_glass[10:60, w - 160 : w - 10] = True  # unsaturated grey smear on the glass
    rgb[grey_glass] = (200, 200, 203)
    truth = np.zeros(shape, np.uint8)
    colours = [(232, 150, 192), (215, 120, 175), (125, 70, 160), (150, 95, 175)]
    for k in range(7):
        blob = np.zeros(shape, np.uint8)
        centre = (int(rng.integers(60, w - 60)), int(rng.integers(90, h - 50)))
        axes = (int(rng.integers(15, 50)), int(rng.integers(15, 50)))
        cv2.ellipse(blob, centre, axes, float(rng.integers(0, 180)), 0, 360, 1, -1)
        blob = blob.astype(bool) & ~grey_glass
        rgb[blob] = colours[k % len(colours)]
        truth |= blob
    rgb += rng.normal(0, 4, rgb.shape).astype(np.float32)  # sensor noise everywhere
    tex = rng.normal(0, 12, (h, w, 1)).astype(np.float32)  # nuclear texture in the tissue
    rgb += tex * truth[:, :, None]
    return np.clip(rgb, 0, 255).astype(np.uint8), truth.astype(bool), grey_glass


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_he_blobs_recovered_and_glass_never_marked(seed: int) -> None:
    rgb, truth, grey_glass = synthetic_he(seed)
    m = otsu_saturation_mask(rgb)
    assert m.shape == truth.shape and m.dtype == bool
    iou = (m & truth).sum() / (m | truth).sum()
    assert iou > 0.95, iou
    assert not (m & grey_glass).any()
    # no glass pixel further than the median kernel's reach from a blob is foreground
    near = cv2.dilate(truth.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert not (m & ~near).any()


def test_uniform_images() -> None:
    white = np.full((40, 50, 3), 245, np.uint8)
    grey = np.full((40, 50, 3), 128, np.uint8)
    pink = np.zeros((40, 50, 3), np.uint8)
    pink[:] = (220, 140, 185)
    assert not otsu_saturation_mask(white).any()
    assert not otsu_saturation_mask(grey).any()
    assert otsu_saturation_mask(pink).all()  # a view filled with stained tissue


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (2, 3), (3, 1)])
def test_tiny_images(shape: tuple[int, int]) -> None:
    rgb = np.full(shape + (3,), 250, np.uint8)
    rgb[0, 0] = (120, 60, 150)
    m = otsu_saturation_mask(rgb, median_ksize=7)
    assert m.shape == shape and m.dtype == bool
    m1 = otsu_saturation_mask(rgb, median_ksize=1)
    assert m1[0, 0] and m1.sum() == 1


def test_brightness_guards() -> None:
    rgb = np.full((20, 30, 3), 245, np.uint8)
    rgb[:, :10] = (235, 190, 215)  # pale pink, grey level ~206
    rgb[:, 10:20] = (90, 10, 30)  # dark saturated red, grey level ~36
    kw = {"median_ksize": 1, "threshold": 20}  # isolate the guard from Otsu
    base = otsu_saturation_mask(rgb, **kw)
    assert base[:, :20].all() and not base[:, 20:].any()
    no_pale = otsu_saturation_mask(rgb, max_brightness=200, **kw)
    assert not no_pale[:, :10].any() and no_pale[:, 10:20].all()
    no_dark = otsu_saturation_mask(rgb, min_brightness=60, **kw)
    assert no_dark[:, :10].all() and not no_dark[:, 10:20].any()


def test_fixed_threshold_and_min_threshold() -> None:
    sat = np.array([[0, 10, 30, 60, 120, 200]], np.uint8)
    v = np.full_like(sat, 200)
    hsv = np.dstack([np.zeros_like(sat), sat, v])
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    s_back = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 1]
    for t in (5, 25, 100):
        m = otsu_saturation_mask(rgb, median_ksize=1, threshold=t, max_brightness=255)
        assert (m[0] == (s_back[0] > t)).all()
    # Otsu alone would split inside the glass noise; the clamp keeps it above 15
    glass = np.full((10, 10, 3), 225, np.uint8)
    glass[::2, ::2, 2] = 235  # saturation ~11 specks
    assert not otsu_saturation_mask(glass, median_ksize=1).any()
    assert otsu_saturation_mask(glass, median_ksize=1, min_threshold=0).any()


def test_otsu_threshold() -> None:
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.normal(30, 5, 500), rng.normal(150, 10, 500)])
    for v in (np.clip(a, 0, 255).astype(np.uint8), a):
        t = otsu_threshold(v)
        assert 35 < t < 130
        assert ((v > t) == (a > 90)).mean() > 0.99
    assert otsu_threshold(np.full(7, 42, np.uint8)) == 42.0  # nothing to split
    assert np.isnan(otsu_threshold(np.zeros(0)))


def test_foreground_fraction_and_bad_input() -> None:
    m = np.zeros((4, 5), bool)
    m[:2, :2] = True
    assert foreground_fraction(m) == pytest.approx(4 / 20)
    assert foreground_fraction(np.zeros((0, 3), bool)) == 0.0
    with pytest.raises(ValueError, match="RGB"):
        otsu_saturation_mask(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        otsu_saturation_mask(np.zeros((4, 4, 3), np.float32))
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (120, 60, 150)
    assert otsu_saturation_mask(rgba, median_ksize=1).all()


REAL = [
    # file, histolab reference name, min recall against the reference
    ("CMU-1-Small-Region.svs", "cmu-1-small-region", 0.6),
    ("tcga-cr-7395-01a-01-ts1.svs", "tcga-cr-7395", 0.8),
]


@pytest.mark.parametrize(("name", "ref_name", "min_recall"), REAL)
def test_real_slides_against_histolab_masks(
    pathology_dir, name: str, ref_name: str, min_recall: float
) -> None:
    """histolab's masks are dilated versions of the tissue: ours must lie inside them (high
    precision) and cover most of them."""
    tifffile = pytest.importorskip("tifffile")
    ref = np.load(pathology_dir / "reference_masks" / f"histolab-tissue-mask-{ref_name}.npy")
    with tifffile.TiffFile(pathology_dir / name) as tf:
        level = tf.series[0].levels[-1].asarray()
    rgb = cv2.resize(level, (ref.shape[1], ref.shape[0]), interpolation=cv2.INTER_AREA)
    m = otsu_saturation_mask(rgb)
    precision = (m & ref).sum() / m.sum()
    recall = (m & ref).sum() / ref.sum()
    assert precision > 0.97, precision
    assert recall > min_recall, recall


def test_real_nearly_empty_slide(pathology_dir) -> None:
    """kidney-48-5: one small IHC fragment on glass (about 2 % of the image)."""
    tifffile = pytest.importorskip("tifffile")
    ref = np.load(pathology_dir / "reference_masks" / "histolab-tissue-mask-kidney-48-5.npy")
    rgb = tifffile.imread(pathology_dir / "kidney-48-5.tif")
    m = otsu_saturation_mask(cv2.resize(rgb, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA))
    assert 0 < foreground_fraction(m) < 0.02
    ref_up = cv2.resize(ref.astype(np.uint8), (m.shape[1], m.shape[0]), cv2.INTER_NEAREST) > 0
    assert (m & ref_up).sum() / m.sum() > 0.9  # what we find is the fragment
