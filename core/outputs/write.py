"""The files of one tiled image: h5, resolved config, table, regions, overlay, GeoJSON, patches."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from gigapatch.config import Config
from gigapatch.io.atomic import write_text_atomic
from gigapatch.outputs.patchset import PatchSet
from gigapatch.plugin.context import ImageContext
from gigapatch.plugin.manager import get_plugin_manager

#: the overlay's preview (the cohort report's thumbnail): width in px, JPEG quality
PREVIEW_WIDTH = 240
PREVIEW_QUALITY = 80


def write_outputs(
    ps: PatchSet, context: ImageContext, cfg: Config, out_dir: Path, extract: bool | None = None,
    previews: dict[str, bytes] | None = None,
) -> dict[str, Path]:
    """Write the h5, resolved config YAML, table, region table, overlay (and GeoJSON, patches,
    contact sheet, then each plugin's ``gigapatch_write_outputs`` files) of one image into
    ``out_dir``; every file goes to a temporary name first. Returns the paths by kind.

    ``previews``, when given, receives ``"overlay"``: the overlay's :func:`preview_jpeg`, made
    from the picture in memory (the cohort report's thumbnail, without decoding the PNG again).
    """
    out_dir.mkdir(parents=True, exist_ok=True)

    def named(suffix: str) -> Path:  # image ids may hold dots: never use with_suffix
        return out_dir / f"{ps.image_id}{suffix}"

    paths: dict[str, Path] = {}
    paths["h5"] = ps.write_h5(named(".h5"))
    paths["config"] = named(".yaml")
    write_text_atomic(paths["config"], cfg.to_yaml())
    if cfg.output.table != "none":
        paths["table"] = ps.write_table(named("." + cfg.output.table), include_rejected=True)
    paths["regions"] = write_region_table(named("_regions.csv"), ps)  # a header when no region
    if cfg.output.overlay and context.rgb is not None:
        from gigapatch.outputs.overlay import overlay_image, write_png

        paths["overlay"] = named("_overlay.png")
        picture = overlay_image(
            rgb=context.rgb, mask=ps.mask, mask_downsample=ps.mask_downsample,
            regions=ps.regions, coords=ps.coords, size_level0=ps.patch_size_level0,
            scores=ps.scores,
            color_by=cfg.score.rank_by if cfg.score.rank_by in ps.scores else "foreground",
            rejected_coords=ps.rejected_coords, rejected_reason=ps.rejected_reason,
            image=context.image,
        )
        write_png(paths["overlay"], picture)
        if previews is not None:
            previews["overlay"] = preview_jpeg(picture)
    if cfg.output.geojson:
        from gigapatch.outputs.geojson import export_geojson

        paths["geojson"] = named(".geojson")
        export_geojson(ps, paths["geojson"], regions=ps.regions)
    if cfg.output.extract if extract is None else extract:
        from gigapatch.outputs.extract import extract_patches

        assert context.geometry is not None
        tar = cfg.output.format == "tar"
        extract_patches(
            context.image, ps.coords, context.geometry, out_dir / ps.image_id,
            fmt=cfg.output.format, quality=cfg.output.quality, workers=cfg.output.workers,
            shard_size=cfg.output.shard_size, key_prefix=ps.image_id if tar else None,
            sample_data=ps.table() if tar else None,  # each sample's row: scores, labels
            replace=True,  # the image's own folder: no stale patch of an earlier config
        )
        paths["patches"] = out_dir / ps.image_id
    if cfg.output.contact_sheet and len(ps):
        paths["contact_sheet"] = write_contact_sheet(named("_contact.png"), ps, context, cfg)
    for extra in get_plugin_manager().hook.gigapatch_write_outputs(
        patchset=ps, context=context, out_dir=out_dir
    ):
        paths.update(extra or {})
    return paths


def preview_jpeg(rgb: np.ndarray, width: int = PREVIEW_WIDTH, quality: int = PREVIEW_QUALITY
                 ) -> bytes:
    """JPEG bytes of an (h, w, 3) uint8 RGB picture shrunk to ``width`` px wide (area
    averaging, aspect kept; never enlarged)."""
    import cv2

    bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, 2::-1])
    h, w = bgr.shape[:2]
    if w > width:
        bgr = cv2.resize(bgr, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())


def write_contact_sheet(path: Path, ps: PatchSet, context: ImageContext, cfg: Config) -> Path:
    """``<id>_contact.png``: the 16 best and 16 worst kept patches by ``score.rank_by`` (else
    ``foreground``), read as the run read them (:attr:`PatchSet.geometry`)."""
    from gigapatch.outputs.overlay import contact_sheet

    by = cfg.score.rank_by if cfg.score.rank_by in ps.scores else "foreground"
    contact_sheet(context.image, ps.coords, ps.geometry, ps.scores, by, path=path,
                  workers=cfg.output.workers)
    return path


def write_region_table(path: Path, ps: PatchSet) -> Path:
    """``<id>_regions.csv``: one row per region (``region`` = its id in the tables) with its
    bounding box (level-0 px), foreground area (level-0 px^2), kept patches and coverage (share
    of its foreground inside any kept patch)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["region", "x0", "y0", "x1", "y1", "area_level0", "n_patches", "coverage"])
    for row in ps.region_summary:
        k = int(row["region"])
        box = ps.regions[k].bbox if k < len(ps.regions) else (float("nan"),) * 4
        w.writerow([k, *(f"{v:.1f}" for v in box), f"{float(row['area_level0']):.1f}",
                    int(row["n_patches"]), f"{float(row['coverage']):.6f}"])
    write_text_atomic(path, buf.getvalue())
    return path


__all__ = ["PREVIEW_QUALITY", "PREVIEW_WIDTH", "preview_jpeg", "write_contact_sheet",
           "write_outputs", "write_region_table"]
