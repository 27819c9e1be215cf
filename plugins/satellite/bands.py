"""Band roles: which band of a raster is red, green, blue, near infrared and short-wave infrared.

A role map is decided once per image, from the first source that gives one:

1. the user: ``plugin.satellite.bands`` (1-based ``R,G,B[,NIR[,SWIR1]]``; one band is grey);
2. the user's sensor preset (``plugin.satellite.sensor``: ``landsat8``, ``landsat7``,
   ``sentinel2``);
3. the file: colour interpretations red / green / blue (and a single undefined band beside them
   read as near infrared), or band descriptions naming the role (``red``, ``nir``, ``B04``...);
4. the file name: a Landsat or Sentinel-2 product id (``LC08_L1TP_...``, ``S2A_MSIL2A_...``)
   selects that sensor's preset;
5. else the first three bands (not alpha) as red, green, blue.

A sensor preset knows the band order of its products by band count: bands are stored in band
number order, which is wavelength order, so a three-band subset of the visible bands is blue,
green, red and a four-band one blue, green, red, near infrared; the full stacks use the sensor's
own numbers. It also knows the product's fill value (0: Landsat Collection 1/2, Sentinel-2) and
the scale from digital numbers to reflectance (Landsat 8/9 Level-1 TOA: 2e-5 x DN - 0.1; Level-2
surface reflectance: 2.75e-5 x DN - 0.2; Sentinel-2: DN / 10000).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Sensor = Literal["landsat8", "landsat7", "sentinel2"]
SENSORS: tuple[Sensor, ...] = ("landsat8", "landsat7", "sentinel2")
ROLES = ("red", "green", "blue", "nir", "swir1")

#: per sensor, band count -> 1-based (red, green, blue, nir, swir1) (0 = the role is absent)
PRESETS: dict[str, dict[int, tuple[int, int, int, int, int]]] = {
    # OLI: B1 coastal, B2 blue, B3 green, B4 red, B5 NIR, B6 SWIR1, B7 SWIR2 (B8 pan, B9 cirrus)
    "landsat8": {3: (3, 2, 1, 0, 0), 4: (3, 2, 1, 4, 0), 5: (3, 2, 1, 4, 5), 6: (3, 2, 1, 4, 5),
                 7: (4, 3, 2, 5, 6), 8: (4, 3, 2, 5, 6), 9: (4, 3, 2, 5, 6), 10: (4, 3, 2, 5, 6),
                 11: (4, 3, 2, 5, 6)},
    # TM / ETM+: B1 blue, B2 green, B3 red, B4 NIR, B5 SWIR1, B6 thermal, B7 SWIR2
    "landsat7": {3: (3, 2, 1, 0, 0), 4: (3, 2, 1, 4, 0), 5: (3, 2, 1, 4, 5), 6: (3, 2, 1, 4, 5),
                 7: (3, 2, 1, 4, 5), 8: (3, 2, 1, 4, 5)},
    # MSI: B1, B2 blue, B3 green, B4 red, B5-B7 red edge, B8 NIR, B8A, B9, (B10), B11 SWIR1, B12
    "sentinel2": {3: (3, 2, 1, 0, 0), 4: (3, 2, 1, 4, 0), 12: (4, 3, 2, 8, 11),
                  13: (4, 3, 2, 8, 12)},
}
#: fill value of every band of the sensor's products
SENSOR_NODATA = {"landsat8": 0.0, "landsat7": 0.0, "sentinel2": 0.0}
#: (scale, offset) from digital number to reflectance, per sensor and processing level
SENSOR_REFLECTANCE = {
    ("landsat8", "L1"): (2e-5, -0.1), ("landsat8", "L2"): (2.75e-5, -0.2),
    ("landsat7", "L2"): (2.75e-5, -0.2),
    ("sentinel2", "L1"): (1e-4, 0.0), ("sentinel2", "L2"): (1e-4, 0.0),
}

#: reflectance sources that are a data type's guess, not a known scale
GUESSED_SCALES = ("8-bit / 255", "values as stored")

#: Landsat Collection product id (LC08_L1TP_...), Sentinel-2 product name (S2A_MSIL2A_...)
_LANDSAT_ID = re.compile(r"^L([COTEM])0?([4-9])_(L1|L2)", re.IGNORECASE)
_SENTINEL_ID = re.compile(r"^S2[ABCD]_MSI(L1C|L2A)", re.IGNORECASE)

#: band description (lower case, stripped) -> role
_NAMES = {
    "red": "red", "r": "red", "b04": "red", "b4": "red", "sr_b4": "red",
    "green": "green", "g": "green", "b03": "green", "b3": "green", "sr_b3": "green",
    "blue": "blue", "b": "blue", "b02": "blue", "b2": "blue", "sr_b2": "blue",
    "nir": "nir", "near infrared": "nir", "near-infrared": "nir", "nir08": "nir",
    "b08": "nir", "b8": "nir", "sr_b5": "nir",
    "swir1": "swir1", "swir16": "swir1", "swir 1": "swir1", "b11": "swir1", "sr_b6": "swir1",
}


@dataclass(frozen=True)
class BandRoles:
    """1-based band index of each role of one raster, and where the choice came from.

    Attributes
    ----------
    red, green, blue : shown as R, G, B (all three equal for a grey band).
    nir, swir1 : near infrared and short-wave infrared 1 (~1.6 um), or None.
    source : ``"plugin.satellite.bands"``, ``"sensor <name>"``, ``"colour interpretation"``,
        ``"band descriptions"``, ``"file name (<sensor>)"`` or ``"first bands"``.
    sensor : the sensor preset in force (user's or the file name's), or None.
    level : the product's processing level from its name (``"L1"``, ``"L2"``) or None.
    """

    red: int
    green: int
    blue: int
    nir: int | None = None
    swir1: int | None = None
    source: str = "first bands"
    sensor: str | None = None
    level: str | None = None
    alpha: tuple[int, ...] = field(default=())

    @property
    def rgb(self) -> tuple[int, int, int]:
        return (self.red, self.green, self.blue)

    def indexes(self) -> tuple[int, ...]:
        """The distinct bands the roles name, in role order (R, G, B, NIR, SWIR1)."""
        out: list[int] = []
        for b in (self.red, self.green, self.blue, self.nir, self.swir1):
            if b is not None and b not in out:
                out.append(b)
        return tuple(out)

    def as_dict(self) -> dict[str, Any]:
        return {r: getattr(self, r) for r in ROLES} | {"source": self.source,
                                                        "sensor": self.sensor}


def sensor_from_name(name: str) -> tuple[str | None, str | None]:
    """``(sensor preset, processing level)`` told by a Landsat / Sentinel-2 product name, or
    ``(None, None)``. ``LC08_L1TP_...`` -> ``("landsat8", "L1")``, ``LE07_L2SP...`` ->
    ``("landsat7", "L2")``, ``S2B_MSIL2A_...`` -> ``("sentinel2", "L2")``."""
    m = _LANDSAT_ID.match(name)
    if m:
        mission = int(m.group(2))
        return ("landsat8" if mission >= 8 else "landsat7"), m.group(3).upper()
    m = _SENTINEL_ID.match(name)
    if m:
        return "sentinel2", "L1" if m.group(1).upper() == "L1C" else "L2"
    return None, None


def _from_tuple(t: tuple[int, ...], count: int, source: str, **kw: Any) -> BandRoles:
    """Roles from ``(R, G, B[, NIR[, SWIR1]])``, 0 meaning absent; ValueError naming the
    problem when a band is out of range."""
    bad = [b for b in t if not 0 <= b <= count] + [b for b in t[:3] if b == 0]
    if bad or len(t) not in (1, 3, 4, 5):
        raise ValueError(f"bands {','.join(map(str, t))} do not name R,G,B[,NIR[,SWIR1]] of "
                         f"its {count} bands")
    if len(t) == 1:
        t = t * 3
    nir = t[3] if len(t) > 3 and t[3] else None
    swir = t[4] if len(t) > 4 and t[4] else None
    return BandRoles(t[0], t[1], t[2], nir, swir, source=source, **kw)


def preset_roles(sensor: str, count: int, level: str | None = None,
                 source: str | None = None) -> BandRoles:
    """The roles of a ``count``-band product of ``sensor`` (ValueError for a count the preset
    does not know)."""
    table = PRESETS[sensor]
    if count not in table:
        known = ", ".join(str(k) for k in sorted(table))
        raise ValueError(f"sensor {sensor} has no band layout for {count} bands (known: {known}); "
                         "name the bands with plugin.satellite.bands=R,G,B[,NIR[,SWIR1]]")
    return _from_tuple(table[count], count, source or f"sensor {sensor}", sensor=sensor,
                       level=level)


def _from_file(colorinterp: list[str], descriptions: list[str | None], count: int,
               alpha: list[int]) -> BandRoles | None:
    ci = [c.lower() for c in colorinterp]
    if all(c in ci for c in ("red", "green", "blue")):
        r, g, b = (ci.index(c) + 1 for c in ("red", "green", "blue"))
        rest = [i for i in range(1, count + 1) if i not in (r, g, b) and i not in alpha]
        nir = rest[0] if len(rest) == 1 and ci[rest[0] - 1] in ("undefined", "gray") else None
        named = _named(descriptions)
        nir = named.get("nir", nir)
        return BandRoles(r, g, b, nir, named.get("swir1"), source="colour interpretation")
    named = _named(descriptions)
    if all(c in named for c in ("red", "green", "blue")):
        return BandRoles(named["red"], named["green"], named["blue"], named.get("nir"),
                         named.get("swir1"), source="band descriptions")
    return None


def _named(descriptions: list[str | None]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, d in enumerate(descriptions, start=1):
        role = _NAMES.get((d or "").strip().lower())
        if role is not None and role not in out:
            out[role] = i
    return out


def choose_roles(
    count: int,
    colorinterp: list[str],
    descriptions: list[str | None],
    file_name: str,
    bands: list[int] | tuple[int, ...] | None = None,
    sensor: str | None = None,
) -> BandRoles:
    """Decide the band roles of a raster (see the module docstring for the order).

    Parameters
    ----------
    count : number of bands.
    colorinterp : colour interpretation name of every band (``"red"``, ``"alpha"``...).
    descriptions : GDAL band descriptions (None where unset).
    file_name : the file's name (a product id names its sensor).
    bands : the user's ``R,G,B[,NIR[,SWIR1]]`` (1-based), or None.
    sensor : the user's sensor preset, or None.

    Raises
    ------
    ValueError : a band out of range, or a preset without a layout for ``count`` bands.
    """
    if count == 0:
        raise ValueError("the raster has no bands")
    alpha = [i + 1 for i, c in enumerate(colorinterp) if c.lower() == "alpha"]
    named_sensor, level = sensor_from_name(file_name)
    if bands:
        roles = _from_tuple(tuple(int(b) for b in bands), count, "plugin.satellite.bands",
                            sensor=sensor or named_sensor, level=level)
    elif sensor:
        roles = preset_roles(sensor, count, level)
    else:
        found = _from_file(colorinterp, descriptions, count, alpha)
        if found is not None:
            roles = found
        elif named_sensor is not None and count in PRESETS[named_sensor]:
            roles = preset_roles(named_sensor, count, level, f"file name ({named_sensor})")
        else:
            data = [b for b in range(1, count + 1) if b not in alpha] or [1]
            r, g, b = (data[0], data[1], data[2]) if len(data) >= 3 else (data[0],) * 3
            roles = BandRoles(r, g, b, source="first bands")
    return BandRoles(roles.red, roles.green, roles.blue, roles.nir, roles.swir1, roles.source,
                     roles.sensor, roles.level if roles.level else level, tuple(alpha))


def reflectance_scale(
    roles: BandRoles, dtype: str, gdal_scale: tuple[float, float] | None,
    user: tuple[float | None, float | None] = (None, None),
) -> tuple[float, float, str]:
    """``(scale, offset, source)`` turning a band's values into reflectance for the masks.

    In order: the user's ``reflectance_scale`` / ``reflectance_offset``; the file's own GDAL
    scale and offset (when not 1 and 0); the sensor preset's; else by data type: 8-bit values
    / 255 (display values), 16-bit / 10000 (the common reflectance x 10000 convention), floats
    as they are.
    """
    if user[0] is not None:
        return float(user[0]), float(user[1] or 0.0), "plugin.satellite.reflectance_scale"
    if gdal_scale is not None and gdal_scale != (1.0, 0.0):
        return gdal_scale[0], gdal_scale[1], "file scale/offset"
    key = (roles.sensor or "", roles.level or "L1")
    if key in SENSOR_REFLECTANCE:
        s, o = SENSOR_REFLECTANCE[key]
        return s, o, f"sensor {roles.sensor} {key[1]}"
    if dtype == "uint8":
        return 1 / 255, 0.0, "8-bit / 255"
    if dtype in ("uint16", "int16"):
        return 1e-4, 0.0, "16-bit / 10000"
    return 1.0, 0.0, "values as stored"


__all__ = [
    "GUESSED_SCALES",
    "PRESETS",
    "ROLES",
    "SENSORS",
    "BandRoles",
    "choose_roles",
    "preset_roles",
    "reflectance_scale",
    "sensor_from_name",
]
