"""Mosaic loader throughput: mosaics per second through a torch DataLoader (CPU).

Builds (or reuses) a synthetic cohort of pyramidal TIFFs (:mod:`gigapatch_pathology.cohort`),
tiles it with the gigapatch pipeline (cached PatchSets), and times full passes of a
``MosaicDataset`` (read tiles straight from the slides, per-tile flips, stitch, normalise) through
a ``DataLoader`` with 0 and ``--workers`` workers. The first pass of each setting is a warm-up
(worker start, first opens) and is reported separately.

    python benchmarks/loader_throughput.py                      # 16 x 64 px tiles, 4096 px slides
    python benchmarks/loader_throughput.py --n-tiles 36 --tile-size 256 --level 0
    python benchmarks/loader_throughput.py --data /path/to/PANDA --level 1 --n-tiles 36 --limit 200
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="PANDA-layout folder (default: synthetic)")
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "gigapatch-loader")
    ap.add_argument("--n-images", type=int, default=48, help="synthetic slides")
    ap.add_argument("--size", type=int, default=4096, help="synthetic slide side (px)")
    ap.add_argument("--limit", type=int, default=None, help="use the first N images of --data")
    ap.add_argument("--n-tiles", type=int, default=16)
    ap.add_argument("--tile-size", type=int, default=64)
    ap.add_argument("--level", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--passes", type=int, default=2, help="timed passes after the warm-up pass")
    ap.add_argument("--max-open", type=int, default=8)
    args = ap.parse_args(argv)

    import torch
    from torch.utils.data import DataLoader

    from gigapatch.training import load_samples, validate_train_config
    from gigapatch.training.datasets import build_items, make_dataset
    from gigapatch_pathology.cohort import CohortSpec, write_cohort
    from gigapatch_pathology.panda import with_panda_defaults

    data = args.data
    if data is None:
        data = args.workdir / f"cohort-{args.size}"
        t = time.perf_counter()
        write_cohort(data, args.n_images, seed=0, spec=CohortSpec(size=args.size))
        print(f"cohort: {args.n_images} slides of {args.size} px in {data} ({time.perf_counter() - t:.1f} s)")
    cfg = validate_train_config(with_panda_defaults({  # PANDA layout (the cohort's too)
        "arm": "mosaic", "workers": args.workers, "batch_size": args.batch_size,
        "mosaic": {"n_tiles": args.n_tiles, "tile_size": args.tile_size, "level": args.level,
                   "group": "random", "max_open": args.max_open},
        "data": {"limit": args.limit},
    }))
    samples = load_samples(data, cfg.data)
    t = time.perf_counter()
    items = build_items(samples, cfg, cache=args.workdir / "tiles" / data.name)
    print(f"tiles: {len(items)} images ready in {time.perf_counter() - t:.1f} s")
    ds = make_dataset(items, cfg, train=True)
    results: dict = {"images": len(items), "n_tiles": args.n_tiles, "tile_size": args.tile_size,
                     "level": args.level, "input_px": ds.side, "torch_threads": torch.get_num_threads()}
    for workers in sorted({0, args.workers}):
        rates = []
        for p in range(args.passes + 1):
            ds.set_epoch(p)
            loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=workers)
            t = time.perf_counter()
            n = sum(len(y) for _, y in loader)
            rate = n / (time.perf_counter() - t)
            if p == 0:
                results[f"warmup_workers{workers}"] = round(rate, 2)
            else:
                rates.append(rate)
        results[f"mosaics_per_s_workers{workers}"] = round(max(rates), 2)
        print(f"workers={workers}: {max(rates):.1f} mosaics/s ({ds.side} px, {args.n_tiles} tiles); "
              f"first pass {results[f'warmup_workers{workers}']:.1f}/s")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
