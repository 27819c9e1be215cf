"""The pathology plugin's candidate scores and rejection rules.

Per candidate: ``white``/``dark``/``grey`` fractions of the low-resolution view
(:func:`~gigapatch_pathology.view.glass_dark_grey`); ``blur``, the fraction of its tissue out of
focus relative to the slide (:mod:`.focus`, per-block focus from the full-resolution pass, so
candidates are read only once); and, measured on its pixels (:mod:`.pixel_tissue`), the
``foreground`` and ``pen`` fractions. Patches are rejected for ``"pen"`` (more ink than
``max_pen``) and ``"blur"`` (a blurred tissue share of at least ``max_blur``).

Settings (``plugin.pathology``): ``blur_relative`` (0 turns the blur score off), ``max_blur``,
``max_pen``, ``pixel_foreground``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gigapatch import hookimpl

from .focus import block_focus, block_tissue, blur_fraction
from .pixel_tissue import calibrated_tissue, score_batch
from .settings import settings
from .view import glass_dark_grey, view_stats

DOMAINS = ("pathology",)


def pixel_foreground(context: Any) -> bool:
    """Measure the candidates' tissue and ink on their pixels (:mod:`.pixel_tissue`)? Only when
    the pathology tissue mask made the candidates (not a learned or fixed-threshold mask) and
    ``plugin.pathology.pixel_foreground`` is not false."""
    m = context.config.mask
    return (settings(context.config).pixel_foreground and m.method == "auto"
            and m.model_weights is None and m.threshold is None)


@hookimpl
def gigapatch_reads_pixels(context: Any) -> bool | None:
    """Candidates are read for the blur score and the pixel-measured tissue and ink."""
    if context.domain not in DOMAINS:
        return None
    return settings(context.config).blur_relative > 0 or pixel_foreground(context)


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
    if pixel_foreground(context):
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
    classes = glass_dark_grey(context.rgb, view_stats(context).glass)
    for name, m in classes.items():
        extra[name] = mask_fraction(m, coords, geom.size_level0, context.mask_downsample)
    del classes
    pixels = context.pixels
    tissue = None
    if pixels.get("tissue_ladder") is not None:  # tissue measured on the pixels: the foreground
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
