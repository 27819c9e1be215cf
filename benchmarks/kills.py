"""Kill ``gigapatch tile --extract`` at random moments over a small cohort; check what is left.

A cohort of synthetic slides (tiled pyramidal JPEG TIFFs of pink blobs on glass, 0.5 mpp) is
tiled once without interruption (the reference). Then, ``--kills`` times in a row, a fresh run
into an empty ``--out`` is started in its own process group and, after a random delay in
``[0.1 s, the reference's wall time)``, sent one of:

* SIGINT to the whole group (Ctrl-C in a terminal), or to the driver alone (``kill -INT``);
* SIGTERM to the driver alone (a scheduler's), or to the whole group;
* SIGKILL to the whole group (the OOM killer, a node lost), or to the driver alone (its
  workers finish their image and see the driver gone).

After each kill (once every process of the group has ended) it checks:

1. every image with a done record has all the outputs the record lists, intact, and they are the
   reference's (patch coordinates, the patch files' names and bytes, the output file names);
2. a rerun (no kill) exits 0, tiles only the images without a done record (the done images'
   files and records keep their inode and mtime) and leaves no temporary file, staging folder or
   lock;
3. after it every image is complete and identical to the reference, and ``summary.csv`` has one
   row per image.

Then ``--concurrent`` times: two runs with different configs (``--patch-size`` 128 and 256)
start together into one ``--out``; every image must end with one config's outputs only (those
of the config its record names, identical to that config's reference), no file of the other
config may remain beside them, and ``summary.csv`` must hold one row per image.

Usage::

    nice -n 10 python benchmarks/kills.py --kills 20 --concurrent 3 --seed 1 --json /tmp/kills.json

Exit status 0 when every check of every kill passed. A signal drawn for a moment after the run
had already ended is no kill: it is drawn again (reported as missed; at most 3x ``--kills``
tries). :func:`check_after_kill` and
:func:`check_complete` are also what ``tests/robustness/test_kills.py`` runs (fewer kills).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: the images of the cohort
NAMES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
#: ``gigapatch tile`` flags of every run (the config under test; ``--patch-size`` is added)
FLAGS = ("--extract", "--workers", "2", "--no-sharpness", "--quiet")
#: what a finished folder never holds: temporary files, staging folders, locks
LEFTOVER = (".tmp", ".partial", ".broken", ".lock")
SIGNALS = (("SIGINT", "group"), ("SIGINT", "driver"), ("SIGTERM", "driver"),
           ("SIGTERM", "group"), ("SIGKILL", "group"), ("SIGKILL", "driver"))


# ---------------------------------------------------------------------------- the cohort
def tissue_rgb(side: int, seed: int) -> np.ndarray:
    """(side, side, 3) uint8: pink tissue blobs on white glass, different for every seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    tissue = np.zeros((side, side), bool)
    for _ in range(3):
        cx, cy = rng.uniform(0.25, 0.75, 2) * side
        r = rng.uniform(0.12, 0.22) * side
        tissue |= (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
    rgb = np.full((side, side, 3), 242, np.uint8)
    noise = rng.integers(-20, 20, (int(tissue.sum()), 3))
    rgb[tissue] = (np.array([200, 110, 170]) + noise).clip(0, 255).astype(np.uint8)
    return rgb


def make_cohort(folder: Path, names: tuple[str, ...] = NAMES, side: int = 2048) -> Path:
    """``folder/<name>.tiff`` per name: a JPEG pyramid (downsample 4) at 0.5 mpp."""
    from gigapatch import write_pyramidal_tiff

    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        write_pyramidal_tiff(folder / f"{name}.tiff", tissue_rgb(side, i), downsamples=(4,),
                             mpp=0.5)
    return folder


def command(cohort: Path, out: Path, patch_size: int = 128) -> list[str]:
    return [sys.executable, "-m", "gigapatch", "tile", str(cohort), "--out", str(out),
            "--patch-size", str(patch_size), *FLAGS]


def run(cohort: Path, out: Path, patch_size: int = 128, timeout: float = 600
        ) -> subprocess.CompletedProcess:
    """One uninterrupted run."""
    return subprocess.run(command(cohort, out, patch_size), capture_output=True, text=True,
                          timeout=timeout)


# ---------------------------------------------------------------------------- what is there
def records(out: Path) -> dict[str, dict[str, Any]]:
    """image id -> its done record (JSON) in ``out``."""
    folder = out / ".gigapatch" / "records"
    if not folder.is_dir():
        return {}
    found = {}
    for p in folder.glob("*.json"):
        if not p.name.startswith("."):
            found[p.stem] = json.loads(p.read_text())
    return found


def fingerprint(out: Path, image_id: str) -> dict[str, Any]:
    """What an image's outputs are, run-independent: the output file names, the h5's patch
    coordinates, and the name and bytes (sha256) of every patch file."""
    import h5py

    names = sorted(p.name for p in out.iterdir() if p.is_file()
                   and (p.name.startswith(f"{image_id}.") or p.name.startswith(f"{image_id}_")))
    coords = None
    h5 = out / f"{image_id}.h5"
    if h5.is_file():
        with h5py.File(h5, "r") as f:
            coords = hashlib.sha256(np.ascontiguousarray(f["coords"][()]).tobytes()).hexdigest()
    folder = out / image_id
    patches = {}
    if folder.is_dir():
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                patches[p.relative_to(folder).as_posix()] = hashlib.sha256(
                    p.read_bytes()).hexdigest()
    return {"files": names, "coords": coords, "patches": patches}


def stamps(out: Path, image_id: str) -> dict[str, tuple[int, int]]:
    """``(inode, mtime_ns)`` of every file of an image (outputs, patches, its record)."""
    files = [p for p in out.iterdir() if p.is_file()
             and (p.name.startswith(f"{image_id}.") or p.name.startswith(f"{image_id}_"))]
    if (out / image_id).is_dir():
        files += [p for p in (out / image_id).rglob("*") if p.is_file()]
    files.append(out / ".gigapatch" / "records" / f"{image_id}.json")
    return {str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in files if p.exists()}


def leftovers(out: Path) -> list[str]:
    """Temporary files, staging folders, broken or held locks anywhere under ``out``."""
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if p.name.endswith(LEFTOVER) and p.name != "summary.lock")


def intact(out: Path, rec: dict[str, Any]) -> bool:
    """Every output the record lists exists with its recorded size (folders: file count)."""
    for row in rec.get("outputs", []):
        p = out / row["path"]
        if row["path"].endswith("/"):
            if not p.is_dir() or sum(1 for q in p.rglob("*") if q.is_file()
                                     and not q.name.startswith(".")) != row.get("files"):
                return False
        elif not p.is_file() or p.stat().st_size != row["bytes"]:
            return False
    return True


def summary_ids(out: Path) -> list[str]:
    with open(out / "summary.csv", newline="") as f:
        return [row["image_id"] for row in csv.DictReader(f)]


# ---------------------------------------------------------------------------- checks
def check_after_kill(out: Path, reference: dict[str, dict[str, Any]]) -> list[str]:
    """Problems of a killed run's folder: a done record whose outputs are missing, cut or not
    the reference's (an output set taken as done that is not)."""
    problems = []
    for image_id, rec in records(out).items():
        if rec["status"] != "ok":
            problems.append(f"{image_id}: record says {rec['status']}: {rec.get('reason')}")
        elif not intact(out, rec):
            problems.append(f"{image_id}: done record, but its outputs are not all there")
        elif fingerprint(out, image_id) != reference[image_id]:
            problems.append(f"{image_id}: done record, outputs differ from the reference")
    return problems


def check_complete(out: Path, reference: dict[str, dict[str, Any]]) -> list[str]:
    """Problems of a finished folder: an image not done or not the reference's, leftovers,
    summary rows missing or repeated."""
    problems = []
    recs = records(out)
    for image_id, ref in reference.items():
        rec = recs.get(image_id)
        if rec is None or rec["status"] != "ok":
            problems.append(f"{image_id}: not done after the rerun ({rec and rec['status']})")
        elif fingerprint(out, image_id) != ref:
            problems.append(f"{image_id}: outputs differ from the reference after the rerun")
    if left := leftovers(out):
        problems.append(f"left behind: {left[:5]}")
    ids = summary_ids(out)
    if sorted(ids) != sorted(reference):
        problems.append(f"summary.csv rows {sorted(ids)} != the images {sorted(reference)}")
    return problems


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def kill_at(cohort: Path, out: Path, delay: float, signame: str, target: str,
            patch_size: int = 128, settle: float = 120) -> dict[str, Any]:
    """Start a run, send ``signame`` to the driver or its ``target`` group after ``delay``
    seconds, wait for every process of the group to end."""
    proc = subprocess.Popen(command(cohort, out, patch_size), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(delay)
    finished_first = proc.poll() is not None
    signum = getattr(signal, signame)
    if not finished_first:
        if target == "group":
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
    try:
        stdout, stderr = proc.communicate(timeout=settle)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        return {"rc": None, "stderr": "the killed run did not end (a hang)", "hung": True}
    end = time.monotonic() + settle
    while not group_gone(proc.pid) and time.monotonic() < end:  # orphaned workers finish
        time.sleep(0.05)
    orphans = not group_gone(proc.pid)
    if orphans:
        os.killpg(proc.pid, signal.SIGKILL)
    return {"rc": proc.returncode, "finished_first": finished_first, "orphans_hung": orphans,
            "traceback": "Traceback" in stderr, "stderr": stderr[-3000:]}


@dataclass
class KillResult:
    i: int
    signal: str
    target: str
    delay: float
    rc: int | None = None
    done_before: int = 0
    redone: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    rerun_s: float = 0.0
    #: the signal reached a running run (False: it had already finished: not a kill)
    landed: bool = True


def one_kill(i: int, cohort: Path, work: Path, reference: dict[str, dict[str, Any]],
             rng: random.Random, ref_s: float) -> KillResult:
    """A kill at a random moment (a random signal and target), the checks, a rerun, the
    checks again."""
    signame, target = SIGNALS[rng.randrange(len(SIGNALS))]
    delay = round(rng.uniform(0.1, ref_s), 2)
    return kill_and_check(i, cohort, work, reference, signame, target, delay)


def kill_and_check(i: int, cohort: Path, work: Path, reference: dict[str, dict[str, Any]],
                   signame: str, target: str, delay: float) -> KillResult:
    """``signame`` to the ``target`` ("driver" or "group") ``delay`` s into a run, the checks
    after the kill, a rerun, the checks after it (:class:`KillResult`; no problems: passed)."""
    out = work / f"kill-{i:02d}"
    res = KillResult(i, signame, target, delay)
    k = kill_at(cohort, out, delay, signame, target)
    res.rc, res.landed = k["rc"], not k.get("finished_first", False)
    if k.get("hung") or k.get("orphans_hung"):
        res.problems.append(f"processes did not end after {signame}: {k}")
    if k.get("traceback"):
        res.problems.append(f"traceback on stderr: {k['stderr']}")
    res.problems += check_after_kill(out, reference)
    done = {name for name, r in records(out).items() if r["status"] == "ok"}
    res.done_before = len(done)
    before = {name: stamps(out, name) for name in done}
    t0 = time.perf_counter()
    again = run(out=out, cohort=cohort)
    res.rerun_s = round(time.perf_counter() - t0, 2)
    if again.returncode != 0:
        res.problems.append(f"rerun exit {again.returncode}: {again.stderr[-300:]}")
    after = {name: stamps(out, name) for name in done}
    res.redone = sorted(n for n in done if before[n] != after[n])
    if res.redone:
        res.problems.append(f"done images redone by the rerun: {res.redone}")
    res.problems += check_complete(out, reference)
    if not res.problems:
        shutil.rmtree(out, ignore_errors=True)
    return res


def concurrent(i: int, cohort: Path, work: Path, refs: dict[int, dict[str, dict[str, Any]]]
               ) -> dict[str, Any]:
    """Two runs with other patch sizes started together into one folder (the images are
    those of ``refs``)."""
    out = work / f"concurrent-{i:02d}"
    sizes = (128, 256) if i % 2 == 0 else (256, 128)
    procs = [subprocess.Popen(command(cohort, out, s), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for s in sizes]
    outs = [p.communicate(timeout=600) for p in procs]
    rcs = [p.returncode for p in procs]
    problems = []
    ref_hashes = {s: {r["config_hash"] for r in records(work / f"reference-{s}").values()}
                  for s in sizes}
    recs = records(out)
    names = sorted(refs[sizes[0]])
    for name in names:
        rec = recs.get(name)
        if rec is None:
            problems.append(f"{name}: no record after both runs")
            continue
        size = next((s for s in sizes if rec["config_hash"] in ref_hashes[s]), None)
        if size is None:
            problems.append(f"{name}: record of neither config")
        elif fingerprint(out, name) != refs[size][name]:
            problems.append(f"{name}: files are not the {size} px run's alone")
    if left := leftovers(out):
        problems.append(f"left behind: {left[:5]}")
    if sorted(summary_ids(out)) != names:
        problems.append(f"summary rows: {summary_ids(out)}")
    for (_, stderr), rc in zip(outs, rcs):
        if rc not in (0,) and not [ln for ln in stderr.splitlines() if ln.startswith("error:")]:
            problems.append(f"exit {rc} without a one-line error: {stderr[-300:]}")
        if "Traceback" in stderr:
            problems.append("traceback")
    return {"i": i, "sizes": sizes, "rcs": rcs,
            "stderr": [e.strip().splitlines()[-1:] for _, e in outs], "problems": problems}


def reference_runs(cohort: Path, work: Path, sizes: tuple[int, ...] = (128, 256),
                   names: tuple[str, ...] = NAMES
                   ) -> tuple[dict[int, dict[str, dict[str, Any]]], float]:
    """The uninterrupted runs of each patch size: fingerprints of ``names`` (the cohort's
    images); the wall time of the first size's run."""
    refs, wall = {}, 0.0
    for s in sizes:
        out = work / f"reference-{s}"
        t0 = time.perf_counter()
        res = run(cohort, out, s)
        if s == sizes[0]:
            wall = time.perf_counter() - t0
        if res.returncode != 0:
            raise SystemExit(f"the reference run failed: {res.stderr}")
        refs[s] = {name: fingerprint(out, name) for name in names}
    return refs, wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--concurrent", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--side", type=int, default=2048, help="side of each synthetic slide, px")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--work", type=Path, help="keep the folders here (default: a temp dir)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gigapatch-kills-") as tmp:
        work = args.work or Path(tmp)
        cohort = make_cohort(work / "cohort", side=args.side)
        refs, ref_s = reference_runs(cohort, work)
        print(f"reference run: {ref_s:.1f} s wall", flush=True)
        kills: list[KillResult] = []
        missed, i = 0, 0
        while len(kills) < args.kills and i < 3 * args.kills:
            r = one_kill(i, cohort, work, refs[128], rng, ref_s)
            i += 1
            if not r.landed and not r.problems:  # the run had finished: drawn again
                missed += 1
                print(f"try  {r.i:2d}: {r.signal} at {r.delay:5.2f} s came after the run "
                      "ended; drawn again", flush=True)
                continue
            kills.append(r)
            print(f"kill {len(kills) - 1:2d}: {r.signal:7s} to the {r.target:6s} at "
                  f"{r.delay:5.2f} s: exit {r.rc}, {r.done_before} of {len(NAMES)} done before "
                  f"the rerun, {'OK' if not r.problems else 'FAIL ' + '; '.join(r.problems)}",
                  flush=True)
        conc = []
        for i in range(args.concurrent):
            c = concurrent(i, cohort, work, refs)
            conc.append(c)
            print(f"concurrent {i}: patch sizes {c['sizes']}, exits {c['rcs']}: "
                  f"{'OK' if not c['problems'] else 'FAIL ' + '; '.join(c['problems'])}",
                  flush=True)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    failed = sum(bool(r.problems) for r in kills) + sum(bool(c["problems"]) for c in conc)
    summary = {"kills": len(kills), "kills_passed": sum(not r.problems for r in kills),
               "missed_after_the_run_ended": missed,
               "done_before_the_rerun": sorted(r.done_before for r in kills),
               "by_signal": {f"{s} {t}": sum(r.signal == s and r.target == t for r in kills)
                             for s, t in SIGNALS},
               "concurrent": len(conc), "concurrent_passed": sum(not c["problems"] for c in conc),
               "reference_s": round(ref_s, 2), "wall_s": round(time.perf_counter() - t_start, 1),
               "cpu_s_children": round(children.ru_utime + children.ru_stime, 1),
               "load_avg": os.getloadavg()}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "kills": [r.__dict__ for r in kills],
                                         "concurrent": conc}, indent=1))
    return 1 if failed or len(kills) < args.kills else 0


if __name__ == "__main__":
    sys.exit(main())
