"""The tiling pipeline: image -> mask -> regions -> patches -> scores -> outputs.

Each stage is a pure function in its own module; this module only wires them together through the
plugin hooks and writes the outputs. Data flows one way.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config, deep_merge, load_config, nest_dotted
from .errors import ConfigError, GigapatchError
from .image import Image
from .patchset import PatchSet, atomic_path, write_text_atomic

log = logging.getLogger(__name__)

#: below this fraction of foreground a run is "empty": loud, but not an error
EMPTY_FRACTION = 0.001


def mask_downsample_for(image: Image, config: Config, size_level0: int) -> float:
    """Level-0 downsample of the mask: the configured target, capped so the mask's longer side stays
    under ``mask.max_side`` (memory flat in slide size) and never coarser than a quarter patch."""
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
    # shrink is a box average, read in tile-row bands and several times faster than an
    # arbitrary ratio (31.25 -> 32 on a 40k slide)
    lds = image.level_downsamples[image.get_best_level_for_downsample(ds)]
    k = math.ceil(ds / lds - 1e-9)
    if k * lds <= 1.1 * ds and k * lds <= max(1.0, size_level0 / 4.0):
        return float(k * lds)
    return float(ds)


def compute_mask(
    image: Image, config: Config, size_level0: int
) -> tuple[np.ndarray, np.ndarray, float, dict[str, np.ndarray]]:
    """Read the low-resolution view and compute the refined foreground mask.

    Returns
    -------
    rgb : (h, w, 3) uint8 low-resolution view (read-only).
    mask : (h, w) bool refined foreground, artefacts removed.
    downsample : level-0 px per mask px.
    exclusions : name -> (h, w) bool artefact masks.
    """
    from .plugins import get_plugin_manager
    from .refine import refine_mask

    pm = get_plugin_manager()
    ds = mask_downsample_for(image, config, size_level0)
    rgb = image.read_level_downsampled(ds)
    # read-only: the hooks' per-view caches then key it by identity instead of hashing it each call
    rgb.setflags(write=False)
    domain = config.domain
    if config.mask.model_weights is not None:
        mask = pm.hook.gigapatch_learned_mask(
            rgb=rgb, weights=Path(config.mask.model_weights), domain=domain, config=config
        )
        if mask is None:
            raise ConfigError(f"{config.mask.model_weights}: no plugin can load these mask weights")
    elif config.mask.method == "otsu":
        from . import builtin

        mask = builtin.gigapatch_foreground_mask(rgb=rgb, domain=domain, config=config)
    else:
        mask = pm.hook.gigapatch_foreground_mask(rgb=rgb, domain=domain, config=config, image=image)
    mask = np.asarray(mask, dtype=bool)
    exclusions: dict[str, np.ndarray] = {}
    for result in pm.hook.gigapatch_exclusion_masks(
        rgb=rgb, domain=domain, config=config, image=image
    ):
        for name, m in (result or {}).items():
            m = np.asarray(m, dtype=bool)
            exclusions[name] = exclusions[name] | m if name in exclusions else m
    for m in exclusions.values():
        mask &= ~m
    r = config.refine
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
    if config.annotations.path is not None:
        from .geojson import annotation_mask

        mask = annotation_mask(config.annotations.path, mask.shape, ds, mask, config.annotations)
    return rgb, mask, ds, exclusions


def tile_image(
    image: Image | str | Path,
    config: Config | None = None,
    out_dir: str | Path | None = None,
    *,
    extract: bool | None = None,
) -> PatchSet:
    """Tile one image: compute its mask, place and score patches, select, and (optionally) write.

    Parameters
    ----------
    image : an open :class:`Image`, or a path (opened through the plugins and closed afterwards).
    config : resolved config (default: the pathology domain defaults).
    out_dir : where to write ``<id>.h5``, ``<id>.yaml``, the table and the overlay; None writes nothing.
    extract : override ``config.output.extract``.

    Returns
    -------
    PatchSet of the kept patches (level-0 coords) with score columns and the rejected candidates.
    """
    from .geometry import resolve_geometry
    from .place import grid_coords, optimal_coords
    from .plugins import get_plugin_manager
    from .score import ScoreContext, mask_fraction
    from .select import select_patches

    cfg = config or load_config()
    opened = not isinstance(image, Image)
    if opened:
        from .readers import open_image

        image = open_image(Path(image), domain=cfg.domain)
    assert isinstance(image, Image)
    t0 = time.perf_counter()
    try:
        geom = resolve_geometry(image, cfg.patch)
        warnings = _mpp_warnings(image)
        rgb, mask, ds, exclusions = compute_mask(image, cfg, geom.size_level0)
        dims = image.dimensions
        if cfg.patch.placement == "optimal":
            coords = optimal_coords(
                mask, ds, geom.size_level0, geom.stride_level0, dims,
                min_foreground=cfg.patch.min_foreground,
            )
        else:  # every cell touching foreground is a candidate; selection records why it goes
            coords = grid_coords(
                mask, ds, geom.size_level0, geom.stride_level0, dims, min_foreground=0.0,
                edge=cfg.patch.edge,
            )
        scores: dict[str, np.ndarray] = {
            "foreground": mask_fraction(mask, coords, geom.size_level0, ds)
        }
        for name, m in exclusions.items():
            scores[name] = mask_fraction(m, coords, geom.size_level0, ds)
        # expensive scorers see only the candidates that pass the cheap foreground test, or
        # come within score.candidate_margin of it (a plugin may then measure their foreground
        # on their pixels: a returned "foreground" column replaces the mask estimate)
        cand = scores["foreground"] >= cfg.patch.min_foreground - cfg.score.candidate_margin
        ctx = ScoreContext(
            config=cfg, domain=cfg.domain, geometry=geom, rgb=rgb, mask=mask,
            mask_downsample=ds, exclusions=exclusions,
        )
        n = len(coords)
        pm = get_plugin_manager()
        pixels = _score_pixels(image, coords[cand], ctx)
        ctx.extra["pixels"] = pixels

        def merge(name: str, col: np.ndarray) -> None:
            # candidates get the new values; the others keep a cheap column's (else NaN)
            if name == "foreground" and "mask_foreground" not in scores:
                scores["mask_foreground"] = scores["foreground"].copy()
            old = scores.get(name)
            full = np.full(n, np.nan, np.float32) if old is None else old.astype(np.float32)
            full[cand] = np.asarray(col, np.float32)
            scores[name] = full

        for name, col in pixels.items():
            if col.ndim == 1:
                merge(name, col)
        for result in pm.hook.gigapatch_score_patches(image=image, coords=coords[cand], context=ctx):
            for name, col in (result or {}).items():
                merge(name, col)
        bar: float | np.ndarray = cfg.patch.min_foreground
        if "mask_foreground" in scores and cfg.score.foreground_tolerance > 0:
            # measured on the pixels: patches within the measure's uncertainty of the bar stay
            bar = np.where(cand, bar - cfg.score.foreground_tolerance, bar)
        keep, reason = select_patches(scores, cfg.score, bar, coords=coords)
        fg_fraction = float(mask.mean()) if mask.size else 0.0
        attrs = _attrs(image, cfg, geom, ds, fg_fraction)
        attrs["mpp_warnings"] = "; ".join(warnings)
        ps = PatchSet(
            image_id=image.image_id,
            coords=coords[keep],
            scores={k: v[keep].astype(np.float32) for k, v in scores.items()},
            attrs=attrs,
            rejected_coords=coords[~keep],
            rejected_reason=reason[~keep],
            rejected_scores={k: v[~keep].astype(np.float32) for k, v in scores.items()},
            mask=mask,
            mask_downsample=ds,
        )
        segment_regions(ps, cfg)
        from .place import coverage_report

        cov = coverage_report(mask, ds, ps.coords, geom.size_level0)
        ps.attrs["coverage"] = float(cov["coverage"])
        ps.attrs["overlap_fraction"] = float(cov["overlap"])
        if fg_fraction < EMPTY_FRACTION or len(ps) == 0:
            log.warning(
                "%s: almost no foreground found (%.4f%% of the image); %d patches kept",
                image.image_id, 100 * fg_fraction, len(ps),
            )
        ps.attrs["seconds"] = round(time.perf_counter() - t0, 3)
        if out_dir is not None:
            write_outputs(ps, image, rgb, cfg, Path(out_dir), extract=extract, geometry=geom)
        return ps
    finally:
        if opened:
            image.close()


def _score_pixels(image: Image, coords: np.ndarray, ctx: Any) -> dict[str, np.ndarray]:
    """Read the candidates once at full resolution and run every ``gigapatch_score_pixels``."""
    from .plugins import get_plugin_manager
    from .score import batched_pixel_scores

    hook = get_plugin_manager().hook.gigapatch_score_pixels
    if not ctx.config.score.sharpness or len(coords) == 0 or not hook.get_hookimpls():
        return {}

    def score_batch(batch: np.ndarray, batch_coords: np.ndarray) -> dict[str, np.ndarray]:
        ctx.extra["batch_coords"] = batch_coords  # (B, 2) level-0 x, y of this batch
        merged: dict[str, np.ndarray] = {}
        for result in hook(patches=batch, context=ctx):
            merged.update(result or {})
        return merged

    try:
        return batched_pixel_scores(image, coords, ctx.geometry, score_batch,
                                    ctx.config.score.workers, with_coords=True)
    finally:
        ctx.extra.pop("batch_coords", None)


def segment_regions(ps: PatchSet, cfg: Config) -> None:
    """Fill ``ps.regions`` from its mask through the segment hook."""
    from .plugins import get_plugin_manager

    if ps.mask is None:
        return
    regions = get_plugin_manager().hook.gigapatch_segment(
        mask=ps.mask, downsample=ps.mask_downsample, domain=cfg.domain, config=cfg
    )
    ps.regions = list(regions or [])
    ps.attrs["n_regions"] = len(ps.regions)


def _mpp_warnings(image: Image) -> list[str]:
    from .resolution import check_mpp

    _, warnings = check_mpp(image)
    for w in warnings:
        log.warning("%s", w)
    return warnings


def _attrs(image: Image, cfg: Config, geom: Any, ds: float, fg_fraction: float) -> dict[str, Any]:
    from . import __version__

    w0, h0 = image.dimensions
    level_dim = image.level_dimensions[geom.level]
    return {
        "name": image.image_id,
        "image_path": str(image.path) if image.path else "",
        "reader": image.reader_name,
        "vendor": image.vendor or "",
        "patch_size": geom.size,
        "patch_level": geom.level,
        "downsample": geom.downsample,
        "level_dim": np.asarray(level_dim, np.int64),
        "patch_size_level0": geom.size_level0,
        "stride": geom.stride,
        "stride_level0": geom.stride_level0,
        "overlap": geom.size - geom.stride,
        "read_size": geom.read_size,
        "resize_factor": geom.resize_factor,
        "level0_width": w0,
        "level0_height": h0,
        "level0_magnification": geom.level0_magnification,
        "target_magnification": geom.target_magnification,
        "mpp": geom.slide_mpp,
        "target_mpp": geom.target_mpp,
        "effective_mpp": geom.effective_mpp,
        "placement": cfg.patch.placement,
        "min_foreground": cfg.patch.min_foreground,
        "mask_downsample": ds,
        "foreground_fraction": fg_fraction,
        "domain": cfg.domain,
        "gigapatch_version": __version__,
        "config_hash": cfg.hash(),
    }


def write_outputs(
    ps: PatchSet, image: Image, rgb: np.ndarray, cfg: Config, out_dir: Path,
    extract: bool | None = None, geometry: Any = None,
) -> dict[str, Path]:
    """Write the h5, resolved config YAML, table, overlay (and patches) of one image.
    ``geometry``: the run's :class:`PatchGeometry` (resolved again from ``cfg`` when omitted)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    def named(suffix: str) -> Path:  # image ids may hold dots: never use with_suffix
        return out_dir / f"{ps.image_id}{suffix}"

    paths: dict[str, Path] = {}
    paths["h5"] = ps.write_h5(named(".h5"))
    paths["config"] = named(".yaml")
    write_text_atomic(paths["config"], cfg.to_yaml())
    if cfg.output.table != "none":
        paths["table"] = ps.write_table(named("." + cfg.output.table), include_rejected=True)
    if cfg.output.overlay:
        from .qc import write_overlay

        paths["overlay"] = named("_overlay.png")
        write_overlay(
            paths["overlay"], rgb=rgb, mask=ps.mask, mask_downsample=ps.mask_downsample,
            regions=ps.regions, coords=ps.coords, size_level0=ps.patch_size_level0,
            scores=ps.scores, color_by=cfg.score.rank_by if cfg.score.rank_by in ps.scores else "foreground",
            rejected_coords=ps.rejected_coords, rejected_reason=ps.rejected_reason,
        )
    if cfg.output.geojson:
        from .geojson import export_geojson

        paths["geojson"] = named(".geojson")
        export_geojson(ps, paths["geojson"], regions=ps.regions)
    if cfg.output.extract if extract is None else extract:
        from .extract import extract_patches
        from .geometry import resolve_geometry

        geom = geometry or resolve_geometry(image, cfg.patch)
        extract_patches(
            image, ps.coords, geom, out_dir / ps.image_id,
            fmt=cfg.output.format, quality=cfg.output.quality, workers=cfg.output.workers,
        )
        paths["patches"] = out_dir / ps.image_id
    return paths


# ---------------------------------------------------------------------- cohorts
@dataclass
class ImageResult:
    path: Path
    status: str  # "ok", "empty" or "error"
    n_patches: int = 0
    foreground_fraction: float = 0.0
    seconds: float = 0.0
    message: str = ""
    #: fraction of the mask's foreground inside the kept patches, and of their area under 2+
    coverage: float | None = None
    overlap: float | None = None


@dataclass
class RunSummary:
    results: list[ImageResult] = field(default_factory=list)

    @property
    def n_errors(self) -> int:
        return sum(r.status == "error" for r in self.results)

    def write(self, path: Path) -> Path:
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["path", "status", "n_patches", "foreground_fraction", "coverage", "overlap",
                    "seconds", "message"])
        for r in self.results:
            cov = "" if r.coverage is None else f"{r.coverage:.6f}"
            ovl = "" if r.overlap is None else f"{r.overlap:.6f}"
            w.writerow([r.path, r.status, r.n_patches, f"{r.foreground_fraction:.6f}", cov, ovl,
                        f"{r.seconds:.3f}", r.message])
        write_text_atomic(path, buf.getvalue())
        return path


def tile_many(
    paths: Iterable[Path],
    config: Config,
    out_dir: Path,
    *,
    overrides_per_image: dict[str, dict[str, Any]] | None = None,
    on_done: Callable[[ImageResult], None] | None = None,
) -> RunSummary:
    """Tile a cohort. One bad image is recorded (status "error", one-line message) and the rest
    finish. ``overrides_per_image`` maps a path (or file name) to config overrides (e.g. from a
    manifest: ``{"patch.slide_mpp": 0.25}``). Writes ``<out>/summary.csv``."""
    summary = RunSummary()
    for path in paths:
        t0 = time.perf_counter()
        cfg = config
        ov = (overrides_per_image or {}).get(str(path)) or (overrides_per_image or {}).get(path.name)
        try:
            if ov:
                cfg = Config.model_validate(deep_merge(cfg.model_dump(), nest_dotted(ov)))
            ps = tile_image(path, cfg, out_dir)
            fg = float(ps.attrs.get("foreground_fraction", 0.0))
            empty = len(ps) == 0 or fg < EMPTY_FRACTION
            res = ImageResult(
                path, "empty" if empty else "ok", len(ps), fg, time.perf_counter() - t0,
                f"almost no foreground ({100 * fg:.3f}% of the image)" if empty else "",
                coverage=ps.attrs.get("coverage"), overlap=ps.attrs.get("overlap_fraction"),
            )
        except GigapatchError as e:
            res = ImageResult(path, "error", seconds=time.perf_counter() - t0, message=str(e))
        except Exception as e:  # one bad image must not stop a cohort
            log.debug("unexpected error on %s", path, exc_info=True)
            res = ImageResult(path, "error", seconds=time.perf_counter() - t0,
                              message=f"{path}: {type(e).__name__}: {e}")
        summary.results.append(res)
        if on_done is not None:
            on_done(res)
    summary.write(out_dir / "summary.csv")
    return summary


__all__ = [
    "ImageResult",
    "RunSummary",
    "atomic_path",
    "compute_mask",
    "tile_image",
    "tile_many",
    "write_outputs",
]
