"""Scans opened in their own samples when the run is ``--domain metal_surface``.

The core reads 8- and 16-bit grey or RGB TIFF natively (:class:`gigapatch.NativeTiffImage`,
tiled or striped, levels computed in a streaming pass when the file has none). A plugin that
reads other slide formats may claim a tiled 16-bit TIFF first (and serve it as 8-bit RGB);
with the metal_surface domain this hook takes every TIFF the native reader reads, so the
scores see the camera's own grey levels and extracted patches keep them bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gigapatch import hookimpl

from .settings import DOMAIN

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@hookimpl(tryfirst=True)
def gigapatch_open_image(path: Path, domain: str | None) -> Any:
    """A TIFF of a metal_surface run, read natively; None for anything else."""
    if domain != DOMAIN:
        return None
    try:
        with open(path, "rb") as f:
            if f.read(4) not in TIFF_MAGIC:
                return None
    except OSError:
        return None
    from gigapatch import NativeTiffImage

    if not NativeTiffImage.supports(path):
        return None
    return NativeTiffImage(path)
