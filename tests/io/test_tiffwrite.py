"""The pyramid writer used by the demo, tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest

from gigapatch import open_image
from gigapatch.io.tiff_write import write_pyramidal_tiff


def _image() -> np.ndarray:
    import cv2

    rng = np.random.default_rng(0)
    base = np.zeros((1100, 1700, 3), np.float32) + (215, 140, 190)
    noise = cv2.GaussianBlur(rng.normal(0, 60, base.shape).astype(np.float32), (0, 0), 3)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("svs", [False, True])
def test_levels_mpp_and_colour_survive(tmp_path: Path, svs: bool) -> None:
    rgb = _image()
    path = write_pyramidal_tiff(tmp_path / "s.svs", rgb, downsamples=(4, 16), mpp=0.25,
                                magnification=40, svs=svs)
    with open_image(path) as im:
        assert im.level_dimensions == ((1700, 1100), (425, 275), (106, 68))
        assert im.mpp == pytest.approx(0.25)
        if svs:
            assert im.vendor == "aperio" and im.magnification == 40
        got = im.read_region((0, 0), 0, (1700, 1100))
        assert np.abs(got.astype(int) - rgb).mean() < 8  # JPEG loss only, no colour swap
        lvl = im.read_region((64, 64), 1, (300, 200))
    slide = openslide.OpenSlide(str(path))
    assert slide.level_dimensions == ((1700, 1100), (425, 275), (106, 68))
    ref = np.asarray(slide.read_region((64, 64), 1, (300, 200)))[..., :3]
    np.testing.assert_array_equal(lvl, ref)
