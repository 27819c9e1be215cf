"""The cohort runner: one task per image, submitted to a ``concurrent.futures.Executor``.

One code path for every way of running:

* a local process pool (``--workers N``, default: the cores this process may use), started with
  the ``forkserver`` method where there is one (else ``spawn``); its workers are reused from image
  to image (no per-image Python start-up);
* a Dask distributed cluster (``--scheduler tcp://HOST:PORT`` or ``--scheduler-file F``), through
  ``Client.get_executor()``; its workers must see the inputs and the output folder at the same
  paths;
* the driver's own process when a local run has one image to tile;
* ``--shard i/N`` keeps the images whose stable hash of ``image_id`` is ``i`` modulo ``N``
  (Slurm / PBS job arrays, all into one ``--out``).

A run first decides what to do from the records (:func:`plan`): an image whose record has the
same config hash (and whose outputs are intact, and whose input has the same size) is skipped;
``--force`` redoes every image; ``--retry-failed`` reruns only the images whose record says
error. Each image is opened, tiled and written inside its worker
(:func:`~gigapatch.cohort.worker.run_job`). A local worker process that dies takes its pool with it: the images it was tiling are
retried once in a fresh pool, then recorded as "worker died"; the others are resubmitted. On Dask
a worker that dies has its task rescheduled by Dask itself (setting
``distributed.scheduler.allowed-failures``, default 3), then the image is recorded as "worker died"; a task running on a
Dask worker cannot be interrupted, so Ctrl-C cancels the queued ones and leaves the running ones
to finish and record themselves. Ctrl-C or SIGTERM: nothing more is submitted, the local workers
are interrupted (an image without a record is not done; temporary files are removed), the
summary is rebuilt from the records and :class:`Interrupted` is raised. Every run ends by
rebuilding ``summary.csv`` from all the records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gigapatch.cohort.executors import Backend, open_backend
from gigapatch.cohort.inputs import ImageTask, unique_image_ids
from gigapatch.cohort.locks import ImageLock, acquire, break_if_ours, lock_path, read_lock
from gigapatch.cohort.records import (
    ImageRecord,
    now_iso,
    outputs_intact,
    read_record,
    summary_lock,
    write_record,
    write_summary,
)
from gigapatch.cohort.worker import (
    Job,
    Outcome,
    output_hash,
    remove_temporaries,
    run_job,
    task_config,
    versions,
)
from gigapatch.config import Config
from gigapatch.errors import ConfigError, GigapatchError
from gigapatch.outputs.run import ConfigRecipe

log = logging.getLogger(__name__)

#: tries of an image whose local worker process died, before it is recorded as failed
ATTEMPTS = 2


class Interrupted(KeyboardInterrupt):
    """The run was stopped by Ctrl-C (SIGINT) or SIGTERM; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class RunOptions:
    """How a cohort runs (the ``gigapatch tile`` options of the same names)."""

    #: local worker processes (None: the cores this process may use)
    workers: int | None = None
    #: a Dask scheduler's address (``tcp://host:port``) or its scheduler file
    scheduler: str | None = None
    scheduler_file: Path | None = None
    #: ``(i, n)``: only the images whose stable hash of ``image_id`` is ``i`` modulo ``n``
    shard: tuple[int, int] | None = None
    force: bool = False
    retry_failed: bool = False
    #: seconds one image may take (None: no limit)
    timeout: float | None = None
    #: override ``config.output.extract``
    extract: bool | None = None
    #: tile in the driver's own process (None: when one image runs locally)
    in_process: bool | None = None


@dataclass
class CohortRun:
    """What a run did: ``records`` holds the record of every image of the (shard of the)
    cohort that has one, in input order: this run's, and those of skipped images."""

    out_dir: Path
    records: list[ImageRecord] = field(default_factory=list)
    tiled: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: images another live run was tiling: that run records them
    busy: list[str] = field(default_factory=list)
    #: images without a record that ``--retry-failed`` left alone
    not_started: list[str] = field(default_factory=list)
    n_tasks: int = 0

    @property
    def results(self) -> list[ImageRecord]:
        return self.records

    @property
    def n_errors(self) -> int:
        return sum(r.status == "error" for r in self.records)

    @property
    def exit_code(self) -> int:
        """0: no image failed; 1: some failed; 2: all failed."""
        if not self.n_errors:
            return 0
        return 2 if self.n_errors == len(self.records) and not self.busy else 1


# ---------------------------------------------------------------------------- planning
def shard_of(image_id: str, n: int) -> int:
    """The shard (0..n-1) of ``image_id``: a stable hash (same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "big") % n


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)``; ConfigError unless ``0 <= i < N``."""
    i, sep, n = text.partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = (-1, 0)
    if not sep or not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"--shard {text!r}: expected i/N with 0 <= i < N (e.g. 0/4)")
    return shard


def plan(
    tasks: list[ImageTask], recipe: ConfigRecipe, out_dir: Path, options: RunOptions
) -> tuple[list[ImageTask], list[ImageRecord]]:
    """Split ``tasks`` into those to tile and the records of those to skip (see the module
    docstring for the rules)."""
    hashes: dict[str, str | None] = {}

    def expected(task: ImageTask, domain: str | None) -> str | None:
        if domain is None:
            return None
        key = json.dumps([domain, task.overrides], sort_keys=True, default=str)
        if key not in hashes:
            try:
                hashes[key] = output_hash(task_config(recipe, task, domain))
            except GigapatchError:
                hashes[key] = None
        return hashes[key]

    run: list[ImageTask] = []
    skip: list[ImageRecord] = []
    for task in tasks:
        rec = None if options.force else read_record(out_dir, task.image_id)
        if rec is None:
            if not options.retry_failed:  # --retry-failed: only the failed images
                run.append(task)
            continue
        same_input = _size(task.path) == rec.input_bytes
        want = expected(task, task.domain or recipe.domain or rec.domain)
        if rec.status == "error":
            redo = options.retry_failed or not same_input or (
                rec.config_hash is not None and want != rec.config_hash)
        else:
            redo = not options.retry_failed and (
                not same_input or want != rec.config_hash or not outputs_intact(out_dir, rec))
        if redo:
            run.append(task)
        else:
            skip.append(rec)
    return run, skip


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


# ---------------------------------------------------------------------------- running
def run_cohort(
    tasks: Iterable[ImageTask],
    recipe: ConfigRecipe,
    out_dir: str | Path,
    options: RunOptions | None = None,
    on_event: Callable[[Outcome], None] | None = None,
) -> CohortRun:
    """Tile a cohort into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    tasks : the images (:func:`gigapatch.cohort.collect_tasks`); unique image ids.
    recipe : how each image's config is resolved.
    out_dir : the output folder (shared by shards and concurrent runs).
    options : workers, scheduler, shard, force, retry_failed, timeout, extract.
    on_event : called in the driver with each image's :class:`Outcome` (``kind`` "done",
        "skipped", "elsewhere" or "busy") as it comes.

    Returns
    -------
    CohortRun : the records of the cohort's images, what was tiled, skipped or busy.

    Raises
    ------
    Interrupted : Ctrl-C or SIGTERM (after the summary was rebuilt).
    """
    options = options or RunOptions()
    out = Path(out_dir).absolute()
    todo = list(tasks)
    if options.shard is not None:
        i, n = options.shard
        todo = [t for t in todo if shard_of(t.image_id, n) == i]
    remote = open_backend(options, 0) if options.scheduler or options.scheduler_file else None
    out.mkdir(parents=True, exist_ok=True)
    result = CohortRun(out, n_tasks=len(todo))
    final: dict[str, ImageRecord] = {}
    emit = on_event or (lambda outcome: None)
    with _signals_as_interrupts():
        try:
            # before the records are read: a record finished after this moment is another
            # run's work on an image the plan saw undone (the pool may take a second to start)
            started = time.time()
            to_run, skipped = plan(todo, recipe, out, options)
            seen = {t.image_id for t in to_run} | {r.image_id for r in skipped}
            result.not_started = [t.image_id for t in todo if t.image_id not in seen]
            for rec in skipped:
                final[rec.image_id] = rec
                result.skipped.append(rec.image_id)
                emit(Outcome(rec.image_id, "skipped", record=rec))
            if to_run:
                _execute(to_run, recipe, out, options, result, final, emit, remote, started)
        finally:
            if remote is not None and not to_run:
                remote.stop(cancel=False)
            result.records = [final[t.image_id] for t in todo if t.image_id in final]
            write_summary(out)
            _write_report(out)
    return result


def _execute(
    tasks: list[ImageTask], recipe: ConfigRecipe, out: Path, options: RunOptions,
    result: CohortRun, final: dict[str, ImageRecord], emit: Callable[[Outcome], None],
    backend: Backend | None = None,
    started: float | None = None,
) -> None:
    """Submit one job per task to ``backend`` (default: a local one) and collect the outcomes;
    a broken local pool is replaced. ``started``: when the run began reading the records."""
    started = time.time() if started is None else started
    backend = backend or open_backend(options, len(tasks))
    run_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    remote = backend.kind == "dask"
    jobs = deque(Job(t if not remote else _absolute(t), recipe, out, run_id, started,
                     options.timeout, options.extract, os.getpid()) for t in tasks)
    died: dict[str, int] = {}
    in_flight: dict[Future[Outcome], Job] = {}
    cancel = True
    try:
        while jobs or in_flight:
            while jobs and len(in_flight) < 2 * backend.slots:
                job = jobs.popleft()
                in_flight[backend.executor.submit(run_job, job)] = job
            done, _ = wait(list(in_flight), timeout=0.5, return_when=FIRST_COMPLETED)
            broken: list[Job] = []
            for fut in done:
                job = in_flight.pop(fut)
                outcome = _outcome(fut, job, broken, remote)
                if outcome is not None:
                    _take(outcome, result, final, emit)
            if broken:  # the pool is gone: every job in it comes back
                broken += list(in_flight.values())
                in_flight.clear()
                backend.stop(cancel=False, broken=True)
                for job in _sort_broken(broken, died, run_id, out):
                    jobs.appendleft(job)
                for job in [j for j in broken if died.get(j.task.image_id, 0) >= ATTEMPTS]:
                    _take(Outcome(job.task.image_id, "done", record=_died(job, remote)),
                          result, final, emit)
                backend = open_backend(replace(options, in_process=False), len(jobs))
        cancel = False
    finally:
        backend.stop(cancel=cancel)


def _outcome(fut: Future[Outcome], job: Job, broken: list[Job], remote: bool) -> Outcome | None:
    """The outcome of a finished future; a job of a broken pool is added to ``broken``."""
    from concurrent.futures import BrokenExecutor  # a BrokenProcessPool is one

    try:
        return fut.result()
    except BrokenExecutor:
        broken.append(job)
        return None
    except Exception as e:  # Dask: KilledWorker, a lost connection...
        if type(e).__name__ == "KilledWorker":
            return Outcome(job.task.image_id, "done", record=_died(job, remote))
        return Outcome(job.task.image_id, "done",
                       record=_failed(job, f"{job.task.path}: {type(e).__name__}: {e}"))


def _sort_broken(broken: list[Job], died: dict[str, int], run_id: str, out: Path) -> list[Job]:
    """The jobs of a broken pool to submit again (in reverse order, for ``appendleft``): an
    image whose lock a dead process of this run still holds was being tiled when its worker
    died, and counts one attempt more."""
    again = []
    for job in broken:
        holder = read_lock(lock_path(out, job.task.image_id))
        if holder and holder.get("run") == run_id:
            died[job.task.image_id] = died.get(job.task.image_id, 0) + 1
        if died.get(job.task.image_id, 0) < ATTEMPTS:
            again.append(job)
    return again[::-1]


def _died(job: Job, remote: bool) -> ImageRecord:
    how = "on its Dask worker" if remote else f"{ATTEMPTS} times"
    return _failed(job, f"{job.task.path}: the worker process died while tiling it ({how}; "
                        "killed, or out of memory?)")


def _failed(job: Job, reason: str) -> ImageRecord:
    """Record, from the driver, an image whose worker could not: the lock a dead worker of this
    run left is broken, then the record written under it."""
    task = job.task
    break_if_ours(job.out_dir, task.image_id, job.run)
    domain = task.domain or job.recipe.domain
    rec = ImageRecord(task.image_id, str(task.path), "error", reason=reason,
                      input_bytes=_size(task.path), domain=domain, label=task.label,
                      split=task.split, versions=versions(), started=now_iso(),
                      finished=now_iso(), worker=f"{socket.gethostname()}:{os.getpid()}",
                      run=job.run)
    try:
        if domain is not None:
            rec.config_hash = output_hash(task_config(job.recipe, task, domain))
    except GigapatchError:
        pass
    lock = acquire(job.out_dir, task.image_id, job.run)
    if isinstance(lock, ImageLock):
        try:
            remove_temporaries(job.out_dir, task.image_id)
            write_record(job.out_dir, rec)
        finally:
            lock.release()
    return rec


def _take(outcome: Outcome, result: CohortRun, final: dict[str, ImageRecord],
          emit: Callable[[Outcome], None]) -> None:
    if outcome.kind == "busy":
        result.busy.append(outcome.image_id)
    elif outcome.record is not None:
        final[outcome.image_id] = outcome.record
        (result.tiled if outcome.kind == "done" else result.skipped).append(outcome.image_id)
    emit(outcome)


def _absolute(task: ImageTask) -> ImageTask:
    return replace(task, path=task.path.absolute())


@contextmanager
def _signals_as_interrupts() -> Iterator[None]:
    """Turn the first SIGINT or SIGTERM into :class:`Interrupted` while the run goes, and ignore
    the next ones while it cleans up (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        for s in old:  # once: the clean-up that follows is not interrupted again
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _write_report(out: Path) -> None:
    """The cohort report, when the installed gigapatch has one (``gigapatch.cohort.report``)."""
    from importlib import import_module
    from importlib.util import find_spec

    if find_spec("gigapatch.cohort.report") is None:
        return
    try:
        with summary_lock(out):  # the summary's writers clear what a killed writer left
            import_module("gigapatch.cohort.report").write_report(out)
    except Exception as e:  # a report is a view of the records: it never fails the run
        log.warning("%s: the cohort report could not be written (%s: %s)", out,
                    type(e).__name__, e)


# ---------------------------------------------------------------------------- library API
def tile_many(
    paths: Iterable[str | Path],
    config: Config | ConfigRecipe,
    out_dir: str | Path,
    *,
    overrides_per_image: dict[str, dict[str, Any]] | None = None,
    on_done: Callable[[ImageRecord], None] | None = None,
    options: RunOptions | None = None,
) -> CohortRun:
    """Tile a cohort of files into ``out_dir`` (resumable; in this process unless ``options``
    say otherwise). One bad image is recorded (status "error", one-line reason) and the rest
    finish; ``<out>/summary.csv`` is rebuilt at the end.

    Parameters
    ----------
    paths : image files.
    config : one resolved config for every image, or a :class:`ConfigRecipe` resolved per image.
    overrides_per_image : path (as given, or file name) -> dotted config overrides
        (e.g. ``{"patch.slide_mpp": 0.25}``).
    on_done : called with each image's record as it comes.
    options : see :class:`RunOptions` (default: in this process).
    """
    files = [Path(p) for p in paths]
    per = overrides_per_image or {}
    tasks = [ImageTask(i, p, dict(per.get(str(p)) or per.get(p.name) or {}))
             for p, i in zip(files, unique_image_ids(files))]
    if isinstance(config, Config):
        recipe = ConfigRecipe(domain=config.domain)
        recipe._cache[config.domain] = config
    else:
        recipe = config

    def event(outcome: Outcome) -> None:
        if on_done is not None and outcome.record is not None:
            on_done(outcome.record)

    return run_cohort(tasks, recipe, out_dir, options or RunOptions(in_process=True), event)


__all__ = ["CohortRun", "Interrupted", "RunOptions", "parse_shard", "plan", "run_cohort",
           "shard_of", "tile_many"]
