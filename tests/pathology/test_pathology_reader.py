"""The pathology plugin's reader choice: the header test that hands a file to the core's TIFF
reader agrees with what OpenSlide itself would decide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _openslide_declines(path: Path) -> bool:
    """The plugin's decision through OpenSlide itself: no vendor, or a vendor the core reads
    (aperio, generic-tiff) in a file the core decodes."""
    import openslide

    from gigapatch import TiffImage
    from gigapatch_pathology.reader import CORE_VENDORS

    try:
        vendor = openslide.OpenSlide.detect_format(str(path))
    except (openslide.OpenSlideError, OSError, ValueError):
        return True
    return vendor is None or (vendor in CORE_VENDORS and TiffImage.supports(path))


def test_core_reads_agrees_with_openslide(pathology_dir: Path, tmp_path: Path) -> None:
    """Every file the header test hands to the core is one OpenSlide would have handed to the
    core too; files it is unsure of go to OpenSlide as before."""
    pytest.importorskip("openslide")
    import cv2
    import tifffile

    from gigapatch_pathology.reader import core_reads

    rgb = np.random.default_rng(1).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "tiled.tif", rgb, tile=(128, 128), photometric="rgb")
    tifffile.imwrite(tmp_path / "strips.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "u16.tif", rgb.astype(np.uint16) * 257, tile=(128, 128),
                     photometric="rgb")  # tiled, but 16-bit: OpenSlide's, not the core's
    tifffile.imwrite(tmp_path / "xmp.tif", rgb, tile=(128, 128), photometric="rgb",
                     extratags=[(700, 1, None, b"<x:xmpmeta><iScan/></x:xmpmeta>", True)])
    for ext in ("png", "jpg", "bmp"):
        cv2.imwrite(str(tmp_path / f"plain.{ext}"), rgb)
    (tmp_path / "text.txt").write_text("not an image")
    files = sorted(pathology_dir.glob("*.svs")) + sorted(pathology_dir.glob("*.tif*"))
    files += sorted(p for p in tmp_path.iterdir() if p.is_file())
    decided = {}
    for f in files:
        decided[f.name] = core_reads(f)
        if decided[f.name]:
            assert _openslide_declines(f), f.name
    # the fast path is taken where it matters, and the unsure cases still ask OpenSlide
    assert decided["CMU-1-Small-Region.svs"] and decided["tiled.tif"] and decided["plain.png"]
    assert not decided["u16.tif"] and not decided["xmp.tif"] and not decided["text.txt"]
