"""``gigapatch demo --domain metal_surface``: a synthetic steel strip with known defects, tiled.

The strip (:func:`gigapatch_metal_surface.synth.steel_strip`) is written as a tiled grey
pyramidal TIFF with its true defect boxes beside it as a Pascal-VOC XML, then tiled with the
``metal_surface`` defaults, but for two settings:

* ``patch.size``: a power of two that fits about six patches across the strip;
* ``patch.min_foreground`` :data:`MIN_FOREGROUND`: patches that straddle the strip's edge are
  left out (those with a sliver of conveyor under one mask pixel stay), since the step from
  steel to conveyor outranks every defect in the ``defect`` score, which looks at the whole
  patch; the defects are drawn a patch and a bit away from the edges, so that theirs are kept.

The patches are ranked by the domain's ``review`` order; ``<id>_review.png`` shows the strip
with the distance-from-normal heatmap, the kept patches, the defect candidates and the true boxes
(red) side by side. No NEU-DET image
ships (they have no open licence).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gigapatch import ConfigError, hookimpl

DOMAIN = "metal_surface"
#: default strip length (px); the strip image is 3/8 as high
DEFAULT_SIZE = 4096
MIN_SIZE = 1024
#: only patches all on the strip (at the mask's resolution): its edge outranks every defect
MIN_FOREGROUND = 1.0


def strip_shape(size: int) -> tuple[int, int]:
    """(height, width) of the demo image for a strip ``size`` px long."""
    return size * 3 // 8, size


def demo_patch_size(height: int) -> int:
    """The largest power of two at most a tenth of the image height (the strip covers ~64 % of
    it, so about six patches fit across the strip), between 64 and 256 px."""
    side = 64
    while side * 2 <= min(256, height // 10):
        side *= 2
    return side


def run_demo(out: str | Path, size: int = DEFAULT_SIZE, seed: int = 0) -> dict[str, Any]:
    """Draw a steel strip ``size`` px long with defects, write it and its VOC boxes into ``out``,
    tile it with the metal_surface defaults and return the paths of every output.

    Raises
    ------
    ConfigError : ``size`` below :data:`MIN_SIZE`.
    """
    from gigapatch import load_config, open_image, tile_image

    from .synth import steel_strip, write_grey_tiff, write_voc

    if size < MIN_SIZE:
        raise ConfigError(f"the metal_surface demo needs --size of at least {MIN_SIZE} px "
                          f"(got {size})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shape = strip_shape(size)
    side = demo_patch_size(shape[0])
    grey, boxes = steel_strip(seed, shape, edge_margin=side + side // 4)
    image = write_grey_tiff(out / f"demo-strip-{seed}.tiff", grey)
    voc = write_voc(out / f"demo-strip-{seed}.xml", image.name, grey.shape, boxes)
    cfg = load_config(DOMAIN, overrides={
        "patch.size": side, "patch.min_foreground": MIN_FOREGROUND, "output.extract": True,
    })
    tiles_dir = out / "tiles"
    with open_image(image, domain=DOMAIN) as img:
        ps = tile_image(img, cfg, out_dir=tiles_dir)
    stem = f"{tiles_dir / ps.image_id}"
    return {
        "image": image,
        "boxes": voc,
        "h5": Path(stem + ".h5"),
        "table": Path(stem + ".csv"),
        "overlay": Path(stem + "_overlay.png"),
        "review": Path(stem + "_review.png"),
        "defects": Path(stem + "_defects.csv"),
        "patches": Path(stem),
        "config": Path(stem + ".yaml"),
        "n_patches": len(ps),
    }


@hookimpl
def gigapatch_demo(out: Path, domain: str | None, size: int | None, seed: int) -> dict[str, Any] | None:
    """The metal_surface demo (``gigapatch demo --domain metal_surface``)."""
    if domain != DOMAIN:
        return None
    return run_demo(out, size=size or DEFAULT_SIZE, seed=seed)
