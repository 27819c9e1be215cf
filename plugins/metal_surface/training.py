"""``gigapatch train --domain metal_surface``: a timm classifier on labelled patches.

``--data`` is the ``--out`` folder of ``gigapatch tile`` run on scans with Pascal-VOC boxes
beside them (each table then has a ``label`` column: the class of the box overlapping a patch
most, or ``normal``). Every patch of those tables (kept, or dropped only by ``top_n`` /
``top_percent``) is written as an 8-bit picture under ``<out>/patches/`` with a ``labels.csv``
(classes sorted, ``normal`` first), and the core's trainer runs its ``patch`` arm on them
(stratified K-fold, accuracy per epoch in ``metrics.csv``, a confusion matrix per fold); the
accuracy and confusion matrix of each fold's best epoch are logged at the end. A ``--data``
folder without labelled tables (e.g. class folders already turned into ``labels.csv`` +
``images/``) goes to the generic trainer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from gigapatch import hookimpl

from .outputs import NORMAL
from .settings import DOMAIN

log = logging.getLogger("gigapatch.metal_surface")


def patch_table(data: Path) -> list[tuple[Path, str, np.ndarray, int, str]]:
    """(image path, image id, (M, 2) coords, patch side level 0, labels joined by \\0) of every
    tiled image in ``data`` whose table has labels."""
    from gigapatch import PatchSet

    out = []
    for h5 in sorted(Path(data).glob("*.h5")):
        ps = PatchSet.read(h5)
        kept = ps.columns.get("label")
        dropped = ps.rejected_columns.get("label")
        if kept is None or dropped is None:
            continue
        live = np.isin(ps.rejected_reason, ("top_n", "top_percent"))
        coords = np.concatenate([ps.coords, ps.rejected_coords[live]])
        labels = np.concatenate([kept, dropped[live]]).astype(str)
        out.append((Path(str(ps.attrs["image_path"])), ps.image_id, coords,
                    int(ps.patch_size_level0), "\0".join(labels)))
    return out


def build_patch_folder(data: Path, out: Path) -> tuple[Path, list[str]]:
    """Write every labelled patch of ``data`` as an 8-bit PNG under ``out/patches/<id>/`` and
    ``out/patches/labels.csv`` (``image_id, label``); returns the folder and the class names."""
    import csv

    import cv2

    from gigapatch import ConfigError, atomic_path, open_image

    rows = patch_table(data)
    if not rows:
        raise ConfigError(f"{data}: no tiled image with a 'label' column (tile scans that have "
                          "Pascal-VOC boxes beside them with --domain metal_surface first)")
    names = sorted({n for r in rows for n in r[4].split("\0")} - {NORMAL})
    classes = [NORMAL, *names]
    folder = out / "patches"
    table = []
    for path, image_id, coords, size, joined in rows:
        (folder / image_id).mkdir(parents=True, exist_ok=True)
        with open_image(path, domain=DOMAIN) as img:
            for (x, y), label in zip(coords.tolist(), joined.split("\0")):
                rgb = img.read_region((x, y), 0, (size, size))
                name = f"{image_id}/{x}_{y}"
                cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                table.append((name, classes.index(label)))
    with atomic_path(folder / "labels.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "label"])
        w.writerows(table)
    return folder, classes


@hookimpl
def gigapatch_train(config: dict[str, Any], data: Path, out: Path, domain: str | None) -> dict[str, Any] | None:
    """Train on the labelled patches of a metal_surface tiling (see the module docstring)."""
    if domain != DOMAIN or not patch_table(Path(data)):
        return None  # not a labelled tiling: the generic trainer (labels.csv + images/) runs
    from gigapatch.training import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folder, classes = build_patch_folder(Path(data), out)
    base = {"arm": "patch", "model": "resnet18", "patch_size": 224, "folds": 3,
            "data": {"csv": "labels.csv", "images": ".", "suffix": ".png",
                     "label_names": classes}}
    cfg = _merge(base, config)
    summary = train(cfg, folder, out)
    _log_confusion(out, summary, classes)
    return summary


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _log_confusion(out: Path, summary: dict[str, Any], classes: list[str]) -> None:
    """Log each fold's best-epoch accuracy and confusion matrix (rows: truth)."""
    import csv

    for k in summary.get("folds", {}):
        pred = out / f"fold{k}" / "val_predictions.csv"
        if not pred.is_file():
            continue
        with open(pred, newline="") as f:
            rows = list(csv.DictReader(f))
        y = np.array([int(r["label"]) for r in rows])
        p = np.array([int(r["pred"]) for r in rows])
        cm = np.zeros((len(classes), len(classes)), np.int64)
        np.add.at(cm, (y, p), 1)
        acc = float((y == p).mean()) if len(y) else 0.0
        summary["folds"][k]["accuracy"] = acc
        lines = [f"fold {k}: accuracy {acc:.3f}; confusion (rows: truth; columns: prediction)"]
        width = max(len(c) for c in classes)
        lines.append(" " * width + " " + " ".join(f"{c[:8]:>8}" for c in classes))
        for c, row in zip(classes, cm):
            lines.append(f"{c:>{width}} " + " ".join(f"{v:>8d}" for v in row))
        log.info("%s", "\n".join(lines))


__all__ = ["build_patch_folder", "patch_table"]
