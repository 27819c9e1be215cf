"""Resolution metadata of TIFF slides: Aperio descriptions, OME-XML, resolution tags.

Each returns what one source says (or None): :class:`gigapatch.io.tiff.TiffImage` collects them and
:mod:`gigapatch.io.resolution` flags sources that disagree.
"""

from __future__ import annotations

import math
from typing import Any


def svs_metadata(description: str) -> dict[str, str]:
    items = description.split("|")
    out = {"Header": items[0].strip()}
    for item in items[1:]:
        key, sep, value = item.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def to_float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def resolution_mpp(page: Any) -> tuple[float, float] | None:
    """mpp (x, y) from X/YResolution + ResolutionUnit; None when absent, unitless or 72/96 dpi."""
    if 282 not in page.tags or 283 not in page.tags:
        return None
    unit = int(page.resolutionunit)
    xres, yres = page.resolution
    if unit == 2 and (round(xres) in (72, 96) or xres <= 1):
        return None
    per_unit = {2: 25400.0, 3: 1e4, 4: 1e3, 5: 1.0}.get(unit)
    if per_unit is None or not xres or not yres:
        return None
    return per_unit / xres, per_unit / yres


_OME_UNITS = {"µm": 1.0, "um": 1.0, "micron": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6,
              "Å": 1e-4, "pm": 1e-6}


def ome_metadata(xml: str) -> tuple[tuple[float, float] | None, float | None]:
    """(mpp x, y) from the first Image's Pixels PhysicalSizeX/Y and its objective's magnification."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None, None
    mpp = None
    pixels = root.find("{*}Image/{*}Pixels")
    if pixels is not None:
        sx, sy = to_float(pixels.get("PhysicalSizeX")), to_float(pixels.get("PhysicalSizeY"))
        if sx is not None:
            fx = _OME_UNITS.get(pixels.get("PhysicalSizeXUnit", "µm"), 1.0)
            fy = _OME_UNITS.get(pixels.get("PhysicalSizeYUnit", "µm"), 1.0)
            mpp = (sx * fx, (sy if sy is not None else sx) * fy)
    objective = root.find("{*}Instrument/{*}Objective")
    mag = to_float(objective.get("NominalMagnification")) if objective is not None else None
    return mpp, mag
