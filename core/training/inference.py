"""Grade new images with a trained checkpoint, seeing exactly the pixels training saw.

The checkpoint carries the frozen config (arm, tiling level, tile size, N, normalisation, label
names), so prediction re-tiles each image the same way, builds the same mosaic (the N best tiles,
group ``"first"``) or resized picture, and writes it beside the grades.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gigapatch.errors import ImageError

if TYPE_CHECKING:
    from gigapatch.io.image import Image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".tiff", ".tif", ".svs", ".ndpi", ".mrxs", ".scn", ".png", ".jpg", ".jpeg")


def _expand(images: Sequence[str | Path], suffix: str | None) -> list[Path]:
    """Files stay; a folder gives its images (the training suffix, if any, or a known one)."""
    wanted = {*IMAGE_SUFFIXES, *([suffix.lower()] if suffix else [])}
    paths: list[Path] = []
    for p in map(Path, images):
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in wanted)
            if not found:
                raise ImageError(p, "no images in this folder")
            paths += found
        elif p.is_file():
            paths.append(p)
        else:
            raise ImageError(p, "image not found")
    return paths


def _image_id(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def predict(
    checkpoint: str | Path,
    images: Sequence[str | Path],
    out: str | Path,
    *,
    device: str = "auto",
    batch_size: int = 8,
    coords_dir: str | Path | None = None,
    opener: Callable[[Path], Image] | None = None,
    save_pictures: bool = True,
) -> list[dict[str, Any]]:
    """Predict the grade of each image.

    Parameters
    ----------
    checkpoint : a ``best.pt``/``last.pt`` written by :func:`gigapatch.training.trainer.train`.
    images : image files (or folders of them).
    out : output folder: ``predictions.csv`` (image_id, grade, label, prob_0..prob_{C-1},
        picture) and ``<image_id>_mosaic.png`` (or ``_resized.png``), the picture the model saw.
    device : ``"auto"``, ``"cpu"`` or ``"cuda"``.
    batch_size : pictures per forward pass.
    coords_dir : folder of ``<image_id>.h5`` PatchSets to use instead of tiling again.
    opener : ``path -> Image`` (default :func:`gigapatch.open_image`).
    save_pictures : write the PNGs.

    Returns
    -------
    list of dicts, one per image: ``image_id``, ``grade`` (int), ``label`` (its name),
    ``probs`` (list of C floats), ``picture`` (PNG path or None).
    """
    import cv2

    from gigapatch.training.datasets import build_items, make_dataset, to_tensor
    from gigapatch.training.models import decode
    from gigapatch.training.samples import Sample
    from gigapatch.training.trainer import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(checkpoint)
    model, cfg = model_from_checkpoint(ckpt)
    if coords_dir is not None:
        cfg.data.coords_dir = Path(coords_dir)
    cfg.data.patches_dir = None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = _expand(images, cfg.data.suffix)
    samples = [Sample(_image_id(p), p, -1) for p in paths]
    items = build_items(samples, cfg, cache=out / "tiles")
    ds = make_dataset(items, cfg, train=False, opener=opener)
    dev = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
    model.to(dev).eval()
    kind = "mosaic" if cfg.arm == "mosaic" else ("resized" if cfg.arm == "resize" else "patch")
    names = cfg.label_names
    results: list[dict[str, Any]] = []
    try:
        for start in range(0, len(items), batch_size):
            idx = range(start, min(len(items), start + batch_size))
            pics = [ds.picture(i, augment=False) for i in idx]
            x = torch.stack([ds._tf[False](to_tensor(p)) for p in pics]).to(dev)
            with torch.no_grad():
                grades, probs = decode(cfg.head, model(x).float())
            for j, i in enumerate(idx):
                it = items[i]
                pic_path = None
                if save_pictures:
                    pic_path = out / f"{it.image_id}_{kind}.png"
                    cv2.imwrite(str(pic_path), cv2.cvtColor(pics[j], cv2.COLOR_RGB2BGR))
                g = int(grades[j])
                results.append({
                    "image_id": it.image_id,
                    "grade": g,
                    "label": names[g],
                    "probs": [float(p) for p in probs[j].cpu().tolist()],
                    "picture": str(pic_path) if pic_path else None,
                })
                log.info("%s: grade %s", it.image_id, names[g])
    finally:
        ds.close()
    with open(out / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "grade", "label", *[f"prob_{k}" for k in range(cfg.classes)],
                    "picture"])
        for r in results:
            w.writerow([r["image_id"], r["grade"], r["label"],
                        *[f"{p:.5f}" for p in r["probs"]], r["picture"] or ""])
    return results


def grades_array(results: list[dict[str, Any]]) -> np.ndarray:
    """(N,) int64 grades of :func:`predict`'s results, in order."""
    return np.asarray([r["grade"] for r in results], np.int64)
