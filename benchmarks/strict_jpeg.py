"""What checking JPEG tiles costs: the strict decode (warnings as errors) against imagecodecs.

On the benchmark slide (``synthetic_slide.py``: 256 px YCbCr JPEG tiles, Aperio layout; or any
JPEG-tiled TIFF given with ``--slide``), for the level-0 tiles holding tissue (a seeded sample of
``--tiles``), interleaved over ``--repeats`` rounds (median), one thread:

* ``imagecodecs``: the reader's decode before the check, tifffile's ``page.decode`` (imagecodecs'
  libjpeg-turbo), which drops the decoder's warnings;
* ``strict``: :func:`gigapatch.io.bad_tiles.decode_jpeg` of the standalone stream (simplejpeg's
  libjpeg-turbo with ``strict=True``, the size checked), what ``TiffImage`` decodes with now;
* ``check``: :func:`gigapatch.io.bad_tiles.check_jpeg` (the 1/8-scale strict decode that
  passthrough extraction runs on a tile nobody decoded yet) against ``copy``, making the
  standalone stream alone (what passthrough cost before).

Then ``extract_patches`` of aligned 256 px patches (every patch one stored tile: passthrough) on
``--patches`` tissue tiles, with the check and with the tiles marked as checked (the copy without
the check, as before), interleaved, median. Prints one JSON object.

``python benchmarks/strict_jpeg.py --side 40000`` (writes the slide into a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _timed(fn, items) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - t


def codec_figures(slide: Path, n: int, repeats: int, seed: int) -> dict[str, object]:
    """Per-tile times (ms) of the three decodes and the copy on ``n`` tissue tiles."""
    import tifffile

    from gigapatch.io.bad_tiles import check_jpeg, decode_jpeg
    from gigapatch.io.pixels import standalone_jpeg

    with tifffile.TiffFile(slide) as tf:
        page = tf.pages[0]
        offsets, counts = list(page.dataoffsets), list(page.databytecounts)
        tables, shape = page.jpegtables, ((page.tilelength, page.tilewidth),)
        rgb = page.photometric == 2 and not page.is_jfif
        raw = slide.read_bytes() if slide.stat().st_size < 2**31 else None
        median = float(np.median(counts))
        tissue = [i for i, c in enumerate(counts) if c > median]
        pick = sorted(random.Random(seed).sample(tissue, min(n, len(tissue))))

        def seg(i: int) -> bytes:
            if raw is not None:
                return raw[offsets[i]:offsets[i] + counts[i]]
            with open(slide, "rb") as f:
                f.seek(offsets[i])
                return f.read(counts[i])

        segs = [(i, seg(i)) for i in pick]
        jpegs = [standalone_jpeg(s, tables, rgb) for _, s in segs]
        runs: dict[str, list[float]] = {k: [] for k in ("imagecodecs", "strict", "check", "copy")}
        for _ in range(repeats):
            runs["imagecodecs"].append(_timed(lambda t: page.decode(t[1], t[0],
                                                                    jpegtables=tables), segs))
            runs["strict"].append(_timed(lambda j: decode_jpeg(j, shape, 3), jpegs))
            runs["check"].append(_timed(lambda j: check_jpeg(j, shape), jpegs))
            runs["copy"].append(_timed(lambda t: standalone_jpeg(t[1], tables, rgb), segs))
    ms = {k: 1e3 * statistics.median(v) / len(segs) for k, v in runs.items()}
    return {"tiles": len(segs), "tile_px": shape[0][0],
            **{f"{k}_ms_per_tile": round(v, 4) for k, v in ms.items()},
            "strict_over_imagecodecs": round(ms["strict"] / ms["imagecodecs"], 3)}


def extraction_figures(slide: Path, n: int, repeats: int, seed: int, workers: int
                       ) -> dict[str, object]:
    """``extract_patches`` of ``n`` one-tile patches (passthrough), checked and unchecked."""
    from gigapatch import open_image
    from gigapatch.config import PatchConfig
    from gigapatch.io.geometry import resolve_geometry
    from gigapatch.outputs.extract import extract_patches

    times: dict[str, list[float]] = {"checked": [], "unchecked": []}
    with tempfile.TemporaryDirectory(prefix="gigapatch-strict-") as tmp:
        for r in range(repeats):
            for mode in ("checked", "unchecked"):
                with open_image(slide) as image:
                    th, tw = image.tile_shape(0)
                    ntx, nty = image.tile_grid(0)
                    lv = image._levels[0]
                    median = float(np.median(lv.counts))
                    tissue = np.flatnonzero(lv.counts > median)
                    pick = np.sort(np.random.default_rng(seed).choice(
                        tissue, min(n, len(tissue)), replace=False))
                    coords = np.stack([pick % ntx * tw, pick // ntx * th], axis=1)
                    geom = resolve_geometry(image, PatchConfig(size=tw, stride=tw, level=0))
                    if mode == "unchecked":  # as before: the bytes copied unchecked
                        image._checked = [bytearray(b"\x01" * len(c)) for c in image._checked]
                    t = time.perf_counter()
                    extract_patches(image, coords, geom, Path(tmp) / f"{mode}{r}",
                                    workers=workers)
                    times[mode].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"patches": int(len(coords)), "workers": workers,
            **{f"{k}_s": round(v, 3) for k, v in med.items()},
            "checked_over_unchecked": round(med["checked"] / med["unchecked"], 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slide", type=Path, help="a JPEG-tiled TIFF (default: a synthetic one)")
    ap.add_argument("--side", type=int, default=40_000, help="side of the synthetic slide")
    ap.add_argument("--tiles", type=int, default=2000, help="tissue tiles decoded a round")
    ap.add_argument("--patches", type=int, default=2000, help="passthrough patches extracted")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gigapatch-strict-slide-") as tmp:
        slide = args.slide
        if slide is None:
            from synthetic_slide import make_slide

            slide = Path(tmp) / f"synthetic-{args.side}.svs"
            make_slide(slide, side=args.side)
        out = {"slide": str(args.slide or f"synthetic {args.side} px"),
               "codec": codec_figures(slide, args.tiles, args.repeats, args.seed),
               "extract": extraction_figures(slide, args.patches, args.repeats, args.seed,
                                             args.workers)}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
