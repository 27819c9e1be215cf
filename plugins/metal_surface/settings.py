"""``plugin.metal_surface`` settings, validated with pydantic (unknown keys are errors)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gigapatch import Config, plugin_settings

DOMAIN = "metal_surface"


class MetalSettings(BaseModel):
    """Metal-vs-background masking and defect scoring settings."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # schema built on first use

    background: Literal["dark", "bright", "none"] = Field(
        "dark", description="the scanner background; 'none' = the scan is all metal"
    )
    dark_background_max: float = Field(
        60, ge=0, le=255, description="a dark background class's mean is below this"
    )
    bright_background_min: float = Field(
        195, ge=0, le=255, description="a bright background class's mean is above this"
    )
    min_separability: float = Field(
        0.85, ge=0, le=1, description="Otsu between-class / total grey variance needed to split"
    )
    defect_sigma: float = Field(0.25, gt=0, description="background blur sigma, in patch sizes")
    defect_percentile: float = Field(
        99, gt=0, le=100, description="percentile of |grey - background| within a patch"
    )


def settings(config: Config) -> MetalSettings:
    """The validated ``plugin.metal_surface`` settings of ``config``.

    Raises a one-line :class:`gigapatch.ConfigError` on an unknown key or a bad value.
    """
    return plugin_settings(config, DOMAIN, MetalSettings)
