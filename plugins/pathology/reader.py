"""OpenSlide reader for the slide formats the core tifffile reader leaves alone.

The core's :class:`gigapatch.TiffImage` is the fast path for Aperio SVS and generic / OME tiled
TIFF, so the hook declines those (returns None) whenever the core can decode them; it opens
everything else OpenSlide recognises (Hamamatsu NDPI/VMS, MIRAX, Leica SCN, Philips TIFF,
Ventana BIF, DICOM, Sakura, Zeiss...). Plain PNG / JPEG / BMP files and TIFFs without any
other OpenSlide vendor's marks are declined from their first bytes and tags alone
(:func:`core_reads`), so a run on them never imports OpenSlide.
``READERS`` lets ``open_image(path, reader="openslide")`` force OpenSlide for any file, TIFF
included, without the core importing this plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gigapatch import Image, ImageError, TiffImage, hookimpl

#: OpenSlide vendors whose files the core tifffile reader handles itself (when it can decode them)
CORE_VENDORS = frozenset({"aperio", "generic-tiff"})
#: first-page marks of the TIFF-based formats OpenSlide reads as a vendor outside CORE_VENDORS:
#: the NDPI tag (Hamamatsu), XMP (Ventana BIF), an XML ImageDescription (Leica SCN, Philips TIFF;
#: OME-TIFF too, which then takes the OpenSlide check), the Software of Trestle and Philips
NDPI_TAG, XMP_TAG = 65420, 700
OTHER_VENDOR_SOFTWARE = ("MedScan", "Philips", "Ventana", "ScanOutputManager")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
#: headers of PNG, JPEG and BMP files: no OpenSlide format starts like these
_PLAIN_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM")


class OpenSlideImage(Image):
    """A whole-slide image read through OpenSlide (thread-safe).

    ``read_region`` returns (h, w, 3) uint8 RGB; OpenSlide's transparent pixels (outside the
    slide or between scanned areas) are composited onto white.
    """

    reader_name = "openslide"

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        try:
            import openslide
        except ImportError as e:  # pragma: no cover - the extra is installed with the plugin
            raise ImageError(self.path, "openslide-python is not installed "
                             "(pip install 'gigapatch[pathology]')") from e
        try:
            self._osr = openslide.OpenSlide(str(self.path))
        except (openslide.OpenSlideError, OSError, ValueError) as e:
            raise ImageError(self.path, f"OpenSlide cannot read it ({_first_line(e)})") from e
        props: dict[str, Any] = dict(self._osr.properties)
        mx = _positive(props.get("openslide.mpp-x"))
        my = _positive(props.get("openslide.mpp-y"))
        self._mpp = (mx + (my or mx)) / 2 if mx else None
        self._magnification = _positive(props.get("openslide.objective-power"))
        self._vendor = props.get("openslide.vendor")
        props["mpp_sources"] = {"openslide": self._mpp} if self._mpp else {}
        self._properties = props

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple(self._osr.level_dimensions)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(self._osr.level_downsamples)

    @property
    def mpp(self) -> float | None:
        return self._mpp

    @property
    def magnification(self) -> float | None:
        return self._magnification

    @property
    def vendor(self) -> str | None:
        return self._vendor

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self._properties)

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        import openslide

        try:
            rgba = np.asarray(self._osr.read_region(
                (int(location[0]), int(location[1])), int(level), (int(size[0]), int(size[1]))))
        except openslide.OpenSlideError as e:
            # OpenSlide makes libjpeg's warnings (corrupt JPEG data) errors, and its handle
            # unusable after one: the image fails (read.on_bad_tile skip is the core reader's)
            raise ImageError(self.path, f"OpenSlide cannot read level {int(level)} at level-0 "
                             f"x={int(location[0])}, y={int(location[1])}, {int(size[0])} x "
                             f"{int(size[1])} px ({_first_line(e)}); the file is corrupt") from e
        alpha = rgba[..., 3]
        if alpha.min() == 255:
            return np.ascontiguousarray(rgba[..., :3])
        a = alpha.astype(np.uint16)[..., None]
        rgb = (rgba[..., :3].astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
        return rgb.astype(np.uint8)

    def close(self) -> None:
        osr = self.__dict__.pop("_osr", None)  # closed once: a second close finds none
        if osr is not None:
            osr.close()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _positive(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None


def open_openslide(path: str | Path) -> OpenSlideImage:
    """Open ``path`` with OpenSlide, whatever its format (the ``reader="openslide"`` opener)."""
    return OpenSlideImage(path)


#: reader name -> opener, offered through ``gigapatch_readers``
READERS = {"openslide": open_openslide}


@hookimpl
def gigapatch_readers() -> dict:
    """Let ``open_image(path, reader="openslide")`` force this reader for any file."""
    return READERS


def core_reads(path: str | Path) -> bool:
    """True when OpenSlide would leave ``path`` to the core, told without importing OpenSlide:
    a plain PNG / JPEG / BMP, or a TIFF with none of the marks of OpenSlide's other TIFF-based
    vendors (so OpenSlide would call it aperio, generic-tiff or nothing) that the core decodes.
    False means "ask OpenSlide" (whose answer is the same for every file this says True to)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    if head.startswith(_PLAIN_MAGIC):
        return True
    if head not in TIFF_MAGIC:
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages.first
            if (NDPI_TAG in page.tags or XMP_TAG in page.tags
                    or page.description.lstrip().startswith("<")
                    or page.software.startswith(OTHER_VENDOR_SOFTWARE)):
                return False
            # the file parsed once for both questions; its tile offsets freed at once
            return TiffImage.supports_tiff(tf, release=True)
    except Exception:  # a broken TIFF: OpenSlide (and then the core) say why
        return False


@hookimpl
def gigapatch_open_image(path: Path, domain: str | None) -> Image | None:
    """OpenSlide for the slide formats the core does not read; None for the rest."""
    if core_reads(path):
        return None  # the core's reader (trylast) takes it, and OpenSlide is never imported
    try:
        import openslide
    except ImportError:  # pragma: no cover
        return None
    try:
        vendor = openslide.OpenSlide.detect_format(str(path))
    except (openslide.OpenSlideError, OSError, ValueError):
        return None
    if vendor is None:
        return None
    if vendor in CORE_VENDORS and TiffImage.supports(path):
        return None  # the core's tifffile reader (trylast) takes it: the fast path
    return OpenSlideImage(path)
