"""Cohort benchmark: a folder of SVS-like slides of mixed sizes, gigapatch against hs2p.

One cohort (default 24 deterministic synthetic slides, sides spread evenly over 10k-40k px; see
``synthetic_slide.py``) is tiled, in rounds that interleave every command so that a change in
machine load hits them all alike, by

- ``gigapatch tile COHORT --out DIR --domain pathology --quiet --workers N``: the default config
  (full-resolution tissue, pen and blur checks of the candidates; overlays; the cohort report);
- the same with ``--config configs/pathology-fast.yaml --no-sharpness`` (the throughput preset,
  mask at the 64 level as hs2p's);
- hs2p 6.1.0's own multi-slide mode, ``tile_slides(..., num_workers=N)`` (OpenSlide backend, HSV
  mask at downsample 64, 256 px at 0.25 um/px), from its own virtual environment;
- the same with its blur QC on: ``FilterConfig(filter_white=True, filter_black=True,
  filter_blur=True, qc_spacing_um=0.5)``;
- the ceiling: libjpeg-turbo (imagecodecs) decode of exactly the stored tiles gigapatch decodes
  (recorded once, untimed, in an instrumented run of each config), on N threads.

for N in ``--workers`` (default 1 2). Each figure is the median of ``--repeats`` rounds; wall time
and CPU time of the whole process tree; peak RSS of its largest process (the parent or one
worker: Linux's ``wait4`` reports the largest of a process and its reaped children).

Usage: ``python benchmarks/cohort.py [--slides 24] [--sides 10000 40000] [--workers 1 2]
[--repeats 2]``; it prints a table with the ratios behind the issue's targets and writes
``benchmarks/results-cohort.md``. ``--slides 3 --sides 2000 3000 --repeats 1`` proves the script
works in a minute.
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
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import machine_line  # noqa: E402
from run import (  # noqa: E402
    FAST_CONFIG,
    GENERATOR_VERSION,
    _split_run,
    bench_env,
    find_hs2p,
    gigapatch_cmd,
)
from synthetic_slide import make_slide  # noqa: E402

MP = 1e6
#: the gigapatch runs' flags (besides --out, --workers): the default config, the fast preset,
#: and the fast preset without the overlay pictures (coordinates and tables only, as hs2p writes)
GP_FLAGS = {"default": ["--domain", "pathology", "--quiet"],
            "fast": ["--domain", "pathology", "--quiet", "--config", str(FAST_CONFIG),
                     "--no-sharpness"],
            "fastbare": ["--domain", "pathology", "--quiet", "--config", str(FAST_CONFIG),
                         "--no-sharpness", "--no-overlay"]}
#: table labels of the runs
LABELS = {"gp-default": "gigapatch, default config", "gp-fast": "gigapatch, fast preset",
          "gp-fastbare": "gigapatch, fast preset, --no-overlay",
          "hs2p-plain": "hs2p tile_slides", "hs2p-blur": "hs2p tile_slides, blur QC on"}

#: hs2p's multi-slide mode: argv = out, workers, blur (0/1), slides...
HS2P_COHORT = """
import sys
from pathlib import Path
from hs2p import FilterConfig, SegmentationConfig, SlideSpec, TilingConfig, tile_slides
out, workers, blur = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
slides = [SlideSpec(sample_id=Path(p).stem, image_path=Path(p)) for p in sys.argv[4:]]
filtering = (FilterConfig(filter_white=True, filter_black=True, filter_blur=True,
                          qc_spacing_um=0.5) if blur else FilterConfig())
arts = tile_slides(
    slides,
    tiling=TilingConfig(backend="openslide", mask_backend="openslide", requested_spacing_um=0.25,
                        requested_tile_size_px=256, tolerance=0.05, overlap=0.0),
    segmentation=SegmentationConfig(method="hsv", downsample=64),
    filtering=filtering, output_dir=out, num_workers=workers,
)
print("N", sum(a.num_tiles for a in arts), "OK", len(arts))
"""


#: the launcher of every timed process: it becomes a child subreaper (Linux), so that worker
#: processes whose parent exits first (a forkserver and its workers) are reparented to it, and
#: reaps the whole tree: wall time, the largest peak RSS of any one process, CPU seconds of all,
#: processes reaped; written as "wall maxrss_kb exit_code cpu_s n_procs" to argv[1]. It is a tiny
#: ``python -S`` process: Linux keeps a parent's peak RSS across fork/exec (see run.py).
LAUNCHER = """
import ctypes, os, sys, time
try:
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except Exception:
    pass
t0 = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, ru = os.wait4(pid, 0)
dt = time.perf_counter() - t0
rss, cpu, n = ru.ru_maxrss, ru.ru_utime + ru.ru_stime, 1
deadline = time.monotonic() + 60
while time.monotonic() < deadline:  # orphaned descendants (forkserver, its workers)
    try:
        other, _, r = os.wait4(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if other == 0:
        time.sleep(0.05)
        continue
    rss, cpu, n = max(rss, r.ru_maxrss), cpu + r.ru_utime + r.ru_stime, n + 1
with open(sys.argv[1], "w") as f:
    f.write(f"{dt} {rss} {os.waitstatus_to_exitcode(status)} {cpu} {n}")
"""


def run_tree(cmd: list[str], env: dict[str, str] | None) -> dict[str, Any]:
    """Run ``cmd`` through :data:`LAUNCHER`: wall s, peak RSS MB of its largest process, CPU s
    and processes of its whole tree, stdout. Raises RuntimeError when it fails."""
    with tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr, \
            tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report"
        subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(report), *map(str, cmd)],
                       stdout=fout, stderr=ferr, env=env, check=False)
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read().decode(errors="replace"), ferr.read().decode(errors="replace")
        fields = report.read_text().split() if report.exists() else ["nan", "0", "-1", "nan", "0"]
    if int(fields[2]) != 0:
        tail = (err or out).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ... exited {fields[2]}: "
                           + " | ".join(tail))
    return {"wall": float(fields[0]), "rss": float(fields[1]) / 1024, "cpu": float(fields[3]),
            "procs": int(fields[4]), "stdout": out}


# ---------------------------------------------------------------------- the cohort
def cohort_sides(n: int, lo: int, hi: int) -> list[int]:
    """``n`` slide sides spread evenly over [lo, hi] (rounded to 100 px), largest last."""
    return [int(s) for s in np.linspace(lo, hi, n).round(-2)]


def ensure_cohort(workdir: Path, sides: list[int]) -> Path:
    """The folder of the cohort's slides (``slide-<i>-<side>.svs``, seed i), written once."""
    folder = workdir / f"cohort-{len(sides)}-{min(sides)}-{max(sides)}-v{GENERATOR_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    for i, side in enumerate(sides):
        path = folder / f"slide-{i:02d}-{side}.svs"
        if not path.exists():
            make_slide(path, side, seed=i)
    return folder


def runner_has_workers() -> bool:
    """True when ``gigapatch tile --workers`` means worker processes (the cohort runner; before
    it, ``--workers`` meant reader threads of one process)."""
    res = subprocess.run([*gigapatch_cmd(), "tile", "--help"], capture_output=True, text=True,
                         check=False, env={**os.environ, "COLUMNS": "200"})
    return "--scheduler" in res.stdout


# ---------------------------------------------------------------------- decode ceiling
def child_record_decodes(slides: list[str], npz: Path) -> dict[str, Any]:
    """(Child process.) Tile every slide in memory with the default and the fast config,
    recording every tile TiffImage decodes; save the unique (slide, level, tx, ty) of each
    config to ``npz``. Returns tile counts per config (all decodes, unique tiles)."""
    from gigapatch import load_config, open_image, tile_image
    from gigapatch.io.tiff import TiffImage

    seen: list[tuple[int, int, int]] = []
    original = TiffImage._decode_tile

    def recording(self: TiffImage, level: int, tx: int, ty: int) -> np.ndarray:
        seen.append((level, tx, ty))
        return original(self, level, tx, ty)

    TiffImage._decode_tile = recording  # type: ignore[method-assign]
    out: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, config in (("default", None), ("fast", FAST_CONFIG)):
        overrides = {"score.sharpness": False} if name == "fast" else {}
        cfg = load_config("pathology", config, overrides)
        rows, n_all = [], 0
        for k, slide in enumerate(slides):
            seen.clear()
            with open_image(slide, domain="pathology") as img:
                assert isinstance(img, TiffImage), img.reader_name
                tile_image(img, cfg)
            n_all += len(seen)
            rows += [(k, *t) for t in set(seen)]
        arrays[name] = np.array(sorted(rows), np.int64).reshape(-1, 4)
        out[f"{name}_decodes"] = n_all
        out[f"{name}_tiles"] = len(arrays[name])
    np.savez(npz, **arrays)
    return out


def child_decode(slides: list[str], npz: Path, threads: list[int]) -> dict[str, float]:
    """(Child process.) Seconds to decode, with imagecodecs.jpeg8_decode, the stored tiles of
    each config in ``npz`` on each thread count (one slide at a time: its bytes read beforehand,
    untimed; the pixels dropped as decoded), and the megapixels decoded."""
    import imagecodecs

    from gigapatch import open_image

    def decode(data: bytes) -> int:
        return int(imagecodecs.jpeg8_decode(data).size // 3)

    z = np.load(npz)
    out: dict[str, float] = {}
    for name in z.files:
        keys = z[name]
        px = 0
        seconds = dict.fromkeys(threads, 0.0)
        for k, slide in enumerate(slides):
            sel = keys[keys[:, 0] == k]
            with open_image(slide, domain="pathology") as img:
                data = [b for b in (img.raw_tile(int(lv), int(tx), int(ty))
                                    for _, lv, tx, ty in sel) if b is not None]
            n = 0
            for th in threads:
                t0 = time.perf_counter()
                n = sum(_split_run(decode, data, th))
                seconds[th] += time.perf_counter() - t0
            px += n
        for th in threads:
            out[f"{name}_decode_{th}"] = seconds[th]
        out[f"{name}_mp"] = px / MP
    return out


# ---------------------------------------------------------------------- rounds
def commands(folder: Path, work: Path, workers: list[int], hs2p_py: str | None,
             multi: bool, only: list[str] | None = None) -> dict[str, tuple[list[str], Path]]:
    """Every timed command of a round: name -> (argv, output folder deleted before each run);
    ``only``: just the runs of these names (keys of :data:`LABELS`)."""
    gp = gigapatch_cmd()
    slides = sorted(str(p) for p in folder.glob("*.svs"))
    cmds: dict[str, tuple[list[str], Path]] = {}
    for w in workers:
        if w > 1 and not multi:
            continue
        wflag = ["--workers", str(w)] if multi else []
        for cfg, flags in GP_FLAGS.items():
            out = work / f"gp-{cfg}-{w}"
            cmds[f"gp-{cfg}-{w}"] = ([*gp, "tile", str(folder), "--out", str(out), *flags,
                                      *wflag], out)
        if hs2p_py is not None:
            for blur in (0, 1):
                out = work / f"hs2p-{'blur' if blur else 'plain'}-{w}"
                cmds[f"hs2p-{'blur' if blur else 'plain'}-{w}"] = (
                    [hs2p_py, "-c", HS2P_COHORT, str(out), str(w), str(blur), *slides], out)
    if only:
        cmds = {k: v for k, v in cmds.items() if k.rsplit("-", 1)[0] in only}
    return cmds


def run_rounds(cmds: dict[str, tuple[list[str], Path]], decode_cmd: list[str], repeats: int,
               env: dict[str, str], log: Any) -> dict[str, dict[str, Any]]:
    """``repeats`` rounds, each running every command once in turn (interleaved), then the
    decode ceiling. Per name: walls, cpus, peak RSS (MB), load averages, stdout of each run."""
    res: dict[str, dict[str, Any]] = {
        k: {"walls": [], "cpus": [], "rss": [], "loads": [], "stdout": []}
        for k in [*cmds, "decode"]}
    for i in range(repeats):
        for name, (cmd, clean) in [*cmds.items(), ("decode", (decode_cmd, None))]:
            if "error" in res[name]:
                continue
            if clean is not None:
                shutil.rmtree(clean, ignore_errors=True)
            load = os.getloadavg()[0]
            try:
                run = run_tree(cmd, env)
            except RuntimeError as e:
                res[name]["error"] = str(e)
                log(f"round {i + 1}: {name}: {e}")
                continue
            r = res[name]
            r.setdefault("patches", []).append(_patches(clean, run["stdout"]))
            r.setdefault("procs", []).append(run["procs"])
            r["walls"].append(run["wall"])
            r["cpus"].append(run["cpu"])
            r["rss"].append(run["rss"])
            r["loads"].append(load)
            r["stdout"].append(run["stdout"])
            log(f"round {i + 1}/{repeats}: {name} {run['wall']:.1f} s, CPU {run['cpu']:.1f} s, "
                f"peak RSS {run['rss']:.0f} MB, {run['procs']} processes, load {load:.2f}")
    for _, clean in cmds.values():
        if clean is not None:
            shutil.rmtree(clean, ignore_errors=True)
    return res


def _patches(out_dir: Path | None, stdout: str) -> int | None:
    """Patches kept in a run: the sum over gigapatch's summary.csv, or hs2p's printed count."""
    import csv

    summary = out_dir / "summary.csv" if out_dir is not None else None
    if summary is not None and summary.is_file():
        with summary.open(newline="") as f:
            return sum(int(float(r["n_patches"] or 0)) for r in csv.DictReader(f))
    if "N " in stdout:
        return int(stdout.split("N ")[-1].split()[0])
    return None


# ---------------------------------------------------------------------- figures
def figures(res: dict[str, dict[str, Any]], n_slides: int) -> dict[str, Any]:
    """Medians, throughput, ratios (None where a figure is missing)."""
    f: dict[str, Any] = {"runs": {}}
    for name, r in res.items():
        if name == "decode" or not r["walls"]:
            continue
        wall = statistics.median(r["walls"])
        row = {"wall": wall, "walls": r["walls"], "cpu": statistics.median(r["cpus"]),
               "rss": max(r["rss"]), "per_min": 60 * n_slides / wall,
               "load": statistics.median(r["loads"])}
        row["patches"] = r["patches"][-1]
        row["procs"] = max(r["procs"])
        f["runs"][name] = row
    dec = res.get("decode", {})
    if dec.get("stdout"):
        parsed = [json.loads(s.strip().splitlines()[-1]) for s in dec["stdout"]]
        f["decode"] = {k: statistics.median(p[k] for p in parsed) for k in parsed[0]}
    return f


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


Target = tuple[str, float | None, float | None, str, bool]


def targets(f: dict[str, Any], workers: list[int]) -> list[Target]:
    """(what, measured on wall time, the same on CPU time, target, met on wall time) of each of
    the issue's targets that this run measured."""
    runs, dec = f["runs"], f.get("decode", {})

    def fig(name: str, key: str) -> float | None:
        return runs.get(name, {}).get(key)

    def both(a: str, b: str) -> tuple[float | None, float | None]:
        return ratio(fig(a, "wall"), fig(b, "wall")), ratio(fig(a, "cpu"), fig(b, "cpu"))

    rows: list[Target] = []
    for w in workers:
        want = "<= 0.5" if w >= 2 else "(at 2 workers: <= 0.5)"
        for cfg, what in (("fast", "fast preset"), ("fastbare", "fast preset --no-overlay")):
            v, c = both(f"gp-{cfg}-{w}", f"hs2p-plain-{w}")
            rows.append((f"{what} / hs2p, {w} worker(s)", v, c, want, v is not None and v <= 0.5))
        v, c = both(f"gp-default-{w}", f"hs2p-blur-{w}")
        rows.append((f"default / hs2p with blur QC, {w} worker(s)", v, c, "<= 1.0",
                     v is not None and v <= 1.0))
        v = ratio(fig(f"gp-default-{w}", "wall"), dec.get(f"default_decode_{w}"))
        c = ratio(fig(f"gp-default-{w}", "cpu"), dec.get("default_decode_1"))
        rows.append((f"default / JPEG decode of the tiles it reads ({w} thread(s)), {w} "
                     "worker(s)", v, c, "<= 2", v is not None and v <= 2.0))
    if 1 in workers and 2 in workers:
        for tool in ("gp-default", "gp-fast", "gp-fastbare", "hs2p-plain", "hs2p-blur"):
            v = ratio(fig(f"{tool}-1", "wall"), fig(f"{tool}-2", "wall"))
            rows.append((f"{tool}: throughput 2 workers / 1 worker", v, None,
                         ">= 1.8" if tool.startswith("gp") else "(reference)",
                         v is not None and v >= 1.8))
    rss = [r["rss"] for k, r in runs.items() if k.startswith("gp-")]
    rows.append(("gigapatch peak RSS of any one process (MB; cohort up to the largest side)",
                 max(rss) if rss else None, None, "<= 300", bool(rss) and max(rss) <= 300))
    return rows


def make_table(f: dict[str, Any], n_slides: int, workers: list[int]) -> str:
    runs = f["runs"]
    lines = ["| run | workers | wall s | slides/min | CPU s | peak RSS MB (largest process) | "
             "processes | patches kept | load (1 min) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in sorted(runs.items(), key=lambda kv: (int(kv[0].rsplit("-", 1)[1]), kv[0])):
        tool, w = name.rsplit("-", 1)
        kept = "-" if r["patches"] is None else str(r["patches"])
        lines.append(f"| {LABELS.get(tool, tool)} | {w} | {r['wall']:.2f} | {r['per_min']:.1f} | "
                     f"{r['cpu']:.1f} | {r['rss']:.0f} | {r['procs']} | {kept} | "
                     f"{r['load']:.2f} |")
    dec = f.get("decode", {})
    for w in workers:
        for cfg in ("default", "fast"):
            s = dec.get(f"{cfg}_decode_{w}")
            if s is not None:
                lines.append(f"| JPEG decode of the tiles the {cfg} config reads "
                             f"({dec[cfg + '_mp']:.0f} MP) | {w} thread(s) | {s:.2f} | "
                             f"{60 * n_slides / s:.1f} | - | - | - | - | - |")
    lines += ["", "| target | measured (wall time) | same on CPU time | target | met |",
              "|---|---:|---:|---:|---|"]
    for what, v, c, want, met in targets(f, workers):
        shown = "not measured" if v is None else f"{v:.0f}" if "MB" in what else f"{v:.2f}"
        on_cpu = "-" if c is None else f"{c:.2f}"
        verdict = "-" if v is None else "yes" if met else "no"
        lines.append(f"| {what} | {shown} | {on_cpu} | {want} | {verdict} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slides", type=int, default=24, help="slides in the cohort")
    ap.add_argument("--sides", type=int, nargs=2, default=[10_000, 40_000],
                    metavar=("MIN", "MAX"), help="smallest and largest slide side in px")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds (median)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="1: run every command once on a one-slide cohort first (untimed)")
    ap.add_argument("--workdir", type=Path,
                    default=Path(tempfile.gettempdir()) / "gigapatch-bench")
    ap.add_argument("--results", type=Path, default=HERE / "results-cohort.md")
    ap.add_argument("--hs2p-python", default=None, help="interpreter of an env with hs2p 6.1.0")
    ap.add_argument("--no-reference", action="store_true", help="skip hs2p")
    ap.add_argument("--json", type=Path, default=None, help="also dump every figure as JSON")
    ap.add_argument("--runs", nargs="+", choices=sorted(LABELS), default=None,
                    help="only these runs (default: all)")
    ap.add_argument("--child", choices=["record", "decode"], help=argparse.SUPPRESS)
    ap.add_argument("--npz", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--cohort", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        slides = sorted(str(p) for p in args.cohort.glob("*.svs"))
        res = (child_record_decodes(slides, args.npz) if args.child == "record"
               else child_decode(slides, args.npz, args.workers))
        print(json.dumps(res))
        return 0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    sides = cohort_sides(args.slides, *args.sides)
    log(f"cohort: {len(sides)} slides, {min(sides)}-{max(sides)} px")
    folder = ensure_cohort(work, sides)
    hs2p_py = None if args.no_reference else find_hs2p(args.hs2p_python)
    if hs2p_py is None and not args.no_reference:
        log("hs2p not found (see --hs2p-python): its rows are left out")
    multi = runner_has_workers()
    if not multi:
        log("this gigapatch has no multi-worker cohort runner yet: gigapatch runs 1 worker only")
    env = bench_env(work)
    me = [sys.executable, str(Path(__file__).resolve()), "--cohort", str(folder)]
    npz = work / f"{folder.name}-decoded.npz"
    log("recording the tiles gigapatch decodes (default and fast configs; untimed)")
    out = run_tree([*me, "--child", "record", "--npz", str(npz)], env)["stdout"]
    decoded = json.loads(out.strip().splitlines()[-1])
    cmds = commands(folder, work / "cohort-out", args.workers, hs2p_py, multi, args.runs)
    decode_cmd = [*me, "--child", "decode", "--npz", str(npz), "--workers",
                  *map(str, args.workers)]
    if args.warmup:  # byte-code caches and the page cache, on a one-slide cohort, untimed
        warm = ensure_cohort(work, [2000])
        for cmd, clean in commands(warm, work / "warm-out", args.workers, hs2p_py, multi,
                                   args.runs).values():
            shutil.rmtree(clean, ignore_errors=True)
            try:
                run_tree(cmd, env)
            except RuntimeError as e:
                log(f"warm-up: {e}")
            shutil.rmtree(clean, ignore_errors=True)
    load0 = os.getloadavg()
    res = run_rounds(cmds, decode_cmd, args.repeats, env, log)
    load1 = os.getloadavg()
    f = figures(res, len(sides))
    f["decoded"] = decoded
    f["errors"] = {k: r["error"] for k, r in res.items() if "error" in r}
    table = make_table(f, len(sides), args.workers)
    mp = sum(s * s for s in sides) / MP
    head = (
        f"# gigapatch cohort benchmark\n\n{machine_line()}.\n"
        f"Cohort: {len(sides)} synthetic SVS-like slides (`synthetic_slide.py`, 256 px JPEG "
        f"tiles, levels 1/4/16/64, ~25 % tissue, 0.25 um/px), sides {min(sides)}-{max(sides)} "
        f"px evenly spread ({mp:.0f} MP of level 0 in all). Median of {args.repeats} "
        f"interleaved rounds. gigapatch: `gigapatch tile COHORT --out DIR "
        f"{' '.join(GP_FLAGS['default'])} --workers N` (default config, overlays and report "
        f"written) and with `--config configs/pathology-fast.yaml --no-sharpness`; "
        f"hs2p 6.1.0: `tile_slides(..., num_workers=N)` (OpenSlide backend, HSV mask at "
        f"downsample 64, 256 px at 0.25 um/px), and with `FilterConfig(filter_white=True, "
        f"filter_black=True, filter_blur=True, qc_spacing_um=0.5)`. The decode rows time "
        f"imagecodecs.jpeg8_decode of exactly the stored tiles gigapatch decodes "
        f"({decoded['default_tiles']} tiles for the default config, decoded "
        f"{decoded['default_decodes']} times by gigapatch; {decoded['fast_tiles']} for the "
        f"fast preset), bytes read beforehand.\n\n")
    foot = (f"\n\nLoad average (1/5/15 min) at start: {load0[0]:.2f} / {load0[1]:.2f} / "
            f"{load0[2]:.2f}; at end: {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}; "
            f"{os.cpu_count()} cores shared with other work (read the ratios).")
    if not multi:
        foot += ("\nThis gigapatch has no multi-worker runner: its rows are 1 worker "
                 "(`--workers` then meant reader threads and was not passed).")
    for k, e in f["errors"].items():
        foot += f"\nError: {k}: {e}"
    print(table + foot)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(head + table + foot + "\n")
    if args.json:
        args.json.write_text(json.dumps(f, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
