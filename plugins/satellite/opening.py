"""Which files the satellite reader opens: the ``gigapatch_open_image`` and ``gigapatch_readers``
hooks.

``gigapatch_open_image`` takes a file when ``domain == "satellite"``, and a GeoTIFF (told by its
header's GeoTIFF tags, without rasterio) when the run names no domain, so pathology TIFFs never
go through rasterio; ``open_image(path, reader="rasterio")`` forces it for any file.
"""

from __future__ import annotations

import struct
from pathlib import Path

from gigapatch import Image, hookimpl

from .handles import quiet_open
from .reader import RasterioImage


def open_rasterio(path: str | Path) -> RasterioImage:
    """Open ``path`` with rasterio, whatever the domain (the ``reader="rasterio"`` opener)."""
    return RasterioImage(path)


#: reader name -> opener, offered through ``gigapatch_readers``
READERS = {"rasterio": open_rasterio}


@hookimpl
def gigapatch_readers() -> dict:
    """Let ``open_image(path, reader="rasterio")`` force this reader for any file."""
    return READERS


#: TIFF tags only GeoTIFFs carry: GeoKeyDirectory, ModelTransformation, ModelTiepoint
GEOTIFF_TAGS = frozenset({34735, 34264, 33922})


def is_geotiff(path: str | Path) -> bool:
    """Whether ``path`` is a TIFF whose first image carries GeoTIFF tags.

    Reads the header and the first IFD's tag numbers only (a few hundred bytes, classic TIFF or
    BigTIFF, either byte order) and imports nothing, so deciding costs a pathology run nothing.
    False for anything that is not a readable TIFF.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            order = {b"II": "<", b"MM": ">"}.get(head[:2])
            if order is None or len(head) < 16:
                return False
            version = struct.unpack(order + "H", head[2:4])[0]
            if version == 42:
                offset, count_fmt, entry = struct.unpack(order + "I", head[4:8])[0], "H", 12
            elif version == 43:
                offset, count_fmt, entry = struct.unpack(order + "Q", head[8:16])[0], "Q", 20
            else:
                return False
            f.seek(offset)
            raw = f.read(struct.calcsize(count_fmt))
            if len(raw) < struct.calcsize(count_fmt):
                return False
            count = min(struct.unpack(order + count_fmt, raw)[0], 4096)
            table = f.read(count * entry)
    except OSError:
        return False
    n = len(table) // entry
    tags = {struct.unpack_from(order + "H", table, k * entry)[0] for k in range(n)}
    return not tags.isdisjoint(GEOTIFF_TAGS)


@hookimpl(tryfirst=True)
def gigapatch_open_image(path: Path, domain: str | None) -> Image | None:
    """A :class:`RasterioImage` for any raster rasterio opens when ``domain == "satellite"``,
    and for a GeoTIFF (:func:`is_geotiff`) when the run names no domain; None otherwise (and for
    files rasterio does not recognise), so other TIFFs never import rasterio."""
    if domain != "satellite" and not (domain is None and is_geotiff(path)):
        return None
    try:
        import rasterio
    except ImportError:  # pragma: no cover
        return None
    try:
        quiet_open(path).close()
    except (rasterio.errors.RasterioError, OSError):
        return None
    return RasterioImage(path)
