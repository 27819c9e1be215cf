"""A synthetic cohort whose label lives in cell-scale detail: the controlled experiment's data.

Each slide is tissue on glass: pink tissue blobs of random shape, colour and extent, sprinkled with
small dark "glands" (bars of ``bar_width`` x ``bar_length`` px, a few px in size). The grade
``k`` of ``C`` classes sets only the *fraction of vertical bars*, ``k / (C - 1)``; everything
visible at low resolution (tissue shape, colour, gland density, hence mean darkness) is drawn
independently of the label. Resizing a 4096 px slide to 256 px averages every bar into a
sub-pixel smudge, so the label is gone; 64-256 px tiles at full resolution show the bars and
their orientation. Flips keep orientation (a horizontal bar stays horizontal), so the usual
flip augmentation is label-preserving; 90-degree rotations are not and are never used.

Slides are written as pyramidal TIFFs (JPEG tiles, levels at downsample 1, 4 and 16, like PANDA)
with a PANDA-style ``train.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gigapatch.training import Sample

from .panda import write_table


@dataclass(frozen=True)
class CohortSpec:
    """Parameters of a synthetic cohort (all sizes in level-0 px)."""

    size: int = 4096
    num_classes: int = 6
    bar_length: int = 8
    bar_width: int = 2
    density: tuple[float, float] = (1 / 260, 1 / 140)  # bars per tissue px, drawn per slide
    tissue_fraction: tuple[float, float] = (0.25, 0.5)  # of the slide, drawn per slide
    mpp: float = 0.5
    quality: int = 90


def vertical_fraction(label: int, num_classes: int) -> float:
    """The fraction of vertical bars that encodes ``label``: ``label / (num_classes - 1)``."""
    return label / (num_classes - 1)


def tissue_mask(size: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """(size, size) bool random smooth blobs covering about ``fraction`` of the slide."""
    import cv2

    g = 48
    noise: np.ndarray = rng.standard_normal((g, g)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 4.0)
    # keep the tissue away from the slide border (glass all around)
    yy, xx = np.mgrid[0:g, 0:g]
    r = np.hypot(yy - g / 2 + 0.5, xx - g / 2 + 0.5) / (g / 2)
    noise = noise - 2.0 * noise.std() * np.clip(r - 0.6, 0, None) / 0.4
    big = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    thr = np.quantile(noise, 1.0 - fraction)
    return big > thr


def synthetic_slide(
    label: int, rng: np.random.Generator, spec: CohortSpec = CohortSpec()
) -> np.ndarray:
    """One slide of grade ``label``: (size, size, 3) uint8 RGB (see the module docstring)."""
    import cv2

    s = spec.size
    frac = rng.uniform(*spec.tissue_fraction)
    mask = tissue_mask(s, frac, rng)
    # glass: near white; tissue: pink with low-frequency stain variation (label-independent)
    out = np.full((s, s, 3), int(rng.integers(236, 246)), np.uint8)
    base = np.array([rng.uniform(215, 240), rng.uniform(150, 185), rng.uniform(190, 220)])
    low = base + rng.standard_normal((8, 8, 1)) * 8.0
    stain = cv2.resize(np.clip(low, 0, 255).astype(np.uint8), (s, s), interpolation=cv2.INTER_CUBIC)
    np.copyto(out, stain, where=mask[..., None])
    # glands: bars at random tissue positions; only their orientation depends on the label
    n = int(float(mask.sum()) * rng.uniform(*spec.density))
    L, W = spec.bar_length, spec.bar_width
    xy = rng.integers(0, s - L, size=(int(n / max(frac, 1e-3) * 1.5) + 16, 2))
    xy = xy[mask[xy[:, 1], xy[:, 0]]][:n]
    vertical = rng.random(len(xy)) < vertical_fraction(label, spec.num_classes)
    colour = np.array([rng.uniform(70, 110), rng.uniform(30, 60), rng.uniform(110, 150)])
    dy, dx = np.mgrid[0:W, 0:L]  # a horizontal bar's pixel offsets
    for vert in (False, True):
        p = xy[vertical == vert]
        oy, ox = (dx, dy) if vert else (dy, dx)
        ys = (p[:, 1, None] + oy.reshape(1, -1)).ravel()
        xs = (p[:, 0, None] + ox.reshape(1, -1)).ravel()
        out[ys, xs] = colour.astype(np.uint8)
    # pixel noise (saturating adds, fast): uniform in [-6, 6]
    noise = rng.integers(0, 13, size=(s, s), dtype=np.uint8)
    out = cv2.subtract(  # type: ignore[call-overload]  # cv2's stubs omit a Scalar src2
        cv2.add(out, cv2.merge([noise, noise, noise])), (6, 6, 6, 0)
    )
    return out


def write_slide(
    path: str | Path, rgb: np.ndarray, *, mpp: float = 0.5, quality: int = 90,
    downsamples: tuple[int, ...] = (4, 16), tile: int = 256,
) -> Path:
    """Write (H, W, 3) uint8 RGB as a PANDA-like generic pyramidal TIFF (JPEG tiles)."""
    from gigapatch import write_pyramidal_tiff

    return write_pyramidal_tiff(path, rgb, downsamples=downsamples, tile=tile, quality=quality, mpp=mpp)


def write_cohort(
    out_dir: str | Path,
    n: int,
    *,
    seed: int = 0,
    spec: CohortSpec = CohortSpec(),
    prefix: str = "syn",
    overwrite: bool = False,
) -> list[Sample]:
    """Write ``n`` slides (labels balanced over the classes, shuffled) in PANDA layout.

    Writes ``out_dir/train_images/<prefix>_<i>.tiff`` and ``out_dir/train.csv``; slides already
    there are kept unless ``overwrite``. Every slide has its own seed (``[seed, i]``), so a cohort
    is reproducible and can be grown.

    Returns
    -------
    list of :class:`gigapatch.training.Sample` (image_id, path, label; group "synthetic").
    """
    out_dir = Path(out_dir)
    images = out_dir / "train_images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % spec.num_classes
    rng.shuffle(labels)
    samples = []
    for i, label in enumerate(labels.tolist()):
        image_id = f"{prefix}_{i:04d}"
        path = images / f"{image_id}.tiff"
        if overwrite or not path.is_file():
            rgb = synthetic_slide(label, np.random.default_rng([seed, i]), spec)
            write_slide(path, rgb, mpp=spec.mpp, quality=spec.quality)
        samples.append(Sample(image_id, path, int(label), group="synthetic"))
    write_table(out_dir / "train.csv", samples)
    return samples
