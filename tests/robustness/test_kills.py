"""Kill safety (issue #15 item 4), a few kills of the documented script ``benchmarks/kills.py``:
``gigapatch tile --extract`` over a small cohort killed by SIGKILL, SIGTERM and SIGINT part-way,
then rerun; and two runs with different patch sizes started together into one ``--out``.

After each kill: every image with a done record has all its outputs, identical to an
uninterrupted run's; the rerun exits 0, tiles only the images without a record (the done ones
keep their files' inodes and mtimes) and leaves no temporary file, staging folder or lock; then
every image is complete and ``summary.csv`` has one row per image. The concurrent pair: every
image ends with one config's files only, matching that config's reference, and no summary row is
lost. The 20-kill run is ``nice -n 10 python benchmarks/kills.py --kills 20 --concurrent 3
--seed 1`` (figures in the README).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_paths import BENCHMARKS

sys.path.insert(0, str(BENCHMARKS))
import kills

pytestmark = pytest.mark.slow

#: a small cohort: enough images that a kill part-way leaves some done and some not
NAMES = ("alpha", "bravo", "charlie", "delta")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[int, Any], float]:
    """(cohort folder, work folder, reference fingerprints by patch size, reference wall s)."""
    work = tmp_path_factory.mktemp("kills")
    folder = kills.make_cohort(work / "cohort", names=NAMES, side=1024)
    refs, wall = kills.reference_runs(folder, work, names=NAMES)
    assert all(ref["patches"] and ref["coords"] for ref in refs[128].values())
    return folder, work, refs, wall


@pytest.mark.parametrize("i, signame, target, at", [
    (0, "SIGKILL", "group", 0.5),  # the OOM killer, a lost node: no clean-up at all
    (1, "SIGTERM", "driver", 0.45),  # a scheduler's
    (2, "SIGINT", "group", 0.6),  # Ctrl-C in a terminal
    (3, "SIGKILL", "driver", 0.4),  # the workers outlive their driver
])
def test_kill_then_rerun(cohort: tuple, i: int, signame: str, target: str, at: float) -> None:
    folder, work, refs, wall = cohort
    res = kills.kill_and_check(i, folder, work, refs[128], signame, target, round(at * wall, 2))
    assert not res.problems, res.problems


def test_concurrent_runs_with_two_configs(cohort: tuple) -> None:
    folder, work, refs, _ = cohort
    res = kills.concurrent(0, folder, work, refs)
    assert not res["problems"], res


class _Stop(Exception):
    """What the test's own SIGINT handler raises (the run's raises Interrupted)."""


def test_signal_while_workers_start_is_held_then_delivered(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """A SIGINT that comes while a local pool's workers start is held until every worker is
    up; then the pool is stopped (its workers end) and the signal reaches the run's handler."""
    import concurrent.futures
    import os
    import signal

    from gigapatch.cohort import executors
    from gigapatch.cohort.runner import RunOptions

    real_wait, seen = concurrent.futures.wait, {}

    def wait_after_a_signal(futures, timeout=None):  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGINT)  # arrives while the workers start: held
        seen["done"] = real_wait(futures, timeout)[0]
        return seen["done"], set()

    real_stop = executors.Backend.stop

    def stop(self, cancel: bool, broken: bool = False) -> None:  # type: ignore[no-untyped-def]
        seen["procs"] = list(self.executor._processes.values())
        real_stop(self, cancel, broken)

    def handler(signum: int, frame: object) -> None:
        raise _Stop

    monkeypatch.setattr(concurrent.futures, "wait", wait_after_a_signal)
    monkeypatch.setattr(executors.Backend, "stop", stop)
    old = signal.signal(signal.SIGINT, handler)
    try:
        with pytest.raises(_Stop):
            executors.open_backend(RunOptions(workers=2), 2)
    finally:
        signal.signal(signal.SIGINT, old)
    assert len(seen["done"]) == 2 and all(f.exception() is None for f in seen["done"])
    assert len(seen["procs"]) == 2 and not any(p.is_alive() for p in seen["procs"])
    assert signal.getsignal(signal.SIGINT) is old


@pytest.mark.parametrize("wrap", ["runtime", "image_error"])
def test_interrupt_surfacing_as_another_error_writes_no_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wrap: str) -> None:
    """A Ctrl-C that lands inside ``threading.Condition.wait`` surfaces as 'RuntimeError:
    release unlocked lock' (and a reader may wrap that in an ImageError): it is an interrupt,
    so the image gets no error record (it was recorded as failed, and the rerun skipped it)."""
    import time

    from gigapatch import ImageError, write_pyramidal_tiff
    from gigapatch.cohort.inputs import ImageTask
    from gigapatch.cohort.records import read_record
    from gigapatch.cohort.worker import Job, run_job
    from gigapatch.outputs import run as run_module
    from gigapatch.outputs.run import ConfigRecipe

    image = write_pyramidal_tiff(tmp_path / "a.tiff", kills.tissue_rgb(512, 0), mpp=0.5)

    def interrupted(*args: Any, **kwargs: Any) -> None:
        try:
            try:
                raise KeyboardInterrupt
            finally:
                raise RuntimeError("release unlocked lock")
        except RuntimeError as e:
            if wrap == "image_error":
                raise ImageError(image, f"cannot read a tile ({e})") from None
            raise

    monkeypatch.setattr(run_module, "tile_and_write", interrupted)
    out = tmp_path / "out"
    job = Job(ImageTask("a", image), ConfigRecipe(domain="generic"), out, "run", time.time())
    with pytest.raises(KeyboardInterrupt):
        run_job(job)
    assert read_record(out, "a") is None


def test_a_busy_worker_is_interrupted_once(tmp_path: Path) -> None:
    """The group's Ctrl-C, then the driver's SIGTERM: the second signal is ignored (it landed
    in the clean-up of the first, or in the hook reporting a swallowed one: a traceback), and
    the worker still ends, by its fallback timer, with the first signal's status."""
    import subprocess

    from gigapatch.cohort.worker import CLEAN_UP_S

    code = ("import os, signal, sys, time\nfrom gigapatch.cohort import worker\n"
            "worker.init_pool_worker()\nworker._BUSY.set()\n"
            "try:\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(1)\n"
            "    print('not interrupted')\n"
            "except KeyboardInterrupt:\n    print('interrupted')\n"
            "os.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(0.2)\nprint('second ignored')\n"
            "sys.stdout.flush()\ntime.sleep(60)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=CLEAN_UP_S + 30)
    assert res.stdout.split() == ["interrupted", "second", "ignored"], res
    assert res.returncode == 130 and "Traceback" not in res.stderr, res


def test_interrupted_job_clears_its_temporaries_before_freeing_the_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt inside contextlib's ``__exit__`` leaves an atomic write's temporary file to
    a finaliser that the worker's ``os._exit`` never runs: the job clears it (and a patch
    staging folder) before it releases the image's lock, so a rerun that finds the lock free
    finds no temporary file either (2 of 20 kills at --seed 2 left one)."""
    import time

    from gigapatch import write_pyramidal_tiff
    from gigapatch.cohort.inputs import ImageTask
    from gigapatch.cohort.locks import lock_path
    from gigapatch.cohort.worker import Job, run_job
    from gigapatch.outputs import run as run_module
    from gigapatch.outputs.run import ConfigRecipe

    image = write_pyramidal_tiff(tmp_path / "a.tiff", kills.tissue_rgb(512, 0), mpp=0.5)
    out = tmp_path / "out"
    left = [out / ".a.h5.0123abcd.tmp", out / ".a_overlay.png.89abcdef.tmp"]
    other = out / ".b.h5.0123abcd.tmp"  # another image's: not this job's to remove

    def cut(*args: Any, **kwargs: Any) -> None:
        for p in [*left, other]:
            p.write_bytes(b"half")
        (out / ".a.123.456.partial").mkdir()
        raise KeyboardInterrupt

    out.mkdir()
    monkeypatch.setattr(run_module, "tile_and_write", cut)
    job = Job(ImageTask("a", image), ConfigRecipe(domain="generic"), out, "run", time.time())
    with pytest.raises(KeyboardInterrupt):
        run_job(job)
    assert not any(p.exists() for p in left) and not (out / ".a.123.456.partial").exists()
    assert other.exists() and not lock_path(out, "a").exists()


def test_summary_rebuild_clears_what_a_killed_writer_left(tmp_path: Path) -> None:
    """A run killed while writing summary.parquet or report.html left its temporary file (1 of
    20 kills at --seed 2); the next rebuild, under the summary lock every writer of those
    files holds, removes them, and no other file."""
    from gigapatch.cohort.records import write_summary

    stale = [tmp_path / ".summary.parquet.5df84b68.tmp", tmp_path / ".summary.csv.0a1b2c3d.tmp",
             tmp_path / ".report.html.deadbeef.tmp"]
    kept = tmp_path / ".a.h5.0123abcd.tmp"  # an image's: the image's own clean-up handles it
    for p in [*stale, kept]:
        p.write_bytes(b"half")
    write_summary(tmp_path)
    assert not any(p.exists() for p in stale) and kept.exists()
    assert (tmp_path / "summary.csv").is_file()
