"""The typed per-image context: the state of one image as it moves through the pipeline.

One :class:`ImageContext` is made for every image a run tiles and handed to every hook that needs
per-image state. The pipeline fills it in stage order (image -> view -> mask -> regions -> scores);
a field is None until its stage has run. Plugins keep what they compute once per image in
``context.cache`` (see :meth:`ImageContext.plugin_cache`), never in module-level caches, so two
images (or two threads tiling two images) never see each other's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from gigapatch.config import Config
    from gigapatch.io.geometry import PatchGeometry
    from gigapatch.io.image import Image
    from gigapatch.tiling.segment import Region


@dataclass
class ImageContext:
    """Everything known about the image being tiled, stage by stage.

    Attributes
    ----------
    image : the open image.
    config : the resolved run config (``config.domain`` is the active domain).
    geometry : patch geometry (level, sizes, mpp), set before the mask is computed.
    rgb : (h, w, 3) uint8 read-only low-resolution view the mask is computed on.
    mask_downsample : level-0 px per pixel of ``rgb`` and of the masks.
    mask : (h, w) bool refined foreground mask, artefacts removed (after refinement).
    exclusions : named (h, w) bool artefact masks (e.g. a plugin's ``"pen"``).
    regions : connected foreground regions in level-0 px (after segmentation).
    region_labels : (h, w) int32 label image of ``regions`` on the mask grid, kept to the mask
        (0 = background or no region, ``k + 1`` = ``regions[k]``), set with ``regions``.
    region_boxes : (n_regions, 4) int64 tight half-open ``x0, y0, x1, y1`` mask-px box of each
        region's pixels in ``region_labels`` (all zero for none), set with ``regions``.
    region_areas : (n_regions,) int64 pixels of each region in ``region_labels``.
    pixels : what every ``gigapatch_score_pixels`` returned, name -> (N, ...) array over the
        candidates, in candidate order (filled once every candidate has been read).
    cache : per-image scratch space for plugins; use :meth:`plugin_cache`.
    """

    image: Image
    config: Config
    geometry: PatchGeometry | None = None
    rgb: np.ndarray | None = None
    mask_downsample: float = 1.0
    mask: np.ndarray | None = None
    exclusions: dict[str, np.ndarray] = field(default_factory=dict)
    regions: list[Region] = field(default_factory=list)
    region_labels: np.ndarray | None = None
    region_boxes: np.ndarray | None = None
    region_areas: np.ndarray | None = None
    pixels: dict[str, np.ndarray] = field(default_factory=dict)
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        """The active domain (``config.domain``)."""
        return self.config.domain

    def plugin_cache(self, name: str) -> dict[str, Any]:
        """The scratch dict of plugin ``name`` for this image (created empty on first use)."""
        return self.cache.setdefault(name, {})



ScoreContext = ImageContext  # the name before the context became per image (kept for plugins)
__all__ = ["ImageContext", "ScoreContext"]
