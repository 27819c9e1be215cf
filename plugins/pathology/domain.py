"""Declares the ``pathology`` domain and its default config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gigapatch import hookimpl

DEFAULTS = Path(__file__).with_name("pathology.yaml")


@hookimpl
def gigapatch_domains() -> list[dict[str, Any]]:
    from .settings import PathologySettings

    return [
        {
            "name": "pathology",
            "description": "H&E / IHC whole-slide images: tissue vs glass, pen and blur artefacts",
            "config": DEFAULTS,
            "settings": PathologySettings,
            "region_class": "Tissue",
        }
    ]


#: file suffixes that only slide scanners write
WSI_SUFFIXES = frozenset({
    ".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".czi", ".svslide", ".isyntax",
})
#: vendors that only slide scanners are (OpenSlide's names; the core's TIFF reader says
#: ``aperio``); a plain PNG/JPEG/TIFF (``png``, ``tiff``, ``generic-tiff``...) is none of them
SCANNER_VENDORS = frozenset({
    "aperio", "hamamatsu", "leica", "mirax", "philips", "sakura", "trestle", "ventana", "zeiss",
    "dicom",
})
#: coarser than this (microns per pixel) is no microscope
MAX_MICROSCOPE_MPP = 10.0


@hookimpl
def gigapatch_image_domain(image: Any) -> str | None:
    """A whole-slide image: a scanner's file format or vendor, or a microscope's resolution."""
    suffix = Path(str(image.path)).suffix.lower() if image.path else ""
    if suffix in WSI_SUFFIXES or (image.vendor or "").lower() in SCANNER_VENDORS:
        return "pathology"
    mpp = image.mpp
    return "pathology" if mpp is not None and 0 < mpp < MAX_MICROSCOPE_MPP else None
