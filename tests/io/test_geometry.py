"""Property tests of the coordinate maths (core/geometry.py) and of grid placement bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gigapatch.config import MIN_PATCH_SIZE, PatchConfig
from gigapatch.errors import ResolutionError
from gigapatch.io.geometry import (
    MAX_READ_SIDE,
    level0_to_level,
    level_to_level0,
    magnification_to_mpp,
    mpp_to_magnification,
    patches_inside,
    resolve_geometry,
)
from gigapatch.io.image import Image
from gigapatch.tiling.place import grid_coords, optimal_coords

SETTINGS = settings(max_examples=100, deadline=None)


class PyramidStub(Image):
    """An image with given level sizes and metadata and no pixels (read_region unused)."""

    def __init__(self, dims, downsamples, mpp=None, magnification=None) -> None:
        super().__init__(None)
        w, h = dims
        self._dims = tuple(
            (max(1, math.ceil(w / d)), max(1, math.ceil(h / d))) for d in downsamples
        )
        self._mpp = mpp
        self._mag = magnification

    @property
    def level_dimensions(self):
        return self._dims

    @property
    def mpp(self):
        return self._mpp

    @property
    def magnification(self):
        return self._mag

    def read_region(self, location, level, size):  # pragma: no cover - never called
        raise NotImplementedError


@st.composite
def pyramids(draw):
    w = draw(st.integers(64, 150_000))
    h = draw(st.integers(64, 150_000))
    steps = draw(st.lists(st.sampled_from([2, 3, 4]), min_size=0, max_size=5))
    downsamples = [1]
    for s in steps:
        if min(w, h) // (downsamples[-1] * s) >= 1:
            downsamples.append(downsamples[-1] * s)
    mpp = draw(st.one_of(st.none(), st.floats(0.1, 2.0)))
    mag = draw(st.one_of(st.none(), st.sampled_from([10.0, 20.0, 40.0])))
    return PyramidStub((w, h), downsamples, mpp=mpp, magnification=mag)


@SETTINGS
@given(
    xy=st.lists(st.integers(0, 10**6), min_size=2, max_size=2),
    ds=st.floats(1.0, 100.0),
)
def test_level0_level_round_trip(xy, ds: float) -> None:
    p = np.array(xy, np.int64)
    k = level0_to_level(p, ds)
    back = level_to_level0(k, ds)
    # floor then scale: never past the point, and within one level pixel of it
    assert (back <= p).all()
    assert (p - back <= math.ceil(ds)).all()
    assert (np.abs(level0_to_level(level_to_level0(k, ds), ds) - k) <= 1).all()


@SETTINGS
@given(k=st.integers(0, 10**5), d=st.integers(1, 64))
def test_integer_downsample_round_trip_is_exact(k: int, d: int) -> None:
    assert level0_to_level(level_to_level0(np.array([k]), d), d)[0] == k


@SETTINGS
@given(m=st.floats(0.5, 100.0))
def test_mpp_magnification_inverse(m: float) -> None:
    assert mpp_to_magnification(magnification_to_mpp(m)) == pytest.approx(m)


@SETTINGS
@given(
    image=pyramids(),
    size=st.integers(MIN_PATCH_SIZE, 1024),
    stride=st.one_of(st.none(), st.integers(1, 2048)),
    level=st.integers(0, 8),
)
def test_resolve_geometry_by_level(image, size: int, stride, level: int) -> None:
    g = resolve_geometry(image, PatchConfig(size=size, stride=stride, level=level,
                                            max_candidates=NO_CAP))
    assert g.level == min(level, image.level_count - 1)
    assert g.downsample == image.level_downsamples[g.level]
    assert g.read_size == size and g.resize_factor == 1.0
    assert g.size_level0 == round(size * g.downsample)
    assert g.stride_level0 == round((stride or size) * g.downsample)
    if image.mpp is not None:
        assert g.effective_mpp == pytest.approx(image.mpp * g.downsample)


@SETTINGS
@given(
    image=pyramids(),
    size=st.integers(MIN_PATCH_SIZE, 1024),
    stride=st.one_of(st.none(), st.integers(1, 2048)),
    mpp=st.floats(0.05, 20.0),
)
def test_resolve_geometry_by_mpp(image, size: int, stride, mpp: float) -> None:
    cfg = PatchConfig(size=size, stride=stride, mpp=mpp, max_candidates=NO_CAP)
    if image.mpp is None or _out_of_bounds(image, size, stride, mpp / image.mpp):
        with pytest.raises(ResolutionError):
            resolve_geometry(image, cfg)
        return
    g = resolve_geometry(image, cfg)
    factor = mpp / image.mpp  # level-0 px per output px
    dss = image.level_downsamples
    assert 0 <= g.level < image.level_count and g.downsample == dss[g.level]
    # the best level: the coarsest one that is not coarser than the target
    assert g.level == 0 or g.downsample <= factor * (1 + 1e-6)
    assert not any(g.downsample < d <= factor * (1 + 1e-6) for d in dss)
    assert g.read_size >= 1
    assert g.read_size == max(1, round(size * factor / g.downsample))
    assert g.resize_factor == pytest.approx(g.read_size / size)
    assert g.size_level0 == round(size * factor)
    assert g.stride_level0 == round((stride or size) * factor)
    # what is read covers the target area up to half a pixel of the level read
    if g.read_size > 1:
        assert abs(g.read_size * g.downsample - size * factor) <= g.downsample / 2 + 1e-6
    assert g.effective_mpp == pytest.approx(image.mpp * g.read_size * g.downsample / size)


@SETTINGS
@given(image=pyramids(), size=st.integers(MIN_PATCH_SIZE, 512),
       mag=st.sampled_from([2.5, 5.0, 10.0, 20.0]))
def test_resolve_geometry_by_magnification(image, size: int, mag: float) -> None:
    cfg = PatchConfig(size=size, magnification=mag, max_candidates=NO_CAP)
    if image.mpp is None and image.magnification is None or _out_of_bounds(
            image, size, None, magnification_to_mpp(mag) / image.mpp if image.mpp is not None
            else image.magnification / mag):
        with pytest.raises(ResolutionError):
            resolve_geometry(image, cfg)
        return
    g = resolve_geometry(image, cfg)
    if image.mpp is not None:
        factor = magnification_to_mpp(mag) / image.mpp
    else:
        factor = image.magnification / mag
    assert g.size_level0 == round(size * factor)
    assert g.level == 0 or g.downsample <= factor * (1 + 1e-6)


#: no cap on the grid's positions (the geometry maths alone)
NO_CAP = 10**18


def _out_of_bounds(image, size: int, stride: int | None, factor: float) -> bool:
    """True when a patch of ``size`` px at ``factor`` level-0 px per output px covers no
    level-0 pixel, or is read larger than MAX_READ_SIDE (refused)."""
    if round(size * factor) < 1 or round((stride or size) * factor) < 1:
        return True
    level = image.get_best_level_for_downsample(factor)
    return max(1, round(size * factor / image.level_downsamples[level])) > MAX_READ_SIDE


def test_grid_bounds_refuse_before_any_work() -> None:
    """A 1 px step over a 150k px slide (10^10 positions), a patch under one level-0 px, one read
    past MAX_READ_SIDE: a ResolutionError naming the image and the numbers."""
    from gigapatch import ArrayImage

    class Big(ArrayImage):
        @property
        def level_dimensions(self):
            return ((150_000, 100_000),)

    image = Big(np.zeros((8, 8, 3), np.uint8), mpp=0.25, path="big.svs")
    with pytest.raises(ResolutionError, match=r"big.svs: .*14,996,250,225 positions.*max_cand"):
        resolve_geometry(image, PatchConfig(size=16, stride=1))
    g = resolve_geometry(image, PatchConfig(size=256))  # 227k positions: fine
    assert g.size_level0 == 256
    with pytest.raises(ResolutionError, match="covers 0 x 0 level-0 px"):
        resolve_geometry(image, PatchConfig(size=16, mpp=0.001))
    with pytest.raises(ResolutionError, match="read as 40,960 x 40,960 px"):
        resolve_geometry(image, PatchConfig(size=1024, mpp=10.0))


@st.composite
def grid_cases(draw):
    ds = draw(st.floats(0.5, 64.0))
    size = draw(st.integers(1, 600))
    stride = draw(st.integers(1, 600))
    # keep the mask below ~600 x 600 px and the grid below ~200 x 200 cells
    limit = int(max(1, min(5000, 600 * ds, 200 * stride)))
    return draw(st.integers(1, limit)), draw(st.integers(1, limit)), size, stride, ds


@SETTINGS
@given(case=grid_cases())
def test_grid_inside_and_pad_bounds(case) -> None:
    w, h, size, stride, ds = case
    mask = np.ones((math.ceil(h / ds), math.ceil(w / ds)), bool)
    inside = grid_coords(mask, ds, size, stride, (w, h), edge="inside")
    assert inside.dtype == np.int64
    assert patches_inside(inside, size, (w, h)).all()
    n_x = (w - size) // stride + 1 if w >= size else 0
    n_y = (h - size) // stride + 1 if h >= size else 0
    assert len(inside) == n_x * n_y  # all foreground: every cell is kept
    pad = grid_coords(mask, ds, size, stride, (w, h), edge="pad")
    assert (pad >= 0).all() and (pad[:, 0] < w).all() and (pad[:, 1] < h).all()
    assert (pad % stride == 0).all()  # anchored at level-0 (0, 0)
    assert len(pad) >= len(inside)
    assert len(np.unique(np.concatenate([pad, inside]), axis=0)) == len(pad)  # inside is a subset
    for axis, length in ((0, w), (1, h)):
        last = pad[:, axis].max()
        # the grid goes on until the image edge is reached (or the next cell would start past it)
        assert last + size >= length or last + stride >= length


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    w=st.integers(8, 600),
    h=st.integers(8, 600),
    size=st.integers(4, 200),
    stride=st.integers(4, 200),
    ds=st.sampled_from([1.0, 2.0, 4.0, 3.3]),
    min_fg=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    shift=st.booleans(),
)
def test_any_placement_stays_inside(seed, w, h, size, stride, ds, min_fg, shift) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((math.ceil(h / ds), math.ceil(w / ds))) < rng.uniform(0.01, 0.9)
    grid = grid_coords(mask, ds, size, stride, (w, h), min_foreground=min_fg)
    opt = optimal_coords(
        mask, ds, size, stride, (w, h), min_foreground=min_fg, phases=4, shift_edges=shift
    )
    for c in (grid, opt):
        assert c.dtype == np.int64 and c.shape[1:] == (2,)
        assert patches_inside(c, size, (w, h)).all()
