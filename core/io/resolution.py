"""Where an image's physical resolution (microns per level-0 pixel) comes from, and whether the
sources agree.

Scanners record the resolution in several places that do not always agree (vendor keys, TIFF
resolution tags, OME-XML, the objective power). :func:`mpp_sources` collects every value it can
find; :func:`check_mpp` picks one and warns, naming each source and value, when they disagree.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from gigapatch.io.geometry import magnification_to_mpp

if TYPE_CHECKING:
    from gigapatch.io.image import Image

#: sources in order of trust (first present wins in :func:`check_mpp`)
PRIORITY = (
    "reader",
    "openslide.mpp-x",
    "openslide.mpp-y",
    "aperio.MPP",
    "ome.PhysicalSizeX",
    "ome.PhysicalSizeY",
    "tiff.XResolution",
    "tiff.YResolution",
)

#: plausible range of a level-0 mpp (anything else is a bogus tag such as 72 dpi)
PLAUSIBLE = (0.01, 100.0)

_UNIT_UM = {
    "inch": 25400.0, "2": 25400.0, "in": 25400.0,
    "centimeter": 1e4, "cm": 1e4, "3": 1e4,
    "millimeter": 1e3, "mm": 1e3, "4": 1e3,
    "micrometer": 1.0, "um": 1.0, "µm": 1.0, "\u03bcm": 1.0, "micron": 1.0, "5": 1.0,
    "nm": 1e-3, "nanometer": 1e-3,
}


def _num(v: Any) -> float | None:
    """A positive finite float from a property value (str, number, or a (num, den) rational)."""
    try:
        if isinstance(v, (tuple, list)) and len(v) == 2:
            f = float(v[0]) / float(v[1])
        else:
            f = float(str(v).strip().split()[0])
    except (TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def _unit_um(unit: Any) -> float | None:
    if unit is None:
        return None
    if isinstance(getattr(unit, "value", None), int):  # e.g. tifffile's RESUNIT enum
        unit = unit.value
    u = str(unit).strip().lower().rsplit(".", 1)[-1]  # "RESUNIT.CENTIMETER" -> "centimeter"
    return _UNIT_UM.get(u)


def _ome_sizes(xml: str) -> dict[str, float]:
    """PhysicalSizeX/Y (in um) of the first OME ``Pixels`` element of an OME-XML string."""
    import xml.etree.ElementTree as ET  # parsed only for OME files: not imported at start-up

    out: dict[str, float] = {}
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return out
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] != "Pixels":
            continue
        for axis in ("X", "Y"):
            v = _num(el.get(f"PhysicalSize{axis}"))
            scale = _unit_um(el.get(f"PhysicalSize{axis}Unit", "µm"))
            if v is not None and scale is not None:
                out[f"ome.PhysicalSize{axis}"] = v * scale
        break
    return out


def mpp_sources(image: Image) -> dict[str, float]:
    """Every level-0 microns-per-pixel value recorded for ``image``, by source name.

    Looks at (when present): ``image.properties["mpp_sources"]`` (a dict a reader may fill,
    copied as is), the reader's own ``image.mpp`` (``"reader"``), OpenSlide's
    ``openslide.mpp-x``/``-y``, ``aperio.MPP``, OME ``PhysicalSizeX``/``Y`` (from
    ``ome.PhysicalSizeX`` properties or OME-XML in ``ome_xml`` / ``tiff.ImageDescription``),
    ``tiff.XResolution``/``YResolution`` with ``tiff.ResolutionUnit`` (inch or centimetre; no
    unit means no physical size), the objective power (``openslide.objective-power``,
    ``aperio.AppMag`` or ``image.magnification``, converted with 10x = 1.0 um/px) as
    ``"objective-power"``, and per-level values (``properties["level_mpp"]``, a list of the
    mpp of each level) divided by the level's downsample as ``"level[k]"``.

    Returns
    -------
    dict source -> mpp (um per level-0 px), only positive finite values.
    """
    props: dict[str, Any] = dict(image.properties or {})
    out: dict[str, float] = {}
    for k, v in dict(props.get("mpp_sources") or {}).items():
        f = _num(v)
        if f is not None:
            out[str(k)] = f
    try:
        own = image.mpp
    except Exception:  # a broken reader property just means "no value"
        own = None
    if (own_mpp := _num(own)) is not None:
        out.setdefault("reader", own_mpp)
    for key in ("openslide.mpp-x", "openslide.mpp-y", "aperio.MPP"):
        f = _num(props.get(key))
        if f is not None:
            out.setdefault(key, f)
    # OME: explicit keys first, then any OME-XML string
    for axis in ("X", "Y"):
        f = _num(props.get(f"ome.PhysicalSize{axis}"))
        scale = _unit_um(props.get(f"ome.PhysicalSize{axis}Unit", "µm"))
        if f is not None and scale is not None:
            out.setdefault(f"ome.PhysicalSize{axis}", f * scale)
    for key in ("ome_xml", "ome.xml", "tiff.ImageDescription"):
        text = props.get(key)
        if isinstance(text, str) and "<OME" in text:
            for k, f in _ome_sizes(text[text.find("<") :]).items():
                out.setdefault(k, f)
            break
    # TIFF resolution tags: pixels per unit
    unit = _unit_um(props.get("tiff.ResolutionUnit"))
    if unit is not None:
        for axis in ("X", "Y"):
            f = _num(props.get(f"tiff.{axis}Resolution"))
            if f is not None:
                out.setdefault(f"tiff.{axis}Resolution", unit / f)
    # objective power
    mag = _num(props.get("openslide.objective-power")) or _num(props.get("aperio.AppMag"))
    if mag is None:
        try:
            mag = _num(image.magnification)
        except Exception:  # likewise
            mag = None
    if mag is not None:
        out.setdefault("objective-power", magnification_to_mpp(mag))
    # per-level values
    level_mpp = props.get("level_mpp")
    if isinstance(level_mpp, (list, tuple)):
        for k, v in enumerate(level_mpp):
            f = _num(v)
            if f is not None and k < image.level_count:
                out.setdefault(f"level[{k}]", f / image.level_downsamples[k])
    return out


def _fmt(sources: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sources.items())


def check_mpp(image: Image, rel_tol: float = 0.05) -> tuple[float | None, list[str]]:
    """Choose the level-0 mpp of ``image`` and report disagreements between its sources.

    The first source in :data:`PRIORITY` order wins (then any other source, the objective
    power last of all); implausible values (outside :data:`PLAUSIBLE`, e.g. a 72 dpi default
    tag) are ignored with a warning.

    Parameters
    ----------
    image : any :class:`gigapatch.Image`.
    rel_tol : relative difference above which two sources disagree.

    Returns
    -------
    mpp : float or None when no source records one.
    warnings : list of one-line strings naming the image, each source and its value.
    """
    where = str(image.path) if getattr(image, "path", None) else "image"
    sources = mpp_sources(image)
    warnings: list[str] = []
    bad = {k: v for k, v in sources.items() if not PLAUSIBLE[0] <= v <= PLAUSIBLE[1]}
    if bad:
        warnings.append(f"{where}: ignoring implausible mpp values: {_fmt(bad)}")
    good = {k: v for k, v in sources.items() if k not in bad}
    if not good:
        return None, warnings
    order = [k for k in PRIORITY if k in good]
    order += [k for k in good if k not in order and k != "objective-power"]
    order += [k for k in good if k == "objective-power"]
    chosen = good[order[0]]
    off = {k: v for k, v in good.items() if abs(v - chosen) > rel_tol * chosen}
    if off:
        warnings.append(
            f"{where}: mpp sources disagree by more than {rel_tol:.0%}: {_fmt(good)}; "
            f"using {order[0]}={chosen:.4g} (override with --slide-mpp)"
        )
    return chosen, warnings


__all__ = ["PLAUSIBLE", "PRIORITY", "check_mpp", "mpp_sources"]
