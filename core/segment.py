"""Segmentation of a foreground mask into connected regions with holes (contour hierarchy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Region:
    """One connected foreground region, in level-0 pixel coordinates.

    Attributes
    ----------
    exterior : (K, 2) float64 array of x, y vertices of the outer contour (level-0 px).
    holes : list of (K_i, 2) float64 arrays, one per hole.
    label : integer id, 0-based, stable within one image.
    properties : free-form (e.g. a classification name imported from QuPath).
    """

    exterior: np.ndarray
    holes: list[np.ndarray] = field(default_factory=list)
    label: int = 0
    properties: dict[str, Any] = field(default_factory=dict)

    def to_shapely(self):  # -> shapely.Polygon
        import shapely

        return shapely.Polygon(self.exterior, [h for h in self.holes if len(h) >= 3])

    @property
    def area(self) -> float:
        """Area in level-0 px^2 (exterior minus holes)."""
        return float(self.to_shapely().area)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in level-0 px."""
        x, y = self.exterior[:, 0], self.exterior[:, 1]
        return float(x.min()), float(y.min()), float(x.max()), float(y.max())
