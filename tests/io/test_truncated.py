"""A file cut short (an interrupted copy or download) says so, whatever reads it; a folder of
DICOM files counts as one image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gigapatch import ImageError, open_image
from gigapatch.io.readers import find_images
from gigapatch.io.tiff import TiffImage, truncation

PATHOLOGY = ["CMU-1-Small-Region.svs", "tcga-cr-7395-01a-01-ts1.svs",
             "CMU-1-Small-Region.generic-pyramid.tiff", "CMU-1-Small-Region.pyramid.ome.tiff",
             "kidney-48-5.tif"]
SATELLITE = ["RGB.byte.tif", "RGB.byte.cog.tif", "rgbn.tif",
             "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"]


def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("name", PATHOLOGY + SATELLITE)
def test_a_cut_file_says_it_is_truncated(shared_data: Path, tmp_path: Path, name: str,
                                         fraction: float) -> None:
    """Every real TIFF cut at 10/50/90 %: open_image (whichever reader the file goes to:
    the core's, rasterio for the GeoTIFFs) raises one line naming the file and "truncated"."""
    src = next(shared_data.glob(f"*/{name}"))
    path = _cut(src, tmp_path / f"cut_{name}", fraction)
    with pytest.raises(ImageError) as e:
        with open_image(path) as im:  # reaching the pixels must fail as well
            im.read_region((0, 0), 0, im.dimensions)
    assert e.value.path == str(path)
    assert e.value.problem.startswith(f"truncated file ({path.stat().st_size:,} bytes)")
    assert "\n" not in str(e.value)
    assert truncation(path) == e.value.problem
    assert truncation(src) is None  # the whole file is fine


def test_tiff_reader_says_truncated_and_whole_files_open(pathology_dir: Path, tmp_path: Path) -> None:
    for name in PATHOLOGY[:4]:
        with pytest.raises(ImageError, match="truncated file"):
            TiffImage(_cut(pathology_dir / name, tmp_path / name, 0.5))
        with TiffImage(pathology_dir / name) as im:
            assert im.dimensions[0] > 0


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_cut_png_and_jpeg_say_truncated(tmp_path: Path, suffix: str) -> None:
    rgb = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8),
                           (0, 0), 2)
    whole = tmp_path / f"whole{suffix}"
    cv2.imwrite(str(whole), rgb)
    with open_image(whole) as im:
        assert im.dimensions == (160, 120)
    for fraction in (0.1, 0.5, 0.9):
        path = _cut(whole, tmp_path / f"cut{suffix}", fraction)
        with pytest.raises(ImageError, match=r"truncated file .* before its end marker"):
            open_image(path)


def test_a_folder_of_dicom_files_is_one_image(tmp_path: Path) -> None:
    """DICOM WSI are folders of .dcm files (one series; a reader opens it from any file): the
    folder scan yields one file per series folder, beside the ordinary images."""
    root = tmp_path / "cohort"
    (root / "slide_b").mkdir(parents=True)
    (root / "slide_a").mkdir()
    (root / "notes").mkdir()
    for folder, names in {"slide_a": ["2.dcm", "1.dcm", "3.DCM"], "slide_b": ["x.dcm"]}.items():
        for n in names:
            (root / folder / n).write_bytes(b"\0" * 128 + b"DICM")
    (root / "notes" / "readme.txt").write_text("no images here")
    (root / "a.svs").write_bytes(b"x")
    found = find_images([root])
    assert found == [root / "a.svs", root / "slide_a" / "1.dcm", root / "slide_b" / "x.dcm"]
    assert find_images([root / "slide_a"]) == [root / "slide_a" / "1.dcm"]  # the series folder
    with pytest.raises(ImageError, match="folders of .dcm files"):
        find_images([root / "notes"])
