"""Placement figures for the benchmark: grid vs coverage-optimal, and how much any placement could save.

For a mask and a patch side, every horizontal line of mask pixels must be crossed by at least as
many patches as it takes to cover that line's foreground with intervals one patch long (a greedy
sweep gives that number exactly). A patch crosses ``side`` lines, so ``sum(line counts) / side``
is a lower bound on the patches of *any* axis-aligned placement covering all the foreground,
overlapping or not; the same holds for columns. To compare at the grid's coverage (the grid
leaves slivers uncovered), each line may leave uncovered the foreground its last patches would
cover least, within the total the grid leaves: the cheapest such savings across all lines are
taken first. The bound is the larger of the row and column figures (and of the area bound).

The line bound ignores that a patch spans ``side`` rows at once. The tighter bound
(:func:`lp_bound`, ``--lp``) is the linear-programming relaxation of the covering problem itself:
one variable per patch position (every mask pixel: coverage is measured on mask pixel centres,
so any other position covers the same pixels as one of them), overlaps allowed, every foreground
pixel covered but at most the grid's uncovered total. Any placement's patch count is at least
its optimum. It is solved by HiGHS (SciPy), which takes about a minute for ~25k foreground
pixels and ~13 minutes for ~100k, so the benchmark run leaves it out.

``python benchmarks/placement.py SLIDE [--min-foreground 0.01 0.5] [--lp [--mask-downsample 64]]``
prints the figures.
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


def lp_bound(mask: np.ndarray, side: int, budget: float = 0.0, time_limit: float = 3600.0
             ) -> float:
    """LP lower bound on the patches of side ``side`` (mask px) covering all of ``mask``'s
    foreground but at most ``budget`` pixels.

    Patches lie inside the mask grid, at any pixel, and may overlap. With no budget, groups of
    foreground no patch can join (farther apart than ``side``) are solved apart.

    Returns
    -------
    The LP optimum (a float; the patch count of any such placement is at least its ceiling).
    """
    import cv2
    import scipy.sparse as sp
    from scipy.optimize import linprog

    m = np.ascontiguousarray(np.asarray(mask, bool))
    s = int(side)
    if s < 1 or s > min(m.shape):
        raise ValueError(f"patch side {side} mask px does not fit a {m.shape} mask")
    if not m.any():
        return 0.0
    if budget > 0:
        labels, n_groups = m.astype(np.int32), 1
    else:  # pixels within one patch of each other (Chebyshev distance < side) share a group
        near = cv2.dilate(m.view(np.uint8), np.ones((s, s), np.uint8), anchor=(0, 0))
        n, lab = cv2.connectedComponents(near, connectivity=8)
        labels, n_groups = np.where(m, lab, 0).astype(np.int32), n - 1
    total = 0.0
    for g in range(1, n_groups + 1):
        ys, xs = np.nonzero(labels == g)
        if not len(ys):
            continue
        # candidate top-left corners: every box inside the grid that holds a pixel of the group
        y0, y1 = max(0, ys.min() - s + 1), min(m.shape[0] - s, ys.max())
        x0, x1 = max(0, xs.min() - s + 1), min(m.shape[1] - s, xs.max())
        sub = labels[y0 : y1 + s, x0 : x1 + s] == g
        fid = np.full(sub.shape, -1, np.int64)
        fid[sub] = np.arange(int(sub.sum()))
        table = cv2.integral(sub.view(np.uint8))
        held = table[s:, s:] - table[:-s, s:] - table[s:, :-s] + table[:-s, :-s]
        cy, cx = np.nonzero(held > 0)
        rows, cols = [], []
        for dy in range(s):
            for dx in range(s):
                f = fid[cy + dy, cx + dx]
                ok = f >= 0
                rows.append(f[ok])
                cols.append(np.flatnonzero(ok))
        r, c = np.concatenate(rows), np.concatenate(cols)
        n_px, n_box = int(sub.sum()), len(cy)
        a = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n_px, n_box))
        cost = np.ones(n_box)
        if budget > 0:  # slack u_p in [0, 1] per pixel, sum(u) <= budget
            a = sp.hstack([a, sp.identity(n_px)]).tocsr()
            cost = np.concatenate([cost, np.zeros(n_px)])
            a_ub = sp.vstack([-a, sp.csr_matrix(np.concatenate([np.zeros(n_box), np.ones(n_px)]))])
            b_ub = np.concatenate([-np.ones(n_px), [budget]])
        else:
            a_ub, b_ub = -a, -np.ones(n_px)
        res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=(0, 1), method="highs-ipm",
                      options={"time_limit": time_limit})
        if res.status != 0:
            raise RuntimeError(f"LP bound: HiGHS stopped: {res.message}")
        total += float(res.fun)
    return total


def placement_figures(slide: str | Path, config: Any, thresholds: tuple[float, ...] = (0.01, 0.5),
                      lp: bool = False) -> dict[str, Any]:
    """Grid and optimal placements on ``slide``'s mask at each ``min_foreground``, their
    coverage, the time of the optimal placement step, and the lower bound of the saving
    (with ``lp``, also :func:`lp_bound`'s)."""
    from gigapatch import coverage_report, grid_coords, open_image, optimal_coords, resolve_geometry
    from gigapatch.tiling.pipeline import compute_mask

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
        if lp and len(grid):
            t0 = time.perf_counter()
            lp_n = lp_bound(mask, math.ceil(side - 1e-9), budget)
            out[key].update(lp=lp_n, lp_s=time.perf_counter() - t0,
                            lp_pct=100 * (1 - math.ceil(lp_n - 1e-6) / len(grid)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("slide", type=Path)
    ap.add_argument("--min-foreground", type=float, nargs="+", default=[0.01, 0.5])
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--mask-downsample", type=float, default=None,
                    help="mask downsample (the LP grows with the foreground pixels)")
    ap.add_argument("--lp", action="store_true", help="also the LP bound (slow, see above)")
    args = ap.parse_args(argv)
    from gigapatch import load_config

    over = {} if args.mask_downsample is None else {"mask.downsample": args.mask_downsample}
    cfg = load_config(domain="pathology", file=args.config, overrides=over)
    figs = placement_figures(args.slide, cfg, tuple(args.min_foreground), lp=args.lp)
    print("| min_foreground | grid patches / coverage | optimal patches / coverage | saved % | "
          "most any placement could save %: line bound / LP bound | optimal CPU s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for k, f in figs.items():
        lp = f" / {f['lp_pct']:.2f} ({f['lp']:.1f} patches, {f['lp_s']:.0f} s)" if "lp" in f else ""
        print(f"| {k} | {f['grid_n']} / {f['grid_cov']:.4f} | {f['opt_n']} / {f['opt_cov']:.4f} | "
              f"{f['saved_pct']:.2f} | {f['bound_pct']:.2f}{lp} | {f['opt_cpu_s']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
