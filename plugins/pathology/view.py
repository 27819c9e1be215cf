"""Per-pixel passes over a slide's low-resolution view, shared by the tissue and ink masks.

The tissue, pen and score hooks of one slide all look at the same view; this module holds what
they share: identity-keyed caches of per-view results (:func:`_same_view`), band-by-band passes
over the 3 x 3 median-filtered view white-balanced on its glass colour (:func:`_view_bands`,
:func:`glass_rgb`), its saturation and grey planes, percentiles and medians without numpy's
copies, the hysteresis of the masks, and the white / dark / grey classes the score hook reports.
Every pass keeps its temporaries to a band of :data:`BAND_PIXELS` pixels.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

#: pixels per band of the per-pixel passes: their float32 temporaries stay a few MB whatever the
#: size of the view (the outputs are the only full-size arrays)
BAND_PIXELS = 1 << 15
_GREY = np.array([0.299, 0.587, 0.114], np.float32)
#: the last read-only view keyed by identity (see :func:`_view_key`)
_last_view: dict[str, Any] = {}


def _view_key(a: np.ndarray) -> tuple[Any, ...]:
    """Key of a view's pixels for the per-view caches.

    A read-only array that owns its pixels (the pipeline freezes its low-resolution view) cannot
    change: it is keyed by identity, with a number never reused (a weak reference tells that it
    is still the same object), and is not hashed at all. Other arrays are keyed by a hash of
    their bytes with shape and dtype (not by id, which Python reuses).
    """
    ref = _last_view.get("ref")
    if ref is not None and ref() is a and not a.flags.writeable:
        return _last_view["key"]
    if a.base is None and not a.flags.writeable:
        _last_view["n"] = n = _last_view.get("n", 0) + 1
        key: tuple[Any, ...] = ("frozen", n)
        _last_view.update(ref=weakref.ref(a), key=key)
        return key
    return (_digest(a.data), a.shape, a.dtype.str)


def _digest(data: memoryview) -> bytes:
    """SHA-256 of a writeable view's bytes (hashlib, i.e. OpenSSL, loads on the first one: ~6 ms
    a run that only sees read-only views never pays)."""
    import hashlib

    return hashlib.sha256(data).digest()


def _same_view(fn):
    """Remember ``fn``'s last result for the same pixels and arguments.

    The tissue, pen and score hooks of one slide all look at the same low-resolution view; this
    computes its glass colour and ink once instead of several times (key: :func:`_view_key`).
    Results are read-only so no caller can change what the next one gets; the previous result is
    dropped before a new one is computed.
    """
    last: dict[str, Any] = {}

    signature = inspect.signature(fn)

    def lookup(rgb: np.ndarray, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """``(key, remembered result or None)`` of a call."""
        a = np.ascontiguousarray(rgb)
        bound = signature.bind(a, *args, **kwargs)  # f(x, 1) and f(x, b=1) are one call
        bound.apply_defaults()
        params = tuple((k, v) for k, v in bound.arguments.items() if v is not a)
        key = (_view_key(a), params)
        return key, (last["value"] if last.get("key") == key else None)

    def store(key: Any, out: Any) -> Any:
        """Remember ``out`` as the result of the call ``key`` stands for (read-only)."""
        last.clear()
        for arr in out if isinstance(out, tuple) else (out,):
            if isinstance(arr, np.ndarray):
                arr.setflags(write=False)
        last.update(key=key, value=out)
        return out

    @functools.wraps(fn)
    def wrapper(rgb: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        key, out = lookup(rgb, *args, **kwargs)
        if out is None:
            last.clear()
            out = store(key, fn(np.ascontiguousarray(rgb), *args, **kwargs))
        return out

    # a caller that computes the same result on its way (tissue_mask and the ink) shares it
    wrapper.lookup, wrapper.store = lookup, store  # type: ignore[attr-defined]
    return wrapper


#: pixels sampled (on a regular grid) for the glass colour and saturation: a quarter million
#: fix a median of the brightest tenth to well under one grey level
GLASS_SAMPLES = 2.5e5


def _bands(h: int, w: int, multiple: int = 1) -> Iterator[tuple[int, int]]:
    """Row ranges ``(y0, y1)`` of about :data:`BAND_PIXELS` pixels (``y0`` a multiple of ``multiple``)."""
    rows = max(1, BAND_PIXELS // max(w, 1))
    rows = max(multiple, rows // multiple * multiple)
    for y0 in range(0, h, rows):
        yield y0, min(h, y0 + rows)


def _median_band(a: np.ndarray, y0: int, y1: int) -> np.ndarray:
    """Rows ``y0:y1`` of the 3 x 3 median of ``a`` (h, w, 3) uint8, computed from those rows and one
    on each side: the same pixels as filtering the whole view (no median below 3 x 3 views)."""
    import cv2

    h, w = a.shape[:2]
    if min(h, w) < 3:
        return a[y0:y1]
    s0, s1 = max(0, y0 - 1), min(h, y1 + 1)
    return cv2.medianBlur(np.ascontiguousarray(a[s0:s1]), 3)[y0 - s0 : y1 - s0]


@_same_view
def _glass(rgb: np.ndarray) -> np.ndarray:
    """:func:`glass_rgb` of the 3 x 3 median-filtered view (shared by the channel passes)."""
    import cv2

    a = np.ascontiguousarray(np.asarray(rgb)[:, :, :3])
    if min(a.shape[:2]) >= 3:
        a = cv2.medianBlur(a, 3)
    return glass_rgb(a)


def _view_bands(rgb: np.ndarray, balance: bool = True) -> Iterator[tuple[int, int, np.ndarray]]:
    """Band by band, ``(y0, y1, f)``: ``f`` (y1 - y0, w, 3) float32 pixels of the 3 x 3
    median-filtered view, white-balanced on the glass colour (:func:`glass_rgb`)."""
    a = np.asarray(rgb)[:, :, :3]
    h, w = a.shape[:2]
    scale = 255.0 / _glass(rgb) if balance and a.size else None
    for y0, y1 in _bands(h, w):
        f = _median_band(a, y0, y1).astype(np.float32)
        if scale is not None:
            f *= scale
        yield y0, y1, f


def _max_min_sat(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Max and min channel and saturation ``(max - min) / max(max, 1)`` of (h, w, 3) float32."""
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    mx = np.maximum(r, g)  # element-wise beats a reduction over a length-3 last axis
    np.maximum(mx, b, out=mx)
    mn = np.minimum(r, g)
    np.minimum(mn, b, out=mn)
    sat = mx - mn
    np.divide(sat, np.maximum(mx, 1.0), out=sat)
    return mx, mn, sat


@_same_view
def _sat_grey(rgb: np.ndarray, balance: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Saturation ``(max - min) / max(max, 1)`` (0-1) and grey (luma) float32 planes of the 3 x 3
    median-filtered view, white-balanced on the glass colour (:func:`glass_rgb`) so a tinted
    background reads as white; computed band by band (:func:`_view_bands`), 8 bytes per pixel."""
    a = np.asarray(rgb)
    h, w = a.shape[:2]
    sat = np.empty((h, w), np.float32)
    grey = np.empty((h, w), np.float32)
    for y0, y1, f in _view_bands(a, balance):
        sat[y0:y1] = _max_min_sat(f)[2]
        grey[y0:y1] = f @ _GREY
    return sat, grey


def glass_rgb(rgb: np.ndarray) -> np.ndarray:
    """(3,) float32 colour of the glass: per-channel median of the brightest 10 % of pixels,
    at least 200 (a slide filled with tissue then falls back to near white)."""
    a = np.asarray(rgb)[:, :, :3]
    step = max(1, int(np.sqrt(a.shape[0] * a.shape[1] / GLASS_SAMPLES)))
    a = a[::step, ::step]
    h, w = a.shape[:2]
    if h * w == 0:
        return np.full(3, 255.0, np.float32)
    # grey (float32, as one (n, 3) @ (3,) product: banded gives the same numbers) and its
    # 90th percentile without a copy; no (n, 3) float copy of the view
    grey = np.empty(h * w, np.float32)
    for y0, y1 in _bands(h, w):
        grey[y0 * w : y1 * w] = a[y0:y1].reshape(-1, 3).astype(np.float32) @ _GREY
    bright = grey >= _percentile_nonneg(grey, 90)
    del grey
    px = (a.reshape(-1, 3) if a.flags.c_contiguous else a.copy().reshape(-1, 3))[bright]
    return np.clip([_median(px[:, c]) for c in range(3)], 200.0, 255.0).astype(np.float32)


def _median(values: np.ndarray) -> float:
    """``np.median(values)`` (the same number: the middle value, or the mean of the two middle
    ones) without its NaN check, which imports ``numpy.ma`` (~20-60 ms of a short command)."""
    v = np.array(values).ravel()
    n = len(v)
    if n == 0:
        return float("nan")
    mid = n // 2
    if n % 2:
        v.partition(mid)
        return float(v[mid])
    v.partition([mid - 1, mid])
    return float(np.mean(v[mid - 1 : mid + 1]))


#: up to this many values, :func:`_percentile_nonneg` partitions a copy (the 65536-bin
#: histogram costs ~5 ms whatever the size)
SMALL_PERCENTILE = 1 << 20


def _percentile_nonneg(values: np.ndarray, q: float) -> float:
    """:func:`percentile` of float32 values >= 0 without copying or reordering them.

    The IEEE bit patterns of non-negative floats sort like the values: a histogram of their upper
    16 bits finds the bucket of each wanted rank, and only that bucket's values are sorted. Other
    inputs go through :func:`percentile`.
    """
    v = np.asarray(values)
    if v.size <= SMALL_PERCENTILE or v.dtype != np.float32 or not v.flags.c_contiguous:
        return percentile(v, q)  # a copy of a small array costs less than the histogram
    if not v.min() >= 0:
        return percentile(v, q)
    bits = v.reshape(-1).view(np.uint32)
    n = len(bits)
    pos = q / 100.0 * (n - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))

    def chunks() -> Iterator[np.ndarray]:  # sign bit cleared: -0.0 is 0.0
        for i in range(0, n, BAND_PIXELS):
            yield bits[i : i + BAND_PIXELS] & np.uint32(0x7FFFFFFF)

    hist = np.zeros(1 << 16, np.int64)
    for c in chunks():
        hist += np.bincount(c >> 16, minlength=1 << 16)
    cum = np.cumsum(hist)
    kth: dict[int, np.float32] = {}
    for k in sorted({lo, hi}):
        bucket = int(np.searchsorted(cum, k, side="right"))
        members = np.concatenate([c[(c >> 16) == bucket] for c in chunks()])
        members.sort()
        kth[k] = members.view(np.float32)[k - (int(cum[bucket - 1]) if bucket else 0)]
    return float(kth[lo] + (kth[hi] - kth[lo]) * (pos - lo))


def _percentile_inplace(v: np.ndarray, q: float) -> float:
    """:func:`percentile` of a 1-D array that may be reordered (no copy)."""
    pos = q / 100.0 * (len(v) - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    v.partition([lo, hi])
    return float(v[lo] + (v[hi] - v[lo]) * (pos - lo))


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) through one ``np.partition``: the same
    number, without the ``np.unique`` inside numpy's version that imports ``numpy.ma`` (~60 ms
    of a 1 s command)."""
    return _percentile_inplace(np.array(values).ravel(), q)


def _drop_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    import cv2

    _n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels]


def _hysteresis(weak: np.ndarray, seeds: Iterator[tuple[int, int, np.ndarray]]) -> np.ndarray:
    """The 8-connected components of ``weak`` (h, w) bool that hold a seed, written into ``weak``.

    ``seeds`` yields ``(y0, y1, s)``: ``s`` (y1 - y0, w) bool seed pixels of rows ``y0:y1`` (seeds
    outside ``weak`` count for nothing). Peak memory: the int32 labels.
    """
    import cv2

    n, labels = cv2.connectedComponents(weak.view(np.uint8), connectivity=8)
    seeded = np.zeros(n, bool)
    for y0, y1, s in seeds:
        seeded[labels[y0:y1][s]] = True
    seeded[0] = False
    h, w = weak.shape
    for y0, y1 in _bands(h, w):  # band by band: a whole-image lookup buffers int64 indices
        weak[y0:y1] = seeded[labels[y0:y1]]
    return weak


def glass_dark_grey(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pixel classes of a low-resolution view that are not stained tissue.

    ``white``: bright and unsaturated (glass); ``dark``: grey < 60 (debris, thick folds, black
    ink); ``grey``: unsaturated mid-grey (dust, shadows, out-of-coverslip areas).
    """
    cls = _grey_classes(rgb)
    return {"white": cls == WHITE, "dark": cls == DARK, "grey": cls == GREYISH}


#: :func:`_grey_classes` codes
WHITE, DARK, GREYISH = 1, 2, 3


def _classify_grey(sat: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """:func:`glass_dark_grey`'s classes of saturation (0-1) and grey planes as one uint8 plane
    (0 = none of them, :data:`WHITE`, :data:`DARK`, :data:`GREYISH`; they exclude each other)."""
    low = sat < 0.08
    cls = np.where(low, np.uint8(GREYISH), np.uint8(0))
    cls[(grey > 215) & low] = WHITE
    cls[grey < 60] = DARK
    return cls


def _grey_classes(rgb: np.ndarray) -> np.ndarray:
    """(h, w) uint8 :func:`_classify_grey` of the balanced median-filtered view, band by band: one
    byte per pixel where the saturation and grey planes of :func:`_sat_grey` take eight (one
    caller, the score hook: not kept for the view)."""
    a = np.asarray(rgb)
    out = np.empty(a.shape[:2], np.uint8)
    for y0, y1, f in _view_bands(a):
        out[y0:y1] = _classify_grey(_max_min_sat(f)[2], f @ _GREY)
    return out
