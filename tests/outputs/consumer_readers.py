"""How CLAM and TRIDENT read the patches of a coords h5, re-implemented from their documented
attribute use (no network, none of their code installed), for tests/outputs/test_interop.py.

CLAM (``dataset_modules/dataset_h5.py``, ``Whole_Slide_Bag_FP``): reads ``patch_level`` and
``patch_size`` from ``coords.attrs``, opens the slide with OpenSlide, reads
``read_region(coord, patch_level, (patch_size, patch_size))``, converts it to RGB and, when its
user asks for a ``target_patch_size``, resizes with PIL's default filter.

TRIDENT (``WSI.extract_patch_features``, ``WSIPatcher``): reads ``patch_size``,
``level0_magnification`` and ``target_magnification``; with all three it patches from
magnifications (``downsample = level0_magnification / target_magnification``), otherwise it
falls back to the CLAM reading (``from_legacy_coords``: ``patch_size``, ``patch_level``,
``custom_downsample`` (default 1), and the slide's mpp, which a slide without one needs from its
user). In both cases it reads ``round(patch_size_src / int(level_downsample))`` px at the best
level for the downsample (tolerance 0.1) and resizes them to the target patch size with PIL
(``pil=True`` in feature extraction). Files OpenSlide does not open are read whole with PIL
(one level).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from PIL import Image as PILImage


def coords_and_attrs(h5: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """``coords`` and its attributes, as both tools read them (``dict(f["coords"].attrs)``)."""
    with h5py.File(h5, "r") as f:
        return f["coords"][()], dict(f["coords"].attrs)


class Slide:
    """The slide as TRIDENT sees it: OpenSlide when it opens the file, else PIL (one level).

    ``mpp`` is the user's value (TRIDENT's ``WSI(mpp=...)``), needed when the file has none.
    """

    def __init__(self, path: Path, mpp: float | None = None) -> None:
        import openslide

        self.osr: Any = None
        self.pil: PILImage.Image | None = None
        try:
            self.osr = openslide.OpenSlide(str(path))
            self.level_downsamples = list(self.osr.level_downsamples)
            props = self.osr.properties
            file_mpp = props.get(openslide.PROPERTY_NAME_MPP_X)
            self.mpp = mpp if mpp is not None else (round(float(file_mpp), 4) if file_mpp else None)
        except openslide.OpenSlideUnsupportedFormatError:
            self.pil = PILImage.open(path).convert("RGB")
            self.level_downsamples = [1.0]
            self.mpp = mpp
        self.mag = None if self.mpp is None else _trident_magnification(self.mpp)

    def read_region(self, xy: tuple[int, int], level: int, size: int) -> PILImage.Image:
        if self.osr is not None:
            return self.osr.read_region((int(xy[0]), int(xy[1])), int(level), (size, size)).convert("RGB")
        assert self.pil is not None and level == 0
        x, y = int(xy[0]), int(xy[1])
        return self.pil.crop((x, y, x + size, y + size))


def _trident_magnification(mpp: float) -> int:
    """TRIDENT's ``_fetch_magnification`` buckets."""
    for bound, mag in ((0.16, 80), (0.2, 60), (0.3, 40), (0.6, 20), (1.2, 10), (2.4, 5)):
        if mpp < bound:
            return mag
    raise ValueError(f"mpp {mpp} too coarse for TRIDENT")


def clam_patches(h5: Path, slide: Path, target_patch_size: int) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """CLAM's ``Whole_Slide_Bag_FP`` items: ((x, y), (t, t, 3) uint8) for every coord."""
    import openslide

    coords, attrs = coords_and_attrs(h5)
    level, size = int(attrs["patch_level"]), int(attrs["patch_size"])
    wsi = openslide.OpenSlide(str(slide))
    try:
        for x, y in coords.tolist():
            img = wsi.read_region((x, y), level, (size, size)).convert("RGB")
            yield (x, y), np.asarray(img.resize((target_patch_size, target_patch_size)))
    finally:
        wsi.close()


def _best_level(downsamples: list[float], downsample: float, tolerance: float) -> int:
    """TRIDENT's ``get_best_level_and_custom_downsample`` (level only)."""
    for level, ds in enumerate(downsamples):
        if abs(ds - downsample) <= tolerance:
            return level
    if downsample >= downsamples[0]:
        best = None
        for level, ds in enumerate(downsamples):
            if ds <= downsample:
                best = level
            else:
                break
        if best is not None:
            return best
    else:
        for level, ds in enumerate(downsamples):
            if ds >= downsample:
                return level
    raise ValueError(f"no level for downsample {downsample}")


def trident_patches(h5: Path, slide: Slide) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """TRIDENT's feature-extraction patches: ((x, y), (p, p, 3) uint8), p its target size."""
    coords, attrs = coords_and_attrs(h5)
    patch_size = attrs.get("patch_size")
    mag0 = attrs.get("level0_magnification")
    target_mag = attrs.get("target_magnification")
    if None in (patch_size, mag0, target_mag):  # TRIDENT's fallback: the CLAM attributes
        level = int(attrs["patch_level"])
        ratio = slide.level_downsamples[level] * attrs.get("custom_downsample", 1)
        if slide.mpp is None:
            raise ValueError("TRIDENT needs the slide's mpp (WSI(mpp=...)) for this file")
        target = round(int(patch_size) / ratio)
        downsample = ratio  # dst_pixel_size / src_pixel_size
    else:
        target = int(patch_size)
        downsample = (10 / float(target_mag)) / (10 / float(mag0))
    size_src = round(target * downsample)
    level = _best_level(slide.level_downsamples, downsample, tolerance=0.1)
    size_level = round(size_src / int(slide.level_downsamples[level]))
    for x, y in coords.tolist():
        tile = slide.read_region((x, y), level, size_level)
        yield (x, y), np.asarray(tile.resize((target, target)))
