"""CPU cost per pixel of the full-resolution candidate scores (sharpness + Tenengrad, pathology
block focus) on real H&E texture, beside the libjpeg-turbo decode of the same pixels.

Run ``python benchmarks/pixel_scores.py`` (uses ../shared/data/pathology/CMU-1-Small-Region.svs).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

SLIDE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pathology" / \
    "CMU-1-Small-Region.svs"


def cpu_ns_per_px(fn, batch: np.ndarray, repeat: int = 5) -> float:
    """Best CPU time (process_time) of ``fn(batch)`` over ``repeat`` runs, per pixel."""
    fn(batch)
    best = np.inf
    for _ in range(repeat):
        t0 = time.process_time()
        fn(batch)
        best = min(best, time.process_time() - t0)
    return best * 1e9 / (batch.shape[0] * batch.shape[1] * batch.shape[2])


def main() -> int:
    import imagecodecs

    from gigapatch import open_image
    from gigapatch.tiling.score import sharpness_batch
    from gigapatch_pathology.focus import block_focus

    with open_image(SLIDE) as img:
        w, h = img.dimensions
        a = img.read_region((0, 0), 0, (w, h))
    tiles = np.stack([a[y : y + 256, x : x + 256] for y in range(0, h - 255, 256)
                      for x in range(0, w - 255, 256)])[:64]
    jpeg = [imagecodecs.jpeg8_encode(t, level=90) for t in tiles]
    rows = {
        "JPEG decode (libjpeg-turbo, q90)": cpu_ns_per_px(
            lambda b: [imagecodecs.jpeg8_decode(j) for j in jpeg], tiles),
        "sharpness_batch (Laplacian variance + Tenengrad)": cpu_ns_per_px(sharpness_batch, tiles),
        "block_focus (pathology blur, 4 x 4 blocks)": cpu_ns_per_px(block_focus, tiles),
    }
    print(f"{len(tiles)} x 256 x 256 px real H&E patches, CPU ns per pixel (best of 5), 1 thread")
    print("| step | ns/px |\n|---|---:|")
    for k, v in rows.items():
        print(f"| {k} | {v:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
