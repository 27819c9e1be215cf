"""Metal surfaces benchmark (issue #16): budgeted review of composite steel strips.

Composite strips (``gigapatch_metal_surface.composite``: procedural defect-free steel with real
NEU-DET defects pasted at known boxes, a share across patch seams and a few in the strips a grid
of whole patches leaves at the edges) are tiled with the ``metal_surface`` defaults, and every
figure is measured in the same run:

* per-defect recall when reviewing the best 5 % and 10 % of the patches (a defect counts when
  one reviewed patch covers at least half of its box) by ``review`` (the default order),
  ``normal``, the classical ``defect``, a 10-line local-std baseline and random picks, against
  the oracle: the best any selection of as many patches from the same grid could do (the exact
  0/1 programme, HiGHS);
* the same with overlapping patches (stride 128);
* defects coverable by some patch with the edge policy ``shift`` (the default) and ``inside``;
* with ``--max-defect`` set to the largest defect: defects wholly inside a patch; defect records
  after merging (found, duplicates, false alarms per metre at 0.1 mm px);
* AUPRO@0.3 of the distance-from-normal map and of a local-std map;
* ``--big``: a 100,000 x 4,000 uint16 strip, one raw strip and 256 px tiles: ``gigapatch tile
  --top-percent 5 --extract`` peak RSS, and whether the patches are the source samples bit for
  bit.

Usage::

    python benchmarks/metal.py                       # seeds 1-3, dense + sparse strips
    python benchmarks/metal.py --seeds 11 12 --big   # other seeds, and the 100k strip
    python benchmarks/metal.py --quick               # one dense strip (smoke)

NEU-DET comes from ``--neu`` (default: the shared test data); it is read, never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NEU = HERE.parent.parent / "shared" / "data" / "metal_surface" / "NEU-DET"
PITCH_MM = 0.1
#: (name, (length, width), defects): the strips run along y
STRIPS = (("dense", (20_000, 2_000), 60), ("sparse", (70_000, 2_000), 40))
SCORES = ("review", "normal", "defect", "local_std", "random")


def local_std(image: np.ndarray, coords: np.ndarray, size: int) -> np.ndarray:
    """The baseline: each patch's grey standard deviation (10 lines, as a user would write)."""
    out = np.empty(len(coords))
    for i, (x, y) in enumerate(coords):
        out[i] = image[y : y + size, x : x + size].std()
    return out


def std_map(image: np.ndarray, cell: int) -> np.ndarray:
    """Local std per cell (the baseline's anomaly map)."""
    h, w = image.shape[0] // cell * cell, image.shape[1] // cell * cell
    a = image[:h, :w].astype(np.float32).reshape(h // cell, cell, w // cell, cell)
    return a.std(axis=(1, 3))


def tile(path: Path, out: Path, **overrides: object):
    from gigapatch import PatchSet, load_config, open_image, tile_image

    cfg = load_config("metal_surface", overrides={"patch.pixel_size": [PITCH_MM, PITCH_MM],
                                                   **overrides})
    with open_image(path, domain="metal_surface") as img:
        tile_image(img, cfg, out_dir=out)
    return PatchSet.read(out / f"{path.stem}.h5")


def every_patch(ps) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    coords = np.concatenate([ps.coords, ps.rejected_coords])
    cols = {k: np.concatenate([ps.scores[k], ps.rejected_scores[k]]) for k in ps.scores}
    return coords, cols


def recall_row(held: np.ndarray, scores: dict[str, np.ndarray], pct: float,
               rng: np.random.Generator) -> dict[str, float]:
    from gigapatch_metal_surface import metrics as M

    n = held.shape[0]
    k = M.budget(n, pct)
    row = {"k": k, "oracle": M.oracle_recall(held, k)[0]}
    for name in SCORES:
        if name == "random":
            row[name] = float(np.mean([M.recall_at(held, rng.choice(n, k, replace=False))
                                       for _ in range(50)]))
        else:
            row[name] = M.recall_at(held, M.top_k(scores[name], k))
    return row


def strip_figures(neu: Path, seed: int, name: str, shape: tuple[int, int], n: int,
                  work: Path, defects: list) -> dict[str, object]:
    from gigapatch_metal_surface import metrics as M
    from gigapatch_metal_surface.composite import composite_strip, whole, write_strip

    strip = composite_strip(neu, seed, shape, n, defects=defects)
    path, _ = write_strip(strip, work / f"{name}-{seed}.tif", "uint8", "striped",
                          pixel_size_mm=(PITCH_MM, PITCH_MM))
    truth = M.rects(strip.boxes())
    image = whole(strip, "uint8")
    rng = np.random.default_rng(seed)
    fig: dict[str, object] = {"strip": f"{name} {shape[0]} x {shape[1]} seed {seed}",
                              "defects": len(truth)}
    t0 = time.perf_counter()
    ps = tile(path, work / f"out-{name}-{seed}")
    fig["tile_s"] = round(time.perf_counter() - t0, 2)
    coords, cols = every_patch(ps)
    size = ps.patch_size_level0
    cols["local_std"] = local_std(image, coords, size)
    held = M.holds(coords, size, truth)
    fig["patches"] = len(coords)
    fig["coverable_shift"] = float(held.any(axis=0).mean())
    inside = coords[(coords[:, 0] % size == 0) & (coords[:, 1] % size == 0)
                    & (coords[:, 0] + size <= shape[1]) & (coords[:, 1] + size <= shape[0])]
    fig["coverable_inside"] = float(M.holds(inside, size, truth).any(axis=0).mean())
    edge = (truth[:, 2] > shape[1] - shape[1] % size) | (truth[:, 3] > shape[0] - shape[0] % size)
    fig["edge_defects"] = int(edge.sum())
    fig["edge_coverable_shift"] = float(held[:, edge].any(axis=0).mean()) if edge.any() else 1.0
    fig["edge_coverable_inside"] = (float(M.holds(inside, size, truth[edge]).any(axis=0).mean())
                                    if edge.any() else 1.0)
    fig["wholly_inside_stride256"] = float(M.inside(coords, size, truth).any(axis=0).mean())
    for pct in (5, 10):
        fig[f"at{pct}"] = recall_row(held, cols, pct, rng)
    # overlapping patches: the ranking must not spend the budget on near-duplicates
    ps2 = tile(path, work / f"out2-{name}-{seed}", **{"patch.stride": 128})  # all scorers
    c2, cols2 = every_patch(ps2)
    cols2["local_std"] = local_std(image, c2, size)
    fig["stride128_at5"] = recall_row(M.holds(c2, size, truth), cols2, 5, rng)
    # every defect wholly inside some patch, and one record per defect
    largest = int(max((truth[:, 2] - truth[:, 0]).max(), (truth[:, 3] - truth[:, 1]).max()))
    ps3 = tile(path, work / f"out3-{name}-{seed}", **{  # coverage only: no scores needed
        "patch.max_object": largest, "plugin.metal_surface.scorers": ["normal"]})
    c3, _ = every_patch(ps3)
    fig["max_defect_px"] = largest
    fig["max_defect_stride"] = int(ps3.attrs["stride_level0"])
    fig["wholly_inside_max_defect"] = float(M.inside(c3, size, truth).any(axis=0).mean())
    recs = np.loadtxt(work / f"out-{name}-{seed}" / f"{path.stem}_defects.csv", delimiter=",",
                      skiprows=1, usecols=(1, 2, 3, 4), ndmin=2)
    fig["records"] = M.record_stats(recs, truth, shape[0] * PITCH_MM / 1000.0)
    with np.load(work / f"out-{name}-{seed}" / f"{path.stem}_defects.npz") as z:
        dist, cell, origin = z["distance"], int(z["cell"]), tuple(z["origin"])
    mask = M.box_mask(truth - np.array([*origin, *origin]), dist.shape, cell)
    sd = std_map(image, cell)
    fig["aupro_normal"] = M.aupro(dist, mask)
    fig["aupro_local_std"] = M.aupro(sd, mask[: sd.shape[0], : sd.shape[1]])
    return fig


def big_figures(neu: Path, work: Path, defects: list) -> list[dict[str, object]]:
    """The 100,000 x 4,000 uint16 strip, striped and tiled: peak RSS of tile + extract."""
    import cv2
    import tifffile

    from gigapatch_metal_surface.composite import composite_strip, write_strip

    strip = composite_strip(neu, 7, (100_000, 4_000), 150, defects=defects)
    out = []
    for layout in ("striped", "tiled"):
        path, _ = write_strip(strip, work / f"big-{layout}.tif", "uint16", layout,
                              pixel_size_mm=(PITCH_MM, PITCH_MM))
        dest = work / f"big-{layout}-out"
        cmd = [sys.executable, "-m", "gigapatch", "tile", str(path), "--domain", "metal_surface",
               "--top-percent", "5", "--extract", "--out", str(dest), "--quiet"]
        probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
                 "r = subprocess.run(sys.argv[1:]); "
                 "print(r.returncode, time.perf_counter() - t, "
                 "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        res = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True)
        rc, secs, rss_kb = res.stdout.split()[-3:]
        files = sorted((dest / path.stem).glob("*.png"))
        same = True
        with tifffile.TiffFile(path) as tf:
            for f in files[:: max(1, len(files) // 40)]:
                x, y = (int(v) for v in f.stem.split("_"))
                got = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
                want = source_region(tf, x, y, 256)
                same &= got.dtype == np.uint16 and got.ndim == 2 and np.array_equal(got, want)
        row = {"layout": layout, "rc": int(rc), "seconds": round(float(secs), 1),
               "peak_rss_mb": round(int(rss_kb) / 1024), "patches": len(files),
               "bit_identical": bool(same), "file_mb": round(path.stat().st_size / 2**20)}
        print(json.dumps(row), flush=True)
        out.append(row)
        path.unlink()
    return out


def source_region(tf, x: int, y: int, size: int) -> np.ndarray:
    """(size, size) samples of the first page at (x, y), decoded by tifffile straight from the
    file: rows of a memory-mapped raw strip, or the tiles under the region."""
    page = tf.pages[0]
    if not page.is_tiled:
        return page.asarray(out="memmap")[y : y + size, x : x + size]
    th, tw = page.tilelength, page.tilewidth
    ntx = -(-page.imagewidth // tw)
    out = np.empty((size, size), page.dtype)
    fh = tf.filehandle
    for ty in range(y // th, (y + size - 1) // th + 1):
        for tx in range(x // tw, (x + size - 1) // tw + 1):
            i = ty * ntx + tx
            fh.seek(page.dataoffsets[i])
            tile = page.decode(fh.read(page.databytecounts[i]), i)[0][0, ..., 0]
            gx, gy = tx * tw, ty * th
            sx0, sy0 = max(x, gx), max(y, gy)
            sx1, sy1 = min(x + size, gx + tw), min(y + size, gy + th)
            out[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = tile[sy0 - gy : sy1 - gy,
                                                              sx0 - gx : sx1 - gx]
    return out


def table(figs: list[dict[str, object]]) -> str:
    lines = ["| strip | defects | patches | budget | oracle | review | normal | defect | local std "
             "| random | review / oracle | review / local std |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for f in figs:
        for key, label in (("at5", "5 %"), ("at10", "10 %"), ("stride128_at5", "5 %, stride 128")):
            r = f[key]
            assert isinstance(r, dict)
            lines.append(
                f"| {f['strip']} | {f['defects']} | {f['patches']} | {label} (k={r['k']}) | "
                f"{r['oracle']:.3f} | {r['review']:.3f} | {r['normal']:.3f} | {r['defect']:.3f} | "
                f"{r['local_std']:.3f} | {r['random']:.3f} | {r['review'] / r['oracle']:.2f} | "
                f"{r['review'] / max(r['local_std'], 1e-9):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--neu", type=Path, default=NEU)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--quick", action="store_true", help="one dense strip")
    ap.add_argument("--big", action="store_true", help="also the 100,000 x 4,000 uint16 strip")
    ap.add_argument("--only-big", action="store_true", help="only the 100,000 x 4,000 strip")
    ap.add_argument("--json", type=Path, help="write every figure here")
    a = ap.parse_args(argv)
    from gigapatch_metal_surface.composite import neu_defects

    defects = neu_defects(a.neu)
    if not defects:
        sys.exit(f"no NEU-DET images with boxes in {a.neu}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"{len(defects)} NEU-DET defect cut-outs", flush=True)
    figs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="gigapatch-metal-") as tmp:
        work = Path(tmp)
        strips = () if a.only_big else STRIPS[:1] if a.quick else STRIPS
        seeds = a.seeds[:1] if a.quick else a.seeds
        for seed in seeds:
            for name, shape, n in strips:
                fig = strip_figures(a.neu, seed, name, shape, n, work, defects)
                figs.append(fig)
                print(json.dumps(fig), flush=True)
        print()
        print(table(figs))
        keys = ("edge_coverable_inside", "edge_coverable_shift", "coverable_inside",
                "coverable_shift", "wholly_inside_stride256",
                "wholly_inside_max_defect", "aupro_normal", "aupro_local_std")
        print()
        print("| strip | " + " | ".join(keys) + " | records found | duplicates | false alarms / m |")
        print("|---|" + "---:|" * (len(keys) + 3))
        for f in figs:
            rec = f["records"]
            assert isinstance(rec, dict)
            print(f"| {f['strip']} | " + " | ".join(f"{float(f[k]):.3f}" for k in keys)
                  + f" | {rec['found']:.3f} | {rec['duplicates']:.3f} | "
                  f"{rec['false_alarms_per_m']:.2f} |")
        big = big_figures(a.neu, work, defects) if a.big or a.only_big else []
        for b in big:
            print(json.dumps(b), flush=True)
    if a.json:
        a.json.write_text(json.dumps({"strips": figs, "big": big}, indent=1))
    print(f"load average {os.getloadavg()[0]:.2f}; own peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
