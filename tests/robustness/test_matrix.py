"""The bad-input matrix (issue #15 item 1): every hostile or broken input a cohort meets, run
through ``gigapatch tile`` in a fresh process, across the three domains.

Each case builds its input in a private folder and names the expected exit status and, for a
failure, a fragment of the one ``error:`` line (which must also name the file). For every case:
no traceback, no temporary file or staging folder left under ``--out``, and a failed image
leaves none of its outputs (h5, tables, config) behind. Valid but unusual inputs (a 1 x 1
image, 16-bit, Unicode names...) must exit 0. The corrupt-JPEG-tile cases are in
test_fuzz.py's part of the issue.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers_robustness import (
    TRACEBACK,
    error_lines,
    files_under,
    gigapatch,
    image_outputs,
    leftovers,
    truncate_copy,
    write_tiff,
)

DATA = Path(os.environ.get("GIGAPATCH_DATA", "/work/shared/data"))
CMU = DATA / "pathology" / "CMU-1-Small-Region.svs"
RGB_BYTE = DATA / "satellite" / "RGB.byte.tif"
NEU = DATA / "metal_surface" / "NEU-DET" / "crazing_1.jpg"


@dataclass
class Case:
    """One input: ``build(folder) -> argv`` (after ``tile``; ``--out`` is added), the domain
    it runs as, the expected exit status and error fragment (None: no error line), and the
    file the error line must name (default: the first argument)."""

    id: str
    domain: str
    build: Callable[[Path], list[str]]
    rc: int
    fragment: str | None = None
    names: str | None = None
    #: image ids whose outputs must exist after the run (valid cases)
    produces: tuple[str, ...] = ()
    limit_fsize: int | None = None
    #: the subcommand (``info`` takes no --out)
    cmd: str = "tile"


# ---------------------------------------------------------------------------- input makers
def tissue(side: int = 512, seed: int = 0, dtype: type = np.uint8) -> np.ndarray:
    """(side, side, 3) pink blobs on white glass."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    blob = (xx - side / 2) ** 2 + (yy - side / 2) ** 2 < (side / 3) ** 2
    rgb = np.full((side, side, 3), 242, np.uint8)
    rgb[blob] = (np.array([200, 110, 170]) + rng.integers(-20, 20, (int(blob.sum()), 3))
                 ).clip(0, 255)
    return rgb.astype(dtype)


def slide(folder: Path, name: str = "slide.tiff", side: int = 768) -> Path:
    """A tiled pyramidal JPEG TIFF at 0.5 mpp (a small synthetic whole-slide image)."""
    from gigapatch import write_pyramidal_tiff

    path = folder / name
    write_pyramidal_tiff(path, tissue(side), downsamples=(4,), mpp=0.5)
    return path


def strip(folder: Path, name: str = "strip.tiff", dtype: type = np.uint16) -> Path:
    """A metal line-scan strip: grey texture with a dark scratch."""
    rng = np.random.default_rng(1)
    img = rng.normal(0.5, 0.05, (256, 1024)).clip(0, 1)
    img[120:130, 200:800] = 0.1
    scale = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    return write_tiff(folder / name, (img * scale).astype(dtype))


def geotiff(folder: Path, name: str, data: np.ndarray, crs: str | None = "EPSG:32618",
            nodata: float | None = None) -> Path:
    """``data`` (bands, h, w) as a GeoTIFF with 30 m pixels (no CRS when ``crs`` is None)."""
    import rasterio
    from rasterio.transform import from_origin

    path = folder / name
    kw = {"crs": crs} if crs else {}
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype,
                       transform=from_origin(500000, 4000000, 30, 30), nodata=nodata, **kw) as f:
        f.write(data)
    return path


def scene(h: int = 512, w: int = 512, dtype: type = np.uint8) -> np.ndarray:
    """(3, h, w) a land-like scene."""
    rng = np.random.default_rng(2)
    return (rng.random((3, h, w)) * 200 + 20).astype(dtype)


def copy(src: Path, folder: Path, name: str) -> Path:
    if not src.exists():
        pytest.skip(f"{src} (the shared test data) is missing")
    dst = folder / name
    shutil.copyfile(src, dst)
    return dst


def png(folder: Path, name: str, data: np.ndarray) -> Path:
    import cv2

    path = folder / name
    assert cv2.imwrite(str(path.with_suffix(".png")), data)
    if path.suffix != ".png":
        path.with_suffix(".png").rename(path)
    return path


def huge_header(folder: Path) -> Path:
    """A 210-byte TIFF whose one strip declares 10^7 x 10^7 px."""
    w = h = 10**7
    tags = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 200),
            (277, 3, 1), (278, 4, h), (279, 4, 10)]
    b = b"II*\x00" + struct.pack("<IH", 8, len(tags))
    b += b"".join(struct.pack("<HHII", c, t, 1, v) for c, t, v in tags) + struct.pack("<I", 0)
    path = folder / "huge.tiff"
    path.write_bytes(b + b"\0" * (210 - len(b)))
    return path


def offsets_past_end(folder: Path) -> Path:
    """The synthetic slide with its level-0 tile offsets moved past the end of the file."""
    import tifffile

    path = slide(folder, "offsets.tiff")
    with tifffile.TiffFile(path) as tf:
        tag = tf.pages[0].tags["TileOffsets"]
        at, n, size = tag.valueoffset, len(tag.value), path.stat().st_size
    data = bytearray(path.read_bytes())
    data[at:at + 4 * n] = struct.pack(f"<{n}I", *[size + 1000 * (i + 1) for i in range(n)])
    path.write_bytes(bytes(data))
    return path


def manifest(folder: Path, text: str) -> Path:
    path = folder / "manifest.csv"
    path.write_text(text)
    return path


def laughs(folder: Path) -> Path:
    """A 'billion laughs' YAML config: 9 levels of 9 aliases."""
    lines, prev = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'], "a"
    for i in range(1, 10):
        name = chr(97 + i)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
        prev = name
    path = folder / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def fifo(folder: Path) -> Path:
    path = folder / "pipe.svs"
    os.mkfifo(path)
    return path


def loop(folder: Path) -> Path:
    (folder / "loop.svs").symlink_to(folder / "loop2.svs")
    (folder / "loop2.svs").symlink_to(folder / "loop.svs")
    return folder / "loop.svs"


def text(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)  # type: ignore[operator]
    return path


# ---------------------------------------------------------------------------- the cases
P, M, S = "pathology", "metal_surface", "satellite"


def _cases() -> list[Case]:
    c: list[Case] = []
    add = c.append
    # --- paths that are not image files
    add(Case("missing-path", P, lambda d: [str(d / "nope.svs")], 2, "no such file"))
    add(Case("dir-without-images", M, lambda d: [str((d / "empty").mkdir() or d / "empty")], 2,
             "holds no images"))
    add(Case("zero-byte", P, lambda d: [str(text(d, "zero.svs", b""))], 2, "empty file"))
    add(Case("text-as-svs", P, lambda d: [str(text(d, "notes.svs", "not a slide\n" * 50))], 2,
             "unsupported format"))
    add(Case("symlink-loop", P, lambda d: [str(loop(d))], 2, "symbolic link"))
    add(Case("fifo", P, lambda d: [str(fifo(d))], 2, "named pipe"))
    # --- damaged files
    for frac in (0.1, 0.5, 0.9):
        add(Case(f"svs-truncated-{int(frac * 100)}", P,
                 lambda d, f=frac: [str(truncate_copy(CMU, d / "cut.svs", f))], 2, "truncated"))
    add(Case("geotiff-truncated-50", S,
             lambda d: [str(truncate_copy(RGB_BYTE, d / "cut.tif", 0.5))], 2, "truncated"))
    add(Case("jpeg-truncated-50", M,
             lambda d: [str(truncate_copy(NEU, d / "cut.jpg", 0.5))], 2, "cut.jpg"))
    add(Case("tile-offsets-past-end", P, lambda d: [str(offsets_past_end(d))], 2,
             "image data runs to byte"))
    add(Case("header-10^7-px", P, lambda d: [str(huge_header(d))], 2, "declares 10,000,000"))
    add(Case("png-renamed-tiff", M, lambda d: [str(png(d, "scan.tiff", tissue(256)))], 0,
             produces=("scan",)))
    # --- unusual but valid pixels
    add(Case("1x1-image", M, lambda d: [str(png(d, "dot.png", np.full((1, 1), 90, np.uint8)))],
             0, produces=("dot",)))
    add(Case("smaller-than-patch", S, lambda d: [str(geotiff(d, "tiny.tif", scene(40, 40)))], 0,
             produces=("tiny",)))
    add(Case("16-bit-strip", M, lambda d: [str(strip(d))], 0, produces=("strip",)))
    add(Case("float-nan-inf", S, lambda d: [str(geotiff(
        d, "float.tif", np.where(np.eye(256, dtype=bool)[None], np.nan,
                                 scene(256, 256, np.float32)).astype(np.float32)))], 0,
        produces=("float",)))
    add(Case("float-inf-strip", M, lambda d: [str(write_tiff(
        d / "inf.tiff", np.where(np.eye(256, 512, dtype=bool), np.inf,
                                 np.random.default_rng(0).random((256, 512))).astype(np.float32)))],
        2, "32-bit samples"))
    add(Case("grey-slide", P, lambda d: [str(write_tiff(d / "grey.tiff", tissue(512)[..., 1],
                                                        tile=(256, 256)))], 0,
             produces=("grey",)))
    add(Case("rgba-png", P, lambda d: [str(png(d, "rgba.png", np.dstack(
        [tissue(512), np.full((512, 512), 255, np.uint8)])))], 0, produces=("rgba",)))
    add(Case("cmyk-tiff", P, lambda d: [str(write_tiff(
        d / "cmyk.tiff", np.dstack([255 - tissue(512), np.zeros((512, 512), np.uint8)]),
        photometric="separated"))], 2, "(SEPARATED) is not supported"))
    add(Case("geotiff-without-crs", S, lambda d: [str(geotiff(d, "nocrs.tif", scene(), None))], 0,
             produces=("nocrs",)))
    add(Case("all-nodata", S, lambda d: [str(geotiff(d, "void.tif", np.zeros((3, 256, 256),
                                                                            np.uint8), nodata=0))],
             0, produces=("void",)))
    add(Case("unicode-spaces", P, lambda d: [str(slide(d, "Präparat 12 – ü.tiff"))], 0,
             produces=("Präparat 12 – ü",)))
    # --- bad settings
    add(Case("unknown-config-key", P, lambda d: [str(slide(d)), "--config", str(text(
        d, "cfg.yaml", "patch:\n  sise: 256\n"))], 2, "sise", names="cfg.yaml"))
    add(Case("binary-config", S, lambda d: [str(geotiff(d, "s.tif", scene())), "--config",
                                            str(text(d, "cfg.yaml", bytes(range(256)) * 4))],
             2, "not a text", names="cfg.yaml"))
    add(Case("yaml-object-tag", M, lambda d: [str(strip(d)), "--config", str(text(
        d, "cfg.yaml", "patch: !!python/object/apply:os.system ['echo hi']\n"))], 2,
        "cfg.yaml", names="cfg.yaml"))
    add(Case("billion-laughs", P, lambda d: [str(slide(d)), "--config", str(laughs(d))], 2,
             "aliases expand", names="laughs.yaml"))
    add(Case("negative-size", P, lambda d: [str(slide(d)), "--patch-size", "-5"], 2,
             "greater than or equal to 16", names="patch.size"))
    add(Case("patch-size-1", P, lambda d: [str(slide(d)), "--patch-size", "1"], 2,
             "greater than or equal to 16", names="patch.size"))
    add(Case("stride-1-grid-cap", S, lambda d: [str(geotiff(d, "s.tif", scene())), "--stride",
                                                "1", "--set", "patch.max_candidates=10000"], 2,
             "more than patch.max_candidates = 10,000"))
    add(Case("mpp-below-a-pixel", P, lambda d: [str(slide(d)), "--mpp", "1e-6"], 2,
             "covers 0 x 0 level-0 px"))
    add(Case("mpp-huge-read", P, lambda d: [str(slide(d)), "--mpp", "1e6"], 2,
             "would be read as"))
    add(Case("stride-0", S, lambda d: [str(geotiff(d, "s.tif", scene())), "--stride", "0"], 2,
             "stride", names="stride"))
    add(Case("min-foreground-over-1", P, lambda d: [str(slide(d)), "--min-foreground", "1.5"], 2,
             "min_foreground", names="min_foreground"))
    add(Case("slide-mpp-inf", P, lambda d: [str(slide(d)), "--slide-mpp", "inf"], 2,
             "finite", names="slide_mpp"))
    add(Case("gsd-negative", S, lambda d: [str(geotiff(d, "s.tif", scene())), "--gsd", "-30"], 2,
             "mpp", names="mpp"))
    add(Case("out-is-a-file", M, lambda d: [str(strip(d)), "--out", str(text(d, "o.txt", "x"))],
             2, "is a file", names="o.txt"))
    add(Case("out-under-a-file", S, lambda d: [str(geotiff(d, "s.tif", scene())), "--out",
                                               str(text(d, "o.txt", "x") / "sub")], 2,
             "cannot create", names="o.txt"))
    add(Case("out-unwritable", P, lambda d: [str(slide(d)), "--out", "/proc/gigapatch-out"], 2,
             "cannot create", names="/proc/gigapatch-out"))
    # --- names that collide or escape
    add(Case("two-images-one-stem", P, lambda d: [str(slide(d, "case1.svs")),
                                                  str(slide(d, "case1.tiff"))], 0,
             produces=("case1_svs", "case1_tiff")))
    add(Case("stem-dot", P, lambda d: [str(slide(d, "..svs")), "--extract"], 0, produces=("_",)))
    add(Case("stem-dotdot", P, lambda d: [str(slide(d, "...svs")), "--extract"], 0,
             produces=("__",)))
    add(Case("stem-summary", S, lambda d: [str(geotiff(d, "summary.tif", scene()))], 0,
             produces=("summary_image",)))
    # --- manifests
    add(Case("manifest-missing-columns", P, lambda d: ["--manifest", str(manifest(
        d, f"image,label\n{slide(d)},1\n"))], 2, "path", names="manifest.csv"))
    add(Case("manifest-missing-files", M, lambda d: ["--manifest", str(manifest(
        d, f"path,label\n{strip(d)},a\ngone1.tiff,b\ngone2.tiff,c\n"))], 2, "row 3",
        names="manifest.csv"))
    add(Case("manifest-escapes-folder", S, lambda d: ["--manifest", str(manifest(
        (d / "m").mkdir() or d / "m", f"path\n../{geotiff(d, 's.tif', scene()).name}\n"))], 2,
        "leaves the manifest", names="manifest.csv"))
    add(Case("manifest-fifo", M, lambda d: ["--manifest", str(os.mkfifo(d / "pipe.csv") or
                                                             d / "pipe.csv")], 2,
             "not a regular file", names="pipe.csv"))
    add(Case("binary-manifest", P, lambda d: ["--manifest", str(text(
        d, "manifest.csv", b"path\n\xff\xfe\x00bad" * 20))], 2, "manifest.csv",
        names="manifest.csv"))
    # --- untrusted text
    add(Case("annotation-nan", P, lambda d: [str(slide(d)), "--annotations", str(text(
        d, "nan.json", '{"type": "Polygon", "coordinates": [[[10, 10], [NaN, 10], [90, 90], '
        '[10, 10]]]}'))], 2, "a coordinate is NaN or infinite", names="nan.json"))
    add(Case("annotation-1e300", S, lambda d: [str(geotiff(d, "s.tif", scene())),
                                               "--annotations", str(text(
        d, "far.json", '{"type": "Polygon", "coordinates": [[[1e300, 1e300], [2e300, 1e300], '
        '[2e300, 2e300], [1e300, 1e300]]]}'))], 2, "coordinates reach 2e+300", names="far.json"))
    add(Case("annotation-off-image", M, lambda d: [str(strip(d)), "--annotations", str(text(
        d, "off.json", '{"type": "Polygon", "coordinates": [[[5e6, 5e6], [6e6, 5e6], '
        '[6e6, 6e6], [5e6, 5e6]]]}'))], 2, "no include polygon lies on the image",
        names="off.json"))
    add(Case("keep-call", P, lambda d: [str(slide(d)), "--keep",
                                        "__import__('os').system('touch pwned')"], 2,
             "Call is not allowed", names="score.keep"))
    add(Case("keep-power", M, lambda d: [str(strip(d)), "--keep", "foreground ** 9999999"], 2,
             "Pow is not allowed", names="score.keep"))
    add(Case("yaml-deep", S, lambda d: [str(geotiff(d, "s.tif", scene())), "--config", str(text(
        d, "deep.yaml", "[" * 100_000 + "]" * 100_000))], 2, "nested more than 100",
        names="deep.yaml"))
    # --- info on damaged files: one line, no tifffile chatter
    for frac in (0.1, 0.9):
        add(Case(f"info-svs-truncated-{int(frac * 100)}", P,
                 lambda d, f=frac: [str(truncate_copy(CMU, d / "cut.svs", f))], 2, "truncated",
                 cmd="info"))
    add(Case("info-geotiff-truncated", S,
             lambda d: [str(truncate_copy(RGB_BYTE, d / "cut.tif", 0.5))], 2, "truncated",
             cmd="info"))
    add(Case("info-header-10^7-px", M, lambda d: [str(huge_header(d))], 2, "declares",
             cmd="info"))
    # --- resources
    add(Case("disk-full", P, lambda d: [str(slide(d, "full.tiff", side=2048)), "--extract",
                                        "--workers", "1"], 2, "cannot write it", names="full_",
             limit_fsize=40_000))
    return c


CASES = _cases()
#: a raw Python exception class in a message (the user's problem said in Python's words)
RAW = re.compile(r"\b(Index|Value|Key|ZeroDivision|UnicodeDecode|Permission|FileExists|Memory|"
                 r"Type|Attribute|OS|Runtime|Assertion)Error\b")


def _limit(nbytes: int) -> Callable[[], None]:
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return set_limit


def test_matrix_is_wide() -> None:
    """>= 40 cases, every domain in it."""
    assert len(CASES) >= 40
    assert {c.domain for c in CASES} == {P, M, S}
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    argv = case.build(inputs)
    out = tmp_path / "out"
    if case.cmd == "tile" and "--out" not in argv:
        argv += ["--out", str(out)]
    flags = ["--domain", case.domain, "--quiet"] if case.cmd == "tile" else []
    res = gigapatch(case.cmd, *argv, *flags, timeout=90,
                    preexec_fn=_limit(case.limit_fsize) if case.limit_fsize else None)
    report = f"exit {res.returncode}\nstdout: {res.stdout[-800:]}\nstderr: {res.stderr[-1500:]}"
    assert not TRACEBACK.search(res.stderr), report
    assert res.returncode == case.rc, report
    errors = error_lines(res.stderr)
    if case.fragment is None:
        assert not errors, report
    else:
        assert len(errors) == 1, report
        assert [ln for ln in res.stderr.splitlines() if ln.strip()] == errors, report  # no chatter
        line = errors[0]
        assert case.fragment in line, report
        named = case.names or Path(next(a for a in argv if not a.startswith("-"))).name
        assert named in line, report
        assert not RAW.search(line), report
    assert not leftovers(out), leftovers(out)
    assert not leftovers(tmp_path / "in"), leftovers(tmp_path / "in")
    for image_id in case.produces:
        made = image_outputs(out, image_id)
        assert f"{image_id}.h5" in made, (made, report)
    if case.produces:  # everything inside --out, nothing beside it
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"], report
    if case.rc and out.exists() and case.limit_fsize is None:
        stray = [f for f in files_under(out) if f.endswith((".h5", ".yaml")) or "/" in f]
        assert not stray, stray
    if case.limit_fsize:  # the failed image: nothing of it half-written
        stem = Path(argv[0]).stem
        assert not image_outputs(out, stem), files_under(out)


def test_rerun_with_another_patch_size_leaves_no_stale_patch(tmp_path: Path) -> None:
    """A rerun with another --patch-size replaces the image's patch folder whole: its files are
    the h5's coordinates, one size only (the old size's 21 extra files stayed before)."""
    import h5py

    image = slide(tmp_path, "s.tiff", side=1024)
    out = tmp_path / "out"
    names = {}
    for size in (128, 256):
        res = gigapatch("tile", image, "--out", out, "--patch-size", str(size), "--extract",
                        "--domain", P, "--quiet")
        assert res.returncode == 0, res.stderr
        with h5py.File(out / "s.h5") as f:
            coords = f["coords"][()]
        names[size] = {f"{x}_{y}.jpg" for x, y in coords}
        assert {p.name for p in (out / "s").iterdir()} == names[size]
    assert names[128] != names[256] and len(names[128]) > len(names[256])
    assert not leftovers(out)


def test_api_refuses_a_huge_header_before_allocating(tmp_path: Path) -> None:
    """Through the API too (it was a numpy MemoryError): an ImageError naming the file, in a
    process capped at 1 GB of address space."""
    import subprocess
    import sys

    path = huge_header(tmp_path)
    code = ("import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from gigapatch import ImageError\nfrom gigapatch.io.readers import open_image\n"
            f"try:\n    open_image({str(path)!r}).read_region((0, 0), 0, (64, 64))\n"
            "except ImageError as e:\n    print(e)\n    sys.exit(3)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 3, res.stderr[-2000:]
    assert res.stdout.startswith(f"{path}: its header declares 10,000,000 x 10,000,000 px")
