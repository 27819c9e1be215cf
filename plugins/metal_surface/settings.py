"""``plugin.metal_surface`` settings, validated with pydantic (unknown keys are errors)."""

from __future__ import annotations

from pathlib import Path
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
    scorers: list[Literal["defect", "normal"]] = Field(
        default_factory=lambda: ["defect", "normal"],  # type: ignore[arg-type]
        description="'defect': classical local contrast (defect, local_contrast); 'normal': "
        "distance from normal texture (normal, review) and defect candidates",
    )
    cell: int | None = Field(
        None, ge=4, le=256, description="side (px) of the cells of the normal-texture map "
        "(default: an eighth of the patch, 8-64 px)",
    )
    normal_model: Path | None = Field(
        None, description="a model of normal texture from `gigapatch fit-normal` (default: "
        "fitted on each scan itself)",
    )
    threshold: float = Field(
        4.0, gt=0, description="defect cells: normal distance above the scan's median by this "
        "many times its spread (MAD)",
    )
    min_distance: float = Field(
        10.0, ge=0, description="...and above this distance from normal in any case",
    )
    merge_overlap: float = Field(
        0.1, gt=0, le=1, description="defect records: merge candidates whose boxes (grown by "
        "two cells) overlap by more than this share of the smaller box",
    )
    voc: bool = Field(
        True, description="label patches with the Pascal-VOC boxes of <image>.xml beside the "
        "image, when there is one (columns label, label_overlap)",
    )
    label_overlap: float = Field(
        0.5, gt=0, le=1, description="a patch takes the class of the box overlapping it most "
        "when that box covers this share of the patch or of itself, else 'normal'",
    )
    folder_labels: bool = Field(
        False, description="label every patch with the name of its image's folder (class folders)",
    )
    defects: bool = Field(
        True, description="write <id>_defects.csv, .geojson and .xml: one record per defect "
        "candidate, in level-0 px",
    )
    review: bool = Field(
        True, description="write <id>_review.png: kept patches, true boxes and the score heatmap",
    )


def settings(config: Config) -> MetalSettings:
    """The validated ``plugin.metal_surface`` settings of ``config``.

    Raises a one-line :class:`gigapatch.ConfigError` on an unknown key or a bad value.
    """
    return plugin_settings(config, DOMAIN, MetalSettings)
