"""The pieces under a cohort run: records and the summary rebuilt from them, locks, the timeout
in a worker thread, an image interrupted mid-write, and atomic writes that keep the umask."""

from __future__ import annotations

import csv
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest

from gigapatch.cohort import locks
from gigapatch.cohort.inputs import ImageTask
from gigapatch.cohort.locks import LOCKS, ImageLock, acquire, lock_path
from gigapatch.cohort.records import (
    SUMMARY_COLUMNS,
    ImageRecord,
    read_record,
    read_records,
    write_record,
    write_summary,
)
from gigapatch.cohort.worker import ImageTimeout, Job, deadline, output_hash, run_job
from gigapatch.config import load_config
from gigapatch.io.atomic import write_text_atomic
from gigapatch.outputs.run import ConfigRecipe


def test_records_round_trip_and_the_summary_is_rebuilt_from_all(tmp_path: Path) -> None:
    a = ImageRecord("a", "a.svs", "ok", n_patches=3, coverage=0.5, warnings=["w1", "w2"])
    b = ImageRecord("b", "b.svs", "error", reason="b.svs: truncated")
    write_record(tmp_path, b)
    write_record(tmp_path, a)
    (tmp_path / ".gigapatch/records/broken.json").write_text("{not json")  # left out
    assert read_record(tmp_path, "a") == a and read_record(tmp_path, "zzz") is None
    assert [r.image_id for r in read_records(tmp_path)] == ["a", "b"]
    written = write_summary(tmp_path)
    with open(written[0]) as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == SUMMARY_COLUMNS
    assert [(r["image_id"], r["status"], r["message"]) for r in rows] == [
        ("a", "ok", ""), ("b", "error", "b.svs: truncated")]
    assert rows[0]["warnings"] == "w1 | w2" and rows[0]["coverage"] == "0.500000"
    if len(written) == 2:  # pyarrow installed
        import pyarrow.parquet as pq

        table = pq.read_table(written[1])
        assert table.column("image_id").to_pylist() == ["a", "b"]
        assert table.column("n_patches").to_pylist() == [3, 0]
        # typed, nulls apart from empty strings
        assert table.column("coverage").to_pylist() == [0.5, None]
        assert table.column("message").to_pylist() == ["", "b.svs: truncated"]
        assert table.column("label").to_pylist() == [None, None]
        assert str(table.schema.field("n_regions").type) == "int64"


def test_a_record_from_a_newer_gigapatch_is_still_read(tmp_path: Path) -> None:
    rec = json.loads(ImageRecord("a", "a.svs", "ok").to_json())
    rec["schema"], rec["something_new"] = 2, [1, 2]
    write_text_atomic(tmp_path / ".gigapatch/records/a.json", json.dumps(rec))
    assert read_record(tmp_path, "a") is not None


def test_locks_exclude_and_stale_ones_are_broken(tmp_path: Path) -> None:
    lock = acquire(tmp_path, "x", "run-1")
    assert isinstance(lock, ImageLock)
    holder = acquire(tmp_path, "x", "run-2")
    assert isinstance(holder, dict) and holder["pid"] == os.getpid() and holder["run"] == "run-1"
    lock.release()
    ended = subprocess.Popen(["true"])
    ended.wait()
    lock_path(tmp_path, "x").write_text(json.dumps(
        {"pid": ended.pid, "host": socket.gethostname(), "run": "gone"}))
    again = acquire(tmp_path, "x", "run-3")
    assert isinstance(again, ImageLock) and json.loads(again.text)["run"] == "run-3"
    lock_path(tmp_path, "y").write_text(json.dumps({"pid": 1, "host": "elsewhere", "run": "r"}))
    assert isinstance(acquire(tmp_path, "y", "run-3"), dict)  # another host's lock: respected


def test_a_timeout_in_a_worker_thread(tmp_path: Path) -> None:
    """Dask runs tasks in threads: the deadline interrupts the task's own thread only."""
    outcome: dict[str, object] = {}

    def busy(seconds: float, limit: float, key: str) -> None:
        t0 = time.monotonic()
        try:
            with deadline(limit):
                while time.monotonic() - t0 < seconds:
                    sum(range(1000))
            outcome[key] = "finished"
        except ImageTimeout:
            outcome[key] = time.monotonic() - t0
        time.sleep(0.5)  # a late, withdrawn timeout would strike here
        outcome[key + "-after"] = "ok"

    threads = [threading.Thread(target=busy, args=(10, 0.3, "slow")),
               threading.Thread(target=busy, args=(0.2, 5, "quick"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert isinstance(outcome["slow"], float) and 0.3 <= outcome["slow"] < 3
    assert outcome["quick"] == "finished"
    assert outcome["slow-after"] == outcome["quick-after"] == "ok"


LEFT_CLEAN = """
import sys, threading
from gigapatch.cohort.worker import ImageTimeout, deadline

def timed_out():
    try:
        with deadline(0.1):
            while True:
                sum(range(100))
    except ImageTimeout:
        pass

t = threading.Thread(target=timed_out)
t.start()
t.join()
sys.settrace(lambda frame, event, arg: None)  # hangs while the interpreter thinks one is pending
(lambda: 1)()
sys.settrace(None)
print("clean")
"""


def test_a_timeout_leaves_the_interpreter_clean() -> None:
    """A timeout raised in a worker thread (a Dask task's) leaves no asynchronous exception
    pending in the interpreter: withdrawing the raised one with NULL did, and then a traced
    call never returned and every thread ran its eval loop's slow path."""
    res = subprocess.run([sys.executable, "-c", LEFT_CLEAN], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "clean", res.stderr


def test_an_image_interrupted_mid_write_has_no_record_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers_cohort import tissue_rgb

    from gigapatch import write_pyramidal_tiff
    from gigapatch.outputs import run as run_module

    image = write_pyramidal_tiff(tmp_path / "a.tiff", tissue_rgb(512, 0), mpp=0.5)
    real = run_module.write_outputs

    def interrupted(ps, context, cfg, out_dir, extract=None, previews=None):
        ps.write_h5(out_dir / f"{ps.image_id}.h5")
        from gigapatch.io.atomic import atomic_path

        with atomic_path(out_dir / f"{ps.image_id}.yaml") as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt  # Ctrl-C while the config file is half-written

    out = tmp_path / "out"
    recipe = ConfigRecipe(domain="generic", overrides={"score.sharpness": False})
    job = Job(ImageTask("a", image), recipe, out, "run", time.time())
    monkeypatch.setattr(run_module, "write_outputs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_job(job)
    assert read_record(out, "a") is None  # no record: not done
    assert not list(out.rglob("*.tmp")) and not (out / "a.yaml").exists()
    assert not lock_path(out, "a").exists()
    monkeypatch.setattr(run_module, "write_outputs", real)
    done = run_job(job)
    assert done.kind == "done" and done.record is not None and done.record.status == "ok"
    assert done.record.config_hash == output_hash(recipe.config("generic"))
    assert {o["kind"] for o in done.record.outputs} >= {"h5", "config", "table", "regions"}


def test_what_a_killed_worker_left_is_removed_by_the_next_one(tmp_path: Path) -> None:
    """A SIGKILLed process cannot clean up: the next worker to take the image (breaking the
    stale lock) removes its temporary files and half-filled patch folder, and nobody else's."""
    from helpers_cohort import tissue_rgb

    from gigapatch import write_pyramidal_tiff

    image = write_pyramidal_tiff(tmp_path / "a.tiff", tissue_rgb(512, 0), mpp=0.5)
    out = tmp_path / "out"
    left = [out / ".a.h5.k3x9a1zq.tmp", out / ".a_overlay.png.0f3a11bc.tmp",
            out / "a" / ".12_34.jpg.77.140.tmp"]
    others = [out / ".ab.h5.k3x9a1zq.tmp", out / ".a.b.h5.0f3a11bc.tmp", out / "notes.tmp"]
    for p in left + others:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half")
    (out / ".a.4242.99.partial").mkdir()
    (out / ".a.4242.99.partial" / "0_0.jpg").write_bytes(b"half")
    ended = subprocess.Popen(["true"])
    ended.wait()
    lock_path(out, "a").parent.mkdir(parents=True)
    lock_path(out, "a").write_text(json.dumps(
        {"pid": ended.pid, "host": socket.gethostname(), "run": "killed"}))
    recipe = ConfigRecipe(domain="generic", overrides={"score.sharpness": False})
    done = run_job(Job(ImageTask("a", image), recipe, out, "run", time.time()))
    assert done.kind == "done" and done.record is not None and done.record.status == "ok"
    assert not any(p.exists() for p in left) and not (out / ".a.4242.99.partial").exists()
    assert all(p.exists() for p in others)


def test_the_config_hash_leaves_out_thread_counts() -> None:
    a = load_config("generic", overrides={"score.workers": 1, "output.workers": 1})
    b = load_config("generic", overrides={"score.workers": 8, "output.workers": 3})
    c = load_config("generic", overrides={"patch.size": 512})
    assert output_hash(a) == output_hash(b) != output_hash(c)


def _interrupted_at(step: int, call: Callable[[], object]) -> bool:
    """Run ``call`` with a KeyboardInterrupt raised at its ``step``-th line event in locks.py
    (as a SIGTERM turned into Ctrl-C lands between two bytecodes); whether it was raised."""
    seen = [0]

    def trace(frame: FrameType, event: str, arg: object) -> Callable[..., object] | None:
        if frame.f_code.co_filename != locks.__file__:
            return None
        if event == "line":
            seen[0] += 1
            if seen[0] == step:
                raise KeyboardInterrupt
        return trace

    sys.settrace(trace)
    try:
        call()
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(None)
    return False


def test_a_lock_taken_by_an_interrupted_process_is_whole_or_absent(tmp_path: Path) -> None:
    """Interrupted at any line while taking a lock, a process leaves no lock or a whole one
    naming it (stale once it has ended), and no temporary file: never an empty lock, which
    no later run could tell from one being written (CI saw an image left "being tiled by
    another run" after its worker was killed)."""
    step, tmps = 0, set()
    while step < 200:
        step += 1
        out = tmp_path / f"s{step}"
        if not _interrupted_at(step, lambda out=out: acquire(out, "x", "r")):
            break  # every line of acquire was tried
        left = sorted(os.listdir(out / LOCKS)) if (out / LOCKS).is_dir() else []
        if "x.lock" in left:
            holder = locks.read_lock(lock_path(out, "x")) or {}
            assert holder.get("pid") == os.getpid(), (step, "an empty or partial lock")
        # interrupted before its finally clause removed it: a temporary file naming this process
        assert not [f for f in left if f != "x.lock" and f".{os.getpid()}." not in f], step
        tmps.update(f for f in left if f != "x.lock")
    assert 10 < step < 200, step
    assert tmps  # the line that removes the temporary file was reached and interrupted too


def test_files_left_by_an_ended_process_beside_a_lock_are_swept(tmp_path: Path) -> None:
    ended = subprocess.Popen(["true"])
    ended.wait()
    folder = tmp_path / LOCKS
    folder.mkdir(parents=True)
    host = socket.gethostname()
    gone = [f".x.lock.{host}.{ended.pid}.0123abcd.new", f".x.lock.{host}.{ended.pid}.broken"]
    kept = [f".x.lock.{host}.{os.getpid()}.0123abcd.new",  # a live process's
            f".x.lock.elsewhere.{ended.pid}.broken",  # another host's
            f".x.lock.{host}.5.lock.{host}.{ended.pid}.broken"]  # image "x.lock.{host}.5"'s
    for name in gone + kept:
        (folder / name).write_text("")
    assert isinstance(acquire(tmp_path, "x", "r"), ImageLock)
    assert sorted(os.listdir(folder)) == sorted([*kept, "x.lock"])


def test_an_empty_lock_is_respected_while_young_and_broken_when_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = lock_path(tmp_path, "x")
    path.parent.mkdir(parents=True)
    path.write_text("")
    assert acquire(tmp_path, "x", "r") == {}  # maybe being written (no hard links): respected
    old = time.time() - locks.UNREADABLE_STALE_S - 1
    os.utime(path, (old, old))
    lock = acquire(tmp_path, "x", "r")
    assert isinstance(lock, ImageLock) and lock.broke_stale


def test_locks_where_the_file_system_has_no_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    lock = acquire(tmp_path, "x", "run-1")
    assert isinstance(lock, ImageLock) and lock_path(tmp_path, "x").read_text() == lock.text
    assert acquire(tmp_path, "x", "run-2")["run"] == "run-1"
    lock.release()
    assert os.listdir(tmp_path / LOCKS) == []


def test_atomic_writes_keep_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "sub" / "x.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "sub" / "x.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o750
