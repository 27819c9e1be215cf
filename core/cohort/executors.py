"""Where a cohort's images are tiled: a ``concurrent.futures.Executor`` and how to stop it.

* a local process pool (``--workers N``, default: the cores this process may use), started with
  the ``forkserver`` method where there is one (else ``spawn``), its workers reused from image to
  image; the forkserver imports :mod:`gigapatch.cohort.worker` once for all of them;
* a Dask distributed cluster (``--scheduler`` / ``--scheduler-file``) through
  ``Client.get_executor()``;
* the driver's own process (:class:`InProcess`) for a local run with one image.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gigapatch.errors import ConfigError

if TYPE_CHECKING:
    from gigapatch.cohort.runner import RunOptions


#: seconds a local worker told to stop may take before it is killed
GRACE = 10.0


class InProcess(Executor):
    """Runs each call at once in the calling process (a one-image run needs no pool)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as e:
            fut.set_exception(e)
        return fut


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass
class Backend:
    """An executor, how many images it runs at once, and how to stop it."""

    executor: Executor
    slots: int
    kind: str  # "local", "dask" or "in-process"
    client: Any = None

    def stop(self, cancel: bool, broken: bool = False) -> None:
        """Shut the executor down; ``cancel``: drop queued calls and interrupt local workers;
        ``broken``: a local pool one of whose workers died (the others were told to stop).
        Local workers that do not end within :data:`GRACE` seconds are killed, so that no
        stuck process can hold the run."""
        if self.kind == "dask":
            self.executor.shutdown(wait=not cancel)
            self.client.close()
            return
        procs = list(getattr(self.executor, "_processes", {}).values())
        if cancel:
            for proc in procs:
                if proc.is_alive() and proc.pid is not None:
                    os.kill(proc.pid, signal.SIGTERM)  # the worker turns it into Ctrl-C
        if cancel or broken:
            end = time.monotonic() + GRACE
            for proc in procs:
                proc.join(max(0.0, end - time.monotonic()))
            for proc in procs:
                if proc.is_alive():
                    proc.kill()
                    proc.join(1.0)
        self.executor.shutdown(wait=True, cancel_futures=cancel or broken)


def open_backend(options: RunOptions, n_images: int) -> Backend:
    """The executor of a run with :class:`gigapatch.cohort.runner.RunOptions` ``options``: Dask
    when a scheduler is named, the driver's process for one local image (unless
    ``options.in_process`` says otherwise), else a local process pool of at most ``n_images``
    workers."""
    if options.scheduler or options.scheduler_file:
        try:
            from distributed import Client
        except ImportError:
            raise ConfigError("--scheduler needs Dask distributed: pip install "
                              "'gigapatch[dask]'") from None
        try:
            client = (Client(options.scheduler, timeout="30s") if options.scheduler else
                      Client(scheduler_file=str(options.scheduler_file), timeout="30s"))
        except (OSError, TimeoutError, ValueError) as e:
            where = options.scheduler or options.scheduler_file
            raise ConfigError(f"cannot reach the Dask scheduler {where} ({e})") from None
        slots = max(1, sum(client.nthreads().values()))
        return Backend(client.get_executor(pure=False), slots, "dask", client)
    workers = options.workers or default_workers()
    in_process = n_images <= 1 if options.in_process is None else options.in_process
    if in_process:
        return Backend(InProcess(), 1, "in-process")
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":  # imported once in the server, inherited by every worker
        ctx.set_forkserver_preload(["gigapatch.cohort.worker"])
        _start_forkserver()
    n = max(1, min(workers, n_images))
    pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=init_local_worker,
                               initargs=(os.getpid(),))
    _quiet_teardown(pool)
    backend = Backend(pool, n, "local")
    _start_workers(backend)
    return backend


def _quiet_teardown(pool: Any) -> None:
    """No traceback from the pool's queue-feeder thread while the pool is torn down: a worker
    killed by Ctrl-C lets the pool close its call queue while the feeder still writes a
    stop sentinel there, and Python 3.11 prints that write's EBADF / EPIPE as a traceback
    (the write was moot: nobody would read it). Other feeder errors keep their handling."""
    queue = getattr(pool, "_call_queue", None)
    handler = getattr(queue, "_on_queue_feeder_error", None)
    if queue is None or handler is None:  # another Python's pool: nothing to quieten
        return

    def on_error(error: BaseException, obj: object) -> None:
        closing = getattr(pool, "_shutdown_thread", False) or getattr(pool, "_broken", False)
        if isinstance(error, OSError) and obj is None and closing:
            return
        handler(error, obj)

    queue._on_queue_feeder_error = on_error


#: seconds the workers of a local pool may take to start
START_S = 120.0


def _start_workers(backend: Backend) -> None:
    """Start every worker of a local pool now, a Ctrl-C or SIGTERM held back until they are up
    (then the pool is stopped and the signal delivered to the run's own handlers): one that
    came while a worker was unpickling its start-up data let the driver remove the pool's
    semaphores under it, and the worker printed a FileNotFoundError traceback."""
    import threading
    from concurrent.futures import wait

    if threading.current_thread() is not threading.main_thread():
        return
    held: list[int] = []
    signums = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in signums}
    try:  # submitted at once, each before any worker is up: one process is started for each
        futures = [backend.executor.submit(os.getpid) for _ in range(backend.slots)]
        wait(futures, timeout=START_S)  # a worker that died: the run's own handling sees it
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if held:  # the run's handler raises: its caller never gets this pool, so it stops here
        backend.stop(cancel=True)
        signal.raise_signal(held[0])


#: seconds between a local worker's checks that its driver is still there
WATCH_S = 0.5


def init_local_worker(driver: int) -> None:
    """Initializer of a local pool's worker: :func:`~gigapatch.cohort.worker.init_pool_worker`,
    and a watch on the ``driver`` process. A driver killed outright (SIGKILL, the OOM killer)
    leaves its workers waiting on a queue nobody feeds (each holds the queue's write end too,
    so no EOF comes, and the forkserver they were forked from stays): a worker whose driver is
    gone finishes the image in hand, whose record it writes, and ends."""
    import threading

    from gigapatch.cohort.worker import init_pool_worker

    init_pool_worker()
    threading.Thread(target=_watch_driver, args=(driver,), name="gigapatch-watch",
                     daemon=True).start()


def driver_gone(pid: int) -> bool:
    """True when process ``pid`` has ended (or is a zombie nobody reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:  # "pid (comm) S ...": Z = ended
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def _watch_driver(driver: int) -> None:
    from gigapatch.cohort import worker

    while not driver_gone(driver):
        time.sleep(WATCH_S)
    while worker._BUSY.is_set():  # an image in hand: its outputs and record are written
        time.sleep(WATCH_S / 5)
    os._exit(0)


def _start_forkserver() -> None:
    """Start the forkserver now with SIGINT ignored: it and every worker forked from it inherit
    that until :func:`~gigapatch.cohort.worker.init_pool_worker` installs their handler, so a
    Ctrl-C to the process group while they import (about a second) ends them quietly through
    the driver instead of printing a KeyboardInterrupt traceback from the import."""
    import threading
    from multiprocessing import forkserver

    if threading.current_thread() is not threading.main_thread():
        forkserver.ensure_running()
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, old)


__all__ = ["Backend", "InProcess", "default_workers", "driver_gone", "init_local_worker",
           "open_backend"]
