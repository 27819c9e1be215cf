"""Per-patch scores: fractions of a mask under each patch (integral image, vectorised) and
full-resolution quality measures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .config import Config
    from .geometry import PatchGeometry


@dataclass
class ScoreContext:
    """Everything a scorer may need about the image being tiled.

    Attributes
    ----------
    config : the resolved run config.
    domain : the ``--domain`` name.
    geometry : patch geometry (level, sizes, mpp).
    rgb : (h, w, 3) uint8 low-resolution view the mask was computed on.
    mask : (h, w) bool refined foreground mask at the same scale.
    mask_downsample : level-0 px per mask px.
    exclusions : named (h, w) bool artefact masks (e.g. ``"pen"``).
    extra : free-form data plugins can share.
    """

    config: Config
    domain: str
    geometry: PatchGeometry
    rgb: np.ndarray
    mask: np.ndarray
    mask_downsample: float
    exclusions: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
