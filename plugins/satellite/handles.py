"""rasterio dataset handles shared by the threads that read one raster, and one-line errors."""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def quiet_open(path: Any, **kw: Any) -> Any:
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        return rasterio.open(path, **kw)


class Handles:
    """Dataset handles per level, lent to one thread at a time (GDAL handles are not
    thread-safe); a new handle is opened only when every open one is in use."""

    def __init__(self, opener: Callable[[int], Any], first: Any) -> None:
        self._opener = opener
        self._free: dict[int, queue.SimpleQueue[Any]] = {0: queue.SimpleQueue()}
        self._free[0].put(first)
        self._all = [first]
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self, level: int) -> Iterator[Any]:
        with self._lock:
            q = self._free.setdefault(level, queue.SimpleQueue())
        try:
            ds = q.get_nowait()
        except queue.Empty:
            ds = self._opener(level)
            with self._lock:
                self._all.append(ds)
        try:
            yield ds
        finally:
            q.put(ds)

    def close(self) -> None:
        with self._lock:
            for ds in self._all:
                ds.close()
            self._all = []
            self._free = {}


__all__ = ["Handles", "first_line", "quiet_open"]
