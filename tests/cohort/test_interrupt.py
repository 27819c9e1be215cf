"""A worker process killed mid-image, and the CLI stopped by Ctrl-C (SIGINT) or SIGTERM: nothing
already done is lost or recomputed, no half-written file passes for a finished one, and the next
run completes every image.

The image ``slow-delta`` sleeps in the test-only slow plugin (see conftest) while it is opened in
its worker, long enough to find that worker's pid in the image's lock file and kill it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers_cohort import GOOD, file_stamps, finish, make_cohort

from gigapatch.cohort.records import read_records

SLOW = "slow-delta"
FAST = ("--patch-size", "128", "--no-sharpness", "--no-overlay", "--workers", "2")

pytestmark = pytest.mark.slow


def holder(out: Path, proc: subprocess.Popen, other_than: int | None = None,
           timeout: float = 120) -> int:
    """The pid in the slow image's lock file, once a process other than ``other_than`` holds
    it (the run must still be going)."""
    lock = out / ".gigapatch" / "locks" / f"{SLOW}.lock"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, finish(proc).stderr
        try:
            pid = int(json.loads(lock.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            pid = None
        if pid is not None and pid != other_than:
            return pid
        time.sleep(0.05)
    raise AssertionError("the slow image was never started")


def wait_for_records(out: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while len(read_records(out)) < n:
        assert time.monotonic() < end and proc.poll() is None, "the run ended early"
        time.sleep(0.05)


def left_locks(out: Path) -> dict[str, str]:
    """The files under the run's locks folder and what each holds."""
    return {p.name: p.read_text() for p in out.glob(".gigapatch/locks/*")}


def statuses(out: Path) -> dict[str, str]:
    return {r.image_id: r.status for r in read_records(out)}


@pytest.fixture
def slow_cohort(cohort: Path) -> Path:
    make_cohort(cohort, names=(SLOW,), corrupt=False, side=768)
    return cohort


def test_a_killed_worker_is_retried_once_in_a_fresh_pool(cli, slow_cohort: Path, tmp_path: Path
                                                        ) -> None:
    out = tmp_path / "out"
    proc = cli("tile", str(slow_cohort), "--out", str(out), *FAST, slow_s=4)
    os.kill(holder(out, proc), signal.SIGKILL)
    res = finish(proc)
    assert res.returncode == 1, res.stderr  # the corrupt image; the killed one was retried
    assert statuses(out) == {**{n: "ok" for n in (*GOOD, SLOW)}, "corrupt": "error"}, (
        res.stderr, left_locks(out))
    assert "Traceback" not in res.stderr and not list(out.rglob("*.tmp"))


def test_a_worker_killed_twice_is_recorded_and_a_rerun_completes_it(
    cli, slow_cohort: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = cli("tile", str(slow_cohort), "--out", str(out), *FAST, slow_s=30)
    first = holder(out, proc)
    os.kill(first, signal.SIGKILL)
    os.kill(holder(out, proc, other_than=first), signal.SIGKILL)  # its retry, in a fresh pool
    res = finish(proc)
    assert res.returncode == 1, res.stderr
    rec = json.loads((out / ".gigapatch" / "records" / f"{SLOW}.json").read_text())
    assert rec["status"] == "error" and "the worker process died while tiling it" in rec["reason"]
    assert f"error: {rec['reason']}" in res.stderr
    assert statuses(out) == {**{n: "ok" for n in GOOD}, SLOW: "error", "corrupt": "error"}, (
        res.stderr, left_locks(out))
    assert not (out / f"{SLOW}.h5").exists() and not left_locks(out)
    done = file_stamps(out, GOOD)

    rerun = finish(cli("tile", str(slow_cohort), "--out", str(out), *FAST, "--retry-failed",
                       slow_s=0.2))
    assert rerun.returncode == 1, rerun.stderr  # corrupt is still corrupt
    assert statuses(out)[SLOW] == "ok" and (out / f"{SLOW}.h5").is_file()
    assert file_stamps(out, GOOD) == done  # the done images were not tiled again


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_loses_nothing_and_the_rerun_finishes(
    cli, slow_cohort: Path, tmp_path: Path, signum: int
) -> None:
    out = tmp_path / "out"
    proc = cli("tile", str(slow_cohort), "--out", str(out), *FAST, slow_s=60)
    holder(out, proc)
    wait_for_records(out, len(GOOD) + 1, proc)  # every other image done, the slow one going
    os.kill(proc.pid, signum)  # the CLI alone, as a scheduler's SIGTERM or a kill -INT would
    res = finish(proc, timeout=60)
    assert res.returncode == 128 + signum, res.stderr
    assert "interrupted" in res.stderr and "Traceback" not in res.stderr
    assert SLOW not in statuses(out) and len(statuses(out)) == len(GOOD) + 1
    assert not (out / f"{SLOW}.h5").exists() and not list(out.rglob("*.tmp"))
    assert not left_locks(out)  # the interrupted worker let go
    with open(out / "summary.csv") as f:  # rebuilt from the records before exiting
        assert len(f.read().splitlines()) == 1 + len(GOOD) + 1
    done = file_stamps(out, (*GOOD, "corrupt"))

    rerun = finish(cli("tile", str(slow_cohort), "--out", str(out), *FAST, slow_s=0.2))
    assert rerun.returncode == 1, rerun.stderr
    assert "(1 now, 7 already done)" in rerun.stdout, rerun.stdout
    assert statuses(out) == {**{n: "ok" for n in (*GOOD, SLOW)}, "corrupt": "error"}, (
        res.stderr, left_locks(out))
    assert file_stamps(out, (*GOOD, "corrupt")) == done
