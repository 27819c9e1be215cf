"""Built-in image readers and :func:`open_image`, the public way to open an input file.

* :class:`TiffImage` (module :mod:`gigapatch.io.tiff`) reads tiled / pyramidal TIFF tile by tile on
  demand; level 0 is never read whole.
* :class:`PlainImage` reads small non-pyramidal images (PNG, JPEG, BMP, stripped TIFF) whole.

Readers by name
---------------
``open_image(path, reader=NAME)`` forces one reader. The core knows ``"tifffile"`` and
``"plain"``; a plugin adds readers through the ``gigapatch_readers`` hook (the pathology plugin
returns ``{"openslide": open_openslide}``). :func:`available_readers` collects them through the
plugin manager, so the core never imports a plugin.
"""

from __future__ import annotations

import stat
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from gigapatch.errors import ConfigError, GigapatchError, ImageError
from gigapatch.io.image import ArrayImage, Image
from gigapatch.io.native_tiff import NativeTiffImage, native_problem, prefers_native
from gigapatch.io.pixels import composite_on_white, standalone_jpeg, to_rgb, ycbcr_to_rgb
from gigapatch.io.tiff import (
    TIFF_MAGIC,
    TiffImage,
    TileCache,
    declared_size_problem,
    pyramid_pages,
    short_message,
    truncation,
)

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".svs", ".tif", ".tiff", ".btf", ".tf8", ".qptiff", ".ndpi", ".mrxs", ".scn", ".bif",
     ".vms", ".vmu", ".svslide", ".png", ".jpg", ".jpeg", ".bmp"}
)
#: PlainImage refuses images larger than this (pixels): they belong in a pyramidal TIFF
MAX_PLAIN_PIXELS = 400_000_000


def _plain_size(data: bytes, kind: str) -> tuple[int, int]:
    """(width, height) from a PNG / JPEG / BMP header, without decoding."""
    if kind == "png":
        return struct.unpack(">II", data[16:24])
    if kind == "bmp":
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    i = 2  # JPEG: walk the marker segments to the first start-of-frame
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        if marker == 0xFF or 0xD0 <= marker <= 0xD9:
            i += 1 if marker == 0xFF else 2
            continue
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    raise ValueError("no JPEG start-of-frame marker")


def _magic_kind(head: bytes) -> str | None:
    if head[:4] in TIFF_MAGIC:
        return "tiff"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:2] == b"BM":
        return "bmp"
    return None


def _cut_short(data: bytes, kind: str) -> bool:
    """True when a PNG lacks its closing IEND chunk or a JPEG its end-of-image marker (trailing
    zero padding allowed), i.e. the file was cut short."""
    if kind == "png":
        return b"IEND" not in data[-32:]
    if kind == "jpeg":
        return not data.rstrip(b"\x00").endswith(b"\xff\xd9")
    return False


def _read_whole_tiff(path: Path, max_pixels: int, too_big: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the first page of a small TIFF, 16-bit samples scaled to 8."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        page = tf.series[0].levels[0].keyframe
        w, h = page.imagewidth, page.imagelength
        if w * h > max_pixels:
            raise ImageError(path, too_big.format(w=w, h=h, lim=max_pixels // 10**6))
        arr = page.asarray()
        if int(page.planarconfig) == 2 and arr.ndim == 3:
            arr = np.moveaxis(arr, 0, -1)
        if arr.dtype == np.uint16:
            arr = np.round(arr / 257.0).astype(np.uint8)
        if arr.dtype != np.uint8:
            raise ImageError(path, f"{arr.dtype} samples are not supported (8 or 16 bit only)")
        return to_rgb(arr, int(page.photometric), tuple(page.extrasamples or ()), page.colormap)


def _read_plain(path: Path, max_pixels: int) -> tuple[np.ndarray, str]:
    with open(path, "rb") as f:
        kind = _magic_kind(f.read(16))
    if kind is None:
        raise ImageError(path, "not a PNG, JPEG, BMP or TIFF image")
    too_big = ("{w} x {h} px is too large to read whole (limit {lim} MP); convert it to a "
               "tiled pyramidal TIFF (e.g. with vips tiffsave --tile --pyramid)")
    if kind == "tiff":
        return _read_whole_tiff(path, max_pixels, too_big), "tiff"
    import cv2

    data = path.read_bytes()
    if _cut_short(data, kind):
        raise ImageError(path, f"truncated file ({len(data):,} bytes): the {kind.upper()} stream "
                               "stops before its end marker; copy or download it again")
    w, h = _plain_size(data, kind)
    if w * h > max_pixels:
        raise ImageError(path, too_big.format(w=w, h=h, lim=max_pixels // 10**6))
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError(path, f"cannot decode this {kind.upper()} file (corrupt or truncated?)")
    if arr.ndim == 2:
        return arr, kind  # grey, 8- or 16-bit, kept as stored
    rgb = cv2.cvtColor(arr[..., :3], cv2.COLOR_BGR2RGB)
    if arr.shape[2] == 4 and arr.dtype == np.uint8:
        rgb = composite_on_white(rgb, arr[..., 3])
    return rgb, kind


class PlainImage(ArrayImage):
    """A small non-pyramidal image (PNG, JPEG, BMP, stripped TIFF) read whole into memory.

    A pyramid of area-averaged levels is built in memory (see :class:`ArrayImage`). Images above
    ``max_pixels`` are refused with an :class:`ImageError` suggesting a pyramidal TIFF.
    """

    reader_name = "plain"

    def __init__(self, path: str | Path, max_pixels: int = MAX_PLAIN_PIXELS) -> None:
        path = Path(path)
        try:
            rgb, kind = _read_plain(path, max_pixels)
        except GigapatchError:
            raise
        except Exception as e:
            raise ImageError(path, f"cannot read image ({short_message(e)})") from e
        super().__init__(rgb, path=path)
        self._vendor = kind

    @property
    def vendor(self) -> str | None:
        return self._vendor

    @property
    def properties(self) -> dict[str, Any]:
        return {"vendor": self._vendor, "mpp_sources": {}}


# ---------------------------------------------------------------------------- opening
def open_builtin(path: Path) -> Image | None:
    """The core's own choice of reader (the trylast ``gigapatch_open_image`` default).

    Tiled or pyramidal 8-bit RGB TIFF -> :class:`TiffImage`; grey or 16-bit TIFF, and one large
    level in strips -> :class:`NativeTiffImage` (samples as stored, levels computed in a
    streaming pass); PNG / JPEG / BMP and small single-level stripped RGB TIFF ->
    :class:`PlainImage`; anything else -> None. Decided by magic bytes.
    """
    path = Path(path)
    with open(path, "rb") as f:
        kind = _magic_kind(f.read(16))
    if kind is None:
        return None
    if kind != "tiff":
        return PlainImage(path)
    try:  # the common case, parsed once: a tiled or pyramidal TIFF the core decodes
        image = TiffImage(path)
    except ImageError as e:
        if e.problem.startswith("truncated"):
            raise
        # otherwise decided (and the problem named) below, as for any other TIFF
    else:
        w, h = image.dimensions
        lv0 = image._levels[0]
        if prefers_native(lv0.photometric, lv0.samples - len(lv0.extrasamples), lv0.tiled,
                          len(image.level_dimensions), w * h):
            image.close()  # grey, or one large level in strips: read in its own samples
            return NativeTiffImage(path)
        if len(image.level_dimensions) > 1 or lv0.tiled or w * h > MAX_PLAIN_PIXELS:
            return image
        image.close()
        return PlainImage(path)
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            pages, problem = pyramid_pages(tf)
    except Exception as e:
        raise ImageError(path, f"not a readable TIFF ({short_message(e)})") from e
    if problem:
        if pages and all(native_problem(p) is None for p in pages):
            return NativeTiffImage(path)  # 16-bit samples, grey or RGB: read as stored
        raise ImageError(path, problem)
    p0 = pages[0]
    if len(pages) == 1 and not p0.is_tiled and p0.imagewidth * p0.imagelength <= MAX_PLAIN_PIXELS:
        return PlainImage(path)
    return TiffImage(path)


def available_readers() -> dict[str, Callable[[Path], Image]]:
    """Reader name -> opener: the core's ``tifffile`` and ``plain`` plus every plugin's
    ``gigapatch_readers`` hook result."""
    from gigapatch.plugin.manager import get_plugin_manager

    readers: dict[str, Callable[[Path], Image]] = {
        "tifffile": TiffImage, "plain": PlainImage, "tiff-native": NativeTiffImage}
    for result in get_plugin_manager().hook.gigapatch_readers():
        for name, opener in (result or {}).items():
            readers.setdefault(name, opener)
    return readers


def _check_path(path: Path) -> None:
    """ImageError unless ``path`` is a non-empty regular file this process can open (a FIFO,
    socket or device is refused before anything opens it: reading a FIFO blocks)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageError(path, "a symbolic link to nothing (its target is missing)") from None
        raise ImageError(path, "no such file") from None
    except OSError as e:  # ELOOP: a symlink loop; EACCES: a folder on the way is closed
        raise ImageError(path, f"cannot reach it ({e.strerror or short_message(e)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(path, "is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "a device")
        raise ImageError(path, f"is {kind}, not a regular image file")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise ImageError(path, f"cannot open ({e.strerror or short_message(e)})") from e
    if st.st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")


def open_image(
    path: str | Path, domain: str | None = None, reader: str | None = None,
    max_pixels: int | None = None,
) -> Image:
    """Open an image file with the first plugin reader that takes it (the core's last).

    Parameters
    ----------
    path : the image file.
    domain : the ``--domain`` name, passed to the ``gigapatch_open_image`` hooks.
    reader : force a reader by name (``"tifffile"``, ``"plain"``, ``"openslide"`` with the
        pathology plugin...; see :func:`available_readers`).
    max_pixels : refuse a TIFF whose header declares more pixels than this, before any reader
        allocates (default: :func:`~gigapatch.io.tiff.max_image_pixels`, the
        ``GIGAPATCH_MAX_PIXELS`` environment variable, else 10^11).

    Raises
    ------
    ImageError : missing, a directory, empty, unsupported, truncated or unreadable (one line).
    ConfigError : ``reader`` names no installed reader.
    """
    p = Path(path)
    _check_path(p)
    with open(p, "rb") as f:
        tiff = f.read(4) in TIFF_MAGIC
    cut = truncation(p, data=False) if tiff else None  # a few bytes an IFD, before any reader
    if cut:
        raise ImageError(p, cut)
    too_big = declared_size_problem(p, max_pixels) if tiff else None  # before any allocation
    if too_big:
        raise ImageError(p, too_big)
    try:
        if reader is not None:
            readers = available_readers()
            opener = readers.get(reader)
            if opener is None:
                raise ConfigError(f"unknown reader {reader!r} (installed: {', '.join(sorted(readers))})")
            image = opener(p)
        else:
            from gigapatch.plugin.manager import get_plugin_manager

            image = get_plugin_manager().hook.gigapatch_open_image(path=p, domain=domain)
    except ImageError as e:  # a reader's complaint about a cut TIFF: say it is cut
        if tiff and not e.problem.startswith("truncated") and (cut := truncation(p)):
            raise ImageError(p, cut) from e
        raise
    except (GigapatchError, MemoryError):
        raise
    except Exception as e:
        if tiff and (cut := truncation(p)):
            raise ImageError(p, cut) from e
        raise ImageError(p, f"cannot read it ({short_message(e)})") from e
    if image is None:
        if tiff and (cut := truncation(p)):
            raise ImageError(p, cut)
        raise ImageError(p, "unsupported format (not a TIFF, PNG, JPEG or BMP image, and no "
                            "installed plugin reads it)")
    if tiff and not isinstance(image, TiffImage) and (cut := truncation(p)):
        image.close()  # a reader that decodes lazily would give blank or failing tiles later
        raise ImageError(p, cut)
    return image


#: a DICOM whole-slide image is a folder of these (one series); a reader opens it from any one
DICOM_SUFFIX = ".dcm"


def _dicom_series(folder: Path) -> Path | None:
    """The first (sorted) ``.dcm`` file of ``folder``: the file a DICOM WSI is opened by (the
    reader finds the rest of its series beside it), or None when the folder holds none."""
    dcm = sorted(c for c in folder.iterdir() if c.is_file() and c.suffix.lower() == DICOM_SUFFIX)
    return dcm[0] if dcm else None


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand ``paths``: files stay as given; a directory gives its top-level files whose suffix
    is in :data:`IMAGE_SUFFIXES` (sorted), and one ``.dcm`` file for the DICOM series it holds
    and for each sub-directory that holds one (a DICOM WSI is a folder of ``.dcm`` files).
    Duplicates are dropped, order kept.

    Raises ImageError for a missing path or a directory without images.
    """
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            children = sorted(p.iterdir())
            found = [c for c in children if c.is_file() and c.suffix.lower() in IMAGE_SUFFIXES]
            series = [_dicom_series(d) for d in [p, *(c for c in children if c.is_dir())]]
            found += [s for s in series if s is not None]
            if not found:
                raise ImageError(p, "directory holds no images (looked for "
                                    f"{', '.join(sorted(IMAGE_SUFFIXES))} and folders of "
                                    f"{DICOM_SUFFIX} files)")
            out.extend(found)
        elif p.exists():
            out.append(p)
        elif p.is_symlink():
            raise ImageError(p, "a symbolic link that leads nowhere (a loop, or its target is "
                                "missing)")
        else:
            raise ImageError(p, "no such file or directory")
    return list(dict.fromkeys(out))


__all__ = [
    "DICOM_SUFFIX",
    "IMAGE_SUFFIXES",
    "MAX_PLAIN_PIXELS",
    "PlainImage",
    "TiffImage",
    "TileCache",
    "available_readers",
    "composite_on_white",
    "find_images",
    "open_builtin",
    "open_image",
    "standalone_jpeg",
    "to_rgb",
    "ycbcr_to_rgb",
]
