"""Placement figures for the benchmark: grid vs coverage-optimal, and how much any placement could save.

For a mask and a patch side, every horizontal line of mask pixels must be crossed by at least as
many patches as it takes to cover that line's foreground with intervals one patch long (a greedy
sweep gives that number exactly). A patch crosses ``side`` lines, so ``sum(line counts) / side``
is a lower bound on the patches of *any* axis-aligned placement covering all the foreground,
overlapping or not; the same holds for columns. To compare at the grid's coverage (the grid
leaves slivers uncovered), each line may leave uncovered the foreground its last patches would
cover least, within the total the grid leaves: the cheapest such savings across all lines are
taken first. The bound is the larger of the row and column figures (and of the area bound).

``python benchmarks/placement.py SLIDE [--min-foreground 0.01 0.5]`` prints the figures.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _line_counts(mask: np.ndarray, side: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Greedy interval cover of each row: (rows,) counts and, per row, the foreground each of
    its patches covers beyond what the others do when the last ones are dropped (marginals)."""
    counts = np.zeros(len(mask), np.int64)
    marginals: list[np.ndarray] = []
    for i, row in enumerate(mask):
        idx = np.flatnonzero(row)
        if not len(idx):
            continue
        n, end = 0, -math.inf
        for j in idx.tolist():  # greedy: a new interval starts at the first uncovered pixel
            if j >= end:
                n += 1
                end = j + side
        counts[i] = n
        fg = len(idx)
        # dropping r of the row's n intervals leaves at most (n - r) * side px covered
        kept = np.minimum(fg, (n - np.arange(n + 1)) * side)
        marginals.append(kept[:-1] - kept[1:])
    return counts, marginals


def line_bound(mask: np.ndarray, side: float, budget: float = 0.0) -> float:
    """Fewest patches of side ``side`` (mask px) any axis-aligned placement needs to cover all
    of ``mask``'s rows' foreground but at most ``budget`` mask px (rows only; pass ``mask.T``
    for columns)."""
    counts, marginals = _line_counts(np.asarray(mask, bool), side)
    total = int(counts.sum())
    if budget > 0 and marginals:
        costs = np.sort(np.concatenate(marginals))
        total -= int(np.searchsorted(np.cumsum(costs), budget, side="right"))
    return total / side


def placement_figures(slide: str | Path, config: Any, thresholds: tuple[float, ...] = (0.01, 0.5)
                      ) -> dict[str, Any]:
    """Grid and optimal placements on ``slide``'s mask at each ``min_foreground``, their
    coverage, the time of the optimal placement step, and the lower bound of the saving."""
    from gigapatch import coverage_report, grid_coords, open_image, optimal_coords, resolve_geometry
    from gigapatch.pipeline import compute_mask

    out: dict[str, Any] = {}
    with open_image(slide, domain=config.domain) as img:
        geom = resolve_geometry(img, config.patch)
        size = geom.size_level0
        _rgb, mask, ds, _ex = compute_mask(img, config, size)
        dims = img.dimensions
    side = size / ds
    for mf in thresholds:
        key = f"{mf:g}"
        grid = grid_coords(mask, ds, size, size, dims, min_foreground=mf)
        t0 = time.process_time()
        opt = optimal_coords(mask, ds, size, size, dims, min_foreground=mf)
        dt = time.process_time() - t0
        g, o = coverage_report(mask, ds, grid, size), coverage_report(mask, ds, opt, size)
        budget = g["foreground_px"] - g["covered_px"]
        bound = max(line_bound(mask, side, budget), line_bound(mask.T, side, budget),
                    g["covered_px"] / side**2)
        out[key] = {
            "grid_n": len(grid), "grid_cov": g["coverage"], "opt_n": len(opt),
            "opt_cov": o["coverage"], "opt_overlap": o["overlap"], "opt_cpu_s": dt,
            "saved_pct": 100 * (1 - len(opt) / len(grid)) if len(grid) else float("nan"),
            "bound_pct": 100 * (1 - math.ceil(bound) / len(grid)) if len(grid) else float("nan"),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("slide", type=Path)
    ap.add_argument("--min-foreground", type=float, nargs="+", default=[0.01, 0.5])
    ap.add_argument("--config", type=Path, default=None)
    args = ap.parse_args(argv)
    from gigapatch import load_config

    cfg = load_config(domain="pathology", file=args.config)
    figs = placement_figures(args.slide, cfg, tuple(args.min_foreground))
    print("| min_foreground | grid patches / coverage | optimal patches / coverage | saved % | "
          "most any placement could save % | optimal CPU s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for k, f in figs.items():
        print(f"| {k} | {f['grid_n']} / {f['grid_cov']:.4f} | {f['opt_n']} / {f['opt_cov']:.4f} | "
              f"{f['saved_pct']:.2f} | {f['bound_pct']:.2f} | {f['opt_cpu_s']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
