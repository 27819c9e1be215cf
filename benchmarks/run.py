"""Speed benchmarks: gigapatch vs the raw codec ceiling and a reference tool, on synthetic slides.

For each slide size (default 10k, 40k and 100k px square) this script

1. writes a deterministic synthetic SVS-like slide (``synthetic_slide.make_slide``: 256 px JPEG
   tiles, levels 1/4/16/64, ~25 % tissue; cached in ``--workdir``);
2. measures, in this run, the ceilings: libjpeg-turbo (imagecodecs) decode and encode of every
   level-0 tissue tile on 1 and 2 threads, and OpenSlide ``read_region`` of 256 px patches;
3. times whole processes (Python start-up and imports included) and their peak RSS:
   ``gigapatch tile SLIDE --out DIR --domain pathology --quiet --no-sharpness --no-overlay``
   (mask + coordinates + h5/yaml/csv outputs), the same with ``--extract``, and the default flags;
   and hs2p 6.1.0 (``tile_slide`` + ``save_tiling_result``, OpenSlide backend, HSV mask at
   downsample 64, 256 px at 0.25 um/px) from its own virtual environment, when one is found;
4. in a child process, times ``gigapatch.extract_patches`` alone on the kept patches (with and
   without JPEG passthrough), grid vs optimal placement (patch counts and coverage), and checks
   the pixels against OpenSlide;
5. prints one table and writes it to ``--results`` (default ``benchmarks/results.md``).

Usage: ``python benchmarks/run.py [--quick] [--sizes 40000] [--hs2p-python PY]``; see
``benchmarks/README.md`` (the hs2p reference environment, reading the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import machine_line, make_table  # noqa: E402
from synthetic_slide import SlideInfo, make_slide  # noqa: E402

PATCH = 256
QUALITY = 90
GENERATOR_VERSION = 2
MP = 1e6
#: the flags of the mask + coordinates run (stated in the table)
#: (no candidate is read at full resolution: the pathology plugin's pixel tissue/ink checks and
#: blur score are off, as hs2p has none; `--no-sharpness` alone drops only the sharpness score)
MASK_FLAGS = ["--domain", "pathology", "--quiet", "--no-sharpness", "--no-overlay",
              "--set", "plugin.pathology.pixel_foreground=false",
              "--set", "plugin.pathology.blur_relative=0"]
#: the throughput preset, timed beside the default config
FAST_CONFIG = HERE.parent / "configs" / "pathology-fast.yaml"

HS2P_SCRIPT = """
import sys
from pathlib import Path
from hs2p import SegmentationConfig, SlideSpec, TilingConfig, save_tiling_result, tile_slide
slide, out = Path(sys.argv[1]), Path(sys.argv[2])
res = tile_slide(
    SlideSpec(sample_id=slide.stem, image_path=slide),
    tiling=TilingConfig(backend="openslide", mask_backend="openslide", requested_spacing_um=0.25,
                        requested_tile_size_px=256, tolerance=0.05, overlap=0.0),
    segmentation=SegmentationConfig(method="hsv", downsample=64),
)
save_tiling_result(res, output_dir=out)
print("N", len(res.x))
"""


# ---------------------------------------------------------------------- slides
def ensure_slide(workdir: Path, side: int, seed: int = 0) -> SlideInfo:
    """The synthetic slide of this size, written once per generator version and cached."""
    path = workdir / f"synthetic-{side}-s{seed}-v{GENERATOR_VERSION}.svs"
    side_car = path.with_suffix(".npz")
    if path.exists() and side_car.exists():
        z = np.load(side_car)
        return SlideInfo(path, side, PATCH, (1, 4, 16, 64), 0.25, z["tile_class"],
                         float(z["tissue_fraction"]), float(z["seconds"]))
    info = make_slide(path, side, seed=seed)
    np.savez(side_car, tile_class=info.tile_class, tissue_fraction=info.tissue_fraction,
             seconds=info.seconds)
    return info


def _sample(n: int, k: int | None) -> np.ndarray:
    """Up to ``k`` indices of ``range(n)``, evenly spread (all of them when k is None)."""
    if k is None or n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


# ---------------------------------------------------------------------- codec ceilings
def _split_run(fn: Callable[[Any], Any], items: Sequence[Any], threads: int) -> list[Any]:
    """Apply ``fn`` to ``items`` on ``threads`` threads, each taking a contiguous share."""
    if threads <= 1:
        return [fn(it) for it in items]
    shares = np.array_split(np.arange(len(items)), threads)
    with ThreadPoolExecutor(threads) as pool:
        parts = list(pool.map(lambda idx: [fn(items[i]) for i in idx], shares))
    return [r for p in parts for r in p]


def measure_codecs(info: SlideInfo, max_tiles: int | None, threads: Sequence[int] = (1, 2),
                   chunk: int = 512) -> dict[str, float]:
    """Decode every level-0 tissue tile's stored JPEG bytes (read from the file, untimed) with
    imagecodecs.jpeg8_decode, and re-encode the pixels with jpeg8_encode at quality 90, on 1 and
    2 threads. Returns MP/s per thread count and the number of tiles."""
    import imagecodecs
    import tifffile

    dec, enc = imagecodecs.jpeg8_decode, imagecodecs.jpeg8_encode
    with tifffile.TiffFile(info.path) as tf:
        page = tf.pages[0]
        offsets = np.asarray(page.dataoffsets)
        counts = np.asarray(page.databytecounts)
    ntx = info.tile_class.shape[1]
    tiles = info.tissue_tiles
    tiles = tiles[_sample(len(tiles), max_tiles)]
    index = tiles[:, 0] * ntx + tiles[:, 1]
    t_dec = dict.fromkeys(threads, 0.0)
    t_enc = dict.fromkeys(threads, 0.0)
    fd = os.open(info.path, os.O_RDONLY)
    try:
        for s in range(0, len(index), chunk):
            idx = index[s : s + chunk]
            data = [os.pread(fd, int(counts[i]), int(offsets[i])) for i in idx]
            pix: list[np.ndarray] = []
            for th in threads:
                t0 = time.perf_counter()
                pix = _split_run(dec, data, th)
                t_dec[th] += time.perf_counter() - t0
            for th in threads:
                t0 = time.perf_counter()
                _split_run(lambda p: enc(p, level=QUALITY), pix, th)
                t_enc[th] += time.perf_counter() - t0
    finally:
        os.close(fd)
    mp = len(index) * PATCH * PATCH / MP
    out: dict[str, float] = {"codec_tiles": float(len(index))}
    for th in threads:
        out[f"decode_{th}"] = mp / t_dec[th]
        out[f"encode_{th}"] = mp / t_enc[th]
    return out


def measure_openslide(info: SlideInfo, max_patches: int, threads: Sequence[int] = (1, 2)
                      ) -> dict[str, float]:
    """OpenSlide read_region of 256 px level-0 patches on tissue tiles (to an RGB array), MP/s."""
    try:
        import openslide
    except ImportError:
        return {}
    tiles = info.tissue_tiles
    out: dict[str, float] = {}
    for k, th in enumerate(threads):
        # a different (interleaved) sample per run, so OpenSlide's tile cache never helps
        sel = _sample(len(tiles), max_patches * len(threads))[k :: len(threads)]
        xy = [(int(tx) * PATCH, int(ty) * PATCH) for ty, tx in tiles[sel]]
        with openslide.OpenSlide(str(info.path)) as osr:

            def read(p: tuple[int, int], osr: Any = osr) -> np.ndarray:
                return np.asarray(osr.read_region(p, 0, (PATCH, PATCH)))[..., :3].copy()

            t0 = time.perf_counter()
            _split_run(read, xy, th)
            dt = time.perf_counter() - t0
        out[f"openslide_{th}"] = len(xy) * PATCH * PATCH / MP / dt
    return out


# ---------------------------------------------------------------------- whole processes
def timed_runs(cmds: dict[str, tuple[list[str], Path | None]], repeats: int, warmup: int = 1,
               env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Run each named command ``warmup`` times untimed, then ``repeats`` times, interleaved
    (a, b, a, b...) so that a change in machine load hits every command alike.

    ``cmds`` maps a name to (argv, folder to delete before each run or None). Returns per name the
    median wall time, all wall times, the max peak RSS (MB) and the last stdout; or ``error``.
    """
    res: dict[str, dict[str, Any]] = {k: {"walls": [], "rss": [], "cpus": []} for k in cmds}
    for i in range(warmup + repeats):
        for name, (cmd, clean) in cmds.items():
            if "error" in res[name]:
                continue
            if clean is not None:
                shutil.rmtree(clean, ignore_errors=True)
            try:
                cpu: list[float] = []
                w, r, out = _run_reaped(cmd, env, cpu)
            except RuntimeError as e:
                res[name]["error"] = str(e)
                continue
            res[name]["stdout"] = out
            if i >= warmup:
                res[name]["walls"].append(w)
                res[name]["rss"].append(r)
                res[name]["cpus"].append(cpu[0])
    for d in res.values():
        if d["walls"]:
            d["wall"] = statistics.median(d["walls"])
            d["cpu"] = statistics.median(d["cpus"])
            d["rss"] = max(d["rss"])
        else:
            d["wall"] = d["rss"] = d["cpu"] = None
    return res


#: a tiny launcher (``python -S``, a few MB): Linux keeps a process's peak RSS across exec and a
#: forked child starts with its parent's pages, so a command started straight from this (large)
#: process would report this process's peak as its own. The launcher spawns the command, reaps
#: it with wait4 and writes "wall_s maxrss_kb exit_code cpu_s" to the file named by argv[1].
LAUNCHER = """
import os, sys, time
t0 = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, ru = os.wait4(pid, 0)
dt = time.perf_counter() - t0
with open(sys.argv[1], "w") as f:
    f.write(f"{dt} {ru.ru_maxrss} {os.waitstatus_to_exitcode(status)} {ru.ru_utime + ru.ru_stime}")
"""


def _run_reaped(cmd: Sequence[str], env: dict[str, str] | None,
                cpu: list[float] | None = None) -> tuple[float, float, str]:
    """Run ``cmd`` to completion through :data:`LAUNCHER`, which times it and reads its own peak
    RSS (os.wait4). Returns (wall seconds, peak RSS in MB, stdout) and appends the CPU seconds
    (user + system) to ``cpu``; raises RuntimeError when it fails."""
    with tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr, \
            tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report"
        subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(report), *map(str, cmd)],
                       stdout=fout, stderr=ferr, env=env, check=False)
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read().decode(errors="replace"), ferr.read().decode(errors="replace")
        fields = report.read_text().split() if report.exists() else ["nan", "nan", "-1", "nan"]
    wall, rss_kb, rc = float(fields[0]), float(fields[1]), int(fields[2])
    if cpu is not None:
        cpu.append(float(fields[3]))
    if rc != 0:
        tail = (err or out).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ... exited {rc}: " + " | ".join(tail))
    return wall, rss_kb / 1024, out


def bench_env(workdir: Path) -> dict[str, str]:
    """The environment of the timed processes: as a user's, byte-code caching on (a session may
    set PYTHONDONTWRITEBYTECODE, which recompiles every imported module of an editable install
    on each run), cached under ``workdir`` so the checkout stays clean."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def gigapatch_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("gigapatch")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("gigapatch")
    return [found] if found else [sys.executable, "-m", "gigapatch"]


def find_hs2p(explicit: str | None) -> str | None:
    """A Python interpreter that can import hs2p, or None."""
    cands = [explicit, os.environ.get("GIGAPATCH_BENCH_HS2P"),
             str(HERE / ".venv-ref" / "bin" / "python")]
    for c in cands:
        if not c or not Path(c).exists():
            continue
        r = subprocess.run([c, "-c", "import hs2p, openslide; print(hs2p.__version__)"],
                           capture_output=True, text=True, check=False)
        if r.returncode == 0:
            return c
    return None


# ---------------------------------------------------------------------- in-process child
def child_inprocess(slide: Path, out: Path, workers: int, checks: int,
                    config: Path | None = None) -> dict[str, Any]:
    """Run in a fresh process: tile_image (grid, optimal), extract_patches timed alone, and the
    pixel comparison with OpenSlide. A failing step is recorded in ``errors`` and skipped."""
    import imagecodecs

    import gigapatch
    from gigapatch import extract_patches, load_config, open_image, resolve_geometry, tile_image

    res: dict[str, Any] = {"errors": [], "gigapatch_version": gigapatch.__version__}
    base = {"score.sharpness": False, "output.overlay": False}
    cfg = load_config(domain="pathology", file=config, overrides=base)
    sets: dict[str, Any] = {}
    for placement in ("grid", "optimal", "border"):  # border: the pathology default
        try:
            c = load_config(domain="pathology", file=config,
                            overrides={**base, "patch.placement": placement})
            t0 = time.perf_counter()
            ps = tile_image(slide, c)
            res[f"tile_{placement}_s"] = time.perf_counter() - t0
            key = {"grid": "grid", "optimal": "opt", "border": "border"}[placement]
            res[f"{key}_n"] = len(ps)
            res[f"{key}_cov"] = float(ps.attrs.get("coverage", np.nan))
            sets[key] = ps.coords
        except Exception as e:
            res["errors"].append(f"tile_image ({placement}): {type(e).__name__}: {e}")
    try:
        from placement import placement_figures

        for mf, f in placement_figures(slide, cfg).items():
            res.update({f"place{mf}_{k}": v for k, v in f.items()})
    except Exception as e:
        res["errors"].append(f"placement: {type(e).__name__}: {e}")
    with open_image(slide, domain="pathology") as img:
        res["reader"] = img.reader_name
        geom = resolve_geometry(img, cfg.patch)
        runs = [("extract_grid", "grid", {}), ("extract_grid_nopass", "grid", {"passthrough": False}),
                ("extract_opt", "opt", {}), ("extract_grid_tar", "grid", {"fmt": "tar"}),
                ("extract_grid_nopass_tar", "grid", {"fmt": "tar", "passthrough": False})]
        if "grid" in sets:
            res["adj_decode_2"] = _raw_decode_mps(img, sets["grid"], workers)
        for name, key, kw in runs:
            if key not in sets:
                continue
            coords = sets[key]
            d = out / name
            shutil.rmtree(d, ignore_errors=True)
            try:
                t0 = time.perf_counter()
                kw = {"fmt": "jpeg", **kw}
                paths = extract_patches(img, coords, geom, d, quality=QUALITY, workers=workers,
                                        **kw)
                dt = time.perf_counter() - t0
                res[name] = len(coords) * PATCH * PATCH / MP / dt if len(coords) else float("nan")
                res[name + "_s"] = dt
                if name in ("extract_grid", "extract_grid_nopass"):
                    res[name + "_pix"] = _compare(img, slide, coords, paths, checks, imagecodecs)
            except Exception as e:
                res["errors"].append(f"{name}: {type(e).__name__}: {e}")
            shutil.rmtree(d, ignore_errors=True)
        if "grid" in sets:  # again after, so that a change of machine load shows
            after = _raw_decode_mps(img, sets["grid"], workers)
            res["adj_decode_2"] = (res["adj_decode_2"] + after) / 2
            res["file_ceiling"] = _file_write_mps(img, sets["grid"], out / "ceiling", workers)
    return res


def _raw_decode_mps(img: Any, coords: np.ndarray, threads: int) -> float:
    """MP/s of imagecodecs.jpeg8_decode of the stored level-0 tiles under ``coords`` (N, 2)
    (tile-aligned grid patches), bytes read beforehand, on ``threads`` threads."""
    import imagecodecs

    data = [img.raw_tile(0, int(x) // PATCH, int(y) // PATCH) for x, y in coords]
    data = [d for d in data if d is not None]
    if not data:
        return float("nan")
    t0 = time.perf_counter()
    _split_run(imagecodecs.jpeg8_decode, data, threads)
    return len(data) * PATCH * PATCH / MP / (time.perf_counter() - t0)


def _file_write_mps(img: Any, coords: np.ndarray, d: Path, threads: int) -> float:
    """MP/s of only writing the kept patches' stored tile bytes to one file each (into a fresh
    directory, as extraction does into a new output folder) on ``threads`` threads: the
    file-system ceiling of one-file-per-patch output on this disk, no decoding or encoding."""
    from gigapatch.outputs.extract import _write_file

    data = [img.raw_tile(0, int(x) // PATCH, int(y) // PATCH) for x, y in coords]
    items = [(d / f"{i}.jpg", b) for i, b in enumerate(data) if b is not None]
    if not items:
        return float("nan")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    t0 = time.perf_counter()
    _split_run(lambda it: _write_file(*it), items, threads)
    dt = time.perf_counter() - t0
    shutil.rmtree(d, ignore_errors=True)
    return len(items) * PATCH * PATCH / MP / dt


def _compare(img: Any, slide: Path, coords: np.ndarray, paths: list[Path], checks: int,
             imagecodecs: Any) -> dict[str, float]:
    """Max |diff| of read_region vs OpenSlide, and of the written JPEGs vs OpenSlide (+ PSNR)."""
    import openslide

    sel = _sample(len(coords), checks)
    worst_read, worst_file, mse = 0, 0, 0.0
    with openslide.OpenSlide(str(slide)) as osr:
        for i in sel:
            x, y = int(coords[i, 0]), int(coords[i, 1])
            ref = np.asarray(osr.read_region((x, y), 0, (PATCH, PATCH)))[..., :3].astype(np.int16)
            mine = img.read_region((x, y), 0, (PATCH, PATCH)).astype(np.int16)
            worst_read = max(worst_read, int(np.abs(mine - ref).max()))
            f = imagecodecs.jpeg8_decode(Path(paths[i]).read_bytes()).astype(np.int16)
            worst_file = max(worst_file, int(np.abs(f - ref).max()))
            mse += float(((f - ref).astype(np.float64) ** 2).mean())
    mse /= max(1, len(sel))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)
    return {"n": float(len(sel)), "read_maxdiff": worst_read, "file_maxdiff": worst_file,
            "file_psnr": psnr}


# ---------------------------------------------------------------------- one size
def bench_size(side: int, args: argparse.Namespace, hs2p_py: str | None,
               log: Callable[[str], None]) -> dict[str, Any]:
    r: dict[str, Any] = {"side": side, "errors": []}
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    log(f"[{side}] slide")
    info = ensure_slide(work, side, args.seed)
    r.update(slide=str(info.path), slide_mb=info.path.stat().st_size / MP,
             slide_s=info.seconds, tissue_tiles=len(info.tissue_tiles),
             tiles=int(info.tile_class.size), tissue_fraction=info.tissue_fraction)
    log(f"[{side}] codec ceilings")
    r.update(measure_codecs(info, args.max_codec_tiles))
    r.update(measure_openslide(info, args.openslide_patches))
    gp = gigapatch_cmd()
    flags = [*MASK_FLAGS, *(["--config", str(args.config)] if args.config else [])]
    slide = str(info.path)
    out, hout = work / f"out-{side}", work / f"hs2p-{side}"
    cmds = {"gp": ([*gp, "tile", slide, "--out", str(out), *flags], out)}
    fout = work / f"fast-{side}"
    if args.config is None and FAST_CONFIG.exists():  # the like-for-like preset (mask at 64)
        cmds["fast"] = ([*gp, "tile", slide, "--out", str(fout), *MASK_FLAGS, "--config",
                         str(FAST_CONFIG)], fout)
    if hs2p_py is not None:
        cmds["hs2p"] = ([hs2p_py, "-c", HS2P_SCRIPT, slide, str(hout)], hout)
    log(f"[{side}] mask + coordinates: {', '.join(cmds)} x{args.repeats}, interleaved")
    env = bench_env(work)
    m = timed_runs(cmds, args.repeats, warmup=args.warmup, env=env)
    r.update(gp_wall=m["gp"]["wall"], gp_walls=m["gp"]["walls"], gp_rss=m["gp"]["rss"],
             gp_cpu=m["gp"]["cpu"])
    if "error" in m["gp"]:
        r["errors"].append(f"gigapatch tile: {m['gp']['error']}")
    else:
        r.update(_h5_summary(out / f"{info.path.stem}.h5"))
    if "fast" in m:
        f = m["fast"]
        r.update(fast_wall=f["wall"], fast_rss=f["rss"], fast_cpu=f["cpu"])
        if "error" in f:
            r["errors"].append(f"gigapatch tile (fast preset): {f['error']}")
        shutil.rmtree(fout, ignore_errors=True)
    if "hs2p" in m:
        h = m["hs2p"]
        r.update(hs2p_wall=h["wall"], hs2p_walls=h["walls"], hs2p_rss=h["rss"],
                 hs2p_cpu=h["cpu"])
        if "error" in h:
            r["errors"].append(f"hs2p: {h['error']}")
        else:
            r["hs2p_n"] = int(h["stdout"].split("N")[-1].split()[0])
    log(f"[{side}] gigapatch default flags, and --extract")
    m = timed_runs({
        "default": ([*gp, "tile", slide, "--out", str(out), "--quiet",
                     *(["--config", str(args.config)] if args.config else [])], out),
        "extract": ([*gp, "tile", slide, "--out", str(out), *flags, "--extract"], out),
    }, 1, warmup=0, env=env)
    r.update(gp_default_wall=m["default"]["wall"], gp_default_rss=m["default"]["rss"],
             gp_extract_wall=m["extract"]["wall"], gp_extract_rss=m["extract"]["rss"])
    r["errors"] += [f"gigapatch tile ({k}): {v['error']}" for k, v in m.items() if "error" in v]
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(hout, ignore_errors=True)
    log(f"[{side}] extraction and placement (in-process)")
    cout = work / f"child-{side}"
    try:
        _, rss, stdout = _run_reaped(
            [sys.executable, str(Path(__file__).resolve()), "--child", slide, str(cout),
             "--workers", str(args.workers), "--checks", str(args.checks),
             *(["--config", str(args.config)] if args.config else [])], None)
        child = json.loads(stdout.strip().splitlines()[-1])
        r["errors"] += child.pop("errors", [])
        r.update(child)
        r["child_rss"] = rss
    except (RuntimeError, ValueError, IndexError) as e:
        r["errors"].append(f"in-process child: {e}")
    shutil.rmtree(cout, ignore_errors=True)
    for e in r["errors"]:
        log(f"[{side}] error: {e}")
    return r


def _h5_summary(path: Path) -> dict[str, Any]:
    """Patches kept and the mask's downsample and side, from gigapatch's h5."""
    import h5py

    with h5py.File(path, "r") as f:
        out: dict[str, Any] = {"gp_n": int(f["coords"].shape[0])}
        if "mask" in f:
            out["gp_mask_ds"] = float(f["mask"].attrs.get("downsample", np.nan))
            out["gp_mask_side"] = int(max(f["mask"].shape))
    return out


# ---------------------------------------------------------------------- table
# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="gigapatch speed benchmarks (issue 'Speed')")
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="slide sides in px (default 10000 40000 100000; --quick: 10000 40000)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer repeats and sampled codec/OpenSlide measurements")
    ap.add_argument("--repeats", type=int, default=None, help="timed whole-process runs (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "gigapatch-bench")
    ap.add_argument("--results", type=Path, default=HERE / "results.md")
    ap.add_argument("--hs2p-python", default=None, help="interpreter of an env with hs2p 6.1.0")
    ap.add_argument("--no-reference", action="store_true", help="skip hs2p")
    ap.add_argument("--workers", type=int, default=2, help="extraction threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checks", type=int, default=64, help="patches compared with OpenSlide")
    ap.add_argument("--max-codec-tiles", type=int, default=None,
                    help="decode/encode at most this many tissue tiles, evenly spread "
                         "(default 8000; --quick 2000; 0 = all)")
    ap.add_argument("--openslide-patches", type=int, default=None,
                    help="OpenSlide patches per thread count (default 3000; --quick 500)")
    ap.add_argument("--json", type=Path, default=None, help="also dump every figure as JSON")
    ap.add_argument("--config", type=Path, default=None,
                    help="a gigapatch YAML config passed to every gigapatch run (e.g. to try "
                         "settings); default: the pathology domain defaults")
    ap.add_argument("--child", nargs=2, metavar=("SLIDE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        res = child_inprocess(Path(args.child[0]), Path(args.child[1]), args.workers, args.checks,
                              args.config)
        print(json.dumps(res, default=float))
        return 0

    sizes = args.sizes or ([10_000, 40_000] if args.quick else [10_000, 40_000, 100_000])
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    if args.max_codec_tiles is None:
        args.max_codec_tiles = 2000 if args.quick else 8000
    if args.max_codec_tiles == 0:
        args.max_codec_tiles = None
    if args.openslide_patches is None:
        args.openslide_patches = 500 if args.quick else 3000

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    hs2p_py = None if args.no_reference else find_hs2p(args.hs2p_python)
    if hs2p_py is None and not args.no_reference:
        log("hs2p not found (see --hs2p-python): its cells read n/a")
    python_start = statistics.median(
        [_run_reaped([sys.executable, "-c", "pass"], None)[0] for _ in range(5)])
    if hs2p_py is not None:  # its interpreter's own start-up (another site-packages)
        args.hs2p_start = statistics.median(
            [_run_reaped([hs2p_py, "-c", "pass"], None)[0] for _ in range(5)])
    load0 = os.getloadavg()[0]
    results = [bench_size(s, args, hs2p_py, log) for s in sorted(sizes)]
    table = make_table(results, python_start, getattr(args, "hs2p_start", None))
    table += (f"\nLoad average (1 min) at start / end: {load0:.2f} / {os.getloadavg()[0]:.2f} "
              f"on {os.cpu_count()} cores (other work on the machine slows every figure).")
    head = (f"# gigapatch benchmarks\n\n{machine_line()}.\n"
            f"Mask + coordinates: `gigapatch tile SLIDE --out DIR {' '.join(MASK_FLAGS)}"
            f"{' --config ' + str(args.config) if args.config else ''}` "
            f"(h5 + yaml + csv written), median of {args.repeats} runs after one warm-up; "
            f"hs2p: `tile_slide` + `save_tiling_result` (backend openslide, hsv mask at "
            f"downsample 64, 256 px at 0.25 um/px), same repeats"
            f"{'' if hs2p_py else ' (not available in this run: n/a)'}. "
            f"Extraction: `gigapatch.extract_patches` alone, {args.workers} threads, JPEG q{QUALITY} "
            f"(one file per patch, or WebDataset tar shards), "
            f"MP/s = kept patches x 256 x 256 / seconds.\n\n")
    print(table)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(head + table + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
