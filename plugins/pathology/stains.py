"""Stain colours in optical density, and H&E texture re-stained as IHC for synthetic slides.

Optical density ``od = -ln(I / I_glass)`` of a stained pixel is a sum of the stains' colour
vectors weighted by their amounts (Beer-Lambert; Ruifrok & Johnston's colour deconvolution,
the vectors of :func:`skimage.color.rgb2hed`). :func:`ihc_from_he` splits H&E texture into its
haematoxylin and eosin amounts and draws it again as an IHC slide: haematoxylin counterstain
(blue to blue-grey, often weak) and brown DAB on the positive cells, with no eosin, so that the
tissue masks can be measured on IHC with a known truth.
"""

from __future__ import annotations

import numpy as np

#: optical-density colour (R, G, B) of haematoxylin, eosin and DAB (Ruifrok & Johnston)
HAEMATOXYLIN = np.array([0.65, 0.70, 0.29], np.float32)
EOSIN = np.array([0.07, 0.99, 0.11], np.float32)
DAB = np.array([0.27, 0.57, 0.78], np.float32)
#: a greyer haematoxylin, as counterstained IHC slides often show it (the median colour of the
#: tissue of the real IHC slide kidney-48-5.tif: R, G, B transmittance ~0.44, 0.45, 0.53)
GREY_HAEMATOXYLIN = np.array([0.63, 0.60, 0.49], np.float32)


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` (..., 3) scaled to unit length along the last axis."""
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def stain_amounts(od: np.ndarray, stains: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Amounts of two stains in optical densities ``od`` (..., 3): (..., 2) float32, the least-
    squares split of each pixel along the two (unit) colours plus a residual orthogonal to both
    (colour deconvolution with a third vector ``a x b``)."""
    a, b = unit(stains[0]), unit(stains[1])
    m = np.stack([a, b, unit(np.cross(a, b))])
    conc = np.asarray(od, np.float32) @ np.linalg.inv(m).astype(np.float32)
    return conc[..., :2]


def ihc_from_he(tiles_od: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """H&E texture tiles redrawn as IHC (haematoxylin counterstain + DAB), one stain per slide.

    Per slide, drawn from ``rng``: the counterstain's strength (0.5-1.1 of the H&E
    haematoxylin: IHC counterstains are often light) and colour (from the classic blue to 80 %
    of the way to the grey-blue of :data:`GREY_HAEMATOXYLIN`); a faint background in the stroma
    (0.2-0.5 of the eosin, counterstain-coloured, plus up to 0.12 of non-specific DAB); and the positive cells:
    DAB on the haematoxylin-rich cells (0.4-1.3 x their density) inside smooth patches that take
    2-40 % of the tissue, varying tile to tile.

    Parameters
    ----------
    tiles_od : (K, P, P, 3) float32 optical density of H&E texture tiles.
    rng : random generator (the slide's).

    Returns
    -------
    (K, P, P, 3) float32 optical density of the same tissue, IHC-stained.
    """
    import cv2

    amounts = np.clip(stain_amounts(tiles_od, (HAEMATOXYLIN, EOSIN)), 0.0, None)
    h, e = amounts[..., 0], amounts[..., 1]
    t = float(rng.uniform(0.0, 0.8))
    counter = unit((1 - t) * unit(HAEMATOXYLIN) + t * unit(GREY_HAEMATOXYLIN))
    strength = float(rng.uniform(0.5, 1.1))
    stroma = float(rng.uniform(0.2, 0.5))
    nonspecific = float(rng.uniform(0.0, 0.12))
    dab_gain = float(rng.uniform(0.4, 1.3))
    positive = float(rng.uniform(0.02, 0.4))
    k, p = tiles_od.shape[:2]
    out = np.empty_like(tiles_od, dtype=np.float32)
    for i in range(k):
        # smooth positive patches: the top `share` of a smooth random field
        field = cv2.GaussianBlur(rng.standard_normal((p, p)).astype(np.float32), (0, 0), p / 12)
        share = float(np.clip(positive * rng.uniform(0.3, 1.7), 0.0, 0.95))
        pos = field > np.quantile(field, 1.0 - share) if share > 0 else np.zeros((p, p), bool)
        cells = cv2.GaussianBlur(h[i], (0, 0), 1.0)
        dab = dab_gain * cells * pos
        od = (strength * (h[i] + stroma * e[i]))[..., None] * counter
        od += (nonspecific * e[i] + dab)[..., None] * unit(DAB)
        out[i] = od
    return out


__all__ = ["DAB", "EOSIN", "GREY_HAEMATOXYLIN", "HAEMATOXYLIN", "ihc_from_he", "stain_amounts",
           "unit"]
