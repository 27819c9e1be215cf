"""``plugin.pathology`` settings, validated with pydantic (unknown keys are errors)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gigapatch import Config, plugin_settings

DOMAIN = "pathology"
PenColor = Literal["blue", "green", "black", "red"]
#: the marker inks found unless the config says otherwise
DEFAULT_PENS: tuple[PenColor, ...] = ("blue", "green", "black")


class PathologySettings(BaseModel):
    """Tissue, marker-ink and blur settings of the pathology domain."""

    model_config = ConfigDict(extra="forbid")

    pen_colors: list[PenColor] = Field(
        default_factory=lambda: list(DEFAULT_PENS),
        description="marker inks to find (add 'red' for red markers; red blood cells look alike)",
    )
    pen_grow: int = Field(0, ge=0, description="px the ink mask is grown by")
    max_pen: float | None = Field(
        0.05, ge=0, le=1, description="reject ('pen') patches with more marker ink than this"
    )
    pixel_foreground: bool = Field(
        True, description="measure the candidates' tissue and ink on their full-resolution pixels"
    )
    blur_relative: float = Field(
        0.35, ge=0,
        description="a tissue block is blurred below this x the slide's median focus (0 = off)",
    )
    max_blur: float = Field(
        0.5, ge=0, le=1, description="reject ('blur') patches whose blurred tissue share is >= this"
    )
    dark_grey: float = Field(
        45.0, ge=0, le=255, description="darker grey than this is never tissue (debris, shadows)"
    )


def settings(config: Config) -> PathologySettings:
    """The validated ``plugin.pathology`` settings of ``config`` (one-line ConfigError otherwise)."""
    return plugin_settings(config, DOMAIN, PathologySettings)
