"""A thread-safe LRU of decoded tiles, bounded in bytes (used by the tiled readers)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

#: default byte budget of a TiffImage's decoded-tile cache
DEFAULT_CACHE_BYTES = 64 << 20


class TileCache:
    """A thread-safe LRU of decoded tiles, bounded in bytes.

    Concurrent misses on the same key decode once: the other callers wait for the first.
    ``decoded`` counts loads (tile decodes), ``hits`` counts cache hits.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._inflight: dict[Any, threading.Event] = {}
        self.hits = 0
        self.decoded = 0

    def get(self, key: Any, load: Callable[[], np.ndarray], store: bool = True) -> np.ndarray:
        """The cached value of ``key``, calling ``load()`` on a miss (stored unless ``store`` is False)."""
        while True:
            with self._lock:
                value = self._data.get(key)
                if value is not None:
                    self._data.move_to_end(key)
                    self.hits += 1
                    return value
                event = self._inflight.get(key)
                owner = event is None
                if owner:
                    event = self._inflight[key] = threading.Event()
            assert event is not None
            if not owner:
                event.wait()
                continue
            try:
                value = load()
                with self._lock:
                    self.decoded += 1
                    if store and value.nbytes <= self.max_bytes:
                        self._data[key] = value
                        self._bytes += value.nbytes
                        self._evict()
                return value
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
                event.set()

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._data:
            _, old = self._data.popitem(last=False)
            self._bytes -= old.nbytes

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = int(max_bytes)
            self._evict()

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def discard(self, keep: Callable[[Any], bool]) -> None:
        """Drop every entry whose key ``keep(key)`` rejects."""
        with self._lock:
            for key in [k for k in self._data if not keep(k)]:
                self._bytes -= self._data.pop(key).nbytes

    def info(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self.hits, "decoded": self.decoded, "tiles": len(self._data),
                    "bytes": self._bytes, "max_bytes": self.max_bytes}


__all__ = ["DEFAULT_CACHE_BYTES", "TileCache"]
