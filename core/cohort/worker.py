"""What a worker does with one image: lock it, open it, tile it, write its outputs, then its record.

:func:`run_job` is the function every executor runs (a local process pool's worker, a Dask
worker's thread, or the driver itself for a one-image run). It never raises for a bad image:
any exception becomes an error record with a one-line reason. Only an interruption (Ctrl-C,
SIGTERM, the pool shutting down) propagates, and then the image has no record (= not done) and
no temporary file is left behind.

The ``--timeout`` is enforced inside the worker: by ``SIGALRM`` when the image runs in a
process's main thread (local pool, one-image runs), else (a Dask worker's task thread) by an
asynchronous exception raised in that thread (``PyThreadState_SetAsyncExc``). Both take effect
between two Python bytecodes, so a long C call (one tile's decode) finishes first; reader
threads of the image finish their current tile.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from gigapatch.cohort.inputs import ImageTask
from gigapatch.cohort.locks import ImageLock, acquire
from gigapatch.cohort.records import (
    ImageRecord,
    describe_outputs,
    jpeg_uri,
    now_iso,
    parse_iso,
    read_record,
    remove_record,
    write_record,
)
from gigapatch.config import Config
from gigapatch.errors import GigapatchError
from gigapatch.outputs.run import EMPTY_FRACTION, ConfigRecipe, empty_reason

log = logging.getLogger(__name__)

#: the core's own output names of an image: ``<image_id><suffix>``
OUTPUT_SUFFIXES = (".h5", ".yaml", ".csv", ".parquet", "_regions.csv", "_overlay.png", ".geojson")
#: distributions whose versions go into every record
VERSIONED = ("numpy", "tifffile", "imagecodecs", "opencv-python-headless", "h5py", "pydantic",
             "openslide-python", "openslide-bin", "rasterio")


class ImageTimeout(BaseException):
    """Raised inside an image that ran past ``--timeout`` (a BaseException, so that no
    ``except Exception`` of a reader turns it into a read error)."""


@dataclass
class Job:
    """One image for one worker, and what the run knows about it."""

    task: ImageTask
    recipe: ConfigRecipe
    out_dir: Path
    run: str
    #: the run's start (epoch s): a record finished after it by another run is not redone
    run_started: float
    timeout: float | None = None
    extract: bool | None = None
    #: the pid of the run's driver (warnings of an image tiled there were already shown)
    driver_pid: int = 0


@dataclass
class Outcome:
    """What became of a job: ``kind`` is ``"done"`` (``record`` is this run's), ``"elsewhere"``
    (another run finished it meanwhile: its ``record``), or ``"busy"`` (another live process
    holds its lock: ``holder``)."""

    image_id: str
    kind: str
    record: ImageRecord | None = None
    holder: dict[str, Any] = field(default_factory=dict)
    #: tiled in the driver's own process (its warnings went to the driver's log already)
    in_driver: bool = False


def task_config(recipe: ConfigRecipe, task: ImageTask, domain: str) -> Config:
    """The resolved config of ``task`` when tiled as ``domain``."""
    return recipe.config(domain, task.overrides)


def output_hash(config: Config) -> str:
    """A record's ``config_hash``: a short stable hash of what the outputs depend on, the
    resolved config without its thread counts (``score.workers``, ``output.workers``: speed,
    not results), so a rerun with other thread counts skips the done images."""
    data = config.model_dump(mode="json")
    for section in ("score", "output"):
        data.get(section, {}).pop("workers", None)
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@cache
def versions() -> dict[str, str]:
    """gigapatch, Python and the key libraries' versions of this process (those installed)."""
    from importlib.metadata import PackageNotFoundError, version

    from gigapatch.version import __version__

    out = {"gigapatch": __version__, "python": platform.python_version()}
    for dist in VERSIONED:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def worker_name() -> str:
    """``<host>:<pid>`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------------------- the job
def run_job(job: Job) -> Outcome:
    """Tile ``job``'s image under its lock and write its record last (see the module docstring).

    Returns a "busy" outcome when another live process holds the image's lock, and an
    "elsewhere" one when another run finished it (same config) since this run started. A local
    pool's worker interrupted in a job (Ctrl-C, SIGTERM) cleans up and exits: a pool would
    otherwise hand it the next queued image.
    """
    _BUSY.set()
    try:
        return _run_job(job)
    except KeyboardInterrupt:
        if _POOL_WORKER.is_set():
            os._exit(128 + signal.SIGINT)
        raise
    finally:
        _BUSY.clear()


def _run_job(job: Job) -> Outcome:
    task, out = job.task, Path(job.out_dir)
    in_driver = os.getpid() == job.driver_pid
    lock = acquire(out, task.image_id, job.run)
    if not isinstance(lock, ImageLock):
        return Outcome(task.image_id, "busy", holder=lock, in_driver=in_driver)
    prev = None
    try:
        prev = read_record(out, task.image_id)
        if prev is not None and prev.run != job.run and _same_config(job, prev) and (
            parse_iso(prev.finished) >= job.run_started - 0.001  # records keep milliseconds
        ):
            return Outcome(task.image_id, "elsewhere", record=prev, in_driver=in_driver)
        remove_record(out, task.image_id)  # from here on the image is not done
        if lock.broke_stale:  # its last worker died holding it: clear what it left
            remove_temporaries(out, task.image_id, prev)
        record = tile_one(job, prev)
        write_record(out, record)
        return Outcome(task.image_id, "done", record=record, in_driver=in_driver)
    except KeyboardInterrupt:
        # an interrupt inside contextlib's __exit__ leaves an atomic write's generator
        # suspended, its temporary file to a finaliser that the worker's os._exit never runs:
        # cleared here, before the lock says the image is free (2 of 20 kills left one)
        remove_temporaries(out, task.image_id, prev)
        raise
    finally:
        lock.release()


def _same_config(job: Job, prev: ImageRecord) -> bool:
    domain = job.task.domain or job.recipe.domain or prev.domain
    if domain is None or prev.config_hash is None:
        return prev.status == "error"
    try:
        return output_hash(task_config(job.recipe, job.task, domain)) == prev.config_hash
    except GigapatchError:
        return False


def tile_one(job: Job, prev: ImageRecord | None = None) -> ImageRecord:
    """Open, tile and write one image; its record (status ok / empty / error). An error removes
    the outputs this attempt (or ``prev``) wrote, so none of them can pass for a finished one."""
    from gigapatch.io.readers import open_image
    from gigapatch.outputs.run import tile_and_write
    from gigapatch.plugin.manager import image_domain

    task, out, recipe = job.task, Path(job.out_dir), job.recipe
    rec = ImageRecord(task.image_id, str(task.path), "error", label=task.label, split=task.split,
                      versions=versions(), started=now_iso(), worker=worker_name(), run=job.run)
    t0, since = time.perf_counter(), time.time()
    with _warnings_to(rec.warnings):
        try:
            rec.input_bytes = task.path.stat().st_size
            rec.domain = task.domain or recipe.domain
            if rec.domain is not None:  # known before the image is read: hashed even on error
                rec.config_hash = output_hash(task_config(recipe, task, rec.domain))
            with deadline(job.timeout), open_image(task.path, domain=rec.domain) as image:
                rec.domain = rec.domain or image_domain(image)
                cfg = task_config(recipe, task, rec.domain)
                rec.config_hash = output_hash(cfg)
                previews: dict[str, bytes] = {}
                ps, paths = tile_and_write(image, cfg, out, extract=job.extract,
                                           image_id=task.image_id, previews=previews)
            fg = float(ps.attrs.get("foreground_fraction", 0.0))
            rec.status = "empty" if len(ps) == 0 or fg < EMPTY_FRACTION else "ok"
            if rec.status == "empty":
                rec.reason = empty_reason(ps)
            rec.n_patches, rec.n_regions, rec.foreground_fraction = len(ps), len(ps.regions), fg
            rec.coverage = _float(ps.attrs.get("coverage"))
            rec.overlap = _float(ps.attrs.get("overlap_fraction"))
            rec.outputs = describe_outputs(out, paths)
            if "overlay" in previews:  # the report's thumbnail, from the picture in memory
                rec.thumbnail = jpeg_uri(previews["overlay"])
        except ImageTimeout:
            rec.reason = f"{task.path}: timed out after {job.timeout:g} s (--timeout)"
        except Exception as e:  # one bad image must not stop a cohort
            if _interrupted(e):  # a Ctrl-C / SIGTERM that surfaced as another error: no record
                raise KeyboardInterrupt(str(e)) from e
            if isinstance(e, GigapatchError):
                rec.reason = one_line(str(e))
            else:
                log.debug("unexpected error on %s", task.path, exc_info=True)
                rec.reason = one_line(f"{task.path}: {type(e).__name__}: {e}")
        if rec.status == "error":
            remove_outputs(out, task.image_id, since, prev)
    rec.seconds = round(time.perf_counter() - t0, 3)
    rec.finished = now_iso()
    return rec


def _interrupted(error: BaseException) -> bool:
    """True when a KeyboardInterrupt lies in ``error``'s chain: an interrupt that landed inside
    ``threading.Condition.wait`` (between releasing its lock and its ``try``) surfaces as
    "RuntimeError: release unlocked lock", and a reader may wrap that in its own error; the
    image was interrupted, not bad (seen once in 20 kills of benchmarks/kills.py)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        stack += [e.__cause__, e.__context__]
    return False


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def one_line(text: str) -> str:
    """The first non-empty line of ``text`` (a reason is one line)."""
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), text.strip())


# ---------------------------------------------------------------------------- files
def _candidates(out: Path, image_id: str, prev: ImageRecord | None) -> set[Path]:
    files = {out / f"{image_id}{s}" for s in OUTPUT_SUFFIXES}
    if prev is not None:
        files |= {out / r["path"] for r in prev.outputs if not r["path"].endswith("/")}
    return files


def remove_temporaries(out: Path, image_id: str, prev: ImageRecord | None = None) -> None:
    """Delete what a killed attempt at ``image_id`` left (a killed process cannot clean up): the
    temporary files ``.<output name>.<tag>.tmp`` beside its outputs and ``.*.tmp`` in its patch
    folder, and a patch folder being filled, ``.<image_id>.<pid>.<thread>.partial``; the output
    names are the core's and those ``prev`` lists. One pass over ``out``, only after a stale lock
    (rare)."""
    files = {p.name for p in _candidates(out, image_id, prev) if p.parent == out}
    names = "|".join(re.escape(name) for name in sorted(files))
    tmp = re.compile(rf"\.(?:{names})\.[0-9a-z_]+(?:\.\d+)?\.tmp")
    partial = re.compile(rf"\.{re.escape(image_id)}\.\d+\.\d+\.partial")
    for entry in os.scandir(out):
        if tmp.fullmatch(entry.name) and entry.is_file():
            os.unlink(entry.path)
        elif partial.fullmatch(entry.name) and entry.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)
    patches = out / image_id
    if patches.is_dir():
        for p in patches.glob(".*.tmp"):
            p.unlink(missing_ok=True)


def remove_outputs(out: Path, image_id: str, since: float, prev: ImageRecord | None) -> None:
    """Delete the output files of a failed image: those ``prev`` listed, and those with the
    core's output names written since ``since`` (epoch s). Folders are left alone."""
    listed = {out / r["path"] for r in prev.outputs} if prev is not None else set()
    for p in _candidates(out, image_id, prev):
        try:
            if p.is_file() and (p in listed or p.stat().st_mtime >= since - 1):
                p.unlink()
        except OSError:
            pass


# ---------------------------------------------------------------------------- warnings, time
class _Collect(logging.Handler):
    def __init__(self, lines: list[str], thread: int | None) -> None:
        super().__init__(logging.WARNING)
        self.lines, self.thread = lines, thread

    def emit(self, record: logging.LogRecord) -> None:
        if self.thread is None or record.thread == self.thread:
            self.lines.append(one_line(record.getMessage()))


@contextmanager
def _warnings_to(lines: list[str]) -> Iterator[None]:
    """Collect the warning lines logged while the block runs (only this thread's, outside a
    process's main thread, where other tasks share the process)."""
    main = threading.current_thread() is threading.main_thread()
    handler = _Collect(lines, None if main else threading.get_ident())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`ImageTimeout` in this thread when the block runs past ``seconds``."""
    if not seconds:
        yield
        return
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def on_alarm(signum: int, frame: object) -> None:
            raise ImageTimeout

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        return
    tid, guard, state = threading.get_ident(), threading.Lock(), {"over": False, "fired": False}

    def fire() -> None:
        with guard:
            if not state["over"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid),
                                                           ctypes.py_object(ImageTimeout))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    raised = False
    try:
        yield
    except ImageTimeout:
        raised = True
        raise
    finally:
        with guard:
            state["over"] = True
            timer.cancel()
            fired = state["fired"]
        if fired and not raised:  # set on this thread after the block's last check
            _take_pending_timeout()


def _take_pending_timeout() -> None:
    """Raise and drop the :class:`ImageTimeout` set on this thread and not raised yet. It is
    taken, not withdrawn with ``PyThreadState_SetAsyncExc(tid, NULL)``: that clears the
    exception but leaves the interpreter's "asynchronous exception pending" flag set (CPython
    3.11), so every later check of the eval loop, in every thread, takes its slow path for the
    rest of the process, and a traced call (a debugger, coverage) never returns."""
    try:
        for _ in range(1000):  # each backward jump raises a pending asynchronous exception
            pass
    except ImageTimeout:
        pass


# ---------------------------------------------------------------------------- pool workers
#: this process is a local pool's worker (set by its initializer)
_POOL_WORKER = threading.Event()
#: a job is running in this process
_BUSY = threading.Event()


def init_pool_worker() -> None:
    """Initializer of a local pool's worker process: warnings are collected into the records
    (the driver prints them), not written to the shared terminal; SIGINT and SIGTERM interrupt
    a running image like Ctrl-C (its temporary files are removed, its lock released) and end
    an idle worker at once."""
    _POOL_WORKER.set()
    logging.basicConfig(handlers=[logging.NullHandler()], level=logging.WARNING, force=True)
    logging.getLogger("gigapatch").setLevel(logging.WARNING)
    for noisy in ("tifffile", "rasterio", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logging.captureWarnings(True)
    sys.unraisablehook = _unraisable
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


#: seconds an interrupted pool worker has to clean up before it ends regardless
CLEAN_UP_S = 5.0


def _interrupt(signum: int, frame: object) -> None:
    if not _BUSY.is_set():
        os._exit(128 + signum)
    # once: a second signal (the group's Ctrl-C, then the driver's SIGTERM) must not interrupt
    # the clean-up, nor the hook reporting a swallowed first one (a traceback on the terminal);
    # a Python no-op, not SIG_IGN: one already pending would print "Signal 15 ignored due to
    # race condition"
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _ignore)
    # a KeyboardInterrupt that lands in a finaliser is swallowed by the interpreter: end the
    # process anyway once the image had time to clean up
    fallback = threading.Timer(CLEAN_UP_S, os._exit, args=(128 + signum,))
    fallback.daemon = True
    fallback.start()
    raise KeyboardInterrupt


def _ignore(signum: int, frame: object) -> None:
    """A signal after the first, while the interrupted image cleans up: nothing to do."""


def _unraisable(info: Any) -> None:
    """Not a second traceback on the terminal for the Ctrl-C a finaliser swallowed."""
    if not isinstance(info.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(info)


__all__ = ["ImageTimeout", "Job", "Outcome", "deadline", "init_pool_worker", "output_hash",
           "run_job", "task_config", "tile_one", "versions"]
