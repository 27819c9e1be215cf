"""The tiling pipeline: image -> mask -> regions -> patches -> scores -> selection.

Each stage is a function in its own module; this module wires them together through the plugin
hooks, carrying the image's state in one :class:`~gigapatch.ImageContext`. It writes nothing:
:func:`gigapatch.tile_image` turns its :class:`Tiling` into a PatchSet and the output files.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gigapatch.config import Config
from gigapatch.errors import ConfigError
from gigapatch.io.bad_tiles import bad_tiles_of, check_tiles_under, patches_over, set_policy
from gigapatch.io.geometry import interop_attrs, resolve_geometry
from gigapatch.io.image import Image
from gigapatch.io.resolution import check_mpp
from gigapatch.plugin.context import ImageContext
from gigapatch.plugin.manager import get_plugin_manager
from gigapatch.tiling.border import border_coords
from gigapatch.tiling.integral import mask_fraction
from gigapatch.tiling.mask import otsu_mask_for
from gigapatch.tiling.pieces import small_pieces_note
from gigapatch.tiling.place import grid_coords, optimal_coords
from gigapatch.tiling.refine import refine_mask
from gigapatch.tiling.regions import (
    own_fraction,
    patch_regions,
    place_per_region,
    region_extents,
    region_labels,
)
from gigapatch.tiling.score import batched_pixel_scores
from gigapatch.tiling.select import select_patches
from gigapatch.version import __version__

log = logging.getLogger(__name__)


def mask_downsample_for(image: Image, config: Config, size_level0: int) -> float:
    """Level-0 downsample of the mask: the configured target, capped so the mask's longer side stays
    under ``mask.max_side`` (memory flat in image size) and never coarser than a quarter patch."""
    w0, h0 = image.dimensions
    ds = max(config.mask.downsample, max(w0, h0) / config.mask.max_side, 1.0)
    ds = min(ds, max(1.0, size_level0 / 4.0))
    # snap to a stored level up to 1.5x coarser: reading it as is beats decoding a level 4x
    # larger only to shrink it (and keeps memory flat)
    # (level downsamples are ratios of rounded sizes: 64.02 is the 64 level)
    stored = [d for d in image.level_downsamples
              if ds * 0.98 <= d <= 1.5 * ds and d <= size_level0 / 4.0 * 1.02]
    if stored:
        return float(min(stored))
    # else up to 10 % coarser to a whole multiple of the level it is read from: an exact k x k
    # shrink is a box average, read in tile-row bands, and faster than an arbitrary ratio
    lds = image.level_downsamples[image.get_best_level_for_downsample(ds)]
    k = math.ceil(ds / lds - 1e-9)
    if k * lds <= 1.1 * ds and k * lds <= max(1.0, size_level0 / 4.0):
        return float(k * lds)
    return float(ds)


def mask_stage(context: ImageContext, size_level0: int | None = None) -> None:
    """Read the low-resolution view and compute the refined foreground mask into ``context``
    (``rgb``, ``mask_downsample``, ``mask``, ``exclusions``). ``size_level0``: the patch side
    the mask is sized for (default: ``context.geometry``'s)."""
    pm = get_plugin_manager()
    cfg = context.config
    if size_level0 is None:
        assert context.geometry is not None
        size_level0 = context.geometry.size_level0
    ds = mask_downsample_for(context.image, cfg, size_level0)
    rgb = context.image.read_level_downsampled(ds)
    rgb.setflags(write=False)  # shared by every hook: nobody may change it
    context.rgb, context.mask_downsample = rgb, ds
    if cfg.mask.model_weights is not None:
        mask = pm.hook.gigapatch_learned_mask(
            rgb=rgb, weights=Path(cfg.mask.model_weights), context=context
        )
        if mask is None:
            raise ConfigError(f"{cfg.mask.model_weights}: no plugin can load these mask weights")
    elif cfg.mask.method == "otsu":  # the built-in mask, whatever the domain
        mask = otsu_mask_for(rgb, cfg.mask)
    else:
        mask = pm.hook.gigapatch_foreground_mask(rgb=rgb, context=context)
    mask = np.asarray(mask, dtype=bool)
    exclusions: dict[str, np.ndarray] = {}
    for result in pm.hook.gigapatch_exclusion_masks(rgb=rgb, context=context):
        for name, m in (result or {}).items():
            m = np.asarray(m, dtype=bool)
            exclusions[name] = exclusions[name] | m if name in exclusions else m
    for m in exclusions.values():
        mask &= ~m
    r = cfg.refine
    patch_px = (size_level0 / ds) ** 2  # one patch's area in mask px^2
    mask = refine_mask(
        mask,
        close=r.close,
        open=r.open,
        dilate=r.dilate,
        fill_holes_below=r.fill_holes_below * patch_px,
        drop_below=r.drop_below * patch_px,
        smooth=r.smooth,
    )
    for m in exclusions.values():  # refinement must not paint artefacts back in
        mask &= ~m
    if cfg.annotations.path is not None:
        from gigapatch.tiling.annotations import annotation_mask

        mask = annotation_mask(cfg.annotations.path, mask.shape, ds, mask, cfg.annotations)
    context.mask, context.exclusions = mask, exclusions


def compute_mask(
    image: Image, config: Config, size_level0: int
) -> tuple[np.ndarray, np.ndarray, float, dict[str, np.ndarray]]:
    """The refined foreground mask of ``image`` (:func:`mask_stage` on a fresh context).

    Returns
    -------
    rgb : (h, w, 3) uint8 low-resolution view (read-only).
    mask : (h, w) bool refined foreground, artefacts removed.
    downsample : level-0 px per mask px.
    exclusions : name -> (h, w) bool artefact masks.
    """
    ctx = ImageContext(image=image, config=config)
    get_plugin_manager().hook.gigapatch_prepare_image(context=ctx)
    ctx.geometry = resolve_geometry(image, config.patch)
    mask_stage(ctx, size_level0)
    assert ctx.rgb is not None and ctx.mask is not None
    return ctx.rgb, ctx.mask, ctx.mask_downsample, ctx.exclusions


def segment_stage(context: ImageContext) -> np.ndarray:
    """Split the refined mask into regions (``context.regions``, ``label`` = list index); returns
    their (h, w) int32 label image on the mask grid, kept to the mask (0 = background or no
    region, ``k + 1`` = region k's foreground)."""
    assert context.mask is not None
    regions = get_plugin_manager().hook.gigapatch_segment(mask=context.mask, context=context)
    context.regions = list(regions or [])
    for k, region in enumerate(context.regions):
        region.label = k
    labels = region_labels(context.regions, context.mask.shape, context.mask_downsample,
                           mask=context.mask)
    context.region_labels = labels
    context.region_boxes, context.region_areas = region_extents(labels, len(context.regions))
    return labels


def place_stage(context: ImageContext, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate patches and the region of each: (N, 2) int64 level-0 x, y and (N,) int32 (-1:
    none). ``patch.per_region`` places every region on its own pixels (no patch holds two
    regions); else one placement on the whole mask, each patch given the region holding most of
    its foreground."""
    cfg, geom, mask, ds = context.config, context.geometry, context.mask, context.mask_downsample
    assert geom is not None and mask is not None
    dims = context.image.dimensions
    p = cfg.patch
    if p.per_region:  # border placement: the per-region grid
        optimal = p.placement == "optimal"
        return place_per_region(
            labels, len(context.regions), ds, geom.size_level0, geom.stride_level0, dims,
            placement="optimal" if optimal else "grid",
            min_foreground=p.min_foreground if optimal else 0.0,
            edge=p.edge, select_foreground=p.min_foreground, boxes=context.region_boxes,
        )
    if p.placement == "border":
        avoid = None
        for m in context.exclusions.values():  # shifted patches keep away from artefacts
            avoid = m if avoid is None else avoid | m
        coords = border_coords(mask, ds, geom.size_level0, geom.stride_level0, dims,
                               min_foreground=p.min_foreground, edge=p.edge, avoid=avoid)
    elif p.placement == "optimal":
        coords = optimal_coords(
            mask, ds, geom.size_level0, geom.stride_level0, dims, min_foreground=p.min_foreground
        )
    else:  # every cell touching foreground is a candidate; selection records why it goes
        coords = grid_coords(
            mask, ds, geom.size_level0, geom.stride_level0, dims, min_foreground=0.0, edge=p.edge
        )
    return coords, patch_regions(labels, len(context.regions), coords, geom.size_level0, ds,
                                 boxes=context.region_boxes)


def score_pixels(context: ImageContext, coords: np.ndarray) -> dict[str, np.ndarray]:
    """Read the candidates once at full resolution and run every ``gigapatch_score_pixels``,
    when some plugin's ``gigapatch_reads_pixels`` asks for it (else nothing is read)."""
    pm = get_plugin_manager()
    if len(coords) == 0 or not any(pm.hook.gigapatch_reads_pixels(context=context)):
        return {}
    hook = pm.hook.gigapatch_score_pixels

    def score_batch(batch: np.ndarray, batch_coords: np.ndarray) -> dict[str, np.ndarray]:
        merged: dict[str, np.ndarray] = {}
        for result in hook(patches=batch, coords=batch_coords, context=context):
            merged.update(result or {})
        return merged

    assert context.geometry is not None
    return batched_pixel_scores(context.image, coords, context.geometry, score_batch,
                                context.config.score.workers, with_coords=True)


@dataclass
class Tiling:
    """Every candidate of one image, its scores, and which were kept.

    Attributes
    ----------
    context : the image's context (view, mask, regions...).
    coords : (N, 2) int64 level-0 top-left x, y of the candidates.
    region : (N,) int32 region index of each candidate (-1: none).
    scores : name -> (N,) float32 score column.
    keep : (N,) bool; reason : (N,) str, ``""`` for kept candidates, else the first rule failed.
    columns : name -> (N,) per-patch data that is not a score (``gigapatch_patch_columns``).
    attrs : geometry and provenance recorded with the outputs.
    warnings : one line per problem worth a user's attention (mpp disagreement...).
    """

    context: ImageContext
    coords: np.ndarray
    region: np.ndarray
    scores: dict[str, np.ndarray]
    keep: np.ndarray
    reason: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def run_tiling(image: Image, config: Config) -> Tiling:
    """Tile one open image with a resolved config: mask, segment, place, score, select.

    Returns
    -------
    :class:`Tiling` with every candidate (kept and rejected) and the image's context.
    """
    ctx = ImageContext(image=image, config=config)
    set_policy(image, config.read.on_bad_tile)  # before anything is read
    get_plugin_manager().hook.gigapatch_prepare_image(context=ctx)
    geom = ctx.geometry = resolve_geometry(image, config.patch)
    _, warnings = check_mpp(image)
    for w in warnings:
        log.warning("%s", w)
    mask_stage(ctx)
    labels = segment_stage(ctx)
    coords, region = place_stage(ctx, labels)
    assert ctx.mask is not None
    ds = ctx.mask_downsample
    scores: dict[str, np.ndarray] = {"foreground": _own_foreground(ctx, labels, coords, region)}
    for name, m in ctx.exclusions.items():
        scores[name] = mask_fraction(m, coords, geom.size_level0, ds)
    # expensive scorers see only the candidates that pass the cheap foreground test, or come
    # within score.candidate_margin of it (a plugin may then measure their foreground on their
    # pixels: a returned "foreground" column replaces the mask estimate)
    cand = scores["foreground"] >= config.patch.min_foreground - config.score.candidate_margin
    n = len(coords)
    pm = get_plugin_manager()
    ctx.pixels = score_pixels(ctx, coords[cand])

    def merge(name: str, col: np.ndarray) -> None:
        # candidates get the new values; the others keep a cheap column's (else NaN)
        if name == "foreground" and "mask_foreground" not in scores:
            scores["mask_foreground"] = scores["foreground"].copy()
        old = scores.get(name)
        full = np.full(n, np.nan, np.float32) if old is None else old.astype(np.float32)
        full[cand] = np.asarray(col, np.float32)
        scores[name] = full

    for name, col in ctx.pixels.items():
        if col.ndim == 1:
            merge(name, col)
    for result in pm.hook.gigapatch_score_patches(coords=coords[cand], context=ctx):
        for name, col in (result or {}).items():
            merge(name, col)
    bar: float | np.ndarray = config.patch.min_foreground
    if "mask_foreground" in scores and config.score.foreground_tolerance > 0:
        # measured on the pixels: patches within the measure's uncertainty of the bar stay
        bar = np.where(cand, bar - config.score.foreground_tolerance, bar)
    rules: dict[str, np.ndarray] = {}
    for result in pm.hook.gigapatch_reject_patches(scores=scores, context=ctx):
        for reason, bad in (result or {}).items():
            bad = np.asarray(bad, bool)
            rules[reason] = rules[reason] | bad if reason in rules else bad
    keep, reason = select_patches(scores, config.score, bar, coords=coords, rules=rules)
    columns = patch_columns(ctx, coords)
    fg_fraction = float(ctx.mask.mean()) if ctx.mask.size else 0.0
    attrs = _attrs(image, config, geom, ds, fg_fraction)
    if config.read.on_bad_tile == "skip":
        attrs.update(drop_bad_tile_patches(ctx, coords, keep, reason))
    attrs["mpp_warnings"] = "; ".join(warnings)
    attrs["n_regions"] = len(ctx.regions)
    if not keep.any():  # foreground, but in pieces no patch can keep: say so, not "empty"
        note = small_pieces_note(ctx.mask, ds, geom.size_level0, config.patch.min_foreground)
        if note is not None:
            attrs["foreground_note"] = note
    return Tiling(ctx, coords, region, scores, keep, reason, columns, attrs, warnings)


def drop_bad_tile_patches(ctx: ImageContext, coords: np.ndarray, keep: np.ndarray,
                          reason: np.ndarray) -> dict[str, int]:
    """Under ``read.on_bad_tile: skip``: check the stored tiles under the kept patches (those
    not decoded yet), then reject with reason ``bad_tile`` (in place in ``keep`` / ``reason``)
    every candidate over a tile that did not decode cleanly, at any level (a rejected one too:
    its scores came from a white tile); a warning says how many.
    Returns the attrs ``bad_tiles`` (tiles met) and ``bad_tile_patches`` (candidates over them).
    """
    geom, image = ctx.geometry, ctx.image
    assert geom is not None
    check_tiles_under(image, coords[keep], geom.level, geom.read_size, ctx.config.score.workers)
    tiles = bad_tiles_of(image)
    over = patches_over(tiles.boxes(), coords, geom.size_level0)
    keep[over] = False
    reason[over] = "bad_tile"
    if tiles.found:
        log.warning("%s: %d bad tile(s) skipped (%s): %d patch(es) over them dropped",
                    image.path or image.image_id, len(tiles.found), tiles.describe(),
                    int(over.sum()))
    return {"bad_tiles": len(tiles.found), "bad_tile_patches": int(over.sum())}


def patch_columns(context: ImageContext, coords: np.ndarray) -> dict[str, np.ndarray]:
    """Every plugin's ``gigapatch_patch_columns`` for all placed patches, merged."""
    out: dict[str, np.ndarray] = {}
    for result in get_plugin_manager().hook.gigapatch_patch_columns(coords=coords, context=context):
        for name, col in (result or {}).items():
            col = np.asarray(col)
            if col.shape[:1] != (len(coords),):
                raise ValueError(f"patch column {name!r} has shape {col.shape} for {len(coords)} patches")
            out[name] = col
    return out


def _own_foreground(
    ctx: ImageContext, labels: np.ndarray, coords: np.ndarray, region: np.ndarray
) -> np.ndarray:
    """Each candidate's foreground fraction: of the whole mask, or with per-region placement of
    its own region's foreground only."""
    assert ctx.geometry is not None and ctx.mask is not None
    size, ds = ctx.geometry.size_level0, ctx.mask_downsample
    if not ctx.config.patch.per_region:
        return mask_fraction(ctx.mask, coords, size, ds)
    return own_fraction(labels, len(ctx.regions), coords, region, size, ds,
                        boxes=ctx.region_boxes)


def _attrs(image: Image, cfg: Config, geom: Any, ds: float, fg_fraction: float) -> dict[str, Any]:
    w0, h0 = image.dimensions
    return {
        "name": image.image_id,
        "image_path": str(image.path) if image.path else "",
        "vendor": image.vendor or "",
        **interop_attrs(image, geom),  # CLAM's and TRIDENT's, and gigapatch's own read
        "level0_width": w0,
        "level0_height": h0,
        "placement": cfg.patch.placement,
        "per_region": cfg.patch.per_region,
        "min_foreground": cfg.patch.min_foreground,
        "mask_downsample": ds,
        "foreground_fraction": fg_fraction,
        "domain": cfg.domain,
        "gigapatch_version": __version__,
        "config_hash": cfg.hash(),
    }


__all__ = [
    "Tiling",
    "compute_mask",
    "drop_bad_tile_patches",
    "mask_downsample_for",
    "mask_stage",
    "place_stage",
    "run_tiling",
    "score_pixels",
    "segment_stage",
]
