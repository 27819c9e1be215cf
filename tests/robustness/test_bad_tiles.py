"""Damaged stored tiles are never used silently (issue #15, item 1: corrupt JPEG tiles, cut
files, tile offsets past the end).

The mutants are built here from the real CMU-1 slides: 10 level-0 JPEG tiles whose entropy-coded
data is cut by an end-of-image marker or broken by a restart marker in the middle of the scan
(both make libjpeg-turbo *warn* and decode grey, which imagecodecs used to pass on silently), and
tiles whose JPEG header declares another size than the TIFF's tile. Under ``--on-bad-tile fail``
(the default) the image fails in one line naming the tile; under ``skip`` the patches over the
bad tiles are dropped, counted in the h5 attributes and said in the run summary, and every patch
written (JPEG passthrough included: a stored tile's bytes copied as they are) is the clean
slide's own.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers_robustness import TRACEBACK, error_lines, files_under, gigapatch, leftovers

from gigapatch import ImageError, open_image
from gigapatch.io.bad_tiles import (
    BadJpeg,
    BadTileError,
    check_jpeg,
    covered_tiles,
    decode_jpeg,
    patches_over,
)
from gigapatch.io.pixels import standalone_jpeg

pytestmark = pytest.mark.slow  # CLI runs in fresh processes: ~45 s for the module

SVS = "CMU-1-Small-Region.svs"
PYRAMID = "CMU-1-Small-Region.generic-pyramid.tiff"
OME = "CMU-1-Small-Region.pyramid.ome.tiff"


def tile_segments(path: Path, page: int = 0) -> tuple[list[int], list[int], int, int, int]:
    """Offsets and byte counts of one page's tiles, its tile side and tiles across / down."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        p = tf.pages[page]
        ntx, nty = -(-p.imagewidth // p.tilewidth), -(-p.imagelength // p.tilelength)
        return list(p.dataoffsets), list(p.databytecounts), p.tilewidth, ntx, nty


def damage(seg: bytes, kind: str) -> bytes:
    """One tile's JPEG bytes damaged in place (same length): ``cut`` puts an end-of-image marker
    in the middle of the entropy-coded data, ``marker`` a restart marker there (no restart
    interval is defined), ``size`` makes the frame header declare 16 rows fewer."""
    s = bytearray(seg)
    if kind == "size":
        sof = s.index(b"\xff\xc0")
        (h,) = struct.unpack(">H", s[sof + 5:sof + 7])
        s[sof + 5:sof + 7] = struct.pack(">H", h - 16)
        return bytes(s)
    sos = s.index(b"\xff\xda")
    start = sos + 2 + struct.unpack(">H", s[sos + 2:sos + 4])[0]
    mid = (start + len(s) - 2) // 2
    s[mid:mid + 2] = {"cut": b"\xff\xd9", "marker": b"\xff\xd3"}[kind]
    return bytes(s)


def corrupt_copy(src: Path, dst: Path, tiles: list[int], kinds: list[str]) -> Path:
    """``src`` with level 0's tiles ``tiles`` (raster indices) damaged by ``kinds`` (cycled)."""
    offsets, counts, _, _, _ = tile_segments(src)
    data = bytearray(src.read_bytes())
    for n, i in enumerate(tiles):
        o, c = offsets[i], counts[i]
        data[o:o + c] = damage(bytes(data[o:o + c]), kinds[n % len(kinds)])
    dst.write_bytes(bytes(data))
    return dst


def run_tile(path: Path, out: Path, *args: str) -> tuple[int, str]:
    r = gigapatch("tile", path, "--out", out, "-q", *args)
    assert not TRACEBACK.search(r.stderr), r.stderr
    assert not leftovers(out), leftovers(out)
    return r.returncode, r.stderr


def h5_coords(path: Path) -> tuple[np.ndarray, dict]:
    import h5py

    with h5py.File(path) as f:
        return f["coords"][:], dict(f["coords"].attrs)


@pytest.fixture(scope="module")
def svs_tiles(pathology_dir: Path) -> tuple[Path, list[int]]:
    """The CMU SVS and 10 of its level-0 tiles (a fixed draw), all over tissue or its edge."""
    src = pathology_dir / SVS
    _, counts, _, _, _ = tile_segments(src)
    big = [i for i, c in enumerate(counts) if c > 15_000]  # tissue compresses worst
    return src, sorted(random.Random(15).sample(big, 10))


def test_fail_names_the_tile_in_one_line(svs_tiles, tmp_path: Path) -> None:
    src, tiles = svs_tiles
    bad = corrupt_copy(src, tmp_path / "bad.svs", tiles, ["cut", "marker"])
    out = tmp_path / "out"
    code, err = run_tile(bad, out, "--extract")
    lines = error_lines(err)
    assert code != 0 and len(lines) == 1, err
    _, _, side, ntx, _ = tile_segments(src)
    first = tiles[0]
    assert f"{bad}: bad tile ({first % ntx}, {first // ntx}) of level 0" in lines[0]
    assert f"x={first % ntx * side}, y={first // ntx * side}" in lines[0]
    assert "Corrupt JPEG data" in lines[0]
    assert not [f for f in files_under(out) if f.startswith("bad")], files_under(out)


def test_skip_drops_and_reports_and_writes_only_clean_pixels(svs_tiles, tmp_path: Path) -> None:
    """Under skip, with passthrough extraction (240 px patches on the tile grid): the run ends
    0, the 10 tiles are reported (h5 attrs, the summary's warnings), no kept patch overlaps one,
    and every patch file is, byte for byte, the clean slide's stored tile."""
    src, tiles = svs_tiles
    bad = corrupt_copy(src, tmp_path / "bad.svs", tiles, ["cut", "marker"])
    out = tmp_path / "out"
    code, err = run_tile(bad, out, "--extract", "--on-bad-tile", "skip", "--patch-size", "240",
                         "--level", "0", "--placement", "grid")
    assert code == 0, err
    assert "10 bad tile(s) skipped" in err
    coords, attrs = h5_coords(out / "bad.h5")
    assert attrs["bad_tiles"] == 10 and len(coords) > 10
    _, _, side, ntx, _ = tile_segments(src)
    boxes = np.array([[i % ntx * side, i // ntx * side, (i % ntx + 1) * side,
                       (i // ntx + 1) * side] for i in tiles])
    assert not patches_over(boxes, coords, 240).any()
    summary = (out / "summary.csv").read_text()
    assert "bad tile" in summary and "skipped" in summary
    with open_image(src) as clean:
        files = sorted((out / "bad").glob("*.jpg"))
        assert len(files) == len(coords)
        for f in files:
            x, y = map(int, f.stem.split("_"))
            assert x % side == 0 and y % side == 0  # passthrough: one stored tile each
            assert f.read_bytes() == clean.raw_tile(0, x // side, y // side), f.name


@pytest.mark.parametrize("policy", ["fail", "skip"])
def test_passthrough_checks_tiles_the_mask_never_read(pathology_dir: Path, tmp_path: Path,
                                                      policy: str) -> None:
    """The generic pyramid's mask comes from its 4x level, so its level-0 tiles are first read
    by extraction, which copies JPEG tiles without decoding them: those copies are checked."""
    src = pathology_dir / PYRAMID
    _, _, side, ntx, _ = tile_segments(src)
    grid = ("--patch-size", str(side), "--level", "0", "--placement", "grid")
    clean_out = tmp_path / "clean"
    assert run_tile(src, clean_out, "--extract", *grid)[0] == 0
    clean_coords, _ = h5_coords(clean_out / f"{src.stem}.h5")
    # two tiles under kept patches: one cut short, one with a wrong size in its header
    tiles = [int(y // side * ntx + x // side) for x, y in clean_coords[[0, -1]]]
    bad = corrupt_copy(src, tmp_path / "bad.tiff", tiles, ["cut", "size"])
    out = tmp_path / "out"
    code, err = run_tile(bad, out, "--extract", "--on-bad-tile", policy, *grid)
    if policy == "fail":
        lines = error_lines(err)
        assert code != 0 and len(lines) == 1 and "bad tile (" in lines[0], err
        assert not [f for f in files_under(out) if f.startswith("bad")]
        return
    assert code == 0, err
    coords, attrs = h5_coords(out / "bad.h5")
    assert attrs["bad_tiles"] == 2 and attrs["bad_tile_patches"] == 2
    kept = {tuple(c) for c in coords.tolist()}
    assert kept == {tuple(c) for c in clean_coords.tolist()} - {
        tuple(clean_coords[0].tolist()), tuple(clean_coords[-1].tolist())}
    for f in (out / "bad").glob("*.jpg"):
        assert f.read_bytes() == (clean_out / src.stem / f.name).read_bytes(), f.name


def test_api_read_fails_then_skips(svs_tiles, tmp_path: Path) -> None:
    """Through the API: a read over a bad tile raises BadTileError (an ImageError); under skip
    the tile reads white and is recorded, and the other tiles are the clean slide's pixels."""
    src, tiles = svs_tiles
    bad = corrupt_copy(src, tmp_path / "bad.svs", tiles, ["size"])
    _, _, side, ntx, _ = tile_segments(src)
    tx, ty = tiles[0] % ntx, tiles[0] // ntx
    with open_image(bad) as image, open_image(src) as clean:
        with pytest.raises(BadTileError, match="declares 240 x 224 px") as e:
            image.read_region((tx * side, ty * side), 0, (side, side))
        assert isinstance(e.value, ImageError) and e.value.tile == (tx, ty)
        image.bad_tiles.policy = "skip"
        image.cache.clear()
        w, h = image.dimensions
        got, ref = image.read_region((0, 0), 0, (w, h)), clean.read_region((0, 0), 0, (w, h))
        assert sorted(k[1] + k[2] * ntx for k in image.bad_tiles.found) == tiles
        for i in tiles:
            x, y = i % ntx * side, i // ntx * side
            assert (got[y:y + side, x:x + side] == 255).all()
            ref[y:y + side, x:x + side] = 255
        np.testing.assert_array_equal(got, ref)


def test_openslide_reader_fails_in_one_line(svs_tiles, tmp_path: Path) -> None:
    """The CLI reads .svs with the core reader (tested above); forced through OpenSlide (which
    makes libjpeg's warnings errors), a read over a damaged tile fails in one line naming the
    file and the region, and the clean tiles before it read as OpenSlide reads the clean file."""
    pytest.importorskip("openslide")
    src, tiles = svs_tiles
    bad = corrupt_copy(src, tmp_path / "bad.svs", tiles, ["cut"])
    _, _, side, ntx, _ = tile_segments(src)
    tx, ty = tiles[0] % ntx, tiles[0] // ntx
    good = next(i for i in range(len(tiles) + 1) if i not in tiles)
    with open_image(bad, reader="openslide") as image, \
            open_image(src, reader="openslide") as clean:
        gx, gy = good % ntx * side, good // ntx * side
        np.testing.assert_array_equal(image.read_region((gx, gy), 0, (side, side)),
                                      clean.read_region((gx, gy), 0, (side, side)))
        with pytest.raises(ImageError) as e:
            image.read_region((tx * side, ty * side), 0, (side, side))
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and msg.startswith(f"{bad}: OpenSlide cannot read level 0")
    assert f"x={tx * side}, y={ty * side}" in msg and "Corrupt JPEG data" in msg


@pytest.mark.parametrize("layout", [{"tile": (64, 64)}, {"rowsperstrip": 48}])
def test_grey_jpeg_blocks_of_the_native_reader(metal_surface_dir: Path, tmp_path: Path,
                                               layout: dict) -> None:
    """A grey JPEG TIFF (a NEU-DET steel image, tiled or in strips) goes to the native reader:
    its blocks decode strictly to tifffile's pixels, and a block cut short fails in one line."""
    import cv2
    import tifffile

    grey = cv2.imread(str(metal_surface_dir / "crazing_1.jpg"), cv2.IMREAD_GRAYSCALE)
    path = tmp_path / "steel.tif"
    tifffile.imwrite(path, grey, compression="jpeg", photometric="minisblack", **layout)
    h, w = grey.shape
    with open_image(path) as image:
        assert image.reader_name == "tiff-native"
        got = image.read_region_raw((0, 0), 0, (w, h))[..., 0]
    np.testing.assert_array_equal(got, tifffile.imread(path))
    with tifffile.TiffFile(path) as tf:
        o, c = tf.pages[0].dataoffsets[1], tf.pages[0].databytecounts[1]
    data = bytearray(path.read_bytes())
    data[o:o + c] = damage(bytes(data[o:o + c]), "cut")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(data))
    with pytest.raises(ImageError) as e:
        with open_image(bad) as image:
            image.read_region_raw((0, 0), 0, (w, h))
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and msg.startswith(f"{bad}: cannot decode block")
    assert "Corrupt JPEG data: premature end of data segment" in msg


def test_damaged_tags_read_anyway_give_one_warning(pathology_dir: Path, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A tag whose value lies past the end (the generic pyramid's Software) is skipped by
    tifffile, which logs an ERROR line on its own: the reader turns that into one warning naming
    the file (nothing on stderr of its own), and the pixels are the clean file's."""
    import logging

    import tifffile

    src = pathology_dir / PYRAMID
    data = bytearray(src.read_bytes())
    with tifffile.TiffFile(src) as tf:
        entry = tf.pages[0].tags["Software"].offset
    struct.pack_into("<I", data, entry + 8, len(data) + 1000)
    bad = tmp_path / "tags.tiff"
    bad.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        with open_image(bad) as image, open_image(src) as clean:
            w, h = image.dimensions
            np.testing.assert_array_equal(image.read_region((0, 0), 0, (w, h)),
                                          clean.read_region((0, 0), 0, (w, h)))
    ours = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(ours) == 1 and ours[0].startswith(f"{bad}: damaged TIFF tags skipped"), ours


@pytest.mark.parametrize("case", ["retyped", "wider"])
def test_damaged_size_tags_refused_before_allocation(shared_data: Path, tmp_path: Path,
                                                     case: str) -> None:
    """``retyped`` (found by fuzz.py, seed 2): rgbn.tif's ImageWidth retyped from SHORT to IFD8,
    which tifffile reads as 936,750,049,637,957,865 px (the reader then allocated a byte per
    tile: MemoryError); ``wider``: the CMU SVS's ImageWidth 2220 -> 22200, a grid of 1,209
    tiles over the 130 stored. Both are refused at open, in one line naming the file."""
    import tifffile

    src = shared_data / ("satellite/rgbn.tif" if case == "retyped"
                         else "pathology/CMU-1-Small-Region.svs")
    data = bytearray(src.read_bytes())
    with tifffile.TiffFile(src) as tf:
        entry = tf.pages[0].tags["ImageWidth"].offset
    if case == "retyped":
        struct.pack_into("<H", data, entry + 2, 18)
    else:
        struct.pack_into("<H", data, entry + 8, 22200)
    bad = tmp_path / f"{case}{src.suffix}"
    bad.write_bytes(bytes(data))
    with pytest.raises(ImageError) as e:
        with open_image(bad, domain="generic") as image:
            image.read_region((0, 0), 0, (256, 256))
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and msg.startswith(f"{bad}: "), msg
    assert ("936,750,049,637,957,865" if case == "retyped" else "need 1,209") in msg, msg


def test_native_reader_refuses_a_grid_beyond_its_blocks(metal_surface_dir: Path,
                                                       tmp_path: Path) -> None:
    """A grey tiled TIFF (NEU-DET steel, 16 tiles of 64 px, the native reader) whose ImageWidth
    is widened 200 -> 2000 px: 128 tiles needed, refused at open in one line."""
    import cv2
    import tifffile

    grey = cv2.imread(str(metal_surface_dir / "crazing_1.jpg"), cv2.IMREAD_GRAYSCALE)
    path = tmp_path / "steel.tif"
    tifffile.imwrite(path, grey, tile=(64, 64), photometric="minisblack")
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tf:
        tag = tf.pages[0].tags["ImageWidth"]
        at, fmt = tag.offset + 8, "<H" if tag.dtype == 3 else "<I"
    struct.pack_into(fmt, data, at, 2000)
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"stores 16 tiles or strips where .* need 128") as e:
        open_image(path, domain="generic").close()
    assert len(str(e.value).splitlines()) == 1 and str(e.value).startswith(f"{path}: ")


def test_strict_decoder_matches_imagecodecs_and_its_check(pathology_dir: Path) -> None:
    """The strict decoder gives imagecodecs' pixels on every clean tile of the SVS and the
    generic pyramid (RGB and YCbCr JPEG); on 300 random damages of 1-8 bytes, the 1/8-scale
    check refuses exactly the streams the full strict decode refuses."""
    import tifffile

    for name in (SVS, PYRAMID):
        with tifffile.TiffFile(pathology_dir / name) as tf:
            page = tf.pages[0]
            raw = (pathology_dir / name).read_bytes()
            shape = ((page.tilelength, page.tilewidth),)
            rgb = page.photometric == 2 and not page.is_jfif
            for i, (o, c) in enumerate(zip(page.dataoffsets, page.databytecounts)):
                seg = raw[o:o + c]
                ref = page.decode(seg, i, jpegtables=page.jpegtables)[0][0]
                got = decode_jpeg(standalone_jpeg(seg, page.jpegtables, rgb), shape, 3)
                np.testing.assert_array_equal(got, ref)
    rng = random.Random(3)
    with tifffile.TiffFile(pathology_dir / SVS) as tf:
        page = tf.pages[0]
        raw = (pathology_dir / SVS).read_bytes()
        refused = 0
        for _ in range(300):
            i = rng.randrange(len(page.dataoffsets))
            s = bytearray(raw[page.dataoffsets[i]:page.dataoffsets[i] + page.databytecounts[i]])
            k = rng.randrange(len(s))
            for j in range(k, min(len(s), k + rng.randrange(1, 9))):
                s[j] = rng.randrange(256)
            jpeg = standalone_jpeg(bytes(s), page.jpegtables, True)
            checked = check_jpeg(jpeg, ((240, 240),))
            try:
                decode_jpeg(jpeg, ((240, 240),), 3)
                full = None
            except BadJpeg as e:
                full = str(e)
            assert (checked is None) == (full is None), (checked, full)
            refused += full is not None
        assert refused > 150  # most random damage is caught (the rest: a valid stream)


def test_covered_tiles_are_the_tiles_under_the_patches() -> None:
    coords = np.array([[0, 0], [250, 10], [1000, 990]])
    keys = covered_tiles(coords, 256, 1.0, (240, 240), (5, 5))
    want = {(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (2, 1), (4, 4)}  # 256 px over 240 px tiles
    assert {tuple(k) for k in keys.tolist()} == want
    assert patches_over(np.array([[240, 240, 480, 480]]), coords, 256).tolist() == [
        True, True, False]


@pytest.mark.parametrize("name", [SVS, PYRAMID, OME])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_cut_files_fail_in_one_line(pathology_dir: Path, tmp_path: Path, name: str,
                                    fraction: float) -> None:
    data = (pathology_dir / name).read_bytes()
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes(data[: int(len(data) * fraction)])
    out = tmp_path / "out"
    code, err = run_tile(cut, out)
    lines = error_lines(err)
    assert code != 0 and len(lines) == 1 and len(err.strip().splitlines()) <= 2, err
    assert str(cut) in lines[0] and "truncated" in lines[0], lines
    with pytest.raises(ImageError, match="truncated"):
        with open_image(cut) as image:
            image.read_region((0, 0), 0, image.dimensions)


def test_tile_offsets_past_the_end_fail_in_one_line(pathology_dir: Path, tmp_path: Path) -> None:
    import tifffile

    src = pathology_dir / SVS
    data = bytearray(src.read_bytes())
    with tifffile.TiffFile(src) as tf:
        tag = tf.pages[0].tags["TileOffsets"]
        at, fmt = tag.valueoffset, tf.byteorder + "I"
    for i in (5, 50, 100):
        struct.pack_into(fmt, data, at + 4 * i, len(data) + 1000 * i)
    bad = tmp_path / "past-end.svs"
    bad.write_bytes(bytes(data))
    code, err = run_tile(bad, tmp_path / "out")
    lines = error_lines(err)
    assert code != 0 and len(lines) == 1 and f"{bad}: truncated file" in lines[0], err
    assert "image data runs to byte" in lines[0]
