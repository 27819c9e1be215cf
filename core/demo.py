"""``gigapatch demo``: the main job, end to end, on a slide the package generates itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_demo(out: str | Path, size: int = 6144, seed: int = 0) -> dict[str, Any]:
    """Generate a synthetic H&E slide (pyramidal TIFF, with pen, blur, folds and dust), tile it with
    the pathology defaults, extract the kept patches and return the paths of every output."""
    from .config import load_config
    from .pipeline import tile_image
    from .readers import open_image
    from .synth import synthetic_slide

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    slide = out / f"demo-slide-{seed}.tiff"
    if not slide.exists():
        synthetic_slide(seed, size=(size, size * 3 // 4), path=slide)
    cfg = load_config("pathology", overrides={"output.extract": True, "output.geojson": True})
    tiles_dir = out / "tiles"
    with open_image(slide, domain="pathology") as img:
        ps = tile_image(img, cfg, out_dir=tiles_dir)
    stem = f"{tiles_dir / ps.image_id}"
    paths: dict[str, Any] = {
        "slide": slide,
        "h5": Path(stem + ".h5"),
        "table": Path(stem + ".csv"),
        "overlay": Path(stem + "_overlay.png"),
        "geojson": Path(stem + ".geojson"),
        "patches": Path(stem),
        "config": Path(stem + ".yaml"),
        "n_patches": len(ps),
    }
    return paths
