"""The h5 read by CLAM's and TRIDENT's reading logic (tests/outputs/consumer_readers.py) gives the
pixels of gigapatch's own extracted patches: after a resize, on a slide without mpp, on an
OME-TIFF whose SubIFD levels OpenSlide does not list; unknown attributes are left out, never NaN.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from consumer_readers import Slide, clam_patches, coords_and_attrs, trident_patches
from helpers_cli import run_cli
from helpers_tiff import decimated_levels, smooth_rgb, write_pyramid
from PIL import Image as PILImage

from gigapatch import PatchSet, TiffImage, resolve_geometry
from gigapatch.config import PatchConfig
from gigapatch.io.geometry import consumer_level, interop_attrs

#: patches compared per run (the first ones of the h5: enough to catch a wrong field of view)
N_COMPARED = 24
#: mean absolute difference (0-255) allowed between a consumer's patch and ours, both reduced to
#: 1/4 of their side, at their best alignment within SHIFT output px. Read at the level gigapatch
#: read, only the resampling filters differ (PIL bicubic vs OpenCV area); read at another level
#: (OpenSlide does not list gigapatch's), the pyramid's own downsampling differs from a bicubic
#: one, and at a non-integer downsample gigapatch's reader starts at a whole level pixel (floor)
#: where OpenSlide interpolates the exact position. A wrong field of view (the bug of issue #13:
#: a quarter of the patch at 2x) measured 20-58 on these slides.
MAX_MAD_SAME_LEVEL = 1.5
MAX_MAD_OTHER_LEVEL = 8.0
SHIFT = 2


def _small(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    return cv2.resize(a, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA).astype(float)


def mad(a: np.ndarray, b: np.ndarray, shift: int = SHIFT) -> float:
    """Mean absolute difference of two (s, s, 3) uint8 patches at 1/4 scale: of ``b``'s centre
    (a ``shift`` px margin cut) against ``a`` moved by up to ``shift`` px, the best of them."""
    assert a.shape == b.shape, (a.shape, b.shape)
    s, m = a.shape[0], shift
    centre = _small(b[m : s - m, m : s - m])
    return min(
        float(np.abs(_small(a[m + dy : s - m + dy, m + dx : s - m + dx]) - centre).mean())
        for dy in range(-m, m + 1) for dx in range(-m, m + 1)
    )


def ours(out: Path, image_id: str, xy: tuple[int, int]) -> np.ndarray:
    return np.asarray(PILImage.open(out / image_id / f"{xy[0]}_{xy[1]}.png").convert("RGB"))


def tile(slide: Path, out: Path, *flags: str) -> Path:
    """``gigapatch tile SLIDE --extract --format png FLAGS``; the h5 written."""
    res = run_cli("tile", str(slide), "--out", str(out), "--extract", "--format", "png", "-q", *flags)
    assert res.returncode == 0, res.stderr[-2000:]
    (h5,) = out.glob("*.h5")
    with h5py.File(h5) as f:
        assert len(f["coords"]) >= 4, "too few patches to compare"
    return h5


def assert_no_nan(h5: Path) -> None:
    _, attrs = coords_and_attrs(h5)
    for k, v in attrs.items():
        a = np.asarray(v)
        assert not (a.dtype.kind == "f" and np.isnan(a).any()), f"attribute {k} is NaN"


def compare(
    patches, out: Path, image_id: str, size: int, n: int = N_COMPARED
) -> list[float]:
    """MAD of each consumer patch (resized to ``size`` as its user would) against ours."""
    found = []
    for k, (xy, patch) in enumerate(patches):
        if k >= n:
            break
        if patch.shape[0] != size:
            patch = np.asarray(PILImage.fromarray(patch).resize((size, size)))
        found.append(mad(patch, ours(out, image_id, xy)))
    assert found
    return found


# --------------------------------------------------------------------------- real slides


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "flags", "user_mpp"),
    [
        ("CMU-1-Small-Region.svs", ("--mpp", "1.0", "--patch-size", "224"), None),
        ("tcga-cr-7395-01a-01-ts1.svs", ("--mpp", "0.5", "--slide-mpp", "0.25"), 0.25),
    ],
)
def test_clam_and_trident_read_our_patches_after_a_resize(
    pathology_dir: Path, tmp_path: Path, name: str, flags: tuple[str, ...], user_mpp: float | None
) -> None:
    slide = pathology_dir / name
    h5 = tile(slide, tmp_path, *flags)
    assert_no_nan(h5)
    _, a = coords_and_attrs(h5)
    size = int(a["target_patch_size"])
    assert a["resize_factor"] == pytest.approx(2.0, rel=0.01)  # a resized run
    # CLAM's convention: patch_size is what is read at patch_level; TRIDENT's stays consistent
    assert a["patch_size"] == a["read_size"] and a["patch_level"] == a["read_level"] == 0
    assert a["patch_size_level0"] == pytest.approx(
        a["patch_size"] * a["level0_magnification"] / a["target_magnification"], abs=1)
    clam = compare(clam_patches(h5, slide, size), tmp_path, h5.stem, size)
    trident = compare(trident_patches(h5, Slide(slide, mpp=user_mpp)), tmp_path, h5.stem, size)
    assert max(clam) < MAX_MAD_SAME_LEVEL and max(trident) < MAX_MAD_SAME_LEVEL, (clam, trident)
    # what the h5 made CLAM read before (the output size at patch_level) is far outside
    with h5py.File(h5, "r+") as f:
        f["coords"].attrs["patch_size"] = size
    wrong = compare(clam_patches(h5, slide, size), tmp_path, h5.stem, size, n=4)
    assert min(wrong) > 2 * MAX_MAD_OTHER_LEVEL, wrong


@pytest.mark.slow
def test_a_slide_without_mpp_reads_right_and_has_no_nan(pathology_dir: Path, tmp_path: Path) -> None:
    slide = pathology_dir / "tcga-cr-7395-01a-01-ts1.svs"  # no mpp in the file
    h5 = tile(slide, tmp_path / "l0")
    assert_no_nan(h5)
    _, a = coords_and_attrs(h5)
    for key in ("mpp", "target_mpp", "effective_mpp", "level0_magnification",
                "target_magnification", "output_magnification"):
        assert key not in a, key
    back = PatchSet.read(h5)
    assert back.attrs["mpp"] is None and back.attrs["target_magnification"] is None
    size = int(a["target_patch_size"])
    clam = compare(clam_patches(h5, slide, size), tmp_path / "l0", h5.stem, size)
    # TRIDENT opens a slide without mpp only when its user gives one; then it takes the CLAM
    # attributes (no magnifications in the h5)
    trident = compare(trident_patches(h5, Slide(slide, mpp=0.25)), tmp_path / "l0", h5.stem, size)
    assert max(clam) < MAX_MAD_SAME_LEVEL and max(trident) < MAX_MAD_SAME_LEVEL, (clam, trident)
    # read at level 1: without magnifications TRIDENT would take patch_size for level-0 px, so
    # the h5 gives the patch at level 0, where CLAM and TRIDENT both read it right
    h5 = tile(slide, tmp_path / "l1", "--level", "1")
    _, a = coords_and_attrs(h5)
    assert (a["read_level"], a["read_size"]) == (1, 256)
    assert (a["patch_level"], a["level_numbering"], a["patch_size"]) == (0, "any", 512)
    clam = compare(clam_patches(h5, slide, 256), tmp_path / "l1", h5.stem, 256)
    trident = compare(trident_patches(h5, Slide(slide, mpp=0.25)), tmp_path / "l1", h5.stem, 256)
    assert max(clam) < MAX_MAD_OTHER_LEVEL and max(trident) < MAX_MAD_OTHER_LEVEL, (clam, trident)
    # given an mpp, level 1 is OpenSlide's level 1 (OpenSlide interpolates the exact position)
    h5 = tile(slide, tmp_path / "l1mpp", "--level", "1", "--slide-mpp", "0.25")
    _, a = coords_and_attrs(h5)
    assert (a["patch_level"], a["level_numbering"], a["patch_size"]) == (1, "openslide", 256)
    clam = compare(clam_patches(h5, slide, 256), tmp_path / "l1mpp", h5.stem, 256)
    trident = compare(trident_patches(h5, Slide(slide, mpp=0.25)), tmp_path / "l1mpp", h5.stem, 256)
    assert max(clam) < MAX_MAD_OTHER_LEVEL and max(trident) < MAX_MAD_OTHER_LEVEL, (clam, trident)


@pytest.mark.slow
def test_ome_tiff_levels_are_openslide_levels(pathology_dir: Path, tmp_path: Path) -> None:
    import openslide

    slide = pathology_dir / "CMU-1-Small-Region.pyramid.ome.tiff"
    h5 = tile(slide, tmp_path, "--level", "1")
    _, a = coords_and_attrs(h5)
    n_levels = openslide.OpenSlide(str(slide)).level_count  # OpenSlide lists no SubIFD level
    assert a["read_level"] == 1 and a["reader"] == "tifffile"
    assert a["patch_level"] < n_levels and a["level_numbering"] == "openslide"
    assert a["patch_size"] == a["patch_size_level0"] == 512  # read at level 0 instead
    clam = compare(clam_patches(h5, slide, 256), tmp_path, h5.stem, 256)
    trident = compare(trident_patches(h5, Slide(slide)), tmp_path, h5.stem, 256)
    assert max(clam) < MAX_MAD_OTHER_LEVEL and max(trident) < MAX_MAD_OTHER_LEVEL, (clam, trident)


# --------------------------------------------------------------------------- synthetic TIFFs


@pytest.fixture(scope="module")
def pyramids(tmp_path_factory) -> dict[str, Path]:
    """One 3-level pyramid written as SubIFDs (as OME-TIFF does) and as main-chain pages."""
    d = tmp_path_factory.mktemp("pyr")
    levels = decimated_levels(smooth_rgb(2048, 1536, seed=5), 3)
    return {
        "subifds": write_pyramid(d / "sub.tif", levels, resolution_mpp=0.5),
        "chain": write_pyramid(d / "chain.tif", levels, subifds=False, resolution_mpp=0.5),
    }


@pytest.mark.parametrize(("kind", "level", "expected"), [
    ("chain", 2, (2, "openslide", 256, True)),
    ("subifds", 2, (0, "openslide", 1024, False)),
    ("chain", 0, (0, "any", 256, True)),
])
def test_levels_are_numbered_as_openslide_numbers_them(
    pyramids: dict[str, Path], kind: str, level: int, expected: tuple
) -> None:
    pytest.importorskip("openslide")
    with TiffImage(pyramids[kind]) as im:
        assert im.level_count == 3
        g = resolve_geometry(im, PatchConfig(size=256, level=level))
        c = consumer_level(im, g)
        a = interop_attrs(im, g)
    assert (c.level, c.numbering, a["patch_size"], c.same) == expected
    assert a["read_level"] == level and a["read_size"] == 256
    assert a["patch_size"] * c.downsample == pytest.approx(a["patch_size_level0"], rel=0.01)


def test_a_resize_keeps_both_conventions(pyramids: dict[str, Path]) -> None:
    with TiffImage(pyramids["chain"]) as im:
        g = resolve_geometry(im, PatchConfig(size=224, level=None, mpp=0.75))  # 1.5x the file's
        a = interop_attrs(im, g)
    assert (a["patch_level"], a["patch_size"], a["target_patch_size"]) == (0, 336, 224)
    assert a["read_size"] == 336 and a["resize_factor"] == pytest.approx(1.5)
    mag0 = a["level0_magnification"]
    assert a["target_magnification"] == pytest.approx(mag0)  # of the pixels patch_size counts
    assert a["output_magnification"] == pytest.approx(mag0 / 1.5)
    assert a["patch_size_level0"] == a["patch_size"] * mag0 / a["target_magnification"]


def test_unknown_attributes_are_left_out_and_read_back_as_none(tmp_path: Path) -> None:
    ps = PatchSet("s", np.array([[0, 0]]), {"foreground": np.ones(1, np.float32)},
                  attrs={"patch_size": 256, "patch_size_level0": 256, "mpp": None,
                         "target_magnification": None, "level0_magnification": 20.0})
    ps.write_h5(tmp_path / "s.h5")
    _, on_disk = coords_and_attrs(tmp_path / "s.h5")
    assert "mpp" not in on_disk and "target_magnification" not in on_disk
    back = PatchSet.read(tmp_path / "s.h5")
    assert back.attrs["mpp"] is None and back.attrs["target_magnification"] is None
    assert back.attrs["level0_magnification"] == 20.0
    # a file written before (NaN marked unknown) reads the same
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f["coords"].attrs["mpp"] = np.nan
    assert PatchSet.read(tmp_path / "s.h5").attrs["mpp"] is None
