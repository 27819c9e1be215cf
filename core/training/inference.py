"""Grade new images with a trained checkpoint, seeing exactly the pixels training saw.

The checkpoint carries the frozen config (arm, tiling level, tile size, N, normalisation, label
names) and the physical resolution of the training tiles (``data_config``: ``mpp``,
``downsample``, ``level``), so prediction re-tiles each image at that resolution -- the best
pyramid level at or below it, resized -- builds the same mosaic (the N best tiles, group
``"first"``) or resized picture, and writes it beside the grades. An image whose resolution
cannot be matched (its file records no mpp while the model's tiles have one, and no
``slide_mpp`` is given; or, for a model trained without mpp, a level of another downsample) is
refused with one line naming it.
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
    from gigapatch.training.config import TrainConfig
    from gigapatch.training.datasets import SlideItem

log = logging.getLogger(__name__)

#: resolutions within this relative tolerance count as the same
TOLERANCE = 0.1


def _expand(images: Sequence[str | Path], suffix: str | None) -> list[Path]:
    """Files stay; a folder gives its images (:func:`gigapatch.find_images`, plus files of the
    training suffix)."""
    from gigapatch.io.readers import find_images

    paths: list[Path] = []
    for p in map(Path, images):
        if p.is_dir() and suffix:
            extra = [q for q in p.iterdir() if q.is_file() and q.suffix.lower() == suffix.lower()]
            try:
                found = find_images([p])
            except ImageError:
                if not extra:
                    raise
                found = []
            paths += sorted({*found, *extra})
        elif p.is_dir() or p.is_file():
            paths += find_images([p])
        else:
            raise ImageError(p, "image not found")
    return list(dict.fromkeys(paths))


def _image_id(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _differs(a: float, b: float) -> bool:
    return abs(a / b - 1.0) > TOLERANCE


def check_image_resolution(
    image: Image, cfg: TrainConfig, dc: dict[str, Any], slide_mpp: float | None = None
) -> None:
    """Refuse (one :class:`ImageError` line) an image whose tiles cannot be read at the
    resolution of the model's training tiles (see the module docstring)."""
    mpp, ds = dc.get("mpp"), dc.get("downsample")
    where = image.path or image.image_id
    if mpp is not None:
        if (slide_mpp or image.mpp) is None:
            raise ImageError(where, f"the file records no mpp (microns per pixel), and the model "
                                    f"was trained on tiles of {mpp:.3g} um/px: pass --slide-mpp "
                                    "(its level-0 mpp) so they are read at that resolution")
        return
    if ds is None:  # a checkpoint without the tiles' geometry: the configured level, as trained
        return
    level = min(cfg.mosaic.level, image.level_count - 1)
    have = float(image.level_downsamples[level])
    if _differs(have, float(ds)):
        raise ImageError(where, f"the model was trained on tiles at downsample {ds:.3g} of "
                                f"images without an mpp; this image's level {level} has "
                                f"downsample {have:.3g} and its resolution cannot be matched "
                                "without an mpp on both (retrain on images that record one)")


def check_item_resolution(item: SlideItem, cfg: TrainConfig, dc: dict[str, Any], h5: Path) -> None:
    """Refuse precomputed tiles (``coords_dir``) of another resolution than the model's."""
    mpp, ds = dc.get("mpp"), dc.get("downsample")
    if mpp is not None:
        if item.mpp is None or _differs(item.mpp, mpp):
            have = "no mpp" if item.mpp is None else f"tiles of {item.mpp:.3g} um/px"
            raise ImageError(h5, f"holds {have}; the model was trained on tiles of {mpp:.3g} um/px "
                                 "(tile again with --mpp, or leave out --coords-dir)")
    elif ds is not None and item.size_level0 > 0:
        tiles_ds = item.size_level0 / cfg.mosaic.tile_size
        if _differs(tiles_ds, float(ds)):
            raise ImageError(h5, f"holds tiles at downsample {tiles_ds:.3g}; the model was trained "
                                 f"at downsample {ds:.3g}")


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
    slide_mpp: float | None = None,
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
    slide_mpp : level-0 mpp of images whose files record none (mosaic arm).

    Raises
    ------
    ImageError : an image (or a ``coords_dir`` PatchSet) whose tiles cannot be read at the
        resolution the model was trained at.

    Returns
    -------
    list of dicts, one per image: ``image_id``, ``grade`` (int), ``label`` (its name),
    ``probs`` (list of C floats), ``picture`` (PNG path or None).
    """
    import cv2

    from gigapatch.training.datasets import make_dataset, to_tensor
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
    dc = dict(ckpt.get("data_config") or {})
    items = _mosaic_items(samples, cfg, dc, out / "tiles", opener, slide_mpp)
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


def _mosaic_items(
    samples: list[Any], cfg: TrainConfig, dc: dict[str, Any], cache: Path,
    opener: Callable[[Path], Image] | None, slide_mpp: float | None,
) -> list[SlideItem]:
    """The items to predict, their tiles read at the model's resolution (mosaic arm; the other
    arms see each whole image and pass through)."""
    from functools import partial

    from gigapatch.training.datasets import build_items, open_image_default

    if cfg.arm != "mosaic":
        return build_items(samples, cfg, cache)
    coords_dir = cfg.data.coords_dir
    given = {s.image_id for s in samples
             if coords_dir is not None and (Path(coords_dir) / f"{s.image_id}.h5").is_file()}
    open_one = opener or partial(open_image_default, domain=cfg.domain)
    for s in samples:
        if s.image_id not in given:
            with open_one(s.path) as image:
                check_image_resolution(image, cfg, dc, slide_mpp)
    items = build_items(samples, cfg, cache, mpp=dc.get("mpp"), slide_mpp=slide_mpp)
    for it in items:
        if it.image_id in given:
            assert coords_dir is not None
            check_item_resolution(it, cfg, dc, Path(coords_dir) / f"{it.image_id}.h5")
    return items


def grades_array(results: list[dict[str, Any]]) -> np.ndarray:
    """(N,) int64 grades of :func:`predict`'s results, in order."""
    return np.asarray([r["grade"] for r in results], np.int64)
