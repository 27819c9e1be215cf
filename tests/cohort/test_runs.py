"""Cohort runs through the CLI: resumable and idempotent (a rerun skips what is done with the
same config, redoes what changed), --force, --retry-failed, --timeout, shards and concurrent
runs into one --out (no row lost, no image tiled twice), locks, and the user's umask."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from helpers_cohort import GOOD, file_stamps, finish, make_cohort

from gigapatch.cohort.records import read_records
from gigapatch.cohort.runner import shard_of

FAST = ("--patch-size", "128", "--no-sharpness", "--no-overlay", "--quiet")
ALL = (*GOOD, "corrupt")


def summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv") as f:
        return {row["image_id"]: row for row in csv.DictReader(f)}


def tiled_now(res: subprocess.CompletedProcess) -> int:
    """How many images the run tiled itself, from its summary line (needs no --quiet)."""
    m = re.search(r"(\d+)/(\d+) images tiled(?: \((\d+) now)?", res.stdout)
    assert m is not None, res.stdout + res.stderr
    return int(m[3]) if m[3] is not None else int(m[2])


@pytest.mark.slow
def test_a_rerun_skips_what_is_done_and_redoes_what_changed(cli, cohort: Path, tmp_path: Path
                                                             ) -> None:
    out = tmp_path / "out"
    first = finish(cli("tile", str(cohort), "--out", str(out), "--workers", "2", *FAST))
    assert first.returncode == 1, first.stderr  # the corrupt image failed, the rest finished
    assert "corrupt.tiff" in first.stderr and "Traceback" not in first.stderr
    rows = summary(out)
    assert sorted(rows) == sorted(ALL)
    assert {rows[n]["status"] for n in GOOD} == {"ok"} and rows["corrupt"]["status"] == "error"
    stamps = file_stamps(out, ALL)

    again = finish(cli("tile", str(cohort), "--out", str(out), "--workers", "2", *FAST[:-1]))
    assert again.returncode == 1 and tiled_now(again) == 0, again.stdout
    assert file_stamps(out, ALL) == stamps  # not one file rewritten
    # thread counts change speed, not outputs: still done
    threads = finish(cli("tile", str(cohort), "--out", str(out), "--threads", "1", *FAST[:-1]))
    assert tiled_now(threads) == 0 and file_stamps(out, ALL) == stamps

    (out / "bravo.h5").unlink()  # a missing output: that image is not done
    fix = finish(cli("tile", str(cohort), "--out", str(out), *FAST[:-1]))
    assert tiled_now(fix) == 1 and (out / "bravo.h5").is_file(), fix.stdout
    now = file_stamps(out, ALL)
    assert {k: v for k, v in now.items() if "bravo" not in k} == {
        k: v for k, v in stamps.items() if "bravo" not in k}

    old_hash = json.loads((out / ".gigapatch/records/alpha.json").read_text())["config_hash"]
    changed = finish(cli("tile", str(cohort), "--out", str(out), "--workers", "2", *FAST[:-1],
                         "--patch-size", "96"))
    assert tiled_now(changed) == len(GOOD), changed.stdout  # the corrupt one failed on reading
    rec = json.loads((out / ".gigapatch/records/alpha.json").read_text())
    assert rec["config_hash"] != old_hash and rec["status"] == "ok"
    assert all(now[k] != v for k, v in file_stamps(out, GOOD).items() if k.endswith(".h5"))

    forced = finish(cli("tile", str(cohort), "--out", str(out), "--workers", "2", *FAST[:-1],
                        "--patch-size", "96", "--force"))
    assert tiled_now(forced) == len(ALL), forced.stdout


@pytest.mark.slow
def test_retry_failed_reruns_only_the_failed_and_a_changed_input_is_tiled_again(
    cli, cohort: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert finish(cli("tile", str(cohort), "--out", str(out), "--workers", "2", *FAST)
                  ).returncode == 1
    stamps = file_stamps(out, GOOD)
    before = json.loads((out / ".gigapatch/records/corrupt.json").read_text())
    retry = finish(cli("tile", str(cohort), "--out", str(out), "--retry-failed", *FAST[:-1]))
    assert retry.returncode == 1 and tiled_now(retry) == 1, retry.stdout  # still corrupt
    after = json.loads((out / ".gigapatch/records/corrupt.json").read_text())
    assert after["finished"] != before["finished"] and after["status"] == "error"
    assert "truncated" in after["reason"] and "corrupt.tiff" in after["reason"]
    assert file_stamps(out, GOOD) == stamps
    make_cohort(cohort, names=("newcomer",), corrupt=False, side=512)  # never tiled: left alone
    retry = finish(cli("tile", str(cohort), "--out", str(out), "--retry-failed", *FAST[:-1]))
    assert tiled_now(retry) == 1 and "1 never tiled left alone" in retry.stdout, retry.stdout
    assert not (out / "newcomer.h5").exists()
    (cohort / "newcomer.tiff").unlink()
    # the file is fixed (downloaded again): its size changed, so a plain rerun tiles it
    (cohort / "corrupt.tiff").unlink()
    make_cohort(tmp_path / "fixed", names=("corrupt",), corrupt=False, side=768)
    os.replace(tmp_path / "fixed" / "corrupt.tiff", cohort / "corrupt.tiff")
    fixed = finish(cli("tile", str(cohort), "--out", str(out), *FAST[:-1]))
    assert fixed.returncode == 0 and tiled_now(fixed) == 1, fixed.stdout + fixed.stderr
    assert summary(out)["corrupt"]["status"] == "ok" and file_stamps(out, GOOD) == stamps


@pytest.mark.slow
def test_timeout_records_the_slow_image_and_the_rest_finish(cli, cohort: Path, tmp_path: Path
                                                            ) -> None:
    make_cohort(cohort, names=("slow-one",), corrupt=False, side=512)
    out = tmp_path / "out"
    t0 = time.monotonic()
    res = finish(cli("tile", str(cohort), "--out", str(out), "--workers", "2", "--timeout", "3",
                     *FAST, slow_s=120))
    assert time.monotonic() - t0 < 60
    assert res.returncode == 1, res.stderr
    rows = summary(out)
    assert rows["slow-one"]["status"] == "error"
    assert rows["slow-one"]["message"] == f"{cohort / 'slow-one.tiff'}: timed out after 3 s (--timeout)"
    assert 3 <= float(rows["slow-one"]["seconds"]) < 30
    assert {rows[n]["status"] for n in GOOD} == {"ok"}
    assert not (out / "slow-one.h5").exists() and not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_outputs_get_the_users_umask(cli, cohort_src: Path, tmp_path: Path) -> None:
    images = [str(cohort_src / f"{n}.tiff") for n in GOOD[:2]]
    for umask, file_mode, dir_mode in ((0o022, 0o644, 0o755), (0o027, 0o640, 0o750)):
        out = tmp_path / f"out-{umask:o}"
        res = finish(cli("tile", *images, "--out", str(out), "--workers", "2", "--extract",
                         *FAST, umask=umask))
        assert res.returncode == 0, res.stderr
        files = [p for p in out.rglob("*") if p.is_file()]
        assert len(files) > 12  # outputs, patches, records, summary
        modes = {stat.S_IMODE(p.stat().st_mode) for p in files}
        assert modes == {file_mode}, {oct(m) for m in modes}
        dirs = {stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_dir()}
        assert dirs == {dir_mode}, {oct(m) for m in dirs}


def test_a_stale_lock_is_broken_and_a_live_one_respected(cli, cohort_src: Path, tmp_path: Path
                                                         ) -> None:
    out = tmp_path / "out"
    locks = out / ".gigapatch" / "locks"
    locks.mkdir(parents=True)
    ended = subprocess.Popen(["true"])
    ended.wait()
    gone = ended.pid  # a process of this host that has ended
    host = socket.gethostname()
    (locks / "alpha.lock").write_text(json.dumps({"pid": gone, "host": host, "run": "x"}))
    (locks / "bravo.lock").write_text(json.dumps({"pid": os.getpid(), "host": host, "run": "y"}))
    images = [str(cohort_src / f"{n}.tiff") for n in GOOD[:3]]
    res = finish(cli("tile", *images, "--out", str(out), "--workers", "2", *FAST[:-1]))
    assert res.returncode == 0, res.stderr
    assert f"skipped bravo: pid {os.getpid()} on {host} is tiling it" in res.stderr
    assert "1 being tiled by another run" in res.stdout
    assert sorted(summary(out)) == ["alpha", "charlie"]  # bravo: its holder's run records it
    assert not (locks / "alpha.lock").exists() and (locks / "bravo.lock").exists()


@pytest.mark.slow
def test_shards_cover_the_cohort_once_into_one_out(cli, cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    expect = {i: sorted(n for n in ALL if shard_of(n, 2) == i) for i in (0, 1)}
    assert expect[0] and expect[1]  # both shards hold images
    runs = {}
    for i in (0, 1):
        res = finish(cli("tile", str(cohort), "--out", str(out), "--shard", f"{i}/2",
                         "--workers", "2", *FAST))
        runs[i] = {r.image_id: r.run for r in read_records(out)}
        assert res.returncode in (0, 1), res.stderr
    assert sorted(runs[0]) == expect[0]
    assert sorted(summary(out)) == sorted(ALL)  # the last shard's summary holds every row
    assert {runs[1][n] for n in expect[0]} == {runs[0][expect[0][0]]}  # shard 1 left them alone
    assert len({runs[1][n] for n in expect[1]}) == 1 and runs[1][expect[1][0]] not in runs[0].values()
    bad = finish(cli("tile", str(cohort), "--out", str(out), "--shard", "2/2"))
    assert bad.returncode == 2 and "--shard '2/2'" in bad.stderr


def test_two_concurrent_runs_into_one_out_lose_no_row(cli, cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    procs = [cli("tile", str(cohort), "--out", str(out), "--workers", "1", *FAST[:-1])
             for _ in range(2)]
    results = [finish(p) for p in procs]
    assert all(r.returncode == 1 for r in results), [r.stderr for r in results]
    assert sorted(summary(out)) == sorted(ALL)  # every row, whoever finished last
    assert sum(tiled_now(r) for r in results) == len(ALL)  # and no image tiled twice
    assert len(read_records(out)) == len(ALL) and not list(out.rglob("*.tmp"))


def test_tile_many_is_the_same_runner_in_process(cohort_src: Path, tmp_path: Path) -> None:
    from gigapatch import load_config, tile_many

    cfg = load_config("generic", overrides={"patch.size": 128, "score.sharpness": False,
                                            "output.overlay": False})
    paths = [cohort_src / "alpha.tiff", cohort_src / "corrupt.tiff"]
    seen: list[str] = []
    run = tile_many(paths, cfg, tmp_path, on_done=lambda rec: seen.append(rec.status))
    assert sorted(seen) == ["error", "ok"] and run.n_errors == 1 and run.exit_code == 1
    assert [r.image_id for r in run.results] == ["alpha", "corrupt"]
    assert run.results[0].n_patches > 0 and run.results[0].message == ""
    again = tile_many(paths, cfg, tmp_path)
    assert again.tiled == [] and again.skipped == ["alpha", "corrupt"]


@pytest.mark.parametrize("bad", ["--workers 0", "--timeout 0", "--force --retry-failed",
                                 "--shard 1", "--scheduler-file nowhere.json"])
def test_bad_run_options_are_one_line(cli, cohort_src: Path, tmp_path: Path, bad: str) -> None:
    res = finish(cli("tile", str(cohort_src / "alpha.tiff"), "--out", str(tmp_path / "o"),
                     *bad.split()))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert bad.split()[0] in res.stderr and not (tmp_path / "o").exists()


def test_an_image_another_run_finishes_before_the_pool_starts_is_not_tiled_again(
    cohort_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window of the concurrent-runs race: this run's plan finds no record, then another
    run finishes the image while this run's workers start (a process pool takes about a
    second). The image is that run's: this one records it as done elsewhere, not tiled twice."""
    from gigapatch import load_config, tile_many
    from gigapatch.cohort import runner

    cfg = load_config("generic", overrides={"patch.size": 128, "score.sharpness": False,
                                            "output.overlay": False})
    image, out = cohort_src / "alpha.tiff", tmp_path / "out"
    real_open = runner.open_backend

    def open_late(*args, **kwargs):  # the other run, finishing inside the window
        monkeypatch.setattr(runner, "open_backend", real_open)
        other = tile_many([image], cfg, out)
        assert other.tiled == ["alpha"]
        return real_open(*args, **kwargs)

    monkeypatch.setattr(runner, "open_backend", open_late)
    stamp = None

    def seen(rec) -> None:
        nonlocal stamp
        stamp = (out / "alpha.h5").stat().st_mtime_ns

    this = tile_many([image], cfg, out, on_done=seen)
    assert this.tiled == [] and [r.image_id for r in this.records] == ["alpha"]
    assert stamp == (out / "alpha.h5").stat().st_mtime_ns  # nobody rewrote it
