"""The metal_surface domain's commands: ``gigapatch fit-normal`` and ``gigapatch metrics``.

``gigapatch fit-normal --domain metal_surface IMAGES... --out model.npz`` fits the model of
defect-free texture (:mod:`.normal`) on the cells of the given images (their metal only) and
writes it; ``--set plugin.metal_surface.normal_model=model.npz`` (or ``normal_model:`` in a
config file) then scores scans against it instead of against themselves.

``gigapatch metrics --domain metal_surface OUT`` reads the outputs of ``gigapatch tile`` in
``OUT`` and the true boxes (``<image>.xml`` beside each image, or in ``--truth DIR``) and prints
per image and pooled: per-defect recall when reviewing the best k % of the patches by a score
(and the best any k % could do, by HiGHS), AUPRO up to FPR 0.3 of the distance-from-normal
map, and the defect records' false alarms per metre of strip.
"""

# no "from __future__ import annotations": typer reads the commands' annotations at run time

from pathlib import Path
from typing import Annotated, Any

from gigapatch import hookimpl

from .settings import DOMAIN


def _check_domain(domain: str) -> None:
    from gigapatch import ConfigError

    if domain != DOMAIN:
        raise ConfigError(f"this command belongs to the {DOMAIN} domain (got --domain {domain!r})")


def fit_normal(
    images: list[Path], out: Path, cell: int | None = None, patch_size: int = 256
) -> dict[str, Any]:
    """Fit and write a normal-texture model on defect-free ``images``; returns a summary."""
    from gigapatch import ConfigError, find_images, load_config, open_image

    from .features import feature_map
    from .mask import metal_mask
    from .normal import fit_normal as fit
    from .scoring import cell_side, valid_cells
    from .settings import settings

    s = settings(load_config(DOMAIN))
    side = int(cell) if cell is not None else cell_side(s, patch_size)
    maps = []
    paths = find_images(images)
    for path in paths:
        with open_image(path, domain=DOMAIN) as img:
            w, h = img.dimensions
            ds = max(1.0, max(w, h) / 2048)
            view = img.read_level_downsampled(ds)
            mask = metal_mask(view, background=s.background)
            feats = feature_map(img, (0, 0, w, h), side)
            ok = valid_cells(mask, ds, (0, 0), feats.shape[:2], side)
            maps.append(feats[ok][:, None, :])
    cells = sum(len(m) for m in maps)
    if cells < 64:
        raise ConfigError(f"{cells} cells of metal in {len(paths)} images: too few to fit a "
                          "model of normal texture (give larger or more images)")
    model = fit(maps, side)
    model.save(out)
    return {"images": len(paths), "cells": cells, "cell": side, "out": str(out)}


def evaluate(out_dir: Path, truth_dir: Path | None, percents: list[float], rank_by: str,
             fpr_limit: float = 0.3) -> list[dict[str, Any]]:
    """Per-image figures of the tiled images in ``out_dir`` that have true boxes (see the
    module docstring); the last row pools every image ("all")."""
    import numpy as np

    from gigapatch import ConfigError, PatchSet

    from . import metrics as M
    from .voc import read_voc_boxes

    rows: list[dict[str, Any]] = []
    pooled: dict[str, list[Any]] = {"held": [], "scores": [], "maps": [], "masks": [],
                                    "records": [], "length": []}
    rng = np.random.default_rng(0)
    for h5 in sorted(Path(out_dir).glob("*.h5")):
        ps = PatchSet.read(h5)
        src = Path(str(ps.attrs.get("image_path", "")))
        xml = (truth_dir / f"{ps.image_id}.xml") if truth_dir else src.with_suffix(".xml")
        if not xml.is_file():
            continue
        truth = M.rects(read_voc_boxes(xml))
        fg = np.concatenate([ps.scores["foreground"], ps.rejected_scores["foreground"]])
        coords = np.concatenate([ps.coords, ps.rejected_coords])
        cols = {k: np.concatenate([ps.scores[k], ps.rejected_scores[k]]) for k in ps.scores}
        if rank_by not in cols:
            raise ConfigError(f"{h5}: no score column {rank_by!r} (columns: {', '.join(cols)})")
        reasons = np.concatenate([np.full(len(ps.coords), ""), ps.rejected_reason])
        live = (reasons == "") | np.isin(reasons, ("top_n", "top_percent"))
        coords, score = coords[live], cols[rank_by][live]
        del fg
        held = M.holds(coords, ps.patch_size_level0, truth)
        row: dict[str, Any] = {"image": ps.image_id, "defects": len(truth),
                               "patches": len(coords),
                               "coverable": float(held.any(axis=0).mean()) if len(truth) else 0}
        for p in percents:
            k = M.budget(len(coords), p)
            row[f"recall@{p:g}%"] = M.recall_at(held, M.top_k(score, k))
            row[f"oracle@{p:g}%"] = M.oracle_recall(held, k)[0]
            row[f"random@{p:g}%"] = float(np.mean([
                M.recall_at(held, rng.choice(len(coords), k, replace=False)) for _ in range(20)]))
        npz = h5.with_name(f"{ps.image_id}_defects.npz")
        mpp = ps.attrs.get("mpp")
        length_m = (float(ps.attrs.get("level0_height", 0)) * float(mpp) * 1e-6
                    if mpp else float("nan"))
        if npz.is_file():
            with np.load(npz) as z:
                dist, cell = z["distance"], int(z["cell"])
                origin = tuple(int(v) for v in z["origin"])
            shifted = truth - np.array([origin[0], origin[1], origin[0], origin[1]])
            mask = M.box_mask(shifted, dist.shape, cell)
            row[f"aupro@{fpr_limit:g}"] = M.aupro(dist, mask, fpr_limit)
            pooled["maps"].append(dist)
            pooled["masks"].append(mask)
        csv_path = h5.with_name(f"{ps.image_id}_defects.csv")
        if csv_path.is_file():
            import csv

            with open(csv_path, newline="") as f:
                recs = np.array([[float(r[k]) for k in ("x0", "y0", "x1", "y1")]
                                 for r in csv.DictReader(f)]).reshape(-1, 4)
            st = M.record_stats(recs, truth, length_m)
            row["records"] = int(st["records"])
            row["records_found"] = st["found"]
            row["duplicates"] = st["duplicates"]
            row["false_alarms_per_m"] = st["false_alarms_per_m"]
        rows.append(row)
    if not rows:
        raise ConfigError(f"{out_dir}: no tiled image with true boxes (<image>.xml) found")
    if len(rows) > 1:
        total = {"image": "all", "defects": sum(r["defects"] for r in rows),
                 "patches": sum(r["patches"] for r in rows)}
        for key in rows[0]:
            if key not in total and isinstance(rows[0][key], float):
                vals = [r[key] for r in rows if key in r]
                weights = [r["defects"] for r in rows if key in r]
                total[key] = float(np.average(vals, weights=weights)) if sum(weights) else 0.0
        if pooled["maps"]:
            total[f"aupro@{fpr_limit:g}"] = M.aupro(pooled["maps"], pooled["masks"], fpr_limit)
        rows.append(total)
    return rows


@hookimpl
def gigapatch_cli_commands(app: Any) -> None:
    """``gigapatch fit-normal`` and ``gigapatch metrics``."""
    import typer

    @app.command("fit-normal")
    def fit_normal_command(
        images: Annotated[list[Path], typer.Argument(help="defect-free images or folders")],
        out: Annotated[Path, typer.Option("--out", "-o", help="the model file (.npz)")],
        domain: Annotated[str, typer.Option(help="the domain (metal_surface)")] = DOMAIN,
        cell: Annotated[int | None, typer.Option(help="cell side in px")] = None,
        patch_size: Annotated[int, typer.Option(help="patch side the model will serve")] = 256,
    ) -> None:
        """Fit a model of normal (defect-free) metal texture; use it with
        --set plugin.metal_surface.normal_model=MODEL."""
        _check_domain(domain)
        res = fit_normal(images, out, cell, patch_size)
        typer.echo(f"fitted on {res['cells']} cells of {res['cell']} px from {res['images']} "
                   f"images -> {res['out']}")

    @app.command("metrics")
    def metrics_command(
        out_dir: Annotated[Path, typer.Argument(help="the --out folder of gigapatch tile")],
        domain: Annotated[str, typer.Option(help="the domain (metal_surface)")] = DOMAIN,
        truth: Annotated[Path | None, typer.Option(
            help="folder of <image_id>.xml true boxes (default: beside each image)")] = None,
        percent: Annotated[list[float] | None, typer.Option(
            help="review budget in % of the patches (repeatable)")] = None,
        rank_by: Annotated[str, typer.Option(help="score that orders the review")] = "review",
        fpr_limit: Annotated[float, typer.Option(help="AUPRO up to this FPR")] = 0.3,
    ) -> None:
        """Per-defect recall at a review budget (and the best possible), AUPRO, false alarms."""
        _check_domain(domain)
        rows = evaluate(out_dir, truth, percent or [5.0, 10.0], rank_by, fpr_limit)
        keys = list(dict.fromkeys(k for r in rows for k in r))
        typer.echo("\t".join(keys))
        for r in rows:
            typer.echo("\t".join(f"{r[k]:.3f}" if isinstance(r.get(k), float) else str(r.get(k, ""))
                                 for k in keys))


__all__ = ["evaluate", "fit_normal"]
