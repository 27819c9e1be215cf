"""Satellite benchmark: gigapatch's satellite plugin against torchgeo and plain rasterio, measured
interleaved in the same run; writes ``benchmarks/results-satellite.md``.

On deterministic Landsat-like COGs (``satellite_scene.py``: 4 uint16 bands, 30 m, a footprint
rotated by 10 degrees in no-data, 512 px tiles, overviews; cached in ``--workdir``), per side:

* throughput: the same ``--patches`` 256 px windows (stride 256, a square block inside the
  footprint) read into in-memory arrays, every band, at 0 and 2 workers, rounds interleaved,
  median patches/s: gigapatch raw bands (``read_chips``) and stretched RGB
  (``patches_to_array``), plain rasterio windowed reads (one handle; 2 threads with a handle
  each), torchgeo 0.8 ``RasterDataset`` + ``GridGeoSampler`` (roi = the same block) +
  ``DataLoader`` (``num_workers`` 0 and 2, batches of 32) in its own venv; a checksum of the
  pixels proves every reader read the same windows;
* planning: ``tile_image`` in-process (open, masks on an overview, grid, scores, no-data of the
  footprint's edge patches), seconds after imports; and the whole ``gigapatch tile`` with GeoTIFF
  chips of every kept patch (planning + extraction) as a process: wall and peak RSS;
* no-data: kept patches with more than 50 % no-data, and the share of valid pixels inside kept
  or partial patches (truth from the footprint's exact geometry), beside the number of torchgeo's
  grid chips over the same scene that are more than 50 % no-data. The same on the real LC08 and
  RGB.byte scenes (truth: their level-0 pixels) when the test data is there.

``nice -n 10 python benchmarks/satellite.py`` (sides 10000 40000; the 40k scene takes ~18 min
to write once); ``--sides 4096 --patches 16 --repeats 1`` checks the script in a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import _run_reaped, bench_env, gigapatch_cmd  # noqa: E402
from satellite_scene import ANGLE, HALF, footprint, write_scene  # noqa: E402

SIZE = 256
TORCHGEO_PY = HERE / ".venv-torchgeo" / "bin" / "python"

# --------------------------------------------------------------------------- child programs
#: gigapatch / rasterio throughput, in a child process: argv = scene x0 y0 n_side mode workers
CHILD_OURS = r"""
import json, os, sys, time
import numpy as np
scene, x0, y0, k, mode, workers = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5], int(sys.argv[6])
def cpu():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
coords = np.array([(x0 + 256 * i, y0 + 256 * j) for j in range(k) for i in range(k)], np.int64)
if mode.startswith("rasterio"):
    import rasterio
    from rasterio.windows import Window
    from concurrent.futures import ThreadPoolExecutor
    def part(cs):
        out = []
        with rasterio.open(scene) as ds:
            for x, y in cs:
                out.append(ds.read(window=Window(int(x), int(y), 256, 256)))
        return out
    t, c = time.perf_counter(), cpu()
    if workers <= 1:
        arrays = part(coords)
    else:
        with ThreadPoolExecutor(workers) as pool:
            arrays = [a for chunk in pool.map(part, np.array_split(coords, workers)) for a in chunk]
    data = np.stack(arrays)
else:
    import gigapatch
    from gigapatch_satellite import RasterioImage, read_chips
    img = RasterioImage(scene)
    geom = gigapatch.resolve_geometry(img, gigapatch.load_config("satellite").patch)
    t, c = time.perf_counter(), cpu()
    if mode == "raw":
        data = read_chips(img, coords, 256, workers=max(1, workers))
    else:
        data = gigapatch.patches_to_array(img, coords, geom, workers=max(1, workers))
dt, dc = time.perf_counter() - t, cpu() - c
print(json.dumps({"n": len(data), "seconds": dt, "cpu": dc,
                  "checksum": int(data.astype(np.int64).sum())}))
"""

#: torchgeo throughput in its venv: argv = scene x0 y0 n_side workers
CHILD_TORCHGEO = r"""
import json, sys, time, os
import numpy as np
scene, x0, y0, k, workers = sys.argv[1], *map(int, sys.argv[2:5]), int(sys.argv[5])
import rasterio, shapely
from torch.utils.data import DataLoader
from torchgeo.datasets import RasterDataset, stack_samples
from torchgeo.samplers import GridGeoSampler

class Scene(RasterDataset):
    filename_glob = os.path.basename(scene)
    is_image = True

with rasterio.open(scene) as ds:
    t = ds.transform
left, top = t * (x0, y0)
right, bottom = t * (x0 + 256 * k, y0 + 256 * k)
data = Scene(paths=os.path.dirname(scene))
sampler = GridGeoSampler(data, size=256, stride=256, roi=shapely.box(left, bottom, right, top))
loader = DataLoader(data, sampler=sampler, batch_size=32, num_workers=workers,
                    collate_fn=stack_samples)
def cpu():
    t = os.times()  # the DataLoader's worker processes are joined (and counted) at its end
    return t.user + t.system + t.children_user + t.children_system
n = 0
total = 0
t0, c0 = time.perf_counter(), cpu()
for batch in loader:
    img = batch["image"]
    n += img.shape[0]
    total += int(img.to(dtype=__import__("torch").int64).sum())
del loader
dt, dc = time.perf_counter() - t0, cpu() - c0
print(json.dumps({"n": n, "seconds": dt, "cpu": dc, "checksum": total}))
"""

#: torchgeo's grid over a whole scene: the pixel windows of its chips (its own sampler)
CHILD_TORCHGEO_GRID = r"""
import json, sys, os
scene = sys.argv[1]
import rasterio
from torchgeo.datasets import RasterDataset
from torchgeo.samplers import GridGeoSampler
class Scene(RasterDataset):
    filename_glob = os.path.basename(scene)
    is_image = True
data = Scene(paths=os.path.dirname(scene))
with rasterio.open(scene) as ds:
    inv = ~ds.transform
out = []
for xs, ys, _ in GridGeoSampler(data, size=256, stride=256):
    c0, r0 = inv * (xs.start, ys.stop)
    out.append((round(c0), round(r0)))
print(json.dumps(out))
"""

#: in-process planning time: argv = scene, warm-up scene; the warm-up (a small scene, tiled
#: first) does the imports; prints wall and CPU seconds of the scene's and the patch counts
CHILD_PLAN = r"""
import json, sys, time
import gigapatch
from gigapatch_satellite import RasterioImage
cfg = gigapatch.load_config("satellite", overrides={"plugin.satellite.exclude": []})
with RasterioImage(sys.argv[2]) as img:
    gigapatch.tile_image(img, cfg)
t, c = time.perf_counter(), time.process_time()
with RasterioImage(sys.argv[1]) as img:
    ps = gigapatch.tile_image(img, cfg)
dt, dc = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"seconds": dt, "cpu": dc, "kept": len(ps), "rejected": len(ps.rejected_coords)}))
"""


def run_json(cmd: list[str], env: dict[str, str] | None = None) -> Any:
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(" ".join(cmd[:3]) + ": " + res.stderr.strip().splitlines()[-1])
    return json.loads(res.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- truth
def valid_share(side: int, boxes: np.ndarray) -> np.ndarray:
    """(N,) share of each (x, y, w, h) pixel box inside the scene's footprint (pixel centres),
    the part outside the scene counting as no-data: exact polygon areas, pixel-exact where a
    box is close to half."""
    import math

    import shapely

    t = math.radians(ANGLE)
    c, s = side / 2, HALF * side
    corners = np.array([[-s, -s], [s, -s], [s, s], [-s, s]])
    # the footprint is |u|, |v| < s with u = x cos t + y sin t, v = y cos t - x sin t
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    poly = shapely.Polygon(corners @ rot.T + c)
    b = np.asarray(boxes, np.float64)
    rects = shapely.box(b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3])
    share = shapely.area(shapely.intersection(rects, poly)) / (b[:, 2] * b[:, 3])
    for i in np.flatnonzero(np.abs(share - 0.5) < 0.02):
        x, y, w, h = (int(v) for v in b[i])
        rows = np.arange(max(0, y), min(side, y + h))
        cols = np.arange(max(0, x), min(side, x + w))
        share[i] = footprint(rows, cols, side).sum() / (w * h)
    return share


def coverage(side: int, boxes: np.ndarray) -> float:
    """Share of the footprint's area inside the union of the (x, y, w, h) boxes."""
    import math

    import shapely

    t = math.radians(ANGLE)
    c, s = side / 2, HALF * side
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    poly = shapely.Polygon(np.array([[-s, -s], [s, -s], [s, s], [-s, s]]) @ rot.T + c)
    b = np.asarray(boxes, np.float64)
    union = shapely.union_all(shapely.box(b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]))
    return float(shapely.area(shapely.intersection(union, poly)) / poly.area)


def nodata_figures(path: Path, side: int | None, tg_python: Path | None) -> dict[str, Any]:
    """Kept patches > 50 % no-data, valid pixels inside kept or partial patches, kept alone,
    and torchgeo's grid chips > 50 % no-data; ``side`` None: a real file (level-0 truth)."""
    import gigapatch
    from gigapatch_satellite import RasterioImage

    cfg = gigapatch.load_config("satellite", overrides={"plugin.satellite.exclude": []})
    with RasterioImage(path) as img:
        ps = gigapatch.tile_image(img, cfg)
        w0, h0 = img.dimensions
    size = ps.patch_size_level0
    every = np.concatenate([ps.coords, ps.rejected_coords])
    partial = np.concatenate([ps.columns["partial"], ps.rejected_columns["partial"]])
    kept = np.r_[np.ones(len(ps), bool), np.zeros(len(ps.rejected_coords), bool)]
    boxes = np.column_stack([every, np.full((len(every), 2), size)])
    tg: list[tuple[int, int]] | None = None
    if tg_python is not None:
        tg = run_json([str(tg_python), "-c", CHILD_TORCHGEO_GRID, str(path)])
    if side is not None:
        share = valid_share(side, boxes)
        cov_any = coverage(side, boxes[kept | partial])
        cov_kept = coverage(side, boxes[kept])
        tg_bad = None if tg is None else int((valid_share(
            side, np.array([(x, y, SIZE, SIZE) for x, y in tg])) < 0.5).sum())
    else:
        import rasterio

        with rasterio.open(path) as ds:
            valid = ds.dataset_mask() > 0 if ds.nodata is not None else (ds.read() != 0).any(0)

        def shares(bx: np.ndarray) -> np.ndarray:
            pad = np.pad(valid, ((SIZE, 2 * SIZE), (SIZE, 2 * SIZE)))
            return np.array([pad[y + SIZE : y + SIZE + s, x + SIZE : x + SIZE + s].mean()
                             for x, y, s, _ in bx.astype(int)])

        share = shares(boxes)
        paint = np.zeros_like(valid)
        paint_k = np.zeros_like(valid)
        for (x, y), k, p in zip(every.tolist(), kept, partial):
            if k or p:
                paint[max(0, y) : y + size, max(0, x) : x + size] = True
            if k:
                paint_k[max(0, y) : y + size, max(0, x) : x + size] = True
        cov_any = float((paint & valid).sum() / valid.sum())
        cov_kept = float((paint_k & valid).sum() / valid.sum())
        tg_bad = None if tg is None else int((shares(np.array(
            [(x, y, SIZE, SIZE) for x, y in tg])) < 0.5).sum())
    return {"kept": int(kept.sum()), "kept_over_half_nodata": int((share[kept] < 0.5).sum()),
            "valid_in_kept_or_partial": cov_any, "valid_in_kept": cov_kept,
            "partial": int(partial.sum()), "torchgeo_chips": None if tg is None else len(tg),
            "torchgeo_over_half_nodata": tg_bad, "dims": (w0, h0)}


# --------------------------------------------------------------------------- the run
def throughput(scene: Path, side: int, k: int, repeats: int, tg_python: Path | None,
               env: dict[str, str], log: Any) -> dict[str, Any]:
    """Median patches/s of every reader at 0 and 2 workers, interleaved rounds."""
    x0 = y0 = (side // 2 - SIZE * k // 2) // SIZE * SIZE  # the block in the scene's centre
    args = [str(scene), str(x0), str(y0), str(k)]
    runs: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    sums: dict[str, int] = {}
    for r in range(repeats):
        for workers in (0, 2):
            cmds = {f"gigapatch raw, {workers}": [sys.executable, "-c", CHILD_OURS, *args, "raw",
                                                  str(workers)],
                    f"gigapatch RGB, {workers}": [sys.executable, "-c", CHILD_OURS, *args, "rgb",
                                                  str(workers)],
                    f"rasterio, {workers}": [sys.executable, "-c", CHILD_OURS, *args, "rasterio",
                                             str(workers)]}
            if tg_python is not None:
                cmds[f"torchgeo, {workers}"] = [str(tg_python), "-c", CHILD_TORCHGEO, *args,
                                                str(workers)]
            for name, cmd in cmds.items():
                got = run_json(cmd, env)
                if got["n"] != k * k:
                    raise RuntimeError(f"{name} read {got['n']} patches, not {k * k}")
                runs.setdefault(name, []).append(got["n"] / got["seconds"])
                cpus.setdefault(name, []).append(1000 * got["cpu"] / got["n"])
                if "RGB" not in name:
                    sums[name] = got["checksum"]
                log(f"  round {r}: {name}: {runs[name][-1]:.0f} patches/s, "
                    f"{cpus[name][-1]:.1f} CPU ms a patch")
    same = len({v for v in sums.values()}) == 1
    return {"pps": {k_: statistics.median(v) for k_, v in runs.items()}, "same_pixels": same,
            "cpu_ms": {k_: statistics.median(v) for k_, v in cpus.items()}, "n": k * k,
            "rounds": runs}


def plan_and_extract(scene: Path, work: Path, env: dict[str, str]) -> dict[str, Any]:
    warm = write_scene(work / "scene-1024.tif", 1024)
    plan = run_json([sys.executable, "-c", CHILD_PLAN, str(scene), str(warm)], env)
    out = work / f"out-{scene.stem}"
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    cmd = [*gigapatch_cmd(), "tile", str(scene), "--domain", "satellite", "--out", str(out),
           "--quiet", "--no-overlay", "--set", "plugin.satellite.chips=geotiff", "--set",
           "plugin.satellite.exclude=[]", "--threads", "2"]
    cpu: list[float] = []
    wall, rss, _ = _run_reaped(cmd, env, cpu)
    n_chips = len(list((out / f"{scene.stem}_chips").glob("*.tif")))
    shutil.rmtree(out, ignore_errors=True)
    return {**plan, "tile_wall": wall, "tile_cpu": cpu[0], "tile_rss_mb": rss, "chips": n_chips}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sides", type=int, nargs="+", default=[10000, 40000])
    ap.add_argument("--patches", type=int, default=1024, help="patches per throughput run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=HERE / ".cache" / "satellite")
    ap.add_argument("--torchgeo-python", type=Path, default=TORCHGEO_PY)
    ap.add_argument("--real", type=Path, default=HERE.parent.parent / "shared" / "data" /
                    "satellite", help="folder of LC08 / RGB.byte (real-data no-data figures)")
    ap.add_argument("--out", type=Path, default=HERE / "results-satellite.md")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--from-json", type=Path, default=None,
                    help="write the report from a --json dump of an earlier run, measuring nothing")
    ap.add_argument("--only-plan", action="store_true",
                    help="measure planning and extraction again and merge them into the --json "
                         "dump of an earlier run (the other figures kept)")
    a = ap.parse_args(argv)
    if a.only_plan:
        if not a.json or not a.json.exists():
            ap.error("--only-plan needs the --json dump of an earlier run")
        figures = json.loads(a.json.read_text())
        figures["sides"] = {int(k): v for k, v in figures["sides"].items()}
        env = bench_env(a.workdir)
        for side in a.sides:
            print(f"scene-{side}.tif: planning and extraction", file=sys.stderr, flush=True)
            scene = write_scene(a.workdir / f"scene-{side}.tif", side)
            figures["sides"][side]["plan"] = plan_and_extract(scene, a.workdir, env)
        figures["plan_load"] = os.getloadavg()
        a.json.write_text(json.dumps(figures, indent=1, default=str))
        a.from_json = a.json
    if a.from_json:
        figures = json.loads(a.from_json.read_text())
        figures["sides"] = {int(k): v for k, v in figures["sides"].items()}
        a.sides = list(figures["sides"])
        a.out.write_text(report(figures, a))
        print(a.out.read_text())
        return 0
    tg = a.torchgeo_python if a.torchgeo_python.exists() else None
    env = bench_env(a.workdir)
    k = max(1, int(round(a.patches ** 0.5)))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    figures: dict[str, Any] = {"load": os.getloadavg(), "torchgeo": tg is not None,
                               "sides": {}, "real": {},
                               "args": {"patches": a.patches, "repeats": a.repeats}}
    for side in a.sides:
        scene = write_scene(a.workdir / f"scene-{side}.tif", side)
        log(f"{scene.name}: throughput")
        f: dict[str, Any] = {"throughput": throughput(scene, side, k, a.repeats, tg, env, log)}
        log(f"{scene.name}: planning and extraction")
        f["plan"] = plan_and_extract(scene, a.workdir, env)
        log(f"{scene.name}: no-data")
        f["nodata"] = nodata_figures(scene, side, tg)
        figures["sides"][side] = f
        figures["load_after"] = os.getloadavg()
        a.out.write_text(report(figures, a))  # what is measured so far survives a stop
    for name in ("LC08_L1TP_224078_20200518_20200518_01_RT.TIF", "RGB.byte.tif"):
        if (a.real / name).exists():
            figures["real"][name] = nodata_figures(a.real / name, None, tg)
    figures["load_after"] = os.getloadavg()
    if a.json:
        a.json.write_text(json.dumps(figures, indent=1, default=str))
    text = report(figures, a)
    a.out.write_text(text)
    print(text)
    return 0


def _fmt(v: Any, spec: str = ".0f") -> str:
    return "n/a" if v is None else format(v, spec)


def report(fig: dict[str, Any], a: argparse.Namespace) -> str:
    sides = list(fig["sides"])
    args = fig.get("args", {})
    head = "| figure | " + " | ".join(f"{s // 1000}k" for s in sides) + " |"
    lines = [head, "|---|" + "---:|" * len(sides)]

    def row(label: str, fn: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(fn(fig["sides"][s]) for s in sides) + " |")

    for w in (0, 2):
        for who in ("gigapatch raw", "gigapatch RGB", "rasterio", "torchgeo"):
            row(f"{who}, {w} workers: patches/s",
                lambda f, n=f"{who}, {w}": _fmt(f["throughput"]["pps"].get(n)))
        row(f"CPU ms a patch, {w} workers: raw / RGB / rasterio / torchgeo", lambda f, w=w: " / ".join(
            _fmt(f["throughput"]["cpu_ms"].get(f"{who}, {w}"), ".1f")
            for who in ("gigapatch raw", "gigapatch RGB", "rasterio", "torchgeo")))
        for who in ("gigapatch raw", "gigapatch RGB"):
            row(f"{who}, {w} workers: / torchgeo, / rasterio", lambda f, n=f"{who}, {w}", w=w: (
                f"{_ratio(f, n, f'torchgeo, {w}')} / {_ratio(f, n, f'rasterio, {w}')}"))
    row("same pixels read by every reader", lambda f: str(f["throughput"]["same_pixels"]))
    row("planning in-process (open, masks, grid, scores): wall s / CPU s",
        lambda f: f"{f['plan']['seconds']:.2f} / {f['plan']['cpu']:.2f}")
    row("planning + GeoTIFF chips of every kept patch: wall s / CPU s / peak RSS MB",
        lambda f: f"{f['plan']['tile_wall']:.0f} / {f['plan']['tile_cpu']:.0f} / "
                  f"{f['plan']['tile_rss_mb']:.0f}")
    row("kept patches / chips written", lambda f: f"{f['plan']['kept']} / {f['plan']['chips']}")
    row("kept patches > 50 % no-data (torchgeo's grid chips > 50 % no-data, of)",
        lambda f: f"{f['nodata']['kept_over_half_nodata']} "
                  f"({_fmt(f['nodata']['torchgeo_over_half_nodata'], 'd')} of "
                  f"{_fmt(f['nodata']['torchgeo_chips'], 'd')})")
    row("valid pixels in kept or partial patches / in kept ones",
        lambda f: f"{100 * f['nodata']['valid_in_kept_or_partial']:.3f} % / "
                  f"{100 * f['nodata']['valid_in_kept']:.2f} %")
    out = ["# Satellite benchmark", "",
           f"`python benchmarks/satellite.py --sides {' '.join(map(str, sides))} --patches "
           f"{args.get('patches', a.patches)} --repeats {args.get('repeats', a.repeats)}`; "
           f"load average before {_load(fig['load'])}, "
           f"after {_load(fig['load_after'])} (2 cores, shared: read the ratios, measured "
           "interleaved in the same run).", "", *lines, ""]
    if fig.get("plan_load"):
        out += ["The planning rows were measured again later (`--only-plan`, load average "
                f"{_load(fig['plan_load'])} after), the others kept from the run above.", ""]
    if fig["real"]:
        out += ["| real scene | kept | kept > 50 % no-data | valid in kept or partial | "
                "valid in kept | torchgeo chips > 50 % no-data (of) |", "|---|---:|---:|---:|---:|---:|"]
        for name, f in fig["real"].items():
            out.append(f"| {name} | {f['kept']} | {f['kept_over_half_nodata']} | "
                       f"{100 * f['valid_in_kept_or_partial']:.3f} % | "
                       f"{100 * f['valid_in_kept']:.2f} % | "
                       f"{_fmt(f['torchgeo_over_half_nodata'], 'd')} "
                       f"({_fmt(f['torchgeo_chips'], 'd')}) |")
        out.append("")
    return "\n".join(out)


def _ratio(f: dict[str, Any], a: str, b: str) -> str:
    pps = f["throughput"]["pps"]
    if a not in pps or b not in pps:
        return "n/a"
    return f"{pps[a] / pps[b]:.2f}"


def _load(la: Any) -> str:
    return "/".join(f"{v:.1f}" for v in la)


if __name__ == "__main__":
    raise SystemExit(main())
