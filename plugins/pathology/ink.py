"""Marker ink (pen) on a slide's low-resolution view, found by colour.

H&E and IHC stains are pink, purple and brown (red above green), while blue and green markers
have green at or above red, and black ink absorbs all channels alike. Over tissue the ink is
translucent, so the rules are ratios. :func:`pen_evidence` applies the rules to balanced pixels,
:func:`pen_from_evidence` turns the evidence into a mask, :func:`pen_mask` does both on a view.

Settings (``plugin.pathology``): ``pen_colors`` (default blue, green, black; add ``red`` for red
markers), ``pen_grow``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gigapatch import hookimpl

from .components import drop_specks, hysteresis
from .settings import settings
from .view import ViewStats, bands, max_min_sat, view_bands, view_stats

DOMAINS = ("pathology",)
DEFAULT_PEN_COLORS = ("blue", "green", "black")
DEFAULT_PEN_GROW = 0
#: smallest strong-evidence component that seeds ink (px of the view)
DEFAULT_MIN_AREA = 3
#: black ink, near-opaque: a pixel whose most transmitted channel has at least this optical
#: density (strong evidence, < 22 % of the light; weak: < 27 %) and whose green is at least
#: ``OPAQUE_GR`` (weak: ``OPAQUE_GR_WEAK``) x its red is ink. Ink absorbs red and green alike
#: (green/red ~0.9-1.4 over tissue); H&E reaches such densities only where eosin and
#: haematoxylin pile up (nuclei clusters, folds), which absorb green far more (green/red
#: ~0.2-0.55 on synthetic slides with CMU-1 texture)
OPAQUE_OD = 1.5
OPAQUE_OD_WEAK = 1.3
OPAQUE_GR = 0.75
OPAQUE_GR_WEAK = 0.68
#: black ink over tissue (weak evidence): density above the slide's median tissue density
#: (:func:`gigapatch_pathology.view.tissue_density`) of at least ``EXCESS_OD`` in every channel,
#: min/max above ``EXCESS_RATIO``
EXCESS_OD = 0.8
EXCESS_RATIO = 0.7
#: blue ink, not haematoxylin (:func:`not_haematoxylin`): optical-density blue / green below
#: ``BLUE_BG`` or below red / green less ``BLUE_RG`` (weak evidence: the ``_WEAK`` figures)
BLUE_BG = 0.3
BLUE_RG = 0.7
BLUE_BG_WEAK = 0.33
BLUE_RG_WEAK = 0.6
#: black ink on slides without eosin (:func:`black_rules`): least ``min(od) / max(od)`` and
#: ``max(od)`` of strong evidence (the synthetic marker: 0.9 and 1.1-1.5 at the median of its
#: strokes; dense haematoxylin + DAB: 0.72-0.89 and ~1.0)
IHC_BLACK_RATIO = 0.88
IHC_BLACK_OD = 1.0
#: the least saturation any rule of a coloured ink asks for (its weak rule's)
INK_MIN_SAT = {"blue": 0.18, "green": 0.1, "red": 0.5}

InkKey = tuple[tuple[str, ...], int, int]


def ink_key(colors: tuple[str, ...], min_area: int = DEFAULT_MIN_AREA,
            grow: int = DEFAULT_PEN_GROW) -> InkKey:
    """The key of a :func:`pen_mask` result in :attr:`ViewStats.inks`."""
    return tuple(colors), int(min_area), int(grow)


def pen_evidence(
    f: np.ndarray, colors: tuple[str, ...],
    max_min_sat_f: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ref_od: np.ndarray | None = None,
    eosin: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Strong and weak ink evidence of balanced float32 pixels.

    Parameters
    ----------
    f : (..., 3) float32 pixels balanced on the glass (glass = 255).
    colors : inks looked for (see :func:`pen_mask`).
    max_min_sat_f : :func:`~gigapatch_pathology.view.max_min_sat` of ``f`` when the caller has it.
    ref_od : (3,) the slide's tissue density
        (:func:`~gigapatch_pathology.view.tissue_density`), for black ink over tissue.
    eosin : whether the slide's tissue carries eosin (:attr:`ViewStats.eosin`); without it
        (IHC) blue ink must also pass :func:`not_haematoxylin`.

    Returns
    -------
    strong, weak : (...) bool each.
    """
    cmax, cmin, sat = max_min_sat(f) if max_min_sat_f is None else max_min_sat_f
    # every rule needs some saturation (blue, green, red) or a dark channel (black): the rules
    # run on those pixels only (glass, most of a slide, has neither), with the same outcome
    low = [INK_MIN_SAT[c] for c in colors if c in INK_MIN_SAT]
    cand = sat > min(low) if low else np.zeros(sat.shape, bool)
    if "black" in colors:
        cand |= cmin < 165.0
    n = int(np.count_nonzero(cand))
    if n > 0.5 * cand.size:
        return pen_rules(f, colors, cmax, cmin, sat, ref_od, eosin)
    m = np.zeros(sat.shape, bool)
    weak = np.zeros(sat.shape, bool)
    if n:
        m[cand], weak[cand] = pen_rules(f[cand], colors, cmax[cand], cmin[cand], sat[cand], ref_od,
                                        eosin)
    return m, weak


def pen_rules(
    f: np.ndarray, colors: tuple[str, ...], cmax: np.ndarray, cmin: np.ndarray, sat: np.ndarray,
    ref_od: np.ndarray | None, eosin: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pen_evidence`'s rules on pixels ``f`` (..., 3) and their max, min and saturation."""
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    m = np.zeros(r.shape, bool)  # strong evidence
    weak = np.zeros(r.shape, bool)  # weaker evidence, kept where connected to strong
    if "blue" in colors:
        blue = (b - r > 30) & (g - r > -25) & (sat > 0.18)
        strong = (b - r > 40) & (g - r > -12) & (sat > 0.25)
        if not eosin and blue.any():  # ... and not bare haematoxylin, as blue on IHC slides
            sel, inky = blue.copy(), np.zeros(blue.shape, bool)
            blue[sel], inky[sel] = not_haematoxylin(f[sel])
            strong &= inky
        m |= strong
        weak |= blue
    if "green" in colors:
        m |= (g - r > 10) & (g - b > -5) & (sat > 0.15)
        weak |= (g - r > 0) & (g - b > -12) & (sat > 0.1)
    if "black" in colors:
        black_rules(f, cmin, ref_od, m, weak, eosin)
    if "red" in colors:
        m |= (r - g > 90) & (b - g < 0.2 * (r - g)) & (sat > 0.6)
        weak |= (r - g > 70) & (b - g < 0.3 * (r - g)) & (sat > 0.5)
    return m, weak


def not_haematoxylin(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weak and strong evidence that blue pixels ``f`` (n, 3) are marker ink, not haematoxylin.

    Without eosin (an IHC counterstain) haematoxylin is as blue as a marker. In optical density
    the marker absorbs red far more than green (its red / green ratio ~1.6), haematoxylin about
    as much (0.9-1.05), and its blue / green stays low (~0.2-0.35 over haematoxylin) where
    haematoxylin has 0.4-0.8: a pixel is ink when blue / green is below ``max(BLUE_BG, red /
    green - BLUE_RG)`` (weak: the ``_WEAK`` margins). Applied on slides without eosin only
    (:attr:`~gigapatch_pathology.view.ViewStats.eosin`): over H&E tissue the marker reads
    like haematoxylin by these ratios, and bare haematoxylin is never as blue there.

    Returns
    -------
    weak, strong : (n,) bool each (strong implies weak).
    """
    od = np.log(256.0 / (np.maximum(f, 0.0) + 1.0))
    g = np.maximum(od[:, 1], 1e-3)
    rg, bg = od[:, 0] / g, od[:, 2] / g
    return bg < np.maximum(BLUE_BG_WEAK, rg - BLUE_RG_WEAK), bg < np.maximum(BLUE_BG, rg - BLUE_RG)


def black_rules(f: np.ndarray, cmin: np.ndarray, ref_od: np.ndarray | None, m: np.ndarray,
                weak: np.ndarray, eosin: bool = True) -> None:
    """Black ink's rules (see :func:`pen_mask`) on pixels ``f`` (..., 3), or-ed into ``m`` (strong)
    and ``weak`` in place. Without eosin (IHC), where haematoxylin (absorbing red and green)
    over DAB (green and blue) adds up to a dark, nearly neutral density, strong evidence also
    needs ``min(od) / max(od)`` above ``IHC_BLACK_RATIO`` and ``max(od)`` above
    ``IHC_BLACK_OD`` (weak evidence, which counts only next to strong, is unchanged: layered
    strokes and soft stroke edges keep it)."""
    # optical density against the balanced glass (= 255); max/min OD = OD of min/max channel.
    # Every rule needs max OD > 0.45, i.e. a min channel below 162.2: the logs only there
    # (a min channel >= 165 has max OD <= 0.433)
    dark = cmin < 165.0
    if not dark.any():
        return
    r, g = f[..., 0], f[..., 1]
    od = np.log(256.0 / (np.maximum(f[dark], 0.0) + 1.0))
    o0, o1, o2 = od[:, 0], od[:, 1], od[:, 2]
    odmin = np.minimum(np.minimum(o0, o1), o2)
    odmax = np.maximum(np.maximum(o0, o1), o2)
    ratio = odmin / np.maximum(odmax, 1e-3)
    gr = (np.maximum(g[dark], 0.0) + 1.0) / (np.maximum(r[dark], 0.0) + 1.0)
    # ... or near-opaque in every channel, green no darker than red (OPAQUE_OD): a dense
    # felt-tip stroke or layered strokes, whose residual colour (sensor noise, the stain
    # under it) breaks the neutral-ratio rules
    strong = (((ratio > 0.88) & (odmax > 0.45)) | ((ratio > 0.8) & (odmax > 0.75))
              | ((ratio > 0.75) & (odmin > 0.8))
              | ((gr > OPAQUE_GR) & (odmin > OPAQUE_OD)))
    weak_ = (((ratio > 0.71) & (odmax > 1.0))
             | ((gr > OPAQUE_GR_WEAK) & (odmin > OPAQUE_OD_WEAK)))
    if not eosin:
        strong &= (ratio > IHC_BLACK_RATIO) & (odmax > IHC_BLACK_OD)
    m[dark] |= strong
    weak[dark] |= weak_
    if ref_od is not None:  # a grey density on top of the stain's
        ex = od - ref_od
        e0, e1, e2 = ex[:, 0], ex[:, 1], ex[:, 2]
        lo = np.minimum(np.minimum(e0, e1), e2)
        hi = np.maximum(np.maximum(e0, e1), e2)
        weak[dark] |= (lo > EXCESS_OD) & (lo > EXCESS_RATIO * hi)


def pen_mask(
    rgb: np.ndarray, colors: tuple[str, ...] = DEFAULT_PEN_COLORS,
    min_area: int = DEFAULT_MIN_AREA, grow: int = DEFAULT_PEN_GROW,
    stats: ViewStats | None = None,
) -> np.ndarray:
    """Marker ink on a low-resolution RGB view.

    Rules (after a 3 x 3 median; ``sat`` = (max - min) / max; ``od`` = optical density of each
    channel against the glass colour, :func:`~gigapatch_pathology.view.glass_rgb`):

    - blue: ``b - r > 40``, ``g - r > -12``, ``sat > 0.25`` (stains keep red well above
      green), and not haematoxylin, which without eosin (IHC, bare nuclei) is as blue: in
      optical density the marker absorbs red far more than green, or, over eosin, keeps
      blue / green low (:func:`not_haematoxylin`)
    - green (and teal tissue-marking dye): ``g - r > 10``, ``g - b > -5``, ``sat > 0.15``
    - black (neutral density, unlike any stain; bluish IHC haematoxylin comes close, so faint
      ink must be very neutral): ``min(od) / max(od)`` above 0.88 with ``max(od) > 0.45``, above
      0.8 with ``max(od) > 0.75``, or, over tissue, above 0.75 with ``min(od) > 0.8``; or
      near-opaque (``min(od) > 1.5``) with green at least 0.75 x red (a dense stroke over
      tissue, layered strokes: their residual colour breaks the neutral rules, but unlike
      stain they absorb green no more than red)
    - red (opt-in, red blood cells look alike): ``r - g > 90``, ``b - g < 0.2 (r - g)``,
      ``sat > 0.6``

    Weaker evidence (each threshold relaxed; for black ink also a grey density of >= 0.8 on
    top of the slide's median tissue density,
    :func:`~gigapatch_pathology.view.tissue_density`) counts where it is connected to strong
    evidence, so a stroke is followed over dark tissue. Components smaller than ``min_area`` px
    are dropped, the rest grown by ``grow`` px (1 also takes the soft edges of a stroke; 0, the
    default, keeps per-patch pen fractions unbiased).

    The rules run band by band: two bool planes are the full-size arrays, plus int32 labels
    when there is ink.

    Parameters
    ----------
    rgb : (h, w, 3) uint8.
    colors : which inks to look for.
    min_area : smallest ink component kept (px).
    grow : dilation radius (px).
    stats : the view's shared figures (:func:`~gigapatch_pathology.view.view_stats`): the
        result is looked up there and remembered (read-only); computed afresh when None.

    Returns
    -------
    (h, w) bool.
    """
    a = np.asarray(rgb)
    colors = tuple(colors)
    key = ink_key(colors, min_area, grow)
    if stats is not None and key in stats.inks:
        return stats.inks[key]
    s = ViewStats(a) if stats is None else stats
    h, w = a.shape[:2]
    glass = s.glass  # before the planes below: its temporaries are the larger ones
    ref = s.tissue_od if a.size and "black" in colors else None
    eosin = s.eosin if a.size and ("blue" in colors or "black" in colors) else True
    m = np.zeros((h, w), bool)  # strong evidence
    weak = np.zeros((h, w), bool)  # weaker evidence, kept where connected to strong
    for y0, y1, f in view_bands(a, glass):
        m[y0:y1], weak[y0:y1] = pen_evidence(f, colors, ref_od=ref, eosin=eosin)
    ink = pen_from_evidence(m, weak, min_area, grow)
    if stats is not None:
        remember_ink(stats, key, ink)
    return ink


def remember_ink(stats: ViewStats, key: InkKey, ink: np.ndarray) -> np.ndarray:
    """Keep ``ink`` as the view's :func:`pen_mask` of ``key`` (made read-only, so no caller can
    change what the next one gets)."""
    ink.setflags(write=False)
    stats.inks[key] = ink
    return ink


def pen_from_evidence(m: np.ndarray, weak: np.ndarray, min_area: int, grow: int) -> np.ndarray:
    """:func:`pen_mask` from its (h, w) bool strong and weak evidence (``weak`` is overwritten)."""
    import cv2

    h, w = m.shape
    if min_area > 1:  # specks are no seeds
        m = drop_specks(m, min_area)
    if m.any():  # hysteresis: ink continues where the evidence weakens (dark tissue under it)
        weak |= m
        m = hysteresis(weak, ((y0, y1, m[y0:y1]) for y0, y1 in bands(h, w)))
    del weak
    if not m.any():
        return m
    u8: np.ndarray = m.view(np.uint8)
    if grow > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        u8 = cv2.dilate(u8, k)
    return u8.astype(bool)


@hookimpl
def gigapatch_exclusion_masks(rgb: np.ndarray, context: Any) -> dict[str, np.ndarray] | None:
    """``{"pen": ink mask}`` for the pathology domain (None elsewhere)."""
    if context.domain not in DOMAINS:
        return None
    s = settings(context.config)
    ink = pen_mask(rgb, tuple(s.pen_colors), grow=s.pen_grow, stats=view_stats(context, rgb))
    return {"pen": ink}
