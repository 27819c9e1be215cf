"""Flags that plugins add to ``gigapatch tile`` (``gigapatch_tile_options``): :class:`TileOption`.

A plugin describes a flag; the core adds it to ``gigapatch tile`` (its ``--help`` lists it) and
turns what the user gives into config overrides, exactly as ``--set KEY=VALUE`` would (the value
is read as YAML). An option belongs to a ``domain``: it sets that domain's config only, so a
satellite flag on a pathology slide leaves the slide's config as it was. A plugin never parses
the command line itself and the core never names a domain's options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: core flags whose values plugins may extend (``--format geotiff``, ``--geojson wgs84``)
EXTENSIBLE_FLAGS = ("--format", "--geojson")


@dataclass(frozen=True)
class TileOption:
    """One ``gigapatch tile`` flag declared by a plugin.

    Either a **new flag** (``key`` given): ``--bands 3,2,1`` sets ``key`` to the value read as
    YAML, like ``--set plugin.satellite.bands=3,2,1``; or **new values of a core flag**
    (``values`` given, ``flags`` one of :data:`EXTENSIBLE_FLAGS`): ``--format geotiff`` or
    ``--geojson wgs84`` apply ``values[value]``, a mapping of dotted config keys to values.

    Attributes
    ----------
    flags : the flag and its aliases, each starting with ``--`` (``("--bands",)``); for new
        values, the one core flag they extend (``("--format",)``).
    key : the dotted config key a new flag sets (``"plugin.satellite.bands"``); None for new
        values of a core flag.
    help : one or two sentences for ``gigapatch tile --help``.
    metavar : what the value looks like in the help (``"R,G,B[,NIR[,SWIR1]]"``).
    choices : the only values a new flag accepts (checked before any work; None: any value the
        setting itself accepts).
    values : new values of a core flag -> the config overrides each one applies
        (``{"wgs84": {"plugin.satellite.footprints": ["wgs84"]}}``).
    domain : the domain whose config the option sets (only images tiled as that domain see
        it); None: every image's config, like ``--set``.
    """

    flags: tuple[str, ...]
    key: str | None = None
    help: str = ""
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    domain: str | None = None

    def __post_init__(self) -> None:
        from gigapatch.errors import ConfigError

        flags = (self.flags,) if isinstance(self.flags, str) else tuple(self.flags)
        object.__setattr__(self, "flags", flags)
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        bad = [f for f in flags if not (f.startswith("--") and len(f) > 2 and " " not in f
                                        and "=" not in f)]
        if not flags or bad:
            raise ConfigError(f"TileOption flags {list(flags)!r}: each must look like --name")
        if (self.key is None) == (not self.values):
            raise ConfigError(f"TileOption {flags[0]}: give a config key (a new flag) or values "
                              "(new values of a core flag), not both or neither")
        if self.values and len(flags) != 1:
            raise ConfigError(f"TileOption {list(flags)!r}: new values extend one core flag")

    @property
    def name(self) -> str:
        """The option's first flag (``--bands``)."""
        return self.flags[0]


__all__ = ["EXTENSIBLE_FLAGS", "TileOption"]
