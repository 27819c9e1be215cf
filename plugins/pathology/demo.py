"""``gigapatch demo`` (and ``--domain pathology``): a synthetic H&E slide, tiled end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gigapatch import hookimpl

DOMAIN = "pathology"


def run_demo(out: str | Path, size: int = 6144, seed: int = 0) -> dict[str, Any]:
    """Generate a synthetic H&E slide (pyramidal TIFF, with pen, blur, folds and dust), tile it with
    the pathology defaults, extract the kept patches and return the paths of every output."""
    from gigapatch import load_config, open_image, tile_image

    from .synth import synthetic_slide

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    slide = out / f"demo-slide-{seed}.tiff"
    if not slide.exists():
        synthetic_slide(seed, size=(size, size * 3 // 4), path=slide)
    cfg = load_config(DOMAIN, overrides={"output.extract": True, "output.geojson": True})
    tiles_dir = out / "tiles"
    with open_image(slide, domain=DOMAIN) as img:
        ps = tile_image(img, cfg, out_dir=tiles_dir)
    stem = f"{tiles_dir / ps.image_id}"
    return {
        "image": slide,
        "h5": Path(stem + ".h5"),
        "table": Path(stem + ".csv"),
        "overlay": Path(stem + "_overlay.png"),
        "geojson": Path(stem + ".geojson"),
        "patches": Path(stem),
        "config": Path(stem + ".yaml"),
        "n_patches": len(ps),
    }


@hookimpl(tryfirst=True)
def gigapatch_demo(out: Path, domain: str | None, size: int | None, seed: int) -> dict[str, Any] | None:
    """The pathology demo; also the default one (``gigapatch demo`` with no ``--domain``)."""
    if domain not in (None, DOMAIN):
        return None
    return run_demo(out, size=size or 6144, seed=seed)
