"""rasterio dataset handles shared by the threads that read one raster, and one-line errors."""

from __future__ import annotations

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
    thread-safe); a new handle is opened only when every open one is in use.

    A thread gets back the handle it had last when that one is free: GDAL caches decoded
    blocks per handle, so a thread reading neighbouring windows finds its blocks decoded (two
    threads handed the handles in turn decoded many blocks twice)."""

    def __init__(self, opener: Callable[[int], Any], first: Any) -> None:
        self._opener = opener
        self._free: dict[int, list[Any]] = {0: [first]}
        self._all = [first]
        self._lock = threading.Lock()
        self._last = threading.local()

    @contextmanager
    def borrow(self, level: int) -> Iterator[Any]:
        last: dict[int, Any] = getattr(self._last, "by_level", None) or {}
        ds = None
        with self._lock:
            free = self._free.setdefault(level, [])
            mine = last.get(level)
            if mine is not None and any(h is mine for h in free):
                free[:] = [h for h in free if h is not mine]
                ds = mine
            elif free:
                ds = free.pop()
        if ds is None:
            ds = self._opener(level)
            with self._lock:
                self._all.append(ds)
        last[level] = ds
        self._last.by_level = last
        try:
            yield ds
        finally:
            with self._lock:
                if level in self._free:  # (not closed meanwhile)
                    self._free[level].append(ds)

    def close(self) -> None:
        with self._lock:
            for ds in self._all:
                ds.close()
            self._all = []
            self._free = {}


__all__ = ["Handles", "first_line", "quiet_open"]
