"""Patch quality against ground truth on synthetic H&E and IHC slides (gigapatch_pathology.synth).

For each seed and size: draw a slide (``--texture``: cut from a real H&E slide in
shared/data/pathology, ``cmu`` = CC0 CMU-1-Small-Region.svs (FFPE, JPEG), ``tcga`` =
tcga-cr-7395-01a-01-ts1.svs (frozen section, JPEG 2000); ``procedural``; or ``mixed``: the three
in turn by seed; kidney-48-5.tif is IHC with a ~60 x 120 px fragment, too small to cut texture
from), stained ``--stain he`` (default), ``ihc`` (the texture redrawn as haematoxylin + DAB,
:func:`gigapatch_pathology.stains.ihc_from_he`) or ``mixed`` (IHC on odd seeds), with ``--style
realistic`` (default; felt-tip marker strokes, folds without doubled JPEG chroma noise,
:data:`gigapatch_pathology.synth.REALISTIC`) or ``classic`` (the slides the first defaults were
tuned on), tile it with ``gigapatch.tile_image`` and the default pathology config (or
``--config``), and score the kept patches with :func:`gigapatch_pathology.synth.truth_metrics`.

Against the ideal grid at the config's ``min_foreground`` (the first figures):

- coverage: true clean tissue under kept patches / under the ideal grid (>= 0.99 wanted)
- tissue: mean true tissue fraction of kept patches (>= 0.96)
- pen>5%: kept patches with more than 5 % marker ink (<= 0.5 %)
- blur>50%: kept patches mostly in blurred tissue (<= 2 %)
- idealT: mean true tissue fraction of the ideal cells themselves (when it is below 0.96, a slide
  with much tissue border, full coverage and the tissue target exclude each other)

Against a truth-knowing aligned grid that keeps every cell with >= 50 % usable tissue (usable =
true tissue not under ink, not blurred; :func:`gigapatch_pathology.truth.usable_metrics`):

- ucover: usable tissue under the kept patches / under that grid (>= 1.0 wanted)
- uprec: kept patches with >= 50 % usable tissue (>= 0.97); ink: pen>5% (<= 0.4 %);
  blur: blur>50% (<= 1 %); ovl: share of the kept area covered twice (shifted patches overlap)

``--hs2p`` also runs hs2p 6.1.0 (its own venv, benchmarks/.venv-ref, as benchmarks/run.py
does: ``tile_slide`` with its defaults -- a tile needs 1 % tissue, ``--hs2p-min-tissue`` sets
another share --, OpenSlide backend, tiles of the slide's own spacing and gigapatch's patch
size) on the same slides, written as pyramidal TIFFs (JPEG q90) that gigapatch
then tiles too (``--tiff`` does that without hs2p), and prints its figures beside ours.

Run ``python benchmarks/quality.py --seeds 100-109 --sizes 8192x6144,16384x12288``.
Seeds 0-15 were used for tuning the first pathology defaults, 20-39 for IHC and the usable-tissue
figures; report hold-out seeds (>= 100). ``--cache DIR`` keeps the drawn slides between runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = {"coverage": (">=", 0.99), "tissue_fraction": (">=", 0.96), "pen_bad": ("<=", 0.005),
           "blur_bad": ("<=", 0.02)}
#: the usable-tissue targets (issue #13 item 8)
USABLE_TARGETS = {"usable_cover": (">=", 1.0), "usable_precision": (">=", 0.97),
                  "pen_bad": ("<=", 0.004), "blur_bad": ("<=", 0.01)}
HERE = Path(__file__).resolve().parent
DATA = HERE.parents[0].parent / "shared" / "data" / "pathology"
TEXTURES = {"cmu": DATA / "CMU-1-Small-Region.svs", "tcga": DATA / "tcga-cr-7395-01a-01-ts1.svs",
            "procedural": None}
TEXTURE = TEXTURES["cmu"]
STAINS = ("he", "ihc", "mixed")

HS2P_SCRIPT = """
import dataclasses, json, sys
from pathlib import Path
from hs2p import SegmentationConfig, SlideSpec, TilingConfig, tile_slide
from hs2p.configs.models import DEFAULT_MASK_SAMPLING
slide, spacing, size = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
masks = DEFAULT_MASK_SAMPLING
if sys.argv[4]:  # the tissue share a tile needs (hs2p's own default otherwise)
    masks = dataclasses.replace(masks, min_coverage={"tissue": float(sys.argv[4])})
res = tile_slide(
    SlideSpec(sample_id=slide.stem, image_path=slide),
    tiling=TilingConfig(backend="openslide", mask_backend="openslide", requested_spacing_um=spacing,
                        requested_tile_size_px=size, tolerance=0.05, overlap=0.0),
    segmentation=SegmentationConfig(method="hsv"),
    masks=masks,
)
t = res.tiles
print(json.dumps({"x": [int(v) for v in t.x], "y": [int(v) for v in t.y],
                  "size_lv0": int(t.tile_size_lv0)}))
"""


def texture_for(name: str, seed: int) -> tuple[str, Path | None]:
    """(name, path) of the texture a seed is drawn with; ``mixed`` takes cmu/tcga/procedural in
    turn; a missing file falls back to procedural."""
    if name == "mixed":
        name = ("cmu", "tcga", "procedural")[seed % 3]
    path = TEXTURES[name]
    if path is not None and not path.exists():
        return "procedural", None
    return name, path


def stain_for(name: str, seed: int) -> str:
    """The stain a seed is drawn with: ``mixed`` takes IHC on odd seeds (with ``--texture mixed``
    every texture comes in both stains over six seeds)."""
    if name == "mixed":
        return "ihc" if seed % 2 else "he"
    return name


def draw(seed: int, size: tuple[int, int], texture: Path | None, style: str, stain: str,
         cache: Path | None, tiff: bool) -> tuple[Any, dict[str, Any], Path | None]:
    """The slide (an in-memory image, or the path of its pyramidal TIFF with ``tiff``), its
    truth, and the TIFF's path (None without ``tiff``); drawn once per ``cache`` folder."""
    from gigapatch import ArrayImage, write_pyramidal_tiff
    from gigapatch_pathology.synth import REALISTIC, synthetic_slide

    tex = texture.stem if texture is not None else "procedural"
    key = f"{tex}-{stain}-{style}-{size[0]}x{size[1]}-s{seed}"
    kw = dict(REALISTIC if style == "realistic" else {})
    mpp = 0.5
    if cache is not None and (cache / f"{key}.npz").exists():
        z = np.load(cache / f"{key}.npz")
        truth: dict[str, Any] = {k: z[k] for k in z.files if k not in ("downsample", "seed")}
        truth.update(downsample=float(z["downsample"]), seed=seed)
        rgb = np.load(cache / f"{key}.npy", mmap_mode="r")
        img = ArrayImage(np.asarray(rgb), mpp=mpp, path=f"synthetic-{seed}")
    else:
        img, truth = synthetic_slide(seed, size, texture, stain=stain, mpp=mpp, **kw)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            np.save(cache / f"{key}.npy", img.read_region((0, 0), 0, size))
            np.savez(cache / f"{key}.npz", **truth)
    if not tiff:
        return img, truth, None
    folder = cache if cache is not None else Path(tempfile.gettempdir())
    path = folder / f"{key}.tiff"
    if not path.exists():
        write_pyramidal_tiff(path, img.read_region((0, 0), 0, size), downsamples=(4, 16, 64),
                             mpp=mpp)
    return path, truth, path


def run_one(seed: int, size: tuple[int, int], texture: Path | None, config: Any = None,
            style: str = "realistic", stain: str = "he", cache: Path | None = None,
            tiff: bool = False) -> dict[str, Any]:
    """Draw one slide, tile it, and return its metrics (plus timings and, with ``tiff``, the
    TIFF's path as ``tiff``)."""
    from gigapatch import load_config, open_image, tile_image
    from gigapatch_pathology.synth import truth_metrics

    t0 = time.perf_counter()
    img, truth, path = draw(seed, size, texture, style, stain, cache, tiff)
    t1 = time.perf_counter()
    cfg = config or load_config("pathology")
    c1 = time.process_time()
    if path is not None:
        with open_image(path) as im:
            ps = tile_image(im, cfg)
    else:
        ps = tile_image(img, cfg)
    t2 = time.perf_counter()
    cpu = time.process_time() - c1
    m: dict[str, Any] = dict(truth_metrics(
        ps.coords, ps.patch_size_level0, truth, size, cfg.patch.min_foreground,
        int(ps.attrs.get("stride_level0", 0)) or None))
    m.update(seed=seed, draw_s=t1 - t0, tile_s=t2 - t1, tile_cpu_s=cpu, tiff=path,
             size_level0=ps.patch_size_level0, truth=truth)
    reasons, counts = np.unique(ps.rejected_reason, return_counts=True)
    m["rejected"] = " ".join(f"{r}:{c}" for r, c in zip(reasons.tolist(), counts.tolist()))
    return m


def find_hs2p() -> str | None:
    """The interpreter of benchmarks/.venv-ref when it can import hs2p, else None."""
    py = HERE / ".venv-ref" / "bin" / "python"
    if not py.exists():
        return None
    r = subprocess.run([str(py), "-c", "import hs2p, openslide"], capture_output=True)
    return str(py) if r.returncode == 0 else None


def run_hs2p(python: str, row: dict[str, Any], size: tuple[int, int], mpp: float = 0.5,
             min_tissue: float | None = None) -> dict[str, float]:
    """hs2p on ``row``'s TIFF, scored like ours (:func:`truth_metrics`); the keys prefixed
    ``hs2p_``. ``min_tissue``: the tissue share hs2p's tiles need (None: hs2p's default)."""
    from gigapatch_pathology.synth import truth_metrics

    t0 = time.perf_counter()
    r = subprocess.run([python, "-c", HS2P_SCRIPT, str(row["tiff"]), str(mpp),
                        str(row["size_level0"]), "" if min_tissue is None else str(min_tissue)],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"hs2p failed on {row['tiff']}: {r.stderr.strip().splitlines()[-1:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    coords = np.stack([out["x"], out["y"]], -1) if out["x"] else np.zeros((0, 2), np.int64)
    m = truth_metrics(coords, out["size_lv0"], row["truth"], size, 0.5)
    res = {f"hs2p_{k}": v for k, v in m.items()}
    res["hs2p_s"] = wall
    return res


def pool(rows: list[dict[str, Any]], prefix: str = "") -> dict[str, float]:
    """The targets' figures over all slides at once: coverage = clean tissue covered / clean
    tissue of the ideal cells, summed over slides (``usable_cover`` likewise, usable tissue);
    the patch rates, precision and the mean tissue fraction over every kept patch (a slide with
    3 patches weighs 3, not as much as one with 400). ``prefix``: the rows' keys of another tool
    (``"hs2p_"``)."""
    def col(k: str) -> np.ndarray:
        return np.array([r[prefix + k] for r in rows], float)

    n = col("n_kept")
    total = max(float(n.sum()), 1.0)
    target = col("target_px").sum()
    out = {"coverage": float(col("covered_px").sum() / target) if target else float("nan")}
    keys = ["tissue_fraction", "pen_bad", "blur_bad"]
    if all(prefix + "usable_target_px" in r for r in rows):
        ut = col("usable_target_px").sum()
        out["usable_cover"] = float(col("usable_covered_px").sum() / ut) if ut else float("nan")
        keys += ["usable_precision", "overlap"]
    for k in keys:
        out[k] = float(np.nansum(col(k) * n) / total)
    return out


def passes(m: dict[str, float], targets: dict[str, tuple[str, float]] = TARGETS) -> bool:
    ok = True
    for k, (op, v) in targets.items():
        ok &= m[k] >= v if op == ">=" else m[k] <= v
    return bool(ok)


def _mean_worst(rows: list[dict[str, Any]], k: str, targets: dict[str, tuple[str, float]]) -> str:
    v = np.array([r[k] for r in rows], float)  # nan: a slide without an ideal cell
    v = v[~np.isnan(v)] if (~np.isnan(v)).any() else v
    worst = v.min() if targets[k][0] == ">=" else v.max()
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


def _row_line(size: tuple[int, int], name: str, stain: str, m: dict[str, Any]) -> str:
    line = (f"{size[0]:>5}x{size[1]:<6} {name[:5]:>5} {stain:>4} {m['seed']:>5} "
            f"{int(m['n_kept']):>6} {int(m['n_ideal']):>6} {m['coverage']:>7.4f} "
            f"{m['tissue_fraction']:>7.4f} {m['ideal_tissue']:>7.4f} {m['pen_bad']:>7.4f} "
            f"{m['blur_bad']:>8.4f} {m['fold_kept']:>6.3f} {m['precision']:>6.3f} "
            f"{int(m['n_usable_grid']):>6} {m['usable_cover']:>7.4f} "
            f"{m['usable_precision']:>6.3f} {m['overlap']:>5.3f} {m['tile_s']:>7.2f}")
    if "hs2p_n_kept" in m:
        line += (f" | {int(m['hs2p_n_kept']):>6} {m['hs2p_usable_cover']:>7.4f} "
                 f"{m['hs2p_usable_precision']:>6.3f} {m['hs2p_pen_bad']:>7.4f} "
                 f"{m['hs2p_blur_bad']:>7.4f}")
    flags = ("" if passes(m) else " FAIL") + ("" if passes(m, USABLE_TARGETS) else " UFAIL")
    return f"{line}  {m['rejected']}{flags}"


def _print_pooled(rows: list[dict[str, Any]], prefix: str, label: str) -> None:
    p = pool(rows, prefix)
    print(f"{label}: " + "  ".join(f"{k}: {v:.4f}" for k, v in p.items())
          + ("" if prefix else ("  -> meets every first target" if passes(p)
                                else "  -> misses a first target"))
          + ("  | usable targets met" if passes(p, USABLE_TARGETS) else "  | usable targets missed"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", default="100-105")
    ap.add_argument("--sizes", default="8192x6144")
    ap.add_argument("--texture", default="cmu",
                    help=f"texture source(s), comma separated: {', '.join(TEXTURES)}, mixed")
    ap.add_argument("--procedural", action="store_true", help="same as --texture procedural")
    ap.add_argument("--stain", default="he", choices=STAINS)
    ap.add_argument("--style", default="realistic", choices=["realistic", "classic"])
    ap.add_argument("--config", type=Path, default=None, help="YAML config file")
    ap.add_argument("--cache", type=Path, default=None, help="folder keeping the drawn slides")
    ap.add_argument("--tiff", action="store_true",
                    help="tile the slides written as pyramidal TIFFs (JPEG q90), not in memory")
    ap.add_argument("--hs2p", action="store_true",
                    help="run hs2p (benchmarks/.venv-ref) on the same TIFFs, beside gigapatch")
    ap.add_argument("--hs2p-min-tissue", type=float, default=None,
                    help="tissue share hs2p's tiles need (default: hs2p's own, 0.01)")
    args = ap.parse_args(argv)
    from gigapatch import load_config

    cfg = load_config("pathology", args.config)
    tex_names = ["procedural"] if args.procedural else args.texture.split(",")
    bad = set(tex_names) - {*TEXTURES, "mixed"}
    if bad:
        ap.error(f"unknown texture {sorted(bad)}; choose from {', '.join(TEXTURES)}, mixed")
    hs2p = find_hs2p() if args.hs2p else None
    if args.hs2p and hs2p is None:
        ap.error("hs2p not found: python -m venv benchmarks/.venv-ref && "
                 'benchmarks/.venv-ref/bin/pip install "hs2p[openslide]==6.1.0"')
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    head = (f"{'size':>12} {'tex':>5} {'stn':>4} {'seed':>5} {'kept':>6} {'ideal':>6} "
            f"{'cover':>7} {'tissue':>7} {'idealT':>7} {'pen>5%':>7} {'blur>50%':>8} "
            f"{'fold':>6} {'prec':>6} {'ugrid':>6} {'ucover':>7} {'uprec':>6} {'ovl':>5} "
            f"{'tile_s':>7}" + (" | hs2p: kept  ucover  uprec    ink    blur" if hs2p else "")
            + "  rejected")
    print(f"style: {args.style}  stain: {args.stain}  {'TIFF' if hs2p or args.tiff else 'in memory'}"
          f"\n{head}")
    rows = []
    for tex_name, size, seed in itertools.product(tex_names, sizes, _parse_seeds(args.seeds)):
        name, texture = texture_for(tex_name, seed)
        stain = stain_for(args.stain, seed)
        m = run_one(seed, size, texture, cfg, args.style, stain, args.cache,
                    tiff=bool(hs2p) or args.tiff)
        if hs2p:
            m.update(run_hs2p(hs2p, m, size, min_tissue=args.hs2p_min_tissue))
        del m["truth"]
        m.update(texture=name, stain=stain, size=f"{size[0]}x{size[1]}")
        rows.append(m)
        print(_row_line(size, name, stain, m), flush=True)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["texture"], r["stain"], r["size"]), []).append(r)
    if len(groups) > 1:
        ks = list(TARGETS) + ["usable_cover", "usable_precision"]
        allt = {**TARGETS, **USABLE_TARGETS}
        print(f"\n{'texture':>10} {'stain':>5} {'size':>11} " + " ".join(f"{k[:12]:>15}" for k in ks)
              + "   pass  upass   (mean / worst)")
        for (name, stain, sz), rs in groups.items():
            print(f"{name:>10} {stain:>5} {sz:>11} " + " ".join(_mean_worst(rs, k, allt) for k in ks)
                  + f"   {sum(passes(r) for r in rs)}/{len(rs)}"
                  + f"   {sum(passes(r, USABLE_TARGETS) for r in rs)}/{len(rs)}")
    print("\nall: " + "  ".join(f"{k}: {_mean_worst(rows, k, TARGETS).strip()} (mean/worst)"
                                for k in TARGETS))
    _print_pooled(rows, "", "pooled, gigapatch (every kept patch of every slide counts once)")
    if hs2p:
        _print_pooled(rows, "hs2p_", "pooled, hs2p 6.1.0 (same slides)")
        print(f"hs2p_s: total {sum(r['hs2p_s'] for r in rows):.2f}")
    print(f"tile_s: total {sum(r['tile_s'] for r in rows):.2f}  "
          f"cpu_s (user + sys of this process): total {sum(r['tile_cpu_s'] for r in rows):.2f}")
    n_fail = sum(not passes(r) for r in rows)
    n_ufail = sum(not passes(r, USABLE_TARGETS) for r in rows)
    print(f"{len(rows) - n_fail}/{len(rows)} slides meet every first target, "
          f"{len(rows) - n_ufail}/{len(rows)} every usable-tissue target")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
