"""Tile one image and write its outputs: the public :func:`tile_image`.

:func:`gigapatch.tiling.pipeline.run_tiling` decides; this module turns its result into a
:class:`PatchSet`, measures coverage per image and per region, and writes the files. Cohorts
(many images, resumable, in parallel): :mod:`gigapatch.cohort`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gigapatch.config import Config, deep_merge, load_config, nest_dotted, read_yaml, validate
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
    claims the image (``gigapatch_image_domain``), else ``generic``. ``domain_overrides`` are
    applied on top of ``overrides`` to the config of the domain they are keyed by only (a
    plugin's own ``gigapatch tile`` flags, :class:`gigapatch.TileOption`).
    """

    domain: str | None = None
    file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    domain_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    _cache: dict[str, Config] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.domain is None and self.file is not None:
            self.domain = read_yaml(self.file).get("domain")

    def resolve(self, domain: str) -> Config:
        """The config of ``domain`` (resolved once per domain)."""
        if domain not in self._cache:
            overrides = {**self.overrides, **self.domain_overrides.get(domain, {})}
            self._cache[domain] = load_config(domain, self.file, overrides)
        return self._cache[domain]

    def for_image(self, image: Image) -> Config:
        """The config ``image`` is tiled with."""
        return self.resolve(self.domain or image_domain(image))

    def config(self, domain: str, overrides: dict[str, Any] | None = None) -> Config:
        """The config of ``domain`` with one image's own ``overrides`` (dotted keys) on top."""
        cfg = self.resolve(domain)
        return _with_overrides(cfg, overrides) if overrides else cfg


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
    labels, areas = None, None
    if ctx.regions:  # the labels the placement saw: regions kept to the mask
        labels, areas = ctx.region_labels, ctx.region_areas
        if labels is None:
            labels = region_labels(ctx.regions, ctx.mask.shape, ctx.mask_downsample, mask=ctx.mask)
            areas = None
    # one pass over the mask: the whole foreground's coverage and every region's
    cov = coverage_report(ctx.mask, ctx.mask_downsample, ps.coords, size, labels=labels,
                          n_labels=len(ctx.regions))
    ps.attrs["coverage"] = float(cov["coverage"])
    ps.attrs["overlap_fraction"] = float(cov["overlap"])
    if labels is not None:
        assert ps.region is not None
        ps.region_summary = region_summary(labels, len(ctx.regions), ctx.mask_downsample,
                                           ps.coords, ps.region, size,
                                           covered=cov["covered_by_label"], areas=areas)
    return ps


def tile_image(
    image: Image | str | Path,
    config: Config | None = None,
    out_dir: str | Path | None = None,
    *,
    extract: bool | None = None,
    image_id: str | None = None,
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
    image_id : name of the output files (default: the image's own, its file name's stem).

    Returns
    -------
    PatchSet of the kept patches (level-0 coords) with score columns, regions and the rejected
    candidates.
    """
    opened = not isinstance(image, Image)
    if not isinstance(image, Image):
        image = open_image(Path(image), domain=config.domain if config is not None else None)
    try:
        cfg = config or ConfigRecipe().for_image(image)
        return tile_and_write(image, cfg, out_dir, extract=extract, image_id=image_id)[0]
    finally:
        if opened:
            image.close()


def tile_and_write(
    image: Image,
    config: Config,
    out_dir: str | Path | None,
    *,
    extract: bool | None = None,
    image_id: str | None = None,
    previews: dict[str, bytes] | None = None,
) -> tuple[PatchSet, dict[str, Path]]:
    """:func:`tile_image` on an open image with a resolved config; also returns the files
    written (kind -> path: ``h5``, ``config``, ``table``, ``regions``, ``overlay``, ``geojson``,
    ``patches`` and the plugins' own), empty when ``out_dir`` is None. ``previews``: see
    :func:`gigapatch.outputs.write.write_outputs`."""
    t0 = time.perf_counter()
    tiling = run_tiling(image, config)
    ps = patchset_from(tiling)
    if image_id is not None:
        ps.image_id = image_id
        ps.attrs["name"] = image_id
    fg = float(ps.attrs.get("foreground_fraction", 0.0))
    if fg < EMPTY_FRACTION or len(ps) == 0:
        log.warning("%s: %s; %d patches kept", ps.image_id, empty_reason(ps), len(ps))
    ps.attrs["seconds"] = round(time.perf_counter() - t0, 3)
    paths: dict[str, Path] = {}
    if out_dir is not None:
        paths = write_outputs(ps, tiling.context, config, Path(out_dir), extract=extract,
                              previews=previews)
    return ps, paths


def empty_reason(ps: PatchSet) -> str:
    """Why an image gave (almost) no patches, in words: foreground only in pieces smaller than
    a patch (the pipeline's ``foreground_note``), else almost no foreground."""
    note = ps.attrs.get("foreground_note")
    if note:
        return str(note)
    fg = float(ps.attrs.get("foreground_fraction", 0.0))
    return f"almost no foreground ({100 * fg:.3f}% of the image)"


def _with_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    return validate(Config, deep_merge(cfg.model_dump(), nest_dotted(overrides)))


__all__ = ["ConfigRecipe", "empty_reason", "patchset_from", "tile_and_write", "tile_image"]
