"""Per-patch scores (core/score.py): integral images, mask fractions, sharpness."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gigapatch.config import PatchConfig
from gigapatch.io.geometry import resolve_geometry
from gigapatch.io.image import ArrayImage
from gigapatch.tiling.integral import box_sums, grid_box_sums, integral_image, mask_fraction
from gigapatch.tiling.score import laplacian_variance, sharpness_batch, sharpness_scores, tenengrad


def test_integral_image() -> None:
    rng = np.random.default_rng(0)
    m = rng.random((37, 53)) < 0.4
    table = integral_image(m)
    assert table.shape == (38, 54) and table.dtype == np.int64
    assert (table[0] == 0).all() and (table[:, 0] == 0).all()
    assert (table[1:, 1:] == np.cumsum(np.cumsum(m, 0), 1)).all()
    counts = rng.integers(0, 1000, (9, 7))
    assert (integral_image(counts)[1:, 1:] == counts.cumsum(0).cumsum(1)).all()
    assert integral_image(np.zeros((0, 4), bool)).shape == (1, 5)


def test_box_sums_integer_exact() -> None:
    rng = np.random.default_rng(1)
    m = rng.random((30, 40)) < 0.5
    table = integral_image(m)
    x0 = rng.integers(-5, 45, 200)
    y0 = rng.integers(-5, 35, 200)
    x1 = x0 + rng.integers(0, 20, 200)
    y1 = y0 + rng.integers(0, 20, 200)
    got = box_sums(table, x0, y0, x1, y1)
    assert got.dtype == np.int64
    for k in range(200):
        ref = m[max(y0[k], 0) : max(y1[k], 0), max(x0[k], 0) : max(x1[k], 0)].sum()
        assert got[k] == ref


def test_box_sums_fractional_are_area_weighted() -> None:
    """Boxes on a quarter-pixel lattice against the mask upsampled 4x (exact reference)."""
    rng = np.random.default_rng(2)
    m = rng.random((20, 25)) < 0.5
    up = np.repeat(np.repeat(m, 4, 0), 4, 1)
    table = integral_image(m)
    q = rng.integers(0, 100, (300, 4))
    x0, x1 = np.sort(q[:, :2], axis=1).T
    y0, y1 = np.sort(q[:, 2:] * 80 // 100, axis=1).T
    got = box_sums(table, x0 / 4, y0 / 4, x1 / 4, y1 / 4)
    ref = np.array([up[b:d, a:c].sum() / 16 for a, c, b, d in zip(x0, x1, y0, y1)])
    np.testing.assert_allclose(got, ref, atol=1e-9)
    # the separable grid version agrees with the pointwise one
    gx0, gy0 = np.array([0.25, 3.5, 7.0]), np.array([1.75, 10.0])
    grid = grid_box_sums(table, gx0, gx0 + 4.5, gy0, gy0 + 3.25)
    pts = box_sums(table, gx0[None], gy0[:, None], gx0[None] + 4.5, gy0[:, None] + 3.25)
    np.testing.assert_allclose(grid, pts, atol=1e-9)


def test_mask_fraction_exact_on_aligned_boxes() -> None:
    rng = np.random.default_rng(3)
    m = rng.random((64, 80)) < 0.3
    ds, size = 4.0, 32  # 8 x 8 mask px per patch
    coords = rng.integers(-4, 80, (500, 2)) * 4  # aligned with mask pixels, some outside
    got = mask_fraction(m, coords, size, ds)
    assert got.dtype == np.float32 and got.shape == (500,)
    for (x, y), f in zip(coords // 4, got):
        ref = m[max(y, 0) : max(y + 8, 0), max(x, 0) : max(x + 8, 0)].sum() / 64
        assert f == np.float32(ref)


def test_mask_fraction_partial_pixels() -> None:
    """ds 2.5: boxes start on half mask pixels; reference = mask upsampled 2x, level-0 boxes
    mapped exactly onto it."""
    rng = np.random.default_rng(4)
    m = rng.random((30, 30)) < 0.5
    up = np.repeat(np.repeat(m, 2, 0), 2, 1)  # 1 up px = 1.25 level-0 px
    coords = rng.integers(0, 50, (100, 2)) * 1.25  # x / 2.5 is a multiple of 0.5
    got = mask_fraction(m, coords, 10.0, 2.5)  # 10 level-0 px = 4 mask px = 8 up px
    for (x, y), f in zip((coords / 1.25).astype(int), got):
        ref = up[y : y + 8, x : x + 8].sum() / 64  # outside the mask counts as background
        assert f == pytest.approx(ref, abs=1e-6)
    assert mask_fraction(m, np.zeros((0, 2)), 10, 2.5).shape == (0,)
    with pytest.raises(ValueError):
        mask_fraction(m, coords, 0, 2.5)


def test_mask_fraction_reuses_integral() -> None:
    m = np.zeros((10, 10), bool)
    m[:5] = True
    coords = np.array([[0, 0], [0, 10], [0, -5], [3, 2]])
    frac = mask_fraction(m, coords, 10, 1.0, integral=integral_image(m))
    # last box: rows 2..12 x cols 3..13 -> 3 foreground rows x 7 columns inside the mask
    assert frac.tolist() == pytest.approx([0.5, 0.0, 0.5, 21 / 100])


def textured(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_laplacian_variance_and_tenengrad_match_opencv() -> None:
    rgb = textured(0)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    g32 = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float64)
    lap = cv2.Laplacian(g32, cv2.CV_64F, ksize=1)[1:-1, 1:-1]
    assert laplacian_variance(rgb) == pytest.approx(lap.var(), rel=1e-4)
    gx = cv2.Sobel(g32, cv2.CV_64F, 1, 0, ksize=3)[1:-1, 1:-1]
    gy = cv2.Sobel(g32, cv2.CV_64F, 0, 1, ksize=3)[1:-1, 1:-1]
    assert tenengrad(rgb) == pytest.approx((gx**2 + gy**2).mean(), rel=1e-4)
    # a grey input gives the same as its RGB broadcast
    assert laplacian_variance(grey.astype(np.uint8)) == pytest.approx(
        laplacian_variance(np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)), rel=1e-4
    )


def test_sharpness_orders_blur() -> None:
    sharp = textured(1, 96)
    scores = []
    for sigma in (0, 1, 2, 4):
        img = sharp if sigma == 0 else cv2.GaussianBlur(sharp, (0, 0), sigma)
        scores.append((laplacian_variance(img), tenengrad(img)))
    lap, ten = zip(*scores)
    assert list(lap) == sorted(lap, reverse=True) and lap[0] > 10 * lap[-1]
    assert list(ten) == sorted(ten, reverse=True) and ten[0] > 10 * ten[-1]
    flat = np.full((32, 32, 3), 200, np.uint8)
    assert laplacian_variance(flat) == 0.0 and tenengrad(flat) == 0.0
    assert laplacian_variance(np.zeros((2, 2), np.uint8)) == 0.0  # too small for a 3 x 3 kernel


def test_sharpness_batch_matches_single_patches() -> None:
    patches = np.stack([textured(s, 48) for s in range(5)])
    patches[2] = cv2.GaussianBlur(patches[2], (0, 0), 2)
    out = sharpness_batch(patches)
    assert set(out) == {"sharpness", "tenengrad"}
    assert out["sharpness"].dtype == np.float32 and out["sharpness"].shape == (5,)
    for i in range(5):
        assert out["sharpness"][i] == pytest.approx(laplacian_variance(patches[i]), rel=1e-5)
        assert out["tenengrad"][i] == pytest.approx(tenengrad(patches[i]), rel=1e-5)
    half = sharpness_batch(patches, downsample=2)
    binned = cv2.resize(patches[0], (24, 24), interpolation=cv2.INTER_AREA)
    assert half["sharpness"][0] == pytest.approx(laplacian_variance(binned), rel=0.05)
    assert half["sharpness"][2] < half["sharpness"][0]
    with pytest.raises(ValueError):
        sharpness_batch(patches, downsample=3)


def _image_half_blurred() -> ArrayImage:
    rng = np.random.default_rng(9)
    arr = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    arr[:, 128:] = cv2.GaussianBlur(arr[:, 128:], (0, 0), 3)
    return ArrayImage(arr, downsamples=(2,))


def _check_sharpness_scores(image: ArrayImage, coords: np.ndarray) -> None:
    geom = resolve_geometry(image, PatchConfig(size=32, level=0))
    out = sharpness_scores(image, coords, geom, workers=2, batch=3)
    direct = np.stack([image.read_region((int(x), int(y)), 0, (32, 32)) for x, y in coords])
    ref = sharpness_batch(direct)
    for key in ("sharpness", "tenengrad"):
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-6)
    left = coords[:, 0] + 32 <= 128
    assert out["sharpness"][left].min() > 5 * out["sharpness"][~left].max()


def test_sharpness_scores_with_read_patches() -> None:
    image = _image_half_blurred()
    coords = np.array([[200, 10], [0, 0], [64, 96], [160, 160], [32, 200], [224, 0], [96, 32]])
    _check_sharpness_scores(image, coords)
    geom = resolve_geometry(image, PatchConfig(size=32, level=0))
    empty = sharpness_scores(image, np.zeros((0, 2), np.int64), geom)
    assert empty["sharpness"].shape == (0,)


def test_sharpness_scores_places_out_of_order_patches(monkeypatch) -> None:
    """read_patches may yield in any order (e.g. tile order): results follow ``coords``."""

    def reversed_reader(image, coords, geometry, workers=4):
        for i in range(len(coords) - 1, -1, -1):
            x, y = coords[i]
            yield i, image.read_region((int(x), int(y)), geometry.level, (32, 32))

    import gigapatch.tiling.score as score_module

    monkeypatch.setattr(score_module, "read_patches", reversed_reader)
    image = _image_half_blurred()
    _check_sharpness_scores(image, np.array([[0, 0], [150, 20], [40, 120], [200, 200]]))


def test_interp_points_give_the_grid_cells_floats() -> None:
    """interp_points at (y, x) is bit for bit the table interpolated as interp_cols(interp_rows)
    does it, so a lattice measured point by point equals the same lattice measured as a grid."""
    from gigapatch.tiling.integral import (
        integral_table,
        interp_cols,
        interp_points,
        interp_rows,
    )

    rng = np.random.default_rng(5)
    table = integral_table(rng.random((40, 57)) < 0.4)
    ys = rng.uniform(-3, 45, 30)
    xs = rng.uniform(-3, 60, 25)
    ys[:5] = [0, 40, 12, 39.5, 40.0]  # on samples and at the last one
    grid = interp_cols(interp_rows(table, ys), xs)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    got = interp_points(table, yy.ravel(), xx.ravel()).reshape(grid.shape)
    assert np.array_equal(got, grid)
    on = interp_points(table, np.array([3.0, 40.0]), np.array([7.0, 57.0]))
    assert np.array_equal(on, [table[3, 7], table[40, 57]])
