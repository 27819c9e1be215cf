"""This checkout against older versions of gigapatch, beside hs2p, on ``run.py``'s slides.

``python benchmarks/versions.py --baseline LABEL=OLD_ENV/bin/python [--baseline ...]
[--baseline-flags LABEL="--no-sharpness --no-overlay"] [--sizes 10000 40000]``

A change of the code (a refactoring, say) should keep the figures; this measures where a whole
``gigapatch tile`` process spends its time in each version, interleaved in the same run:

* ``this checkout``: ``gigapatch tile`` with ``run.py``'s mask + coords flags, and the same with
  ``--set patch.placement=grid`` (the default placement of versions before border placement);
* each baseline (an environment with an older gigapatch installed), twice: its own command as
  it ships (``python -m gigapatch``) and its ``gigapatch.cli.main`` with a plain exit: the
  interpreter's default garbage collector, pydantic's plugin lookup on and a normal exit, i.e.
  without the start-up tricks gigapatch once had (a raised collector threshold, ``gc.freeze``
  and ``os._exit`` at exit, ``PYDANTIC_DISABLE_PLUGINS``), as this checkout runs. Its flags
  are this checkout's unless ``--baseline-flags LABEL=...`` says otherwise (before the
  pathology plugin had its own switches, ``--no-sharpness --no-overlay`` also turned off its
  full-resolution checks);
* hs2p 6.1.0 (``run.py``'s reference), when ``--hs2p-python`` or ``benchmarks/.venv-ref`` has it.

Every gigapatch process but the shipped ones runs through one launcher (:data:`STAMPED`) that
notes when ``main()`` is entered and left; the table splits their wall time into start-up
(interpreter, imports), ``main()`` (plugin loading, the run) and what follows it (the
interpreter's teardown). ``per_image.py``, run for every version in turn (rounds), then gives
each version's cost per image once a process is up (its flags turned into ``--set``).

``--cohort K`` adds the throughput over many images, the figure a cohort pays: every version's
command on a folder of K copies of the slide (one process tiles them all; ``gigapatch tile
FOLDER``), and hs2p's own multi-slide ``tile_slides`` (one worker, as in ``cohort.py``) on the
same K, interleaved; seconds per image are the process's wall time over K.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cohort import HS2P_COHORT  # noqa: E402
from report import machine_line  # noqa: E402
from run import HS2P_SCRIPT, MASK_FLAGS, bench_env, ensure_slide, find_hs2p  # noqa: E402

#: runs ``gigapatch.cli.main(argv)`` as the console script does (one OpenBLAS thread), with the
#: interpreter's own collector and exit, and writes the monotonic times at which ``main`` was
#: entered and left, and at which the interpreter's exit began, to the file named by argv[1]
STAMPED = """
import atexit, gc, os, sys, time
stamps = [time.monotonic()]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ["PYDANTIC_DISABLE_PLUGINS"] = ""
gc.set_threshold = lambda *a: None
gc.freeze = lambda: None
from gigapatch.cli import main
stamps.append(time.monotonic())
def _exit_began():
    stamps.append(time.monotonic())
    with open(sys.argv[1], "w") as f:
        f.write(" ".join(map(str, stamps)))
try:
    main(sys.argv[2:])
except SystemExit as e:
    if e.code not in (None, 0):
        raise
stamps.append(time.monotonic())
atexit.register(_exit_began)
"""

#: what ``--no-sharpness`` and ``--no-overlay`` set, for ``per_image.py``
FLAG_SETS = {"--no-sharpness": "score.sharpness=false", "--no-overlay": "output.overlay=false"}


def flag_sets(flags: list[str]) -> list[str]:
    """The ``KEY=VALUE`` settings of ``tile`` flags (``--set K=V``, ``--no-sharpness``...)."""
    out = [FLAG_SETS[f] for f in flags if f in FLAG_SETS]
    return out + [v for f, v in zip(flags, flags[1:]) if f == "--set"]


def _time(cmd: list[str], env: dict[str, str], stamps: Path | None) -> dict[str, float]:
    """One run: wall seconds, and with ``stamps`` the split of :data:`STAMPED`."""
    if stamps is not None:
        stamps.unlink(missing_ok=True)
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    t1 = time.monotonic()
    if r.returncode != 0:
        tail = " | ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited {r.returncode}: {tail}")
    out = {"wall": t1 - t0}
    if stamps is not None:
        s = [float(v) for v in stamps.read_text().split()]  # start, imported, main left, exit
        out.update(startup=s[1] - t0, main=s[2] - s[1], exit=t1 - s[3])
    return out


def time_commands(cmds: dict[str, tuple[list[str], Path, Path | None]], repeats: int,
                  warmup: int, env: dict[str, str]) -> dict[str, dict[str, float]]:
    """Each command (argv, output folder, its stamps file or None) ``warmup`` times untimed,
    then ``repeats`` times, interleaved; the medians of each figure."""
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in cmds}
    for i in range(warmup + repeats):
        for name, (cmd, out, stamps) in cmds.items():
            shutil.rmtree(out, ignore_errors=True)
            r = _time(cmd, env, stamps)
            if i >= warmup:
                runs[name].append(r)
    return {k: {f: statistics.median(r[f] for r in v) for f in v[0]} for k, v in runs.items()}


def per_image(python: str, slide: Path, sets: list[str], repeats: int,
              env: dict[str, str]) -> float:
    """Median wall seconds per image of ``per_image.py`` under ``python``."""
    cmd = [python, str(HERE / "per_image.py"), str(slide), "--repeats", str(repeats)]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"per image ([0-9.]+) s wall", r.stdout)
    if found is None:
        raise RuntimeError(f"per_image.py printed no figure: {r.stdout.strip()[-200:]}")
    return float(found.group(1))


def per_image_interleaved(pythons: dict[str, str], slide: Path, sets: dict[str, list[str]],
                          repeats: int, rounds: int, env: dict[str, str]) -> dict[str, float]:
    """:func:`per_image` of every version, ``rounds`` times in turn (so that a slow spell of the
    machine falls on every version alike); the median of each version's rounds."""
    runs: dict[str, list[float]] = {k: [] for k in pythons}
    for _ in range(rounds):
        for label, python in pythons.items():
            runs[label].append(per_image(python, slide, sets[label], repeats, env))
    return {k: statistics.median(v) for k, v in runs.items()}


def start_up(python: str, env: dict[str, str]) -> float:
    """Median seconds of ``python -c pass``: the interpreter's own start-up in its environment."""
    return statistics.median(_time([python, "-c", "pass"], env, None)["wall"] for _ in range(7))


def bench(side: int, args: argparse.Namespace, hs2p: str | None, env: dict[str, str],
          tmp: Path) -> dict[str, Any]:
    """Every command on the ``side`` px slide; per row label, the medians."""
    slide = ensure_slide(args.workdir, side).path
    common = ["tile", str(slide), "--domain", "pathology", "--quiet"]
    flags = [f for f in MASK_FLAGS if f not in ("--domain", "pathology", "--quiet")]

    def stamped(python: str, extra: list[str]) -> tuple[list[str], Path, Path]:
        out, stamps = tmp / f"out-{len(cmds)}", tmp / f"{len(cmds)}.stamps"
        return ([python, "-c", STAMPED, str(stamps), *common, "--out", str(out), *extra], out,
                stamps)

    cmds: dict[str, tuple[list[str], Path, Path | None]] = {}
    cmds["this checkout"] = stamped(sys.executable, flags)
    grid = [*flags, "--set", "patch.placement=grid"]
    cmds["this checkout, grid placement"] = stamped(sys.executable, grid)
    sets = {"this checkout": flag_sets(flags), "this checkout, grid placement": flag_sets(grid)}
    pythons = {"this checkout": sys.executable, "this checkout, grid placement": sys.executable}
    for label, python in args.baselines.items():
        bflags = args.flags.get(label, flags)
        out = tmp / f"out-{len(cmds)}"
        cmds[f"{label} as it ships"] = ([python, "-m", "gigapatch", *common, "--out", str(out),
                                         *bflags], out, None)
        cmds[f"{label}, plain exit"] = stamped(python, bflags)
        sets[f"{label} as it ships"] = flag_sets(bflags)
        pythons[f"{label} as it ships"] = python
    if hs2p is not None:
        out = tmp / "out-hs2p"
        cmds["hs2p 6.1.0"] = ([hs2p, "-c", HS2P_SCRIPT, str(slide), str(out)], out, None)
    res = time_commands(cmds, args.repeats, args.warmup, env)
    if args.cohort:
        for label, v in cohort_runs(cmds, slide, hs2p, args, env, tmp).items():
            res.setdefault(label, {})["cohort"] = v
    for label, v in per_image_interleaved(pythons, slide, sets, args.per_image_repeats,
                                          args.per_image_rounds, env).items():
        res[label]["per_image"] = v
    for label in args.baselines:  # one figure per version
        res[f"{label}, plain exit"]["per_image"] = res[f"{label} as it ships"]["per_image"]
    return {"side": side, "res": res}


def cohort_runs(cmds: dict[str, tuple[list[str], Path, Path | None]], slide: Path,
                hs2p: str | None, args: argparse.Namespace, env: dict[str, str],
                tmp: Path) -> dict[str, float]:
    """Seconds per image of every command on a folder of ``args.cohort`` copies of ``slide``
    (hs2p: ``tile_slides`` on them, one worker), interleaved; this checkout also with
    ``--workers 1`` (its default is one worker per core)."""
    folder = tmp / f"cohort-{slide.stem}"
    folder.mkdir(exist_ok=True)
    for i in range(args.cohort):
        (folder / f"s{i:03d}{slide.suffix}").symlink_to(slide)
    copies = sorted(str(f) for f in folder.iterdir())
    many: dict[str, tuple[list[str], Path, Path | None]] = {}
    for label, (cmd, out, stamps) in cmds.items():
        if label == "hs2p 6.1.0":
            assert hs2p is not None
            many[label] = ([hs2p, "-c", HS2P_COHORT, str(out), "1", "0", *copies], out, None)
        else:
            many[label] = ([str(folder) if a == str(slide) else a for a in cmd], out, stamps)
    cmd, out, _ = many["this checkout"]
    one = tmp / "out-one"  # its own folder: a run into another's would skip the done images
    many["this checkout, one worker"] = ([str(one) if a == str(out) else a for a in cmd]
                                         + ["--workers", "1"], one, None)
    timed = time_commands(many, args.repeats, args.warmup, env)
    return {label: f["wall"] / args.cohort for label, f in timed.items()}


def table(results: list[dict[str, Any]], starts: dict[str, float]) -> str:
    """The markdown table: one row per command and slide."""

    def cell(v: float | None, fmt: str = "{:.3f}") -> str:
        return "-" if v is None else fmt.format(v)

    lines = ["| command | slide | per process, s | / hs2p | start-up to main(), s | main(), s "
             "| after main(), s | per image in one process, s | cohort, s per image | / hs2p |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        res = r["res"]
        ref = res.get("hs2p 6.1.0", {}).get("wall")
        ref_many = res.get("hs2p 6.1.0", {}).get("cohort")
        for label, f in res.items():
            ratio = f["wall"] / ref if ref and "wall" in f else None
            many = f.get("cohort")
            many_ratio = many / ref_many if many is not None and ref_many else None
            lines.append(f"| {label} | {r['side'] // 1000}k | {cell(f.get('wall'))} | "
                         f"{cell(ratio, '{:.2f}')} | {cell(f.get('startup'))} | "
                         f"{cell(f.get('main'))} | {cell(f.get('exit'))} | "
                         f"{cell(f.get('per_image'))} | {cell(many)} | "
                         f"{cell(many_ratio, '{:.2f}')} |")
    lines.append("")
    lines.append("Interpreter start-up (`python -c pass`): " + "; ".join(
        f"{k} {v:.3f} s" for k, v in starts.items()) + ".")
    return "\n".join(lines)


def _flags_note(flags: list[str] | None) -> str:
    return "this checkout's" if flags is None else f"`{' '.join(flags)}`"


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        label, sep, value = item.partition("=")
        if not sep or not label:
            raise SystemExit(f"{what} {item!r}: expected LABEL=VALUE")
        out[label] = value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", action="append", default=[], metavar="LABEL=PYTHON",
                    help="an interpreter whose environment has an older gigapatch (repeatable)")
    ap.add_argument("--baseline-flags", action="append", default=[], metavar="LABEL=FLAGS",
                    help="that version's flags for run.py's mask + coords run")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--per-image-repeats", type=int, default=5,
                    help="images per per_image.py process")
    ap.add_argument("--per-image-rounds", type=int, default=5,
                    help="per_image.py processes per version, interleaved")
    ap.add_argument("--cohort", type=int, default=0, metavar="K",
                    help="also time each command on a folder of K copies of the slide")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "gigapatch-bench")
    ap.add_argument("--hs2p-python", default=None)
    ap.add_argument("--no-reference", action="store_true", help="skip hs2p")
    ap.add_argument("--results", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    args.baselines = _pairs(args.baseline, "--baseline")
    args.flags = {k: v.split() for k, v in _pairs(args.baseline_flags, "--baseline-flags").items()}
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = bench_env(args.workdir)
    hs2p = None if args.no_reference else find_hs2p(args.hs2p_python)
    starts = {"this checkout": start_up(sys.executable, env)}
    starts.update({k: start_up(v, env) for k, v in args.baselines.items()})
    if hs2p is not None:
        starts["hs2p"] = start_up(hs2p, env)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench(s, args, hs2p, env, Path(tmp)) for s in args.sizes]
    load1 = os.getloadavg()
    text = "\n\n".join([
        "# gigapatch against older versions", machine_line(),
        "Baselines: " + "; ".join(f"{k} `{v}` (flags: {_flags_note(args.flags.get(k))})"
                                  for k, v in args.baselines.items())
        + f". Median of {args.repeats} interleaved runs after "
        f"{args.warmup} warm-up; per image: `per_image.py` (median of {args.per_image_repeats}"
        f" images), median of {args.per_image_rounds} interleaved rounds."
        + (f" Cohort: a folder of {args.cohort} copies of the slide (symbolic links), one "
           "process each (hs2p: `tile_slides`, one worker), wall time / "
           f"{args.cohort}." if args.cohort else ""),
        table(results, starts),
        f"Load average (1 min) at start {load0[0]:.2f}, at end {load1[0]:.2f}.",
    ])
    print(text)
    if args.results is not None:
        args.results.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
