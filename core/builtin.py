"""Built-in default hook implementations, registered like any plugin.

Each default is ``trylast`` so that a domain plugin always gets the first word; each imports its
stage lazily so that loading the plugin manager costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl

if TYPE_CHECKING:
    import numpy as np

    from .config import Config
    from .image import Image
    from .score import ScoreContext
    from .segment import Region


@hookimpl
def gigapatch_domains() -> list[dict[str, Any]]:
    return [
        {
            "name": "generic",
            "description": "any RGB image: Otsu on saturation, no artefact scoring",
            "config": None,
        }
    ]


@hookimpl(trylast=True)
def gigapatch_open_image(path: Path, domain: str | None) -> Image | None:
    from .readers import open_builtin

    return open_builtin(path)


@hookimpl(trylast=True)
def gigapatch_foreground_mask(rgb: np.ndarray, domain: str | None, config: Config) -> np.ndarray:
    from .mask import otsu_saturation_mask

    m = config.mask
    return otsu_saturation_mask(
        rgb,
        median_ksize=m.median_ksize,
        threshold=m.threshold,
        min_threshold=m.min_threshold,
        max_brightness=m.max_brightness,
        min_brightness=m.min_brightness,
    )


@hookimpl(trylast=True)
def gigapatch_segment(
    mask: np.ndarray, downsample: float, domain: str | None, config: Config
) -> list[Region]:
    from .segment import segment_mask

    return segment_mask(mask, downsample)


@hookimpl
def gigapatch_score_pixels(patches: np.ndarray, context: ScoreContext) -> dict[str, np.ndarray]:
    """Focus of every candidate: ``sharpness`` (variance of the Laplacian), ``tenengrad``."""
    from .score import sharpness_batch

    return sharpness_batch(patches)


@hookimpl(trylast=True)
def gigapatch_train(config: dict[str, Any], data: Path, out: Path, domain: str | None) -> dict[str, Any]:
    from .training.trainer import train

    return train(config, data, out)
