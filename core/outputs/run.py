"""Tile one image or a cohort and write their outputs: the public :func:`tile_image`.

:func:`gigapatch.tiling.pipeline.run_tiling` decides; this module turns its result into a
:class:`PatchSet`, measures coverage per image and per region, and writes the files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gigapatch.config import Config, deep_merge, load_config, nest_dotted, read_yaml, validate
from gigapatch.errors import GigapatchError
from gigapatch.io.atomic import write_text_atomic
from gigapatch.io.image import Image
from gigapatch.io.readers import open_image
from gigapatch.outputs.patchset import PatchSet
from gigapatch.outputs.write import write_outputs
from gigapatch.plugin.manager import image_domain
from gigapatch.tiling.coverage import coverage_report
from gigapatch.tiling.pipeline import Tiling, run_tiling
from gigapatch.tiling.regions import region_labels, region_summary

log = logging.getLogger(__name__)

#: below this fraction of foreground a run is "empty": loud, but not an error
EMPTY_FRACTION = 0.001


@dataclass
class ConfigRecipe:
    """How to resolve the config of each image of a run: a domain (None = the image's own, see
    :func:`gigapatch.plugin.manager.image_domain`), a YAML file and flag overrides.

    The domain comes from, in order: ``domain``, the file's ``domain:`` key, the first plugin that
    claims the image (``gigapatch_image_domain``), else ``generic``.
    """

    domain: str | None = None
    file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Config] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.domain is None and self.file is not None:
            self.domain = read_yaml(self.file).get("domain")

    def resolve(self, domain: str) -> Config:
        """The config of ``domain`` (resolved once per domain)."""
        if domain not in self._cache:
            self._cache[domain] = load_config(domain, self.file, self.overrides)
        return self._cache[domain]

    def for_image(self, image: Image) -> Config:
        """The config ``image`` is tiled with."""
        return self.resolve(self.domain or image_domain(image))


def patchset_from(tiling: Tiling) -> PatchSet:
    """The :class:`PatchSet` of a tiling: kept patches, rejected candidates, regions and the
    coverage of the foreground, as a whole and per region."""
    ctx, keep = tiling.context, tiling.keep
    assert ctx.geometry is not None and ctx.mask is not None
    ps = PatchSet(
        image_id=ctx.image.image_id,
        coords=tiling.coords[keep],
        scores={k: v[keep].astype(np.float32) for k, v in tiling.scores.items()},
        attrs=dict(tiling.attrs),
        rejected_coords=tiling.coords[~keep],
        rejected_reason=tiling.reason[~keep],
        rejected_scores={k: v[~keep].astype(np.float32) for k, v in tiling.scores.items()},
        mask=ctx.mask,
        mask_downsample=ctx.mask_downsample,
        regions=ctx.regions,
        region=tiling.region[keep],
        rejected_region=tiling.region[~keep],
        columns={k: v[keep] for k, v in tiling.columns.items()},
        rejected_columns={k: v[~keep] for k, v in tiling.columns.items()},
    )
    size = ctx.geometry.size_level0
    cov = coverage_report(ctx.mask, ctx.mask_downsample, ps.coords, size)
    ps.attrs["coverage"] = float(cov["coverage"])
    ps.attrs["overlap_fraction"] = float(cov["overlap"])
    if ctx.regions:  # the labels the placement saw: regions kept to the mask
        labels = region_labels(ctx.regions, ctx.mask.shape, ctx.mask_downsample, mask=ctx.mask)
        assert ps.region is not None
        ps.region_summary = region_summary(labels, len(ctx.regions), ctx.mask_downsample,
                                           ps.coords, ps.region, size)
    return ps


def tile_image(
    image: Image | str | Path,
    config: Config | None = None,
    out_dir: str | Path | None = None,
    *,
    extract: bool | None = None,
) -> PatchSet:
    """Tile one image: compute its mask and regions, place and score patches, select, and write.

    Parameters
    ----------
    image : an open :class:`Image`, or a path (opened through the plugins and closed afterwards).
    config : resolved config (default: the defaults of the image's domain, see
        :class:`ConfigRecipe`).
    out_dir : where to write ``<id>.h5``, ``<id>.yaml``, the tables and the overlay; None writes
        nothing.
    extract : override ``config.output.extract``.

    Returns
    -------
    PatchSet of the kept patches (level-0 coords) with score columns, regions and the rejected
    candidates.
    """
    opened = not isinstance(image, Image)
    if not isinstance(image, Image):
        image = open_image(Path(image), domain=config.domain if config is not None else None)
    try:
        t0 = time.perf_counter()
        cfg = config or ConfigRecipe().for_image(image)
        tiling = run_tiling(image, cfg)
        ps = patchset_from(tiling)
        fg = float(ps.attrs.get("foreground_fraction", 0.0))
        if fg < EMPTY_FRACTION or len(ps) == 0:
            log.warning("%s: almost no foreground found (%.4f%% of the image); %d patches kept",
                        image.image_id, 100 * fg, len(ps))
        ps.attrs["seconds"] = round(time.perf_counter() - t0, 3)
        if out_dir is not None:
            write_outputs(ps, tiling.context, cfg, Path(out_dir), extract=extract)
        return ps
    finally:
        if opened:
            image.close()


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
    #: regions the mask was segmented into (per-region figures: ``<id>_regions.csv``)
    n_regions: int | None = None


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
        w.writerow(["path", "status", "n_patches", "n_regions", "foreground_fraction", "coverage",
                    "overlap", "seconds", "message"])
        for r in self.results:
            cov = "" if r.coverage is None else f"{r.coverage:.6f}"
            ovl = "" if r.overlap is None else f"{r.overlap:.6f}"
            n_reg = "" if r.n_regions is None else r.n_regions
            w.writerow([r.path, r.status, r.n_patches, n_reg, f"{r.foreground_fraction:.6f}", cov,
                        ovl, f"{r.seconds:.3f}", r.message])
        write_text_atomic(path, buf.getvalue())
        return path


def tile_many(
    paths: Iterable[Path],
    config: Config | ConfigRecipe,
    out_dir: Path,
    *,
    overrides_per_image: dict[str, dict[str, Any]] | None = None,
    on_done: Callable[[ImageResult], None] | None = None,
) -> RunSummary:
    """Tile a cohort. One bad image is recorded (status "error", one-line message) and the rest
    finish. ``config``: one resolved config for every image, or a :class:`ConfigRecipe` resolved
    per image (its domain picked by the image when the recipe names none).
    ``overrides_per_image`` maps a path (or file name) to config overrides (e.g. from a
    manifest: ``{"patch.slide_mpp": 0.25}``). Writes ``<out>/summary.csv``."""
    summary = RunSummary()
    for path in paths:
        t0 = time.perf_counter()
        ov = (overrides_per_image or {}).get(str(path)) or (overrides_per_image or {}).get(path.name)
        try:
            if isinstance(config, ConfigRecipe):
                ps = _tile_with_recipe(path, config, out_dir, ov)
            else:
                ps = tile_image(path, _with_overrides(config, ov) if ov else config, out_dir)
            fg = float(ps.attrs.get("foreground_fraction", 0.0))
            empty = len(ps) == 0 or fg < EMPTY_FRACTION
            res = ImageResult(
                path, "empty" if empty else "ok", len(ps), fg, time.perf_counter() - t0,
                f"almost no foreground ({100 * fg:.3f}% of the image)" if empty else "",
                coverage=ps.attrs.get("coverage"), overlap=ps.attrs.get("overlap_fraction"),
                n_regions=len(ps.regions),
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


def _with_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    return validate(Config, deep_merge(cfg.model_dump(), nest_dotted(overrides)))


def _tile_with_recipe(
    path: Path, recipe: ConfigRecipe, out_dir: Path, overrides: dict[str, Any] | None
) -> PatchSet:
    with open_image(path, domain=recipe.domain) as image:
        cfg = recipe.for_image(image)
        if overrides:
            cfg = _with_overrides(cfg, overrides)
        return tile_image(image, cfg, out_dir)


__all__ = ["ConfigRecipe", "ImageResult", "RunSummary", "tile_image", "tile_many"]
