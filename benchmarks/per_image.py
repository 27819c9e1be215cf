"""Per-image cost in one process: what a cohort pays for each image once the process is up.

``python benchmarks/per_image.py SLIDE [--config FILE] [--set KEY=VALUE ...] [--repeats 8]``

Tiles ``SLIDE`` ``--warmup`` times untimed (imports, first reads), then ``--repeats`` times
with :func:`gigapatch.tile_image` into a fresh folder each time (outputs written: the h5, the
table, the config; ``output.overlay`` as configured), and prints the median wall and CPU
seconds per image. It uses only ``gigapatch.load_config`` and ``gigapatch.tile_image``, which
every version of the package has, so the same script measures older code too (put that
checkout first on ``PYTHONPATH``; its flags may differ: pass them with ``--set``).

Start-up (imports, plugin loading, interpreter teardown) is paid once per process and is not
in these figures; ``benchmarks/run.py`` measures whole processes beside hs2p.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, each value read as YAML (``false`` -> False, ``0`` -> 0)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def measure(slide: Path, config: Any, repeats: int, warmup: int) -> dict[str, Any]:
    """Median wall / CPU seconds of one ``tile_image`` over ``repeats`` runs after ``warmup``."""
    import gigapatch

    walls: list[float] = []
    cpus: list[float] = []
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(warmup + repeats):
            out = Path(tmp) / f"run{i}"
            t, c = time.perf_counter(), time.process_time()
            ps = gigapatch.tile_image(slide, config, out)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            shutil.rmtree(out, ignore_errors=True)
            n = len(ps)
            if i >= warmup:
                walls.append(wall)
                cpus.append(cpu)
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus),
            "walls": walls, "patches": n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("slide", type=Path)
    ap.add_argument("--domain", default="pathology")
    ap.add_argument("--config", type=Path, default=None, help="a config YAML (e.g. a preset)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the gigapatch command runs it
    import gigapatch

    config = gigapatch.load_config(args.domain, args.config, parse_sets(args.sets))
    r = measure(args.slide, config, args.repeats, args.warmup)
    print(f"{args.slide.name}: {r['patches']} patches; per image {r['wall']:.3f} s wall, "
          f"{r['cpu']:.3f} s CPU (median of {args.repeats}; walls "
          f"{' '.join(f'{w:.3f}' for w in r['walls'])}); gigapatch from "
          f"{Path(gigapatch.__file__).parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
