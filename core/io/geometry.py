"""Coordinate maths: levels, physical resolution and patch geometry, all anchored on level 0."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gigapatch.errors import ResolutionError

if TYPE_CHECKING:
    from gigapatch.config import PatchConfig
    from gigapatch.io.image import Image

#: objective power of an image at 1 um/px is taken as 10x (0.25 um/px = 40x), the usual convention
MPP_AT_10X = 1.0


def level0_to_level(xy: np.ndarray, downsample: float) -> np.ndarray:
    """Level-0 pixel coordinates (..., 2) to coordinates at a level of ``downsample`` (floor)."""
    return np.floor(np.asarray(xy, dtype=np.float64) / downsample).astype(np.int64)


def level_to_level0(xy: np.ndarray, downsample: float) -> np.ndarray:
    """Coordinates at a level of ``downsample`` (..., 2) to level-0 pixels (rounded)."""
    return np.round(np.asarray(xy, dtype=np.float64) * downsample).astype(np.int64)


def magnification_to_mpp(mag: float) -> float:
    return MPP_AT_10X * 10.0 / mag


def mpp_to_magnification(mpp: float) -> float:
    return MPP_AT_10X * 10.0 / mpp


@dataclass(frozen=True)
class PatchGeometry:
    """How one patch is read and what it covers.

    A patch of ``size`` x ``size`` output pixels is read as ``read_size`` x ``read_size`` pixels
    at pyramid level ``level`` and resized by ``resize_factor`` = read_size / size. It covers
    ``size_level0`` x ``size_level0`` level-0 pixels.
    """

    size: int
    stride: int
    level: int
    downsample: float
    read_size: int
    size_level0: int
    stride_level0: int
    resize_factor: float
    slide_mpp: float | None
    target_mpp: float | None
    effective_mpp: float | None
    target_magnification: float | None
    level0_magnification: float | None

    def as_attrs(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()}


def resolve_geometry(image: Image, patch: PatchConfig) -> PatchGeometry:
    """Turn a :class:`PatchConfig` into a :class:`PatchGeometry` for ``image``.

    With ``patch.mpp`` (or ``patch.magnification``) the best level at or below the target scale
    is read and resized; otherwise ``patch.level`` is read as is. Sizes in mm (``size_mm``,
    ``stride_mm``) are turned into px with the image's pixel size (or ``patch.pixel_size``), and
    ``max_object`` (``_mm``) caps the stride (see :mod:`gigapatch.io.physical`). Raises
    :class:`ResolutionError` when a physical size is asked of an image whose mpp (pixel size) is
    unknown and not overridden.
    """
    from gigapatch.io.physical import cap_stride, physical_patch

    patch, max_object = physical_patch(image, patch)
    where = str(image.path) if image.path else "image"
    geometry = cap_stride(_resolve_geometry(image, patch), max_object, where)
    check_grid(geometry, image.dimensions, patch.max_candidates, where)
    return geometry


#: the largest side a patch may be read at before it is resized (a 32k x 32k RGB read is 3 GiB)
MAX_READ_SIDE = 32_768


def check_grid(geometry: PatchGeometry, dims: tuple[int, int], max_candidates: int,
               where: str) -> None:
    """ResolutionError unless ``geometry`` covers at least one level-0 pixel a patch and step
    and its grid over a ``dims`` = (w, h) level-0 image has at most ``max_candidates``
    positions (checked before any mask or score is computed: a 1 px patch must not hang)."""
    size0, stride0 = geometry.size_level0, geometry.stride_level0
    if size0 < 1 or stride0 < 1:
        raise ResolutionError(f"{where}: a patch of {geometry.size} px (step {geometry.stride}) "
                              f"covers {size0} x {stride0} level-0 px at this resolution; ask "
                              "for a coarser mpp or a larger patch")
    if geometry.read_size > MAX_READ_SIDE:
        raise ResolutionError(f"{where}: one patch would be read as {geometry.read_size:,} x "
                              f"{geometry.read_size:,} px (limit {MAX_READ_SIDE:,}); ask for a "
                              "finer mpp or a smaller patch")
    w, h = dims
    n = (max(w - size0, 0) // stride0 + 1) * (max(h - size0, 0) // stride0 + 1)
    if n > max_candidates:
        raise ResolutionError(
            f"{where}: a patch of {size0} level-0 px every {stride0} px gives {n:,} positions "
            f"over {w:,} x {h:,} px, more than patch.max_candidates = {max_candidates:,}; use a "
            "larger patch or stride (or raise patch.max_candidates)")


def _resolve_geometry(image: Image, patch: PatchConfig) -> PatchGeometry:
    stride = patch.stride or patch.size
    slide_mpp = patch.slide_mpp if patch.slide_mpp is not None else image.mpp
    level0_mag = image.magnification
    if level0_mag is None and slide_mpp is not None:
        level0_mag = mpp_to_magnification(slide_mpp)
    target_mpp = patch.mpp
    if patch.magnification is not None:
        if slide_mpp is None and image.magnification is not None:
            # magnification alone is enough: scale by objective power ratio
            factor = image.magnification / patch.magnification
            target_mpp = None
        else:
            target_mpp = magnification_to_mpp(patch.magnification)
    if target_mpp is not None and slide_mpp is None and image.pixel_size is not None:
        # an image with a physical pixel size but no microscope mpp (a map's metres, a scan's
        # mm): a target in microns (--mpp, --gsd) is resolved against that size
        slide_mpp = image.pixel_size.to("um").mean
    if target_mpp is not None:
        if slide_mpp is None:
            where = str(image.path) if image.path else "image"
            raise ResolutionError(
                f"{where}: the file records no mpp (microns per pixel), so a patch size in "
                f"microns cannot be resolved; pass --slide-mpp (e.g. --slide-mpp 0.25) or use --level"
            )
        factor = target_mpp / slide_mpp
    if patch.mpp is None and patch.magnification is None:
        level = min(patch.level or 0, image.level_count - 1)
        ds = image.level_downsamples[level]
        eff = slide_mpp * ds if slide_mpp is not None else None
        return PatchGeometry(
            size=patch.size,
            stride=stride,
            level=level,
            downsample=ds,
            read_size=patch.size,
            size_level0=int(round(patch.size * ds)),
            stride_level0=int(round(stride * ds)),
            resize_factor=1.0,
            slide_mpp=slide_mpp,
            target_mpp=None,
            effective_mpp=eff,
            target_magnification=(level0_mag / ds) if level0_mag else None,
            level0_magnification=level0_mag,
        )
    # physical target: factor = level-0 px per output px
    level = image.get_best_level_for_downsample(factor)
    ds = image.level_downsamples[level]
    read_size = max(1, int(round(patch.size * factor / ds)))
    size0 = int(round(patch.size * factor))
    eff_factor = read_size * ds / patch.size
    return PatchGeometry(
        size=patch.size,
        stride=stride,
        level=level,
        downsample=ds,
        read_size=read_size,
        size_level0=size0,
        stride_level0=int(round(stride * factor)),
        resize_factor=read_size / patch.size,
        slide_mpp=slide_mpp,
        target_mpp=target_mpp if target_mpp is not None else (
            slide_mpp * factor if slide_mpp else None
        ),
        effective_mpp=slide_mpp * eff_factor if slide_mpp is not None else None,
        target_magnification=(level0_mag / factor) if level0_mag else patch.magnification,
        level0_magnification=level0_mag,
    )


#: the reader whose level numbering CLAM and TRIDENT use (they open slides with OpenSlide)
CONSUMER_READER = "openslide"


@dataclass(frozen=True)
class ConsumerLevel:
    """The pyramid level a consumer of the h5 (CLAM, TRIDENT) reads a patch at.

    ``level`` is numbered as ``numbering`` says: ``"any"`` (level 0, the full-resolution image in
    every reader), ``"openslide"``, or the name of gigapatch's reader. ``same`` is True when it
    is the level gigapatch read (same pixels), False when a finer one stands in for it.
    """

    level: int
    numbering: str
    downsample: float
    dims: tuple[int, int]
    same: bool


def consumer_level(image: Image, geometry: PatchGeometry) -> ConsumerLevel:
    """The level CLAM or TRIDENT reads the patches of ``geometry`` at (see :class:`ConsumerLevel`).

    Level 0 stays 0. A higher level of gigapatch's reader is given in OpenSlide's numbering when
    OpenSlide opens the file: the OpenSlide level of the same size, or, when OpenSlide does not
    list it (an OME-TIFF's SubIFD levels), the coarsest OpenSlide level no coarser than it. It
    is level 0 when OpenSlide is not installed or does not open the file, and when the level-0
    magnification is unknown (TRIDENT then falls back to the CLAM attributes and takes
    ``patch_size`` for level-0 px, right at level 0 only). An in-memory image (no file) keeps
    gigapatch's own numbering.
    """
    own = ConsumerLevel(geometry.level, image.reader_name, geometry.downsample,
                        image.level_dimensions[geometry.level], True)
    if geometry.level == 0:
        return ConsumerLevel(0, "any", geometry.downsample, image.dimensions, True)
    if image.path is None:
        return own
    level0 = ConsumerLevel(0, "any", 1.0, image.dimensions, False)
    if geometry.level0_magnification is None:
        return level0
    if image.reader_name == CONSUMER_READER:
        return own
    from gigapatch.errors import GigapatchError
    from gigapatch.io.readers import available_readers

    opener = available_readers().get(CONSUMER_READER)
    if opener is None:
        return level0
    try:
        other = opener(image.path)
    except (GigapatchError, OSError, ValueError):
        return level0  # OpenSlide does not open it: its consumers read level 0
    try:
        dims = [(int(d[0]), int(d[1])) for d in other.level_dimensions]
        downsamples = list(other.level_downsamples)
    finally:
        other.close()
    want = own.dims
    if want in dims:
        k = dims.index(want)
        return ConsumerLevel(k, CONSUMER_READER, downsamples[k], want, True)
    finer = [k for k, d in enumerate(dims) if d[0] >= want[0] and d[1] >= want[1]]
    k = max(finer, key=lambda j: downsamples[j]) if finer else 0
    return ConsumerLevel(k, CONSUMER_READER, downsamples[k], dims[k], False)


def interop_attrs(image: Image, geometry: PatchGeometry) -> dict[str, Any]:
    """The h5 ``coords`` attributes CLAM and TRIDENT read, plus gigapatch's own read.

    CLAM reads ``read_region(coord, patch_level, (patch_size, patch_size))`` and resizes it to
    the ``target_patch_size`` its user gives; TRIDENT reads a level-0 extent of ``patch_size *
    level0_magnification / target_magnification`` px at its best level and resizes it to
    ``patch_size``. Both then see the field of view of gigapatch's patch:

    * ``patch_level`` (numbered as ``level_numbering`` says, see :func:`consumer_level`),
      ``patch_size`` (px read at that level), ``downsample`` and ``level_dim`` of that level,
      ``overlap`` (px at that level);
    * ``patch_size_level0`` (level-0 px), ``target_patch_size`` (gigapatch's output side);
    * ``level0_magnification``, ``target_magnification`` (that of the pixels ``patch_size``
      counts: ``patch_size_level0 = patch_size * level0_magnification / target_magnification``)
      and ``output_magnification`` (that of the output patches);
    * gigapatch's own read: ``reader``, ``read_level`` (in its numbering), ``read_downsample``,
      ``read_size``, ``resize_factor`` (``read_size / target_patch_size``), ``stride`` (output
      px), ``stride_level0``; ``mpp``, ``target_mpp``, ``effective_mpp``.

    An unknown value (no mpp, no magnification) is None here; the h5 leaves it out (never NaN).
    """
    c = consumer_level(image, geometry)
    size = geometry.read_size if c.same else max(1, int(round(geometry.size_level0 / c.downsample)))
    mag0 = geometry.level0_magnification
    out: dict[str, Any] = {
        "patch_level": c.level,
        "level_numbering": c.numbering,
        "patch_size": size,
        "downsample": c.downsample,
        "level_dim": np.asarray(c.dims, np.int64),
        "patch_size_level0": geometry.size_level0,
        "target_patch_size": geometry.size,
        "overlap": size - int(round(geometry.stride_level0 / c.downsample)),
        "stride": geometry.stride,
        "stride_level0": geometry.stride_level0,
        "reader": image.reader_name,
        "read_level": geometry.level,
        "read_downsample": geometry.downsample,
        "read_size": geometry.read_size,
        "resize_factor": geometry.resize_factor,
        "level0_magnification": mag0,
        "target_magnification": mag0 / c.downsample if mag0 else None,
        "output_magnification": mag0 * geometry.size / geometry.size_level0 if mag0 else None,
        "mpp": geometry.slide_mpp,
        "target_mpp": geometry.target_mpp,
        "effective_mpp": geometry.effective_mpp,
    }
    return out


def patches_inside(coords: np.ndarray, size_level0: int, dims: tuple[int, int]) -> np.ndarray:
    """Bool (N,) mask of patches (level-0 top-left ``coords`` (N, 2)) wholly inside ``dims``."""
    c = np.asarray(coords)
    w, h = dims
    return (c[:, 0] >= 0) & (c[:, 1] >= 0) & (c[:, 0] + size_level0 <= w) & (c[:, 1] + size_level0 <= h)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


__all__ = [
    "CONSUMER_READER",
    "MAX_READ_SIDE",
    "ConsumerLevel",
    "PatchGeometry",
    "ceil_div",
    "check_grid",
    "consumer_level",
    "interop_attrs",
    "level0_to_level",
    "level_to_level0",
    "magnification_to_mpp",
    "mpp_to_magnification",
    "patches_inside",
    "resolve_geometry",
]
