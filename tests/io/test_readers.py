"""Image readers: real slides (against OpenSlide), synthetic TIFFs with known pixels, bad input."""

from __future__ import annotations

import io
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from helpers_tiff import decimated_levels, make_sparse, random_rgb, smooth_rgb, write_pyramid
from PIL import Image as PILImage

from gigapatch import ConfigError, ImageError, PlainImage, TiffImage, open_image, pad_region
from gigapatch.io.readers import (
    TileCache,
    available_readers,
    find_images,
    open_builtin,
    ycbcr_to_rgb,
)

CMU = "CMU-1-Small-Region.svs"
TCGA = "tcga-cr-7395-01a-01-ts1.svs"
GENERIC = "CMU-1-Small-Region.generic-pyramid.tiff"
OME = "CMU-1-Small-Region.pyramid.ome.tiff"
KIDNEY = "kidney-48-5.tif"


# ---------------------------------------------------------------------------- real files
@pytest.mark.parametrize(
    ("name", "cls", "dims", "mpp", "vendor", "mag"),
    [
        (CMU, TiffImage, [(2220, 2967)], 0.499, "aperio", 20.0),
        (TCGA, TiffImage, [(4443, 3567), (2221, 1783)], None, "aperio", None),
        (GENERIC, TiffImage, [(2220, 2967), (555, 741), (138, 185)], 0.499, "generic-tiff", None),
        (OME, TiffImage, [(2220, 2967), (1110, 1483), (555, 741), (277, 370), (138, 185)], 0.499,
         "ome", None),
        (KIDNEY, PlainImage, None, None, "tiff", None),
    ],
)
def test_real_files(pathology_dir: Path, name, cls, dims, mpp, vendor, mag) -> None:
    with open_image(pathology_dir / name) as im:
        assert type(im) is cls
        assert im.reader_name == cls.reader_name
        if dims is not None:
            assert list(im.level_dimensions) == dims
        else:
            assert im.dimensions == (1493, 901)
        assert im.mpp == (pytest.approx(mpp) if mpp else None)
        assert im.magnification == mag
        assert im.vendor == vendor
        sources = im.properties["mpp_sources"]
        if mpp is None:
            assert sources == {}
        else:
            assert sources and all(v == pytest.approx(mpp) for v in sources.values())


def test_svs_and_ome_metadata_sources(pathology_dir: Path) -> None:
    with open_image(pathology_dir / CMU) as im:
        assert im.properties["mpp_sources"] == {"svs": pytest.approx(0.499)}
        assert im.properties["aperio"]["AppMag"] == "20"
    with open_image(pathology_dir / OME) as im:
        src = im.properties["mpp_sources"]
        assert src["ome"] == pytest.approx(0.499)
    with open_image(pathology_dir / GENERIC) as im:
        assert im.properties["mpp_sources"] == {"tiff_resolution": pytest.approx(0.499)}


def _openslide(path: Path):
    pytest.importorskip("openslide")
    return open_image(path, reader="openslide")


@pytest.mark.parametrize(
    ("x", "y", "w", "h"),
    [
        (0, 0, 240, 240),        # exactly one stored tile
        (100, 130, 300, 260),    # spans 4 tiles' borders
        (239, 239, 2, 2),        # the four pixels around a tile corner
        (1900, 2700, 400, 400),  # runs off the right and bottom edges
        (-50, -20, 120, 90),     # starts outside (top-left)
    ],
)
def test_cmu_pixels_identical_to_openslide(pathology_dir: Path, x, y, w, h) -> None:
    path = pathology_dir / CMU
    with TiffImage(path) as ours, _openslide(path) as ref:
        a = ours.read_region((x, y), 0, (w, h))
        b = ref.read_region((x, y), 0, (w, h))
    assert a.shape == b.shape == (h, w, 3)
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_tcga_jpeg2000_identical_to_openslide(pathology_dir: Path) -> None:
    path = pathology_dir / TCGA
    with TiffImage(path) as ours, _openslide(path) as ref:
        np.testing.assert_array_equal(ours.read_region((700, 500), 0, (600, 400)),
                                      ref.read_region((700, 500), 0, (600, 400)))
        # the whole of level 1 plus an overhang: every tile, every edge, white outside
        w, h = ref.level_dimensions[1]
        a = ours.read_region((0, 0), 1, (w + 7, h + 5))
        b = ref.read_region((0, 0), 1, (w + 7, h + 5))
        np.testing.assert_array_equal(a, b)
        assert (a[h:] == 255).all() and (a[:, w:] == 255).all()
        assert a[:h, :w].mean() < 250  # real tissue, not a blank


@pytest.mark.parametrize("name", [GENERIC, OME])
def test_generic_and_ome_level0_identical_to_openslide(pathology_dir: Path, name: str) -> None:
    path = pathology_dir / name
    with TiffImage(path) as ours, _openslide(path) as ref:
        for lvl in range(ref.level_count):  # openslide sees the OME file's level 0 only
            w, h = ref.level_dimensions[lvl]
            np.testing.assert_array_equal(ours.read_region((0, 0), lvl, (w + 3, h + 3)),
                                          ref.read_region((0, 0), lvl, (w + 3, h + 3)))


def test_ome_levels_match_level0(pathology_dir: Path) -> None:
    """SubIFD levels are the same picture: each level, area-reduced to the smallest, matches it
    (a tile misplaced by 8 px or a flipped level gives a mean error above 25)."""
    with TiffImage(pathology_dir / OME) as im:
        w4, h4 = im.level_dimensions[4]
        ref = im.read_region((0, 0), 4, (w4, h4)).astype(np.float32)
        for lvl in range(4):
            w, h = im.level_dimensions[lvl]
            lv = im.read_region((0, 0), lvl, (w, h))
            small = cv2.resize(lv, (w4, h4), interpolation=cv2.INTER_AREA).astype(np.float32)
            assert np.abs(small - ref).mean() < 6


def test_svs_raw_tile_is_standalone_jpeg(pathology_dir: Path) -> None:
    """Aperio tiles are RGB-coded JPEG with shared tables: the raw bytes decode on their own."""
    with TiffImage(pathology_dir / CMU) as im:
        assert im.tile_is_jpeg(0)
        assert im.tile_shape(0) == (240, 240)
        for tx, ty in [(0, 0), (4, 7)]:
            raw = im.raw_tile(0, tx, ty)
            assert raw[:2] == b"\xff\xd8"
            decoded = np.asarray(PILImage.open(io.BytesIO(raw)).convert("RGB"))
            np.testing.assert_array_equal(decoded, im.read_tile(0, tx, ty))
            bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
            np.testing.assert_array_equal(bgr[..., ::-1], im.read_tile(0, tx, ty))


# ---------------------------------------------------------------------------- synthetic
@pytest.fixture(scope="module")
def noise_levels() -> list[np.ndarray]:
    return decimated_levels(random_rgb(960, 1280, seed=1), 3)


@pytest.mark.parametrize("subifds", [True, False])
@pytest.mark.parametrize("bigtiff", [False, True])
def test_uncompressed_pyramid_exact(tmp_path: Path, noise_levels, subifds, bigtiff) -> None:
    path = write_pyramid(tmp_path / "p.tif", noise_levels, subifds=subifds, bigtiff=bigtiff)
    rng = np.random.default_rng(3)
    with open_image(path) as im:
        assert isinstance(im, TiffImage)
        assert im.level_dimensions == ((1280, 960), (640, 480), (320, 240))
        assert im.level_downsamples == (1.0, 2.0, 4.0)
        assert im.mpp is None and im.vendor == "generic-tiff"
        for _ in range(40):
            lvl = int(rng.integers(0, 3))
            ds = 2**lvl
            w, h = (int(v) for v in rng.integers(1, 600, 2))
            lx, ly = (int(v) for v in rng.integers(-300, 1300 // ds, 2))
            got = im.read_region((lx * ds, ly * ds), lvl, (w, h))
            np.testing.assert_array_equal(got, pad_region(noise_levels[lvl], lx, ly, (w, h)))


def test_region_wholly_outside_is_white(tmp_path: Path, noise_levels) -> None:
    path = write_pyramid(tmp_path / "p.tif", noise_levels)
    with TiffImage(path) as im:
        assert (im.read_region((5000, 5000), 0, (64, 32)) == 255).all()
        assert (im.read_region((-500, 0), 1, (10, 10)) == 255).all()
        assert im.read_region((0, 0), 0, (64, 32)).shape == (32, 64, 3)
        with pytest.raises(ValueError, match="level"):
            im.read_region((0, 0), 3, (4, 4))


@pytest.mark.parametrize("compression", ["jpeg", "zlib", "lzw", "jpeg2000"])
def test_compressed_pyramid_matches_tifffile(tmp_path: Path, compression: str) -> None:
    """Tile-on-demand reads equal tifffile's whole-level decode, every codec."""
    levels = decimated_levels(smooth_rgb(700, 900, seed=2), 2)
    path = write_pyramid(tmp_path / "c.tif", levels, compression=compression, tile=128)
    with TiffImage(path) as im, tifffile.TiffFile(path) as tf:
        for lvl, ref_level in enumerate(tf.series[0].levels):
            ref = ref_level.asarray()
            h, w = ref.shape[:2]
            np.testing.assert_array_equal(im.read_region((0, 0), lvl, (w, h)), ref)
            ds = 2**lvl
            np.testing.assert_array_equal(im.read_region((333 * ds, 101 * ds), lvl, (200, 150)),
                                          pad_region(ref, 333, 101, (200, 150)))
        if compression != "jpeg2000":  # lossless codecs: exactly the source pixels
            lossless = compression != "jpeg"
            diff = np.abs(im.read_region((0, 0), 0, (900, 700)).astype(int) - levels[0])
            assert diff.max() == 0 if lossless else diff.mean() < 2.0


def test_jpeg_passthrough_bytes_decode_to_tile(tmp_path: Path) -> None:
    levels = decimated_levels(smooth_rgb(512, 768, seed=4), 2)
    path = write_pyramid(tmp_path / "j.tif", levels, compression="jpeg", tile=256)
    with TiffImage(path) as im:
        assert im.tile_is_jpeg(0) and im.tile_is_jpeg(1)
        assert im.tile_grid(0) == (3, 2)
        raw = im.raw_tile(0, 2, 1)
        np.testing.assert_array_equal(np.asarray(PILImage.open(io.BytesIO(raw)).convert("RGB")),
                                      im.read_tile(0, 2, 1))
        np.testing.assert_array_equal(im.read_tile(0, 2, 1), im.read_region((512, 256), 0, (256, 256)))
        with pytest.raises(ValueError, match="outside"):
            im.read_tile(0, 3, 0)


def test_grey_rgba_planar_strips(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (300, 400), dtype=np.uint8)
    write_pyramid(tmp_path / "g.tif", [grey, grey[::2, ::2]], photometric="minisblack", tile=64)
    with TiffImage(tmp_path / "g.tif") as im:
        got = im.read_region((0, 0), 0, (400, 300))
        assert (got == grey[..., None]).all()

    rgba = np.concatenate([random_rgb(200, 256, 6), np.zeros((200, 256, 1), np.uint8)], axis=2)
    rgba[:100, :, 3] = 255  # top half opaque, bottom half transparent, one column half
    rgba[100:, 7, 3] = 128
    write_pyramid(tmp_path / "a.tif", [rgba], tile=64, extrasamples=("unassalpha",))
    with TiffImage(tmp_path / "a.tif") as im:
        got = im.read_region((0, 0), 0, (256, 200)).astype(int)
    np.testing.assert_array_equal(got[:100], rgba[:100, :, :3])
    assert (got[100:, 8:] == 255).all()
    half = rgba[100:, 7, :3].astype(float) * 128 / 255 + 255 * 127 / 255
    assert np.abs(got[100:, 7] - half).max() <= 1

    planar = random_rgb(256, 320, 7)
    write_pyramid(tmp_path / "s.tif", [planar], tile=64, planarconfig="separate")
    with TiffImage(tmp_path / "s.tif") as im:
        np.testing.assert_array_equal(im.read_region((10, 20), 0, (300, 200)),
                                      pad_region(planar, 10, 20, (300, 200)))

    # a stripped pyramid is read strip by strip (a strip is a tile as wide as the level)
    levels = decimated_levels(random_rgb(300, 200, 8), 2)
    write_pyramid(tmp_path / "st.tif", levels, tile=None, rowsperstrip=16, subifds=False,
                  compression="zlib")
    with open_image(tmp_path / "st.tif") as im:
        assert isinstance(im, TiffImage)
        assert im.tile_shape(0) == (16, 200) and not im.tile_is_jpeg(0)
        np.testing.assert_array_equal(im.read_region((0, 30), 0, (200, 50)), levels[0][30:80])


def test_sparse_tile_is_white(tmp_path: Path, noise_levels) -> None:
    path = write_pyramid(tmp_path / "sp.tif", noise_levels[:1], tile=256)
    make_sparse(path, page=0, tile_index=1)
    with TiffImage(path) as im:
        assert im.raw_tile(0, 1, 0) is None
        region = im.read_region((0, 0), 0, (768, 256))
    assert (region[:, 256:512] == 255).all()
    np.testing.assert_array_equal(region[:, :256], noise_levels[0][:256, :256])
    np.testing.assert_array_equal(region[:, 512:], noise_levels[0][:256, 512:768])


def test_read_level_downsampled(tmp_path: Path, noise_levels) -> None:
    path = write_pyramid(tmp_path / "p.tif", noise_levels)
    with TiffImage(path) as im:
        np.testing.assert_array_equal(im.read_level_downsampled(4.0), noise_levels[2])
        np.testing.assert_array_equal(im.read_level_downsampled(2.0), noise_levels[1])
        expected = cv2.resize(noise_levels[2], (160, 120), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(im.read_level_downsampled(8.0), expected)
        assert im.get_thumbnail(100).shape[:2] == (75, 100)


def test_resolution_and_ome_mpp(tmp_path: Path) -> None:
    lv = [smooth_rgb(256, 256)]
    write_pyramid(tmp_path / "cm.tif", lv, resolution_mpp=0.25)
    write_pyramid(tmp_path / "in.tif", lv, resolution_mpp=0.5, resolution_unit="INCH")
    with TiffImage(tmp_path / "cm.tif") as a, TiffImage(tmp_path / "in.tif") as b:
        assert a.mpp == pytest.approx(0.25) and b.mpp == pytest.approx(0.5)
    with tifffile.TiffWriter(tmp_path / "dpi.tif") as tw:  # the 72 dpi default means nothing
        tw.write(lv[0], tile=(256, 256), resolution=(72, 72), resolutionunit="INCH")
    with TiffImage(tmp_path / "dpi.tif") as c:
        assert c.mpp is None
    meta = {"axes": "YXS", "PhysicalSizeX": 500, "PhysicalSizeXUnit": "nm",
            "PhysicalSizeY": 500, "PhysicalSizeYUnit": "nm"}
    write_pyramid(tmp_path / "o.ome.tif", decimated_levels(lv[0], 2), ome_metadata=meta)
    with open_image(tmp_path / "o.ome.tif") as d:
        assert d.vendor == "ome" and d.level_count == 2
        assert d.mpp == pytest.approx(0.5)
        assert d.image_id == "o"


def test_ycbcr_to_rgb_inverts_jfif() -> None:
    rgb = random_rgb(64, 64, 9).astype(np.float64)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    cb = 128 - 0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2]
    cr = 128 + 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2]
    ycc = np.clip(np.round(np.stack([y, cb, cr], -1)), 0, 255).astype(np.uint8)
    assert np.abs(ycbcr_to_rgb(ycc).astype(int) - rgb).max() <= 2


def test_tile_cache_decodes_once_and_is_bounded() -> None:
    cache = TileCache(max_bytes=3 * 100)
    calls = []
    gate = threading.Event()

    def load() -> np.ndarray:
        calls.append(1)
        gate.wait(1.0)
        return np.zeros(100, np.uint8)

    threads = [threading.Thread(target=cache.get, args=("k", load)) for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1
    for k in range(10):
        cache.get(k, lambda: np.zeros(100, np.uint8))
    info = cache.info()
    assert info["bytes"] <= 300 and info["tiles"] == 3 and info["decoded"] == 11
    cache.get(9, lambda: np.ones(100, np.uint8))  # most recent: still cached
    cache.get(0, lambda: np.ones(100, np.uint8))  # oldest: evicted, decoded again
    assert cache.info()["hits"] == info["hits"] + 1
    assert cache.info()["decoded"] == 12


def test_tiffimage_thread_safe(tmp_path: Path, noise_levels) -> None:
    path = write_pyramid(tmp_path / "p.tif", noise_levels, compression="zlib", tile=128)
    errors: list[str] = []
    with TiffImage(path, cache_bytes=128 * 128 * 3 * 4) as im:  # tiny cache: constant eviction

        def work(seed: int) -> None:
            rng = np.random.default_rng(seed)
            for _ in range(30):
                x, y = (int(v) for v in rng.integers(0, 1100, 2))
                got = im.read_region((x, y), 0, (150, 150))
                if not np.array_equal(got, pad_region(noise_levels[0], x, y, (150, 150))):
                    errors.append(f"{x},{y}")

        threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_tiffimage_pickles_by_path(tmp_path: Path, noise_levels) -> None:
    """DataLoader workers get a copy that reopens the file (no shared handle or lock)."""
    import pickle

    path = write_pyramid(tmp_path / "p.tif", noise_levels, compression="zlib")
    with TiffImage(path, cache_bytes=12345) as im:
        copy = pickle.loads(pickle.dumps(im))
        with copy:
            assert copy.cache.max_bytes == 12345 and copy.level_dimensions == im.level_dimensions
            np.testing.assert_array_equal(copy.read_region((300, 200), 1, (90, 80)),
                                          im.read_region((300, 200), 1, (90, 80)))


# ---------------------------------------------------------------------------- plain images
def test_plain_images(tmp_path: Path, metal_surface_dir: Path) -> None:
    rgb = random_rgb(120, 160, 10)
    cv2.imwrite(str(tmp_path / "a.png"), rgb[..., ::-1])
    cv2.imwrite(str(tmp_path / "a.bmp"), rgb[..., ::-1])
    for name in ("a.png", "a.bmp"):
        with open_image(tmp_path / name) as im:
            assert isinstance(im, PlainImage) and im.dimensions == (160, 120)
            np.testing.assert_array_equal(im.read_region((0, 0), 0, (160, 120)), rgb)
    jpg = min(metal_surface_dir.glob("*.jpg"))
    with open_image(jpg) as im:
        ref = cv2.imread(str(jpg), cv2.IMREAD_COLOR)[..., ::-1]
        assert im.vendor == "jpeg" and im.dimensions == (200, 200)
        np.testing.assert_array_equal(im.read_region((0, 0), 0, (200, 200)), ref)
    with pytest.raises(ImageError, match="too large.*pyramidal TIFF"):
        PlainImage(tmp_path / "a.png", max_pixels=1000)


def test_kidney_plain_tiff(pathology_dir: Path) -> None:
    with open_image(pathology_dir / KIDNEY) as im:
        ref = tifffile.imread(pathology_dir / KIDNEY)
        np.testing.assert_array_equal(im.read_region((0, 0), 0, (1493, 901)), ref)
        assert im.level_count == 2
        assert (im.read_region((1490, 0), 0, (10, 4))[:, 3:] == 255).all()


# ---------------------------------------------------------------------------- opening / bad input
@pytest.mark.parametrize("case", ["missing", "directory", "empty", "text_svs", "garbage_tif"])
def test_bad_input(tmp_path: Path, case: str) -> None:
    path = {
        "missing": tmp_path / "nope.svs",
        "directory": tmp_path,
        "empty": tmp_path / "empty.svs",
        "text_svs": tmp_path / "notes.svs",
        "garbage_tif": tmp_path / "bad.tif",
    }[case]
    if case == "empty":
        path.touch()
    elif case == "text_svs":
        path.write_text("this is not a slide\n")
    elif case == "garbage_tif":
        path.write_bytes(b"II*\x00" + b"\xff" * 100)
    with pytest.raises(ImageError) as info:
        open_image(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert info.value.path == str(path)


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.97])
def test_truncated_svs(tmp_path: Path, pathology_dir: Path, fraction: float) -> None:
    src = pathology_dir / CMU
    data = src.read_bytes()
    path = tmp_path / "cut.svs"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ImageError, match=str(path).replace(".", r"\.")):
        im = open_image(path)
        im.read_region((0, 0), 0, (2220, 2967))  # reaching here must still fail
    with pytest.raises(ImageError, match="cut.svs"):
        TiffImage(path)


def test_corrupt_tile_raises_image_error(tmp_path: Path, noise_levels) -> None:
    path = write_pyramid(tmp_path / "z.tif", noise_levels[:1], compression="zlib", tile=256)
    with tifffile.TiffFile(path) as tf:
        off = int(tf.pages[0].dataoffsets[4])
    raw = bytearray(path.read_bytes())
    raw[off : off + 64] = b"\x00" * 64
    path.write_bytes(bytes(raw))
    with TiffImage(path) as im:
        np.testing.assert_array_equal(im.read_region((0, 0), 0, (256, 256)),
                                      noise_levels[0][:256, :256])  # other tiles still fine
        with pytest.raises(ImageError, match=r"z\.tif.*tile \(4, 0\)"):
            im.read_region((1024, 0), 0, (256, 256))


def test_unsupported_samples_and_forced_readers(tmp_path: Path, pathology_dir: Path) -> None:
    deep = (random_rgb(256, 256, 11).astype(np.uint16) * 257)
    tifffile.imwrite(tmp_path / "u16.tif", deep, tile=(128, 128), photometric="rgb")
    assert not TiffImage.supports(tmp_path / "u16.tif")
    with pytest.raises(ImageError, match="16-bit"):
        TiffImage(tmp_path / "u16.tif")
    assert TiffImage.supports(pathology_dir / CMU)
    assert not TiffImage.supports(pathology_dir / KIDNEY.replace(".tif", ".nope"))

    assert {"tifffile", "plain"} <= set(available_readers())
    with pytest.raises(ConfigError, match="unknown reader 'nope'"):
        open_image(pathology_dir / CMU, reader="nope")
    with open_image(pathology_dir / KIDNEY, reader="tifffile") as im:
        assert isinstance(im, TiffImage)  # a stripped page read strip by strip
        np.testing.assert_array_equal(im.read_region((5, 7), 0, (50, 40)),
                                      tifffile.imread(pathology_dir / KIDNEY)[7:47, 5:55])
    with pytest.raises(ImageError, match="kidney"):
        open_image(pathology_dir / KIDNEY.replace(".tif", ".nope"), reader="plain")


def test_open_builtin_declines_unknown(tmp_path: Path) -> None:
    (tmp_path / "x.dat").write_bytes(b"\x00\x01\x02\x03" * 10)
    assert open_builtin(tmp_path / "x.dat") is None


def test_find_images(tmp_path: Path, pathology_dir: Path) -> None:
    for name in ("b.svs", "a.TIF", "c.png", "notes.txt", "d.jpeg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.svs").write_bytes(b"x")
    found = find_images([tmp_path])
    assert [p.name for p in found] == ["a.TIF", "b.svs", "c.png", "d.jpeg"]
    extra = tmp_path / "notes.txt"
    assert find_images([extra, tmp_path, extra])[0] == extra
    assert len(find_images([extra, tmp_path, extra])) == 5
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match="no images"):
        find_images([empty])
    with pytest.raises(ImageError, match="no such"):
        find_images([tmp_path / "missing"])


def test_copy_of_svs_opens_by_content(tmp_path: Path, pathology_dir: Path) -> None:
    """The reader is chosen by content, not suffix."""
    shutil.copy(pathology_dir / CMU, tmp_path / "slide.bin")
    with open_image(tmp_path / "slide.bin") as im:
        assert isinstance(im, TiffImage) and im.vendor == "aperio"


# ---------------------------------------------------------------------------- pathology plugin
def test_openslide_plugin_defers_to_core_and_reads_the_rest(tmp_path: Path, pathology_dir: Path) -> None:
    pytest.importorskip("openslide")
    from gigapatch_pathology.reader import OpenSlideImage, gigapatch_open_image

    for name in (CMU, TCGA, GENERIC, OME):  # the core's fast path takes these
        assert gigapatch_open_image(path=pathology_dir / name, domain="pathology") is None
    assert gigapatch_open_image(path=pathology_dir / KIDNEY, domain="pathology") is None
    deep = random_rgb(256, 256, 12).astype(np.uint16) * 257  # tiled, but 16-bit: not the core's
    tifffile.imwrite(tmp_path / "u16.tif", deep, tile=(128, 128), photometric="rgb")
    with gigapatch_open_image(path=tmp_path / "u16.tif", domain=None) as im:
        assert isinstance(im, OpenSlideImage) and im.vendor == "generic-tiff"
        assert im.read_region((0, 0), 0, (4, 4)).shape == (4, 4, 3)
    with open_image(pathology_dir / CMU, reader="openslide") as im:
        assert isinstance(im, OpenSlideImage) and im.reader_name == "openslide"
        assert im.mpp == pytest.approx(0.499) and im.magnification == 20.0
        assert im.vendor == "aperio" and im.properties["mpp_sources"] == {"openslide": 0.499}
        assert (im.read_region((2200, 2950), 0, (40, 40))[20:, 20:] == 255).all()
    with pytest.raises(ImageError, match="OpenSlide cannot read"):
        open_image(pathology_dir / KIDNEY, reader="openslide")
