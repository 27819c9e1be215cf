"""Checks of a TIFF file before (and beside) parsing it: cut files, declared sizes, tifffile's log.

* :func:`truncation`: the chain of image directories walked with a few reads each (no tifffile),
  then every strip's and tile's extent: a file cut by an interrupted copy says so, once;
* :func:`declared_size_problem`: the sizes the header declares, checked before any reader
  allocates (a 152-byte file declaring 10^7 x 10^7 px is refused, not allocated);
* tifffile's own log lines while it parses (``ERROR: <TiffTag.fromfile> raised ...``, once or
  several times a file) are demoted to DEBUG; :func:`tifffile_complaints` collects them so a
  reader can say, in one warning naming the file (:func:`warn_complaints`), that a file it read
  anyway had damaged tags.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
_complaints = threading.local()


class _DemoteToDebug(logging.Filter):
    """tifffile logs what it finds wrong while it parses a file (``ERROR: <TiffTag.fromfile>
    raised ...``, once or several times): the readers say what matters in one line (an error,
    or :func:`warn_complaints`' warning when the file is read anyway), so its records are
    demoted to DEBUG (shown with ``GIGAPATCH_DEBUG``) and collected for
    :func:`tifffile_complaints` in the thread that parses."""

    def filter(self, record: logging.LogRecord) -> bool:
        sink = getattr(_complaints, "sink", None)
        if sink is not None and record.levelno >= logging.WARNING:
            sink.append(record.getMessage())
        if record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


logging.getLogger("tifffile").addFilter(_DemoteToDebug())


@contextlib.contextmanager
def tifffile_complaints() -> Iterator[list[str]]:
    """Collect what tifffile logs (WARNING and above) in this thread inside the block."""
    outer = getattr(_complaints, "sink", None)
    found: list[str] = []
    _complaints.sink = found
    try:
        yield found
    finally:
        _complaints.sink = outer


def warn_complaints(path: object, found: list[str]) -> None:
    """One warning naming ``path`` when tifffile complained about a file read anyway (damaged
    tags it skipped): the pixels or the pyramid may not be what was written."""
    if found:
        first = found[0].strip().splitlines()[0] if found[0].strip() else "?"
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        log.warning("%s: damaged TIFF tags skipped (%s%s); read anyway", path, first[:200], more)


def _ifd_chain_problem(path: Path, size: int) -> str | None:
    """Walk the top-level IFD chain (a few bytes an IFD, no tifffile); say where it leaves the
    file, or None when every IFD lies inside it."""
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 8:
            return "the TIFF header is cut short"
        bo = "<" if head[:2] == b"II" else ">"
        if head[2:4] in (b"+\x00", b"\x00+"):
            if len(head) < 16:
                return "the BigTIFF header is cut short"
            off, cfmt, entry, nfmt = struct.unpack(bo + "Q", head[8:16])[0], "Q", 20, "Q"
        else:
            off, cfmt, entry, nfmt = struct.unpack(bo + "I", head[4:8])[0], "H", 12, "I"
        csize, nsize = struct.calcsize(cfmt), struct.calcsize(nfmt)
        seen: set[int] = set()
        while off and off not in seen and len(seen) < 1_000_000:
            seen.add(off)
            which = "its first image directory" if len(seen) == 1 else f"image directory {len(seen) - 1}"
            if off + csize > size:
                return f"{which} lies at byte {off:,}, beyond the end"
            f.seek(off)
            count = struct.unpack(bo + cfmt, f.read(csize))[0]
            at = off + csize + count * entry
            if at + nsize > size:
                return f"{which} (at byte {off:,}) runs past the end"
            f.seek(at)
            off = struct.unpack(bo + nfmt, f.read(nsize))[0]
    return None


def _data_end(path: Path) -> int | None:
    """The byte where the strips / tiles of every image (SubIFD levels included) end, read by
    tifffile with its log quiet; None when tifffile cannot tell."""
    import logging

    import tifffile

    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # its complaints about a cut file would be extra lines
    try:
        with tifffile.TiffFile(path) as tf:
            pages = [lvl.keyframe for s in tf.series for lvl in s.levels] + list(tf.pages)
            end = 0
            for page in pages:
                offsets = np.asarray(getattr(page, "dataoffsets", ()) or (), np.int64)
                counts = np.asarray(getattr(page, "databytecounts", ()) or (), np.int64)
                if len(offsets) and len(offsets) == len(counts):
                    end = max(end, int((offsets + counts).max()))
            return end
    except Exception:
        return None
    finally:
        logger.setLevel(level)


def truncation(path: str | Path, data: bool = True) -> str | None:
    """Why a TIFF file looks cut short (an interrupted copy or download), or None.

    Parameters
    ----------
    path : a file that starts with a TIFF header.
    data : also check that every strip and tile ends inside the file (parses the IFDs with
        tifffile); False checks only the chain of image directories (a few bytes each).

    Returns
    -------
    One line for :class:`ImageError`, "truncated file (N bytes): ...", or None.
    """
    path = Path(path)
    size = path.stat().st_size
    problem = _ifd_chain_problem(path, size)
    if problem is None and data:
        end = _data_end(path)
        if end is not None and end > size:
            problem = f"its image data runs to byte {end:,}"
    if problem is None:
        return None
    return f"truncated file ({size:,} bytes): {problem}; copy or download it again"


#: default cap on the pixels a TIFF's header may declare (100 gigapixels: 10x the largest
#: whole-slide images); ``GIGAPATCH_MAX_PIXELS`` overrides it
MAX_IMAGE_PIXELS = 10**11
#: one strip or tile decoded at once may not exceed this many bytes
MAX_SEGMENT_BYTES = 2 << 30


def max_image_pixels() -> int:
    """The cap on declared image pixels: ``GIGAPATCH_MAX_PIXELS`` when set (an integer, ``1e12``
    allowed), else :data:`MAX_IMAGE_PIXELS`."""
    text = os.environ.get("GIGAPATCH_MAX_PIXELS", "").strip()
    try:
        return int(float(text)) if text else MAX_IMAGE_PIXELS
    except ValueError:
        return MAX_IMAGE_PIXELS


#: TIFF tags read by :func:`declared_size_problem`
_SIZE_TAGS = {256: "w", 257: "h", 258: "bits", 259: "compression", 277: "samples",
              278: "rows", 279: "counts", 322: "tw", 323: "th", 32997: "depth"}
#: integer TIFF types as tifffile reads them (13 IFD and 18 IFD8 included: a size tag retyped
#: to one is read as a 4- or 8-byte value)
_TYPE_FMT = {1: "B", 3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q", 8: "h", 9: "i", 17: "q"}


def _ifd_sizes(f: Any, bo: str, big: bool, offset: int, size: int) -> tuple[dict[str, int], int]:
    """The size tags of the IFD at ``offset`` (first value of each) and the next IFD's offset."""
    cfmt, nfmt, esize = ("Q", "Q", 20) if big else ("H", "I", 12)
    f.seek(offset)
    count = struct.unpack(bo + cfmt, f.read(struct.calcsize(cfmt)))[0]
    count = min(count, 4096, max(0, size - offset) // esize)  # a hostile count reads no more
    block = f.read(count * esize + struct.calcsize(nfmt))
    tags: dict[str, int] = {}
    for i in range(min(count, len(block) // esize)):
        e = block[i * esize:(i + 1) * esize]
        code, typ = struct.unpack(bo + "HH", e[:4])
        name, fmt = _SIZE_TAGS.get(code), _TYPE_FMT.get(typ)
        if name is None or fmt is None:
            continue
        n = struct.unpack(bo + ("Q" if big else "I"), e[4:12] if big else e[4:8])[0]
        field = e[12:] if big else e[8:]
        if n * struct.calcsize(fmt) > len(field):  # stored elsewhere: read its first value
            at = struct.unpack(bo + ("Q" if big else "I"), field)[0]
            if at + struct.calcsize(fmt) > size:
                continue
            f.seek(at)
            field = f.read(struct.calcsize(fmt))
        tags[name] = struct.unpack(bo + fmt, field[: struct.calcsize(fmt)])[0]
        if name == "counts":
            tags["n_counts"] = n
    tail = block[count * esize:]
    nxt = struct.unpack(bo + nfmt, tail)[0] if len(tail) == struct.calcsize(nfmt) else 0
    return tags, nxt


def _sizes_problem(t: dict[str, int], max_pixels: int) -> str | None:
    w, h, depth = t.get("w", 0), t.get("h", 0), max(1, t.get("depth", 1))
    if w <= 0 or h <= 0:
        return None  # no image here (or a header tifffile will complain about)
    if w * h * depth > max_pixels:
        return (f"its header declares {w:,} x {h:,} px, more than the {max_pixels:,} px allowed "
                "(GIGAPATCH_MAX_PIXELS raises the cap); a damaged or hostile header?")
    sample_bytes = max(1, (t.get("bits", 8) + 7) // 8) * max(1, t.get("samples", 1))
    tiled = "tw" in t and "th" in t
    seg_w, seg_h = (t["tw"], t["th"]) if tiled else (w, min(h, t.get("rows", h) or h))
    seg = seg_w * seg_h * sample_bytes
    if seg > MAX_SEGMENT_BYTES:
        return (f"one {'tile' if tiled else 'strip'} of {seg_w:,} x {seg_h:,} px would take "
                f"{seg / 2**30:.1f} GiB decoded (limit {MAX_SEGMENT_BYTES / 2**30:.0f} GiB)")
    if (not tiled and t.get("compression", 1) == 1 and t.get("n_counts") == 1
            and 0 < t.get("counts", 0) * 64 < seg):
        return (f"its one uncompressed strip holds {t['counts']:,} bytes for {seg:,} bytes of "
                "samples; a damaged or hostile header?")
    return None


def declared_size_problem(path: str | Path, max_pixels: int | None = None) -> str | None:
    """Why the sizes a TIFF's header declares cannot be read safely, or None: more pixels than
    ``max_pixels`` (default :func:`max_image_pixels`), a strip or tile over
    :data:`MAX_SEGMENT_BYTES` decoded, or one uncompressed strip far smaller than its samples.
    Reads a few bytes of each top-level image directory (the first 64), nothing else."""
    cap = max_image_pixels() if max_pixels is None else max_pixels
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            bo = "<" if head[:2] == b"II" else ">"
            big = head[2:4] in (b"+\x00", b"\x00+")
            off = struct.unpack(bo + ("Q" if big else "I"), head[8:16] if big else head[4:8])[0]
            seen: set[int] = set()
            while off and off not in seen and len(seen) < 64 and off < size:
                seen.add(off)
                tags, off = _ifd_sizes(f, bo, big, off, size)
                if why := _sizes_problem(tags, cap):
                    return why
    except (OSError, struct.error):
        return None  # the readers say what is wrong
    return None


__all__ = [
    "MAX_IMAGE_PIXELS",
    "MAX_SEGMENT_BYTES",
    "declared_size_problem",
    "max_image_pixels",
    "tifffile_complaints",
    "truncation",
    "warn_complaints",
]
