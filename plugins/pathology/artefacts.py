"""Artefacts of stained slides: marker ink (pen), out-of-focus patches, glass/dark/grey areas.

Pen ink is found on the low-resolution view by colour: H&E and IHC stains are pink, purple and
brown (red above green), while blue and green markers have green at or above red, and black ink
absorbs all channels alike. Over tissue the ink is translucent, so the rules are ratios.

Blur is judged per block (4 x 4 per patch) and relative to the slide itself: fine detail over
coarse structure (:func:`block_focus`), against the median of the slide's tissue-dense blocks.
The ``blur`` score is the fraction of a patch's tissue that is out of focus;
selection rejects ``blur >= score.max_blur`` with reason ``"blur"``. The per-block focus comes
from the full-resolution pass (``gigapatch_score_pixels``), so candidates are read only once.

Settings: ``score.blur_relative`` (0 turns the blur score off) and ``score.max_blur``;
``config.plugin``: ``pen_colors`` (default blue, green, black; add ``red`` for red markers),
``pen_grow``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gigapatch import hookimpl

from .settings import settings
from .view import (
    _bands,
    _drop_small,
    _glass,
    _hysteresis,
    _max_min_sat,
    _median,
    _same_view,
    _view_bands,
    glass_dark_grey,
)

DOMAINS = ("pathology",)
DEFAULT_PEN_COLORS = ("blue", "green", "black")
DEFAULT_PEN_GROW = 0
#: block focus (:func:`block_focus`) below which a block is out of focus whatever the slide;
#: such blocks never set the slide's reference (in-focus H&E at 0.5 um/px: median ~2)
FOCUS_FLOOR = 0.3
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
#: (:func:`_tissue_od`) of at least ``EXCESS_OD`` in every channel, min/max above ``EXCESS_RATIO``
EXCESS_OD = 0.8
EXCESS_RATIO = 0.7
#: fewest tissue pixels (of the ~65k sampled) for a tissue reference density
MIN_REF_PIXELS = 300
#: candidates at least this dense in tissue set the slide's reference sharpness
REFERENCE_FOREGROUND = 0.9


@_same_view
def _tissue_od(rgb: np.ndarray) -> np.ndarray | None:
    """Median optical density (3,) float32 of the stained tissue of a view (white-balanced on
    its glass; ~65k pixels sampled), or None when it has too little tissue.

    Black ink over tissue adds a *neutral* density to the stain's: the pixel's density above
    this reference is grey (:func:`_pen_evidence`), where a denser stain (a fold, a nuclei
    cluster) adds density along the stain's own colour, green far above red and blue.
    """
    a = np.asarray(rgb)[:, :, :3]
    h, w = a.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / 6.5e4))))
    f = a[::step, ::step].reshape(-1, 3).astype(np.float32) * (255.0 / _glass(rgb))
    cmax, cmin, sat = _max_min_sat(f)
    t = (sat > 0.15) & (cmax > 120.0) & (cmax < 235.0)
    if t.sum() < MIN_REF_PIXELS:
        return None
    od = np.log(256.0 / (np.maximum(f[t], 0.0) + 1.0))
    return np.array([_median(od[:, c]) for c in range(3)], np.float32)


def _pen_evidence(
    f: np.ndarray, colors: tuple[str, ...],
    max_min_sat: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ref_od: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Strong and weak ink evidence (bool, (h, w)) of balanced float32 pixels (see :func:`pen_mask`);
    ``max_min_sat``: :func:`_max_min_sat` of ``f`` when the caller has it; ``ref_od``: the
    slide's tissue density (:func:`_tissue_od`), for black ink over tissue."""
    cmax, cmin, sat = _max_min_sat(f) if max_min_sat is None else max_min_sat
    # every rule needs some saturation (blue, green, red) or a dark channel (black): the rules
    # run on those pixels only (glass, most of a slide, has neither), with the same outcome
    low = [_INK_MIN_SAT[c] for c in colors if c in _INK_MIN_SAT]
    cand = sat > min(low) if low else np.zeros(sat.shape, bool)
    if "black" in colors:
        cand |= cmin < 165.0
    n = int(np.count_nonzero(cand))
    if n > 0.5 * cand.size:
        return _pen_rules(f, colors, cmax, cmin, sat, ref_od)
    m = np.zeros(sat.shape, bool)
    weak = np.zeros(sat.shape, bool)
    if n:
        m[cand], weak[cand] = _pen_rules(f[cand], colors, cmax[cand], cmin[cand], sat[cand], ref_od)
    return m, weak


#: the least saturation any rule of a coloured ink asks for (its weak rule's)
_INK_MIN_SAT = {"blue": 0.18, "green": 0.1, "red": 0.5}


def _pen_rules(
    f: np.ndarray, colors: tuple[str, ...], cmax: np.ndarray, cmin: np.ndarray, sat: np.ndarray,
    ref_od: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_pen_evidence`'s rules on pixels ``f`` (..., 3) and their max, min and saturation."""
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    m = np.zeros(r.shape, bool)  # strong evidence
    weak = np.zeros(r.shape, bool)  # weaker evidence, kept where connected to strong
    if "blue" in colors:
        m |= (b - r > 40) & (g - r > -12) & (sat > 0.25)
        weak |= (b - r > 30) & (g - r > -25) & (sat > 0.18)
    if "green" in colors:
        m |= (g - r > 10) & (g - b > -5) & (sat > 0.15)
        weak |= (g - r > 0) & (g - b > -12) & (sat > 0.1)
    if "black" in colors:
        # optical density against the balanced glass (= 255); max/min OD = OD of min/max channel.
        # Every rule needs max OD > 0.45, i.e. a min channel below 162.2: the logs only there
        # (a min channel >= 165 has max OD <= 0.433)
        dark = cmin < 165.0
        if dark.any():
            # per-channel densities; the min / max density is that of the max / min channel
            # (the same float32 numbers as taking the logs of cmax and cmin)
            od = np.log(256.0 / (np.maximum(f[dark], 0.0) + 1.0))
            o0, o1, o2 = od[:, 0], od[:, 1], od[:, 2]
            odmin = np.minimum(np.minimum(o0, o1), o2)
            odmax = np.maximum(np.maximum(o0, o1), o2)
            ratio = odmin / np.maximum(odmax, 1e-3)
            gr = (np.maximum(g[dark], 0.0) + 1.0) / (np.maximum(r[dark], 0.0) + 1.0)
            # ... or near-opaque in every channel, green no darker than red (OPAQUE_OD): a dense
            # felt-tip stroke or layered strokes, whose residual colour (sensor noise, the stain
            # under it) breaks the neutral-ratio rules
            m[dark] |= (((ratio > 0.88) & (odmax > 0.45)) | ((ratio > 0.8) & (odmax > 0.75))
                        | ((ratio > 0.75) & (odmin > 0.8))
                        | ((gr > OPAQUE_GR) & (odmin > OPAQUE_OD)))
            weak[dark] |= (((ratio > 0.71) & (odmax > 1.0))
                           | ((gr > OPAQUE_GR_WEAK) & (odmin > OPAQUE_OD_WEAK)))
            if ref_od is not None:  # a grey density on top of the stain's
                ex = od - ref_od
                e0, e1, e2 = ex[:, 0], ex[:, 1], ex[:, 2]
                lo = np.minimum(np.minimum(e0, e1), e2)
                hi = np.maximum(np.maximum(e0, e1), e2)
                weak[dark] |= (lo > EXCESS_OD) & (lo > EXCESS_RATIO * hi)
    if "red" in colors:
        m |= (r - g > 90) & (b - g < 0.2 * (r - g)) & (sat > 0.6)
        weak |= (r - g > 70) & (b - g < 0.3 * (r - g)) & (sat > 0.5)
    return m, weak


@_same_view
def pen_mask(
    rgb: np.ndarray, colors: tuple[str, ...] = DEFAULT_PEN_COLORS, min_area: int = 3,
    grow: int = DEFAULT_PEN_GROW,
) -> np.ndarray:
    """Marker ink on a low-resolution RGB view.

    Rules (after a 3 x 3 median; ``sat`` = (max - min) / max; ``od`` = optical density of each
    channel against the glass colour, :func:`glass_rgb`):

    - blue: ``b - r > 40``, ``g - r > -12``, ``sat > 0.25`` (stains keep red well above
      green; bluish IHC haematoxylin has ``b - r`` of about 25)
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
    top of the slide's median tissue density, :func:`_tissue_od`) counts where it is connected
    to strong evidence, so a stroke is followed over dark tissue. Components smaller than ``min_area`` px are dropped, the rest grown by ``grow`` px (1 also
    takes the soft edges of a stroke; 0, the default, keeps per-patch pen fractions unbiased).

    The rules run band by band (:func:`_view_bands`): two bool planes are the full-size arrays,
    plus int32 labels when there is ink.

    Parameters
    ----------
    rgb : (h, w, 3) uint8.
    colors : which inks to look for.
    min_area : smallest ink component kept (px).
    grow : dilation radius (px).

    Returns
    -------
    (h, w) bool.
    """

    a = np.asarray(rgb)
    h, w = a.shape[:2]
    colors = tuple(colors)
    if a.size:
        _glass(a)  # before the planes below: its temporaries are the larger ones
    ref = _tissue_od(a) if a.size and "black" in colors else None
    m = np.zeros((h, w), bool)  # strong evidence
    weak = np.zeros((h, w), bool)  # weaker evidence, kept where connected to strong
    for y0, y1, f in _view_bands(a):
        m[y0:y1], weak[y0:y1] = _pen_evidence(f, colors, ref_od=ref)
    return _pen_from_evidence(m, weak, min_area, grow)


def _pen_from_evidence(m: np.ndarray, weak: np.ndarray, min_area: int, grow: int) -> np.ndarray:
    """:func:`pen_mask` from its (h, w) bool strong and weak evidence (``weak`` is overwritten)."""
    import cv2

    h, w = m.shape
    if m.any() and min_area > 1:  # specks are no seeds
        m = _drop_small(m, min_area)
    if m.any():  # hysteresis: ink continues where the evidence weakens (dark tissue under it)
        weak |= m
        m = _hysteresis(weak, ((y0, y1, m[y0:y1]) for y0, y1 in _bands(h, w)))
    del weak
    if not m.any():
        return m
    u8 = m.view(np.uint8)
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
    return {"pen": pen_mask(rgb, tuple(s.pen_colors), grow=s.pen_grow)}


def block_focus(patches: np.ndarray, blocks: int = 4) -> np.ndarray:
    """Contrast-normalised focus of each block of each patch.

    Per patch (grey, 2 x 2 binned to quiet sensor noise): the mean squared 4-neighbour Laplacian
    of each of ``blocks`` x ``blocks`` blocks (fine detail, which defocus removes) divided by the
    mean squared gradient of the 8 x 8-binned image in that block (coarse structure, which
    defocus keeps) + 1. Faint or pale tissue scales both alike, so the ratio tells blur from low
    contrast; flat glass scores high (noise, no structure), i.e. never "blurred".

    Parameters
    ----------
    patches : (N, s, s, 3) uint8 RGB (or (N, s, s) grey); ``s`` is cropped to a multiple of
        ``8 * blocks``.

    Returns
    -------
    (N, blocks, blocks) float32.

    Notes
    -----
    The patches go through OpenCV a few at a time (~64 K px, so every float32 plane stays in
    the CPU cache), each group stacked into one tall image: grey (``cvtColor``, the same float32
    weights), 2 x 2 and 8 x 8 binning and block means (``resize(INTER_AREA)``, exact at integer
    factors), ``Laplacian(ksize=1)`` (the rows where two patches meet are replaced by their
    neighbours, as the edge padding of the Laplacian's valid interior requires).
    """
    import cv2

    p = np.asarray(patches)
    if p.ndim not in (3, 4):
        raise ValueError(f"patches must be (N, s, s, 3) or (N, s, s), got {p.shape}")
    n = len(p)
    s = min(p.shape[1], p.shape[2]) // (8 * blocks) * (8 * blocks)
    if n == 0 or s == 0:
        return np.zeros((n, blocks, blocks), np.float32)
    h2, h8 = s // 2, s // 8
    step = max(1, (1 << 16) // (s * s))
    fine = np.empty((n * blocks, blocks), np.float32)
    g8 = np.empty((n * h8, h8), np.float32)
    for i in range(0, n, step):
        q = p[i : i + step, :s, :s]
        k = len(q)
        if p.ndim == 4:
            rgb = np.empty((k * s, s, 3), np.float32)
            np.copyto(rgb.reshape(k, s, s, 3), q[..., :3])
            g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        else:
            g = np.empty((k * s, s), np.float32)
            np.copyto(g.reshape(k, s, s), q)
        g2 = cv2.resize(g, (h2, k * h2), interpolation=cv2.INTER_AREA)
        lap = cv2.Laplacian(g2, cv2.CV_32F, ksize=1)
        cv2.multiply(lap, lap, dst=lap)
        edge = lap.reshape(k, h2, h2)  # edge padding of the valid interior, rows then columns
        edge[:, 0], edge[:, -1] = edge[:, 1], edge[:, -2]
        edge[:, :, 0], edge[:, :, -1] = edge[:, :, 1], edge[:, :, -2]
        area = cv2.INTER_AREA
        fine[i * blocks : (i + k) * blocks] = cv2.resize(lap, (blocks, k * blocks), interpolation=area)
        g8[i * h8 : (i + k) * h8] = cv2.resize(g2, (h8, k * h8), interpolation=area)
    g8 = g8.reshape(n, h8, h8)
    grad = np.empty((n, h8, h8), np.float32)  # coarse gradient, edge-padded at bottom and right
    np.square(np.diff(g8, axis=2)[:, :-1, :], out=grad[:, :-1, :-1])
    grad[:, :-1, :-1] += np.square(np.diff(g8, axis=1)[:, :, :-1])
    grad[:, -1, :-1] = grad[:, -2, :-1]
    grad[:, :, -1] = grad[:, :, -2]
    coarse = cv2.resize(
        grad.reshape(n * h8, h8), (blocks, n * blocks), interpolation=cv2.INTER_AREA
    )
    return (fine / (coarse + 1.0)).reshape(n, blocks, blocks)


def blur_fraction(
    focus: np.ndarray, tissue: np.ndarray, relative: float,
    reference_foreground: float = REFERENCE_FOREGROUND,
) -> np.ndarray:
    """Fraction of each patch's tissue blocks that are out of focus relative to the slide.

    Parameters
    ----------
    focus : (N, B, B) from :func:`block_focus`.
    tissue : (N, B, B) tissue fraction of each block (from the low-resolution mask).
    relative : a tissue block (tissue >= 0.5) is blurred when its focus is below ``relative``
        x the slide's reference: the median focus of its dense blocks (tissue >=
        ``reference_foreground``; all tissue blocks when fewer than 16 are dense), leaving out
        blocks below :data:`FOCUS_FLOOR` (plainly out of focus at any contrast).

    Returns
    -------
    (N,) float32 in [0, 1] (0 for patches without tissue blocks).
    """
    f = np.asarray(focus, np.float64)
    t = np.asarray(tissue, np.float64)
    tis = t >= 0.5
    out = np.zeros(len(f), np.float32)
    if relative <= 0 or not tis.any():
        return out
    # the reference ignores blocks that are out of focus beyond doubt, so that a slide mostly
    # out of focus is still measured against its sharp part
    usable = tis & (f >= FOCUS_FLOOR)
    dense = usable & (t >= reference_foreground)
    pool = dense if dense.sum() >= 16 else (usable if usable.any() else tis)
    ref = _median(f[pool])
    blurred = tis & (f < relative * ref)
    n_t = tis.reshape(len(f), -1).sum(axis=1)
    n_b = blurred.reshape(len(f), -1).sum(axis=1)
    np.divide(n_b, n_t, out=out, where=n_t > 0, casting="unsafe")
    return out


def block_tissue(coords: np.ndarray, context: Any, blocks: int = 4) -> np.ndarray:
    """(N, blocks, blocks) tissue fraction of each block of each patch, from the context's mask."""
    from gigapatch import mask_fraction

    c = np.asarray(coords, np.int64).reshape(-1, 2)
    step = context.geometry.size_level0 / blocks
    off = np.stack(np.meshgrid(np.arange(blocks), np.arange(blocks)), -1).reshape(-1, 2) * step
    bc = (c[:, None, :] + off[None]).reshape(-1, 2)
    return mask_fraction(context.mask, bc, step, context.mask_downsample).reshape(len(c), blocks, blocks)


def _pixel_foreground(context: Any) -> bool:
    """Measure the candidates' tissue and ink on their pixels (:mod:`.pixel_tissue`)? Only when
    the pathology tissue mask made the candidates (not a learned or fixed-threshold mask) and
    ``plugin.pixel_foreground`` is not false."""
    m = context.config.mask
    return (settings(context.config).pixel_foreground and m.method == "auto"
            and m.model_weights is None and m.threshold is None)


@hookimpl
def gigapatch_reads_pixels(context: Any) -> bool | None:
    """Candidates are read for the blur score and the pixel-measured tissue and ink."""
    if context.domain not in DOMAINS:
        return None
    return settings(context.config).blur_relative > 0 or _pixel_foreground(context)


@hookimpl
def gigapatch_score_pixels(
    patches: np.ndarray, coords: np.ndarray, context: Any
) -> dict[str, np.ndarray] | None:
    """Per-block focus (turned into ``blur`` once the whole slide has been seen, in
    :func:`gigapatch_score_patches`), per-block tissue and the ``pen`` fraction
    (:mod:`.pixel_tissue`) of each full-resolution candidate."""
    if context.domain not in DOMAINS:
        return None
    out: dict[str, np.ndarray] = {}
    s = settings(context.config)
    if s.blur_relative > 0:
        out["block_focus"] = block_focus(patches)
    if _pixel_foreground(context):
        from .pixel_tissue import score_batch

        out.update(score_batch(patches, coords, context, tuple(s.pen_colors)))
    return out or None


@hookimpl
def gigapatch_score_patches(coords: np.ndarray, context: Any) -> dict[str, np.ndarray] | None:
    """Adds ``white``/``dark``/``grey`` fractions (low-res view); ``foreground`` measured on the
    candidates' pixels (:mod:`.pixel_tissue`; it replaces the mask's estimate, which stays as
    ``mask_foreground``); and, with ``plugin.pathology.blur_relative`` > 0, ``blur``: the
    fraction of each patch's tissue that is out of focus relative to the slide."""
    if context.domain not in DOMAINS or len(coords) == 0:
        return None
    from gigapatch import mask_fraction

    geom = context.geometry
    extra: dict[str, np.ndarray] = {}
    for name, m in glass_dark_grey(context.rgb).items():
        extra[name] = mask_fraction(m, coords, geom.size_level0, context.mask_downsample)
    pixels = context.pixels
    tissue = None
    if pixels.get("tissue_ladder") is not None:  # tissue measured on the pixels: the foreground
        from .pixel_tissue import calibrated_tissue

        mask_fg = mask_fraction(context.mask, coords, geom.size_level0, context.mask_downsample)
        tissue, _rung = calibrated_tissue(pixels["tissue_ladder"], mask_fg)
        extra["foreground"] = tissue.mean(axis=(1, 2))
    focus = pixels.get("block_focus")
    if focus is not None:
        if tissue is None or tissue.shape != focus.shape:
            tissue = block_tissue(coords, context, focus.shape[1])
        extra["blur"] = blur_fraction(focus, tissue, settings(context.config).blur_relative)
    return extra


@hookimpl
def gigapatch_reject_patches(scores: dict[str, np.ndarray], context: Any) -> dict[str, np.ndarray] | None:
    """``"pen"``: more marker ink than ``max_pen``; ``"blur"``: a blurred tissue share of at
    least ``max_blur`` (``plugin.pathology`` settings)."""
    if context.domain not in DOMAINS:
        return None
    s = settings(context.config)
    rules: dict[str, np.ndarray] = {}
    if s.max_pen is not None and "pen" in scores:
        rules["pen"] = np.asarray(scores["pen"], np.float64) > s.max_pen
    if "blur" in scores:
        rules["blur"] = np.asarray(scores["blur"], np.float64) >= s.max_blur
    return rules
