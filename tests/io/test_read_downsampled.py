"""Downsampled reads of whole levels: banded copies and resizes give the pixels of one whole-image
pass, and the TIFF fast paths those of the generic read."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers_tiff import decimated_levels, smooth_rgb, write_pyramid

from gigapatch import ArrayImage
from gigapatch.io import image as image_module
from gigapatch.io.image import Image
from gigapatch.io.tiff import TiffImage


def test_read_level_downsampled_bands_copy_the_stored_level(monkeypatch):
    """A stored level read as is in many small bands is that level, row for row."""
    rng = np.random.default_rng(2)
    arr = cv2.resize(rng.integers(0, 256, (40, 50, 3), np.uint8), (1002, 801))
    img = ArrayImage(arr, downsamples=(3,))
    level = img._levels[1]
    monkeypatch.setattr(image_module, "COPY_BAND_BYTES", 3 * level.shape[1] * 7)  # 7 rows
    out = img.read_level_downsampled(img.level_downsamples[1])
    assert np.array_equal(out, level)
    # a resize in one band is the one OpenCV call
    monkeypatch.setattr(image_module, "RESIZE_BAND_BYTES", 1e9)
    out = img.read_level_downsampled(5.0)
    assert np.array_equal(out, cv2.resize(level, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("compression", [None, "jpeg"])
def test_tiff_whole_levels_and_exact_shrinks_match_the_banded_resize(tmp_path, compression):
    """TiffImage's fast paths (a stored level read as is; an exact k x k shrink of one, decoded
    tile row by tile row) give the pixels of the generic banded read at every downsample."""
    levels = decimated_levels(smooth_rgb(1536, 2048, seed=4), 3)  # downsamples 1, 2, 4
    path = write_pyramid(tmp_path / "p.tif", levels, tile=256, compression=compression)
    with TiffImage(path) as im:
        for ds in (1.0, 2.0, 4.0, 8.0, 16.0, 3.0, 5.5, 12.0):
            im.cache.clear()
            fast = im.read_level_downsampled(ds)
            assert im.cache.info()["bytes"] == 0  # a whole-level read leaves no tiles behind
            assert np.array_equal(fast, Image.read_level_downsampled(im, ds)), ds
