"""Patch quality against ground truth on synthetic H&E slides (gigapatch_pathology.synth).

For each seed and size: draw a slide (``--texture``: cut from a real H&E slide in
shared/data/pathology, ``cmu`` = CC0 CMU-1-Small-Region.svs (FFPE, JPEG), ``tcga`` =
tcga-cr-7395-01a-01-ts1.svs (frozen section, JPEG 2000); ``procedural``; or ``mixed``: the three
in turn by seed; kidney-48-5.tif is IHC with a ~60 x 120 px fragment, too small to cut texture
from), with ``--style realistic`` (default; felt-tip marker strokes, folds without doubled JPEG
chroma noise, :data:`gigapatch_pathology.synth.REALISTIC`) or ``classic`` (the slides the defaults were
tuned on), tile it with ``gigapatch.tile_image`` and the default pathology config
(or ``--config``), and score the kept patches with :func:`gigapatch_pathology.synth.truth_metrics`:

- coverage: true clean tissue under kept patches / under the ideal grid (>= 0.99 wanted)
- tissue: mean true tissue fraction of kept patches (>= 0.96)
- pen>5%: kept patches with more than 5 % marker ink (<= 0.5 %)
- blur>50%: kept patches mostly in blurred tissue (<= 2 %)
- idealT: mean true tissue fraction of the ideal cells themselves (when it is below 0.96, a slide
  with much tissue border, full coverage and the tissue target exclude each other)

Run ``python benchmarks/quality.py --seeds 100-109 --sizes 8192x6144,16384x12288``.
Seeds 0-15 were used for tuning the pathology defaults; report hold-out seeds (>= 100; the
pixel refinement of candidates, ``gigapatch_pathology.pixel_tissue``, was checked on 200-211).
Compare with the refinement off: ``--config`` a file with ``score: {candidate_margin: 0}`` and
``plugin: {pixel_foreground: false}``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

TARGETS = {"coverage": (">=", 0.99), "tissue_fraction": (">=", 0.96), "pen_bad": ("<=", 0.005),
           "blur_bad": ("<=", 0.02)}
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pathology"
TEXTURES = {"cmu": DATA / "CMU-1-Small-Region.svs", "tcga": DATA / "tcga-cr-7395-01a-01-ts1.svs",
            "procedural": None}
TEXTURE = TEXTURES["cmu"]


def texture_for(name: str, seed: int) -> tuple[str, Path | None]:
    """(name, path) of the texture a seed is drawn with; ``mixed`` takes cmu/tcga/procedural in
    turn; a missing file falls back to procedural."""
    if name == "mixed":
        name = ("cmu", "tcga", "procedural")[seed % 3]
    path = TEXTURES[name]
    if path is not None and not path.exists():
        return "procedural", None
    return name, path


def run_one(seed: int, size: tuple[int, int], texture: Path | None, config=None,
            style: str = "realistic") -> dict[str, float]:
    """Draw one slide, tile it, and return its metrics (plus timings)."""
    from gigapatch import load_config, tile_image
    from gigapatch_pathology.synth import REALISTIC, synthetic_slide, truth_metrics

    t0 = time.perf_counter()
    img, truth = synthetic_slide(seed, size, texture, **(REALISTIC if style == "realistic" else {}))
    t1 = time.perf_counter()
    cfg = config or load_config("pathology")
    c1 = time.process_time()
    ps = tile_image(img, cfg)
    t2 = time.perf_counter()
    cpu = time.process_time() - c1
    m = truth_metrics(ps.coords, ps.patch_size_level0, truth, img.dimensions,
                      cfg.patch.min_foreground, int(ps.attrs.get("stride_level0", 0)) or None)
    m.update(seed=seed, draw_s=t1 - t0, tile_s=t2 - t1, tile_cpu_s=cpu)
    reasons, counts = np.unique(ps.rejected_reason, return_counts=True)
    m["rejected"] = " ".join(f"{r}:{c}" for r, c in zip(reasons.tolist(), counts.tolist()))
    return m


def pool(rows: list[dict[str, float]]) -> dict[str, float]:
    """The targets' figures over all slides at once: coverage = clean tissue covered / clean
    tissue of the ideal cells, summed over slides; the patch rates and the mean tissue fraction
    over every kept patch (a slide with 3 patches weighs 3, not as much as one with 400)."""
    n = np.array([r["n_kept"] for r in rows], float)
    total = max(float(n.sum()), 1.0)
    target = sum(r["target_px"] for r in rows)
    out = {"coverage": sum(r["covered_px"] for r in rows) / target if target else float("nan")}
    for k in ("tissue_fraction", "pen_bad", "blur_bad"):
        v = np.array([r[k] for r in rows], float)
        out[k] = float(np.nansum(v * n) / total)
    return out


def passes(m: dict[str, float]) -> bool:
    ok = True
    for k, (op, v) in TARGETS.items():
        ok &= m[k] >= v if op == ">=" else m[k] <= v
    return bool(ok)


def _mean_worst(rows: list[dict[str, float]], k: str) -> str:
    v = np.array([r[k] for r in rows], float)  # nan: a slide without an ideal cell
    v = v[~np.isnan(v)] if (~np.isnan(v)).any() else v
    worst = v.min() if TARGETS[k][0] == ">=" else v.max()
    return f"{f'{np.mean(v):.4f}/{worst:.4f}':>15}"


def _parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="100-105")
    ap.add_argument("--sizes", default="8192x6144")
    ap.add_argument("--texture", default="cmu",
                    help=f"texture source(s), comma separated: {', '.join(TEXTURES)}, mixed")
    ap.add_argument("--procedural", action="store_true", help="same as --texture procedural")
    ap.add_argument("--style", default="realistic", choices=["realistic", "classic"])
    ap.add_argument("--config", type=Path, default=None, help="YAML config file")
    args = ap.parse_args(argv)
    from gigapatch import load_config

    cfg = load_config("pathology", args.config)
    tex_names = ["procedural"] if args.procedural else args.texture.split(",")
    bad = set(tex_names) - {*TEXTURES, "mixed"}
    if bad:
        ap.error(f"unknown texture {sorted(bad)}; choose from {', '.join(TEXTURES)}, mixed")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    head = (f"{'size':>12} {'tex':>5} {'seed':>5} {'kept':>6} {'ideal':>6} {'cover':>7} {'tissue':>7} "
            f"{'idealT':>7} {'pen>5%':>7} {'blur>50%':>8} {'fold':>6} {'prec':>6} {'tile_s':>7} {'cpu_s':>6}  rejected")
    print(f"style: {args.style}\n{head}")
    rows = []
    for tex_name, size, seed in itertools.product(tex_names, sizes, _parse_seeds(args.seeds)):
        name, texture = texture_for(tex_name, seed)
        m = run_one(seed, size, texture, cfg, args.style)
        m.update(texture=name, size=f"{size[0]}x{size[1]}")
        rows.append(m)
        flag = "" if passes(m) else "  <-- FAIL"
        print(f"{size[0]:>5}x{size[1]:<6} {name[:5]:>5} {seed:>5} {int(m['n_kept']):>6} "
              f"{int(m['n_ideal']):>6} {m['coverage']:>7.4f} {m['tissue_fraction']:>7.4f} "
                  f"{m['ideal_tissue']:>7.4f} "
              f"{m['pen_bad']:>7.4f} {m['blur_bad']:>8.4f} {m['fold_kept']:>6.3f} "
              f"{m['precision']:>6.3f} {m['tile_s']:>7.2f} {m['tile_cpu_s']:>6.2f}  {m['rejected']}{flag}",
              flush=True)
    groups = {(r["texture"], r["size"]): [] for r in rows}
    for r in rows:
        groups[r["texture"], r["size"]].append(r)
    if len(groups) > 1:
        print(f"\n{'texture':>10} {'size':>11} " + " ".join(f"{k[:8]:>15}" for k in TARGETS)
              + "    pass   (mean / worst)")
        for (name, sz), rs in groups.items():
            print(f"{name:>10} {sz:>11} " + " ".join(_mean_worst(rs, k) for k in TARGETS)
                  + f"   {sum(passes(r) for r in rs)}/{len(rs)}")
    print("\nall: " + "  ".join(f"{k}: {_mean_worst(rows, k).strip()} (mean/worst)" for k in TARGETS))
    pooled = pool(rows)
    print("pooled (every kept patch of every slide counts once): "
          + "  ".join(f"{k}: {v:.4f}" for k, v in pooled.items())
          + ("  -> meets every target" if passes(pooled) else "  -> misses a target"))
    print(f"tile_s: total {sum(r['tile_s'] for r in rows):.2f}  "
          f"cpu_s (user + sys of this process): total {sum(r['tile_cpu_s'] for r in rows):.2f}")
    n_fail = sum(not passes(r) for r in rows)
    print(f"{len(rows) - n_fail}/{len(rows)} slides meet every target")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
