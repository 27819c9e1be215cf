"""Native samples: 8/16-bit grey and RGB TIFF read block by block (NativeTiffImage), grey and
16-bit PNG kept as stored, the 8-bit view, pixel sizes in mm and sizes given in them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from gigapatch import (
    ArrayImage,
    ConfigError,
    NativeTiffImage,
    PixelSize,
    ResolutionError,
    load_config,
    open_image,
    resolve_geometry,
)
from gigapatch.io.native_tiff import STREAM_PIXELS
from gigapatch.io.physical import parse_pixel_size
from gigapatch.io.samples import to_rgb8, white_level

RNG = np.random.default_rng(0)
GREY16 = RNG.integers(0, 4096, (1037, 771), dtype=np.uint16)  # a 12-bit camera in 16-bit words

LAYOUTS = {
    "one raw strip": {},
    "big-endian raw strip": {"byteorder": ">"},
    "deflate strips": {"compression": "zlib", "predictor": True},
    "lzw tiles": {"compression": "lzw", "tile": (128, 128)},
    "bigtiff strips": {"bigtiff": True, "rowsperstrip": 7},
    "one deflate strip": {"compression": "zlib", "rowsperstrip": 1037},
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_16bit_grey_read_as_stored(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "g.tif"
    tifffile.imwrite(path, GREY16, photometric="minisblack", **LAYOUTS[layout])
    # without a domain a striped one is the core's too (a tiled 16-bit TIFF may be claimed by
    # a slide reader plugin first: the metal_surface domain reads it natively)
    domain = "metal_surface" if "tile" in layout else None
    with open_image(path, domain=domain) as im:
        assert isinstance(im, NativeTiffImage)
        assert (im.dtype, im.channels, im.bits, im.white) == (np.uint16, 1, 16, 4095)
        got = im.read_region_raw((13, 29), 0, (500, 700))
        assert got.shape == (700, 500, 1) and got.dtype == np.uint16
        np.testing.assert_array_equal(got[..., 0], GREY16[29:729, 13:513])
        edge = im.read_region_raw((700, 1000), 0, (100, 100))  # past the corner: white
        np.testing.assert_array_equal(edge[:37, :71, 0], GREY16[1000:, 700:])
        assert (edge[37:] == 65535).all() and (edge[:, 71:] == 65535).all()
        # levels computed in the streaming pass: 8x box means, the 8-bit view by white level
        assert im.level_dimensions[1] == (97, 130)
        small = im.read_region_raw((0, 0), 1, (96, 129))[..., 0].astype(np.float64)
        want = GREY16[:1032, :768].reshape(129, 8, 96, 8).mean(axis=(1, 3))
        assert np.abs(small - want).max() <= 0.5
        view = im.read_region((0, 0), 0, (64, 64))
        assert view.shape == (64, 64, 3) and view.dtype == np.uint8
        np.testing.assert_array_equal(view[..., 0], np.round(GREY16[:64, :64] / 4095 * 255))


def test_rgb16_planar_and_8bit_grey(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 65535, (300, 400, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgb.tif", np.moveaxis(rgb, -1, 0), photometric="rgb",
                     planarconfig="separate", tile=(64, 64))
    with open_image(tmp_path / "rgb.tif", domain="metal_surface") as im:
        assert isinstance(im, NativeTiffImage) and im.channels == 3 and im.white == 65535
        np.testing.assert_array_equal(im.read_region_raw((5, 6), 0, (100, 90)), rgb[6:96, 5:105])
    grey = RNG.integers(0, 256, (500, 600), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "w.tif", grey, photometric="miniswhite")
    with open_image(tmp_path / "w.tif") as im:
        assert isinstance(im, NativeTiffImage) and im.dtype == np.uint8 and im.channels == 1
        np.testing.assert_array_equal(im.read_region_raw((0, 0), 0, (600, 500))[..., 0], grey)
        np.testing.assert_array_equal(im.read_region((0, 0), 0, (600, 500))[..., 1], 255 - grey)


def test_large_striped_8bit_streams_its_levels(tmp_path: Path) -> None:
    """A single-level striped TIFF above STREAM_PIXELS is not read whole: only the computed
    levels (1/64 of level 0 and less) are held."""
    h, w = 16_000, STREAM_PIXELS // 16_000 + 8
    path = tmp_path / "long.tif"

    def bands():
        for y in range(0, h, 2000):
            yield np.full((2000, w, 3), y // 2000 * 20, np.uint8)

    tifffile.imwrite(path, bands(), shape=(h, w, 3), dtype=np.uint8, photometric="rgb",
                     rowsperstrip=64)
    with open_image(path) as im:
        assert isinstance(im, NativeTiffImage) and im.channels == 3
        held = [lv for lv in im._levels if isinstance(lv, np.ndarray)]
        assert held and max(a.nbytes for a in held) <= h * w * 3 / 64 + 4 * w * 3
        assert (im.read_region((0, 15_990), 0, (4, 4)) == 140).all()


def test_plain_png_keeps_16bit_grey(tmp_path: Path) -> None:
    import cv2

    cv2.imwrite(str(tmp_path / "g.png"), GREY16)
    with open_image(tmp_path / "g.png") as im:
        assert (im.dtype, im.channels, im.white) == (np.uint16, 1, 4095)
        np.testing.assert_array_equal(im.read_region_raw((0, 0), 0, (771, 1037))[..., 0], GREY16)


def test_white_level_and_view() -> None:
    assert white_level(4000, np.uint16) == 4095 and white_level(60000, np.uint16) == 65535
    assert white_level(100, np.uint16) == 255 and white_level(3, np.uint8) == 255
    a = np.array([[0, 4095, 2048]], np.uint16)
    np.testing.assert_array_equal(to_rgb8(a, 4095)[0, :, 0], [0, 255, 128])
    rgb = RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    assert np.shares_memory(to_rgb8(rgb), rgb)  # 8-bit RGB passes through


def test_pixel_size_and_sizes_in_mm(tmp_path: Path) -> None:
    assert parse_pixel_size("0.1,0.2", "mm") == PixelSize(0.1, 0.2, "mm")
    assert parse_pixel_size("0.05", "mm").to("um") == PixelSize(50, 50, "um")
    with pytest.raises(ConfigError, match="pixel size"):
        parse_pixel_size("0.1,x", "mm")
    path = tmp_path / "p.tif"
    tifffile.imwrite(path, GREY16, resolution=(100.0, 50.0), resolutionunit="CENTIMETER")
    with open_image(path) as im:  # 100 px/cm across, 50 px/cm down: 0.1 x 0.2 mm
        assert im.pixel_size.to("mm") == pytest.approx(PixelSize(0.1, 0.2, "mm"))
        g = resolve_geometry(im, load_config("metal_surface", overrides={
            "patch.size_mm": 12.8, "patch.stride_mm": 6.4}).patch)
        assert (g.size, g.stride_level0) == (128, 64)  # the finer (x) pitch spans it
        g = resolve_geometry(im, load_config("metal_surface", overrides={
            "patch.max_object_mm": 20.0}).patch)  # 200 px: stride <= 256 - 200
        assert g.size_level0 == 256 and g.stride_level0 == 56
    with pytest.raises(ResolutionError, match="--pixel-size-mm"):
        resolve_geometry(ArrayImage(GREY16), load_config(overrides={"patch.size_mm": 5}).patch)
    g = resolve_geometry(ArrayImage(GREY16), load_config(overrides={
        "patch.size_mm": 5, "patch.pixel_size": [0.05, 0.05]}).patch)
    assert g.size == 100 and g.slide_mpp == pytest.approx(50)
    with pytest.raises(ResolutionError, match="do not fit"):
        resolve_geometry(ArrayImage(GREY16), load_config(overrides={
            "patch.size": 64, "patch.max_object": 64}).patch)


def test_info_shows_samples_and_pitch(tmp_path: Path) -> None:
    from helpers_cli import run_cli

    path = tmp_path / "p.tif"
    tifffile.imwrite(path, GREY16, resolution=(100.0, 100.0), resolutionunit="CENTIMETER")
    res = run_cli("info", str(path))
    assert res.returncode == 0, res.stderr
    assert "uint16 x 1 (16-bit)" in res.stdout and "0.1 mm" in res.stdout
