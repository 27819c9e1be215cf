"""The built-in defaults, registered like any plugin (entry point ``builtin``).

Each default is ``trylast`` where a domain plugin may replace it, so a domain plugin always gets
the first word. The ``generic`` domain is these defaults alone: Otsu on saturation, connected
regions, and the sharpness of every candidate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gigapatch.plugin.hookspecs import hookimpl

if TYPE_CHECKING:
    import numpy as np

    from gigapatch.io.image import Image
    from gigapatch.plugin.context import ImageContext
    from gigapatch.tiling.segment import Region


@hookimpl
def gigapatch_domains() -> list[dict[str, Any]]:
    return [
        {
            "name": "generic",
            "description": "any RGB image: Otsu on saturation, sharpness, no artefact scoring",
            "config": None,
            "region_class": "Foreground",
        }
    ]


@hookimpl(trylast=True)
def gigapatch_open_image(path: Path, domain: str | None) -> Image | None:
    from gigapatch.io.readers import open_builtin

    return open_builtin(path)


@hookimpl(trylast=True)
def gigapatch_foreground_mask(rgb: np.ndarray, context: ImageContext) -> np.ndarray:
    from gigapatch.tiling.mask import otsu_mask_for

    return otsu_mask_for(rgb, context.config.mask)


@hookimpl(trylast=True)
def gigapatch_segment(mask: np.ndarray, context: ImageContext) -> list[Region]:
    from gigapatch.tiling.segment import segment_mask

    return segment_mask(mask, context.mask_downsample)


@hookimpl
def gigapatch_reads_pixels(context: ImageContext) -> bool:
    """The sharpness score reads every candidate (``score.sharpness``)."""
    return context.config.score.sharpness


@hookimpl
def gigapatch_score_pixels(patches: np.ndarray, context: ImageContext) -> dict[str, np.ndarray] | None:
    """Focus of every candidate: ``sharpness`` (variance of the Laplacian), ``tenengrad``."""
    if not context.config.score.sharpness:
        return None
    from gigapatch.tiling.score import sharpness_batch

    return sharpness_batch(patches)


@hookimpl(tryfirst=True)
def gigapatch_patch_columns(coords: np.ndarray, context: ImageContext) -> dict[str, np.ndarray] | None:
    """``partial`` (bool) with ``patch.edge`` ``pad`` or ``shift``: the patch reaches past the
    image edge (its outside part is padding: a ``pad`` grid's last row / column, or an image
    smaller than a patch). Called first, so that a domain's own ``partial`` (one that also knows
    the image's no-data) replaces it."""
    if context.config.patch.edge not in ("pad", "shift") or context.geometry is None:
        return None
    from gigapatch.io.geometry import patches_inside

    size = context.geometry.size_level0
    return {"partial": ~patches_inside(coords, size, context.image.dimensions)}


@hookimpl(trylast=True)
def gigapatch_train(config: dict[str, Any], data: Path, out: Path, domain: str | None) -> dict[str, Any]:
    """The generic trainer, for any domain whose plugin does not train: ``config`` as given over
    the generic defaults (``labels.csv`` of ``image_id, label`` beside ``images/``)."""
    from gigapatch.training import train

    return train(config, data, out)
