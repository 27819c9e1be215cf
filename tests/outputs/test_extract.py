"""Patch reading and extraction: pixels equal read_region, JPEG passthrough, order independence,
each tile decoded once, bounded work in flight, tar shards."""

from __future__ import annotations

import io
import tarfile
import threading
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import pytest
from helpers_tiff import decimated_levels, random_rgb, smooth_rgb, write_pyramid
from PIL import Image as PILImage

from gigapatch import ConfigError, TiffImage, extract_patches, read_patches, resolve_geometry
from gigapatch.config import PatchConfig
from gigapatch.io.patches import patches_to_array, tile_order, windowed_map


def geometry(image, size: int, level: int = 0, mpp: float | None = None):
    return resolve_geometry(image, PatchConfig(size=size, level=level, mpp=mpp))


def grid(image, size0: int, step0: int | None = None, offset: int = 0) -> np.ndarray:
    w, h = image.dimensions
    step0 = step0 or size0
    xs, ys = np.meshgrid(np.arange(offset, w - size0 + 1, step0), np.arange(offset, h - size0 + 1, step0))
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int64)


@pytest.fixture(scope="module")
def jpeg_tiff(tmp_path_factory) -> Path:
    levels = decimated_levels(smooth_rgb(1024, 1280, seed=21), 2)
    return write_pyramid(tmp_path_factory.mktemp("x") / "j.tif", levels, compression="jpeg", tile=256)


@pytest.fixture(scope="module")
def raw_tiff(tmp_path_factory) -> Path:
    levels = decimated_levels(random_rgb(700, 900, seed=22), 2)
    return write_pyramid(tmp_path_factory.mktemp("x") / "r.tif", levels, tile=128)


def test_png_patches_equal_read_region(tmp_path: Path, raw_tiff: Path) -> None:
    with TiffImage(raw_tiff) as im:
        g = geometry(im, 100, level=1)
        coords = np.array([[0, 0], [400, 300], [1, 1], [800, 600], [-60, 500]])  # incl. off-edge
        paths = extract_patches(im, coords, g, tmp_path, fmt="png", workers=3)
        assert [p.name for p in paths] == ["0_0.png", "400_300.png", "1_1.png", "800_600.png",
                                           "-60_500.png"]
        for (x, y), p in zip(coords, paths):
            got = imagecodecs.png_decode(p.read_bytes())
            np.testing.assert_array_equal(got, im.read_region((x, y), 1, (100, 100)))
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files


def test_jpeg_patches_close_to_read_region(tmp_path: Path, jpeg_tiff: Path) -> None:
    with TiffImage(jpeg_tiff) as im:
        g = geometry(im, 200)
        coords = grid(im, 200, 300, offset=17)
        paths = extract_patches(im, coords, g, tmp_path, quality=95, workers=2)
        for (x, y), p in zip(coords, paths):
            got = np.asarray(PILImage.open(p).convert("RGB"), dtype=np.int16)
            diff = np.abs(got - im.read_region((x, y), 0, (200, 200)))
            assert diff.mean() < 1.5 and np.percentile(diff, 99) < 12


def test_jpeg_passthrough(tmp_path: Path, jpeg_tiff: Path) -> None:
    with TiffImage(jpeg_tiff) as im:
        g = geometry(im, 256)
        coords = np.array([[0, 0], [512, 256], [256, 768], [100, 100]])  # last is not aligned
        paths = extract_patches(im, coords, g, tmp_path, quality=50)
        for (x, y), p in zip(coords[:3], paths[:3]):
            assert p.read_bytes() == im.raw_tile(0, x // 256, y // 256)
            np.testing.assert_array_equal(np.asarray(PILImage.open(p).convert("RGB")),
                                          im.read_region((x, y), 0, (256, 256)))
        tiles = {im.raw_tile(0, tx, ty) for tx in range(5) for ty in range(4)}
        assert paths[3].read_bytes() not in tiles
        # passthrough off: re-encoded at the asked quality, so different bytes, same picture
        again = extract_patches(im, coords[:1], g, tmp_path / "re", quality=50, passthrough=False)
        assert again[0].read_bytes() != paths[0].read_bytes()
        # level 1 is tiled too: a level-1 tile-aligned patch is passed through as well
        g1 = geometry(im, 256, level=1)
        p1 = extract_patches(im, np.array([[512, 512]]), g1, tmp_path / "l1")
        assert p1[0].read_bytes() == im.raw_tile(1, 1, 1)


def test_svs_passthrough_matches_openslide(tmp_path: Path, pathology_dir: Path) -> None:
    """Aperio's RGB JPEG tiles written through decode to exactly OpenSlide's pixels."""
    pytest.importorskip("openslide")
    from gigapatch import open_image

    path = pathology_dir / "CMU-1-Small-Region.svs"
    with TiffImage(path) as im, open_image(path, reader="openslide") as ref:
        g = geometry(im, 240)
        coords = np.array([[240, 480], [960, 2400]])
        for (x, y), p in zip(coords, extract_patches(im, coords, g, tmp_path)):
            assert p.read_bytes() == im.raw_tile(0, x // 240, y // 240)
            np.testing.assert_array_equal(np.asarray(PILImage.open(p).convert("RGB")),
                                          ref.read_region((x, y), 0, (240, 240)))


def test_order_independence_and_indices(jpeg_tiff: Path) -> None:
    with TiffImage(jpeg_tiff) as im:
        g = geometry(im, 150)
        coords = grid(im, 150, 170)[::-1]  # deliberately not raster order
        one = dict(read_patches(im, coords, g, workers=1))
    with TiffImage(jpeg_tiff) as im:
        many = dict(read_patches(im, coords, g, workers=4))
        arr = patches_to_array(im, coords, g, workers=3)
    assert sorted(one) == sorted(many) == list(range(len(coords)))
    for i in range(len(coords)):
        np.testing.assert_array_equal(one[i], many[i])
        np.testing.assert_array_equal(arr[i], one[i])
    with TiffImage(jpeg_tiff) as im:
        np.testing.assert_array_equal(arr[5], im.read_region(tuple(coords[5]), 0, (150, 150)))


def test_extraction_deterministic_across_workers(tmp_path: Path, jpeg_tiff: Path) -> None:
    with TiffImage(jpeg_tiff) as im:
        g = geometry(im, 128)
        coords = grid(im, 128, 200, offset=3)
        a = extract_patches(im, coords, g, tmp_path / "a", workers=1)
        b = extract_patches(im, coords, g, tmp_path / "b", workers=4)
    assert [p.name for p in a] == [p.name for p in b]
    assert all(pa.read_bytes() == pb.read_bytes() for pa, pb in zip(a, b))


def test_each_tile_decoded_once(tmp_path: Path) -> None:
    """Shuffled, overlapping patches over 20 x 16 small tiles: with the cache sized by
    read_patches (about a row of tiles, far less than the level), each tile decodes once."""
    path = write_pyramid(tmp_path / "small.tif", [smooth_rgb(1024, 1280, 23)], compression="jpeg",
                         tile=64)
    with TiffImage(path, cache_bytes=1) as im:
        g = geometry(im, 200)
        coords = np.random.default_rng(0).permutation(grid(im, 200, 150))
        th, tw = im.tile_shape(0)
        touched = set()
        for x, y in coords:
            for ty in range(y // th, (y + 199) // th + 1):
                for tx in range(x // tw, (x + 199) // tw + 1):
                    touched.add((tx, ty))
        n = sum(1 for _ in read_patches(im, coords, g, workers=4))
        assert n == len(coords)
        info = im.cache.info()
        assert info["decoded"] == len(touched)
        assert info["max_bytes"] < len(touched) * th * tw * 3  # the cache never held them all


def test_tile_order_is_raster_by_tile_row(jpeg_tiff: Path) -> None:
    with TiffImage(jpeg_tiff) as im:
        g = geometry(im, 100)
        coords = np.array([[900, 10], [0, 300], [5, 250], [600, 0]])
        # rows of tiles (256 px): y=10, 0, 250 share tile row 0; y=300 is tile row 1
        assert tile_order(im, coords, g).tolist() == [2, 3, 0, 1]


def test_resized_patches(pathology_dir: Path) -> None:
    with TiffImage(pathology_dir / "CMU-1-Small-Region.svs") as im:
        g = geometry(im, 128, mpp=0.998)  # twice the slide's 0.499: read 256, halve
        assert g.read_size == 256 and g.size == 128
        coords = np.array([[0, 0], [1000, 1200]])
        arr = patches_to_array(im, coords, g, workers=2)
        for (x, y), patch in zip(coords, arr):
            big = im.read_region((x, y), 0, (256, 256))
            np.testing.assert_array_equal(patch, cv2.resize(big, (128, 128), interpolation=cv2.INTER_AREA))


def test_tar_shards(tmp_path: Path, jpeg_tiff: Path) -> None:
    with TiffImage(jpeg_tiff) as im:
        g = geometry(im, 128)
        coords = grid(im, 128, 300)
        shards = extract_patches(im, coords, g, tmp_path / "t", fmt="tar", shard_size=5, workers=2)
        files = extract_patches(im, coords, g, tmp_path / "f", workers=2)
    assert [s.name for s in shards] == [f"shard-{i:06d}.tar" for i in range(-(-len(coords) // 5))]
    members = {}
    for s in shards:
        with tarfile.open(s) as tar:
            names = tar.getnames()
            assert len(names) <= 5
            for m in tar.getmembers():
                members[m.name] = tar.extractfile(m).read()
    assert sorted(members) == sorted(p.name for p in files)
    for p in files:
        assert members[p.name] == p.read_bytes()
        PILImage.open(io.BytesIO(members[p.name])).verify()
    assert sorted(f.name for f in (tmp_path / "t").iterdir()) == [s.name for s in shards]


def test_windowed_map_bounds_work_in_flight() -> None:
    pulled = 0
    lock = threading.Lock()

    def items():
        nonlocal pulled
        for i in range(200):
            with lock:
                pulled += 1
            yield i

    seen = []
    for k, value in enumerate(windowed_map(lambda i: i * i, items(), workers=3, window=6)):
        assert pulled - k <= 6
        seen.append(value)
    assert seen == [i * i for i in range(200)]


def test_empty_and_bad_arguments(tmp_path: Path, raw_tiff: Path) -> None:
    with TiffImage(raw_tiff) as im:
        g = geometry(im, 64)
        assert extract_patches(im, np.zeros((0, 2)), g, tmp_path / "e") == []
        assert list(read_patches(im, np.zeros((0, 2)), g)) == []
        with pytest.raises(ConfigError, match="unknown patch format"):
            extract_patches(im, np.zeros((1, 2)), g, tmp_path, fmt="gif")
        with pytest.raises(ValueError, match=r"\(N, 2\)"):
            list(read_patches(im, np.zeros((3, 3)), g))


def test_failed_read_leaves_no_partial_files(tmp_path: Path, raw_tiff: Path) -> None:
    class Broken(TiffImage):
        def read_region(self, location, level, size):
            if location[0] >= 400:
                raise OSError("disk went away")
            return super().read_region(location, level, size)

    with Broken(raw_tiff) as im:
        g = geometry(im, 64)
        coords = np.array([[0, 0], [64, 0], [400, 0]])
        with pytest.raises(OSError, match="disk went away"):  # a new folder: staged, dropped
            extract_patches(im, coords, g, tmp_path / "j", workers=2)
        (tmp_path / "k").mkdir()
        (tmp_path / "k" / "keep.txt").write_text("mine")
        with pytest.raises(OSError, match="disk went away"):  # a folder with files: one by one
            extract_patches(im, coords, g, tmp_path / "k", workers=2)
        with pytest.raises(OSError, match="disk went away"):
            extract_patches(im, coords, g, tmp_path / "t", fmt="tar", workers=2)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["k", "t"]  # no "j", no staging folder
    assert not [f for f in (tmp_path / "k").iterdir() if f.name.startswith(".")]
    assert (tmp_path / "k" / "keep.txt").read_text() == "mine"
    assert list((tmp_path / "t").iterdir()) == []


def test_patches_into_a_new_or_empty_folder_arrive_all_at_once(tmp_path: Path, raw_tiff: Path) -> None:
    """A missing or empty output folder is filled through a staging folder renamed at the end;
    the files are the same as those written one by one into a folder that holds files."""
    with TiffImage(raw_tiff) as im:
        g = geometry(im, 64)
        coords = np.array([[0, 0], [64, 0], [128, 64]])
        (tmp_path / "empty").mkdir()
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "other.txt").write_text("x")
        got = {name: extract_patches(im, coords, g, tmp_path / name, workers=2)
               for name in ("new", "empty", "busy")}
    for name, paths in got.items():
        assert [p.parent for p in paths] == [tmp_path / name] * 3 and all(p.exists() for p in paths)
        assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in got["new"]]
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]
    assert sorted(f.name for f in (tmp_path / "busy").iterdir())[-1] == "other.txt"
