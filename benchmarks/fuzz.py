"""Fuzz gigapatch's readers: mutated SVS / TIFF / GeoTIFF / PNG / JPEG files through the public API.

Every mutant is tried in its own child process (forked from this one after the imports, so a
try costs a fork, not an interpreter start), under ``RLIMIT_AS`` (3 GB by default) and a per-file
time limit. A try is what a user's script does::

    with gigapatch.open_image(path) as image:      # the plugins' readers, the core's last
        image.read_region((0, 0), 0, (w, h))      # all of level 0 (a small file's)
        gigapatch.tile_image(image)               # mask, placement, scores, selection

Outcomes (each mutant gets exactly one):

* ``error``: a gigapatch error (ImageError / ConfigError / GigapatchError): the one-line message
  the CLI prints. The expected outcome for a broken file.
* ``same``: finished, and the dimensions, level 0's pixels and the patches' coordinates are
  the clean file's (the mutation hit bytes that do not matter).
* ``differs-warned``: finished with other pixels or patches, and a warning was logged (a
  reported bad tile, a repaired file).
* ``differs-silent``: finished with other pixels or patches, and nothing said so: silent
  corruption (e.g. JPEG tile bytes whose decoder does not complain).
* ``unexpected``: any other exception escaped (its type, message and innermost gigapatch frame
  are listed: each is a missing mapping at a reader boundary).
* ``memory``: MemoryError under the address-space limit (a declared size allocated unchecked).
* ``hang``: still running after ``--timeout`` seconds (killed).
* ``crash``: the child died (a signal such as SIGSEGV / SIGABRT, or an exit without a result).

Mutations, drawn by a seeded ``random.Random`` (so a run is reproducible with its ``--seed``):

* ``header``: bytes of the first 16 changed (byte order, magic, first IFD offset);
* ``ifd``: one field (type, count or value/offset) of one IFD entry of one page set to a
  boundary value (0, 1, 0xFFFF..., a large value, past the end) or random bits;
* ``tile``: 1-8 bytes inside one tile's (or strip's) compressed data replaced;
* ``truncate``: the file cut at a random point;
* ``flip``: 1-16 random bytes anywhere;
* ``chunk`` (PNG): a field of one chunk (length, type, IHDR width/height/depth/colour type)
  changed, with its CRC fixed so the decoder reads on.

Usage::

    nice -n 10 python benchmarks/fuzz.py --count 2000 --jobs 1 --seed 1 \\
        --json /tmp/fuzz.json --keep /tmp/gigapatch-fuzz

(``--count`` is ``--mutants``; ``--jobs`` children run at a time, each under its own limits;
the exit status is 1 when any mutant ended ``unexpected``, ``memory``, ``hang`` or ``crash``.)

``--keep`` saves every mutant whose outcome is unexpected, memory, hang or crash (with its
details) for reproduction. The seed files are the small ones of the shared test data (their
folder: ``$GIGAPATCH_TEST_DATA`` or ``../shared/data``) and files written here (a PNG, a tiled
pyramidal JPEG TIFF); the CI's smaller count is ``tests/robustness/test_fuzz.py`` (hypothesis),
which uses :func:`mutate` and :func:`probe` from here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: outcomes in the order the summary prints them; the last five are failures of the readers
OUTCOMES = ("error", "same", "differs-warned", "differs-silent", "unexpected", "memory", "hang",
            "crash")
#: the seeds' names in the shared data (small files only)
SHARED_SEEDS = ("pathology/CMU-1-Small-Region.svs",
                "pathology/CMU-1-Small-Region.generic-pyramid.tiff",
                "satellite/RGB.byte.tif", "satellite/rgbn.tif",
                "metal_surface/NEU-DET/crazing_1.jpg")
#: level 0 is read whole up to this many pixels (else a 256 px region in its middle)
WHOLE_PIXELS = 16_000_000
#: the boundary values an IFD field is set to (besides random bits and past-the-end)
BOUNDARY = (0, 1, 2, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 10_000_000)


# ---------------------------------------------------------------------------- seeds
@dataclass
class Layout:
    """Where a seed's structures lie: the file offsets of its IFD entries and of its tiles'
    compressed data (TIFF), or of its chunks (PNG)."""

    kind: str  # "tiff", "png" or "other"
    bigtiff: bool = False
    little: bool = True
    #: file offset of each IFD entry (tag, type, count, value)
    entries: list[int] = field(default_factory=list)
    #: (offset, length) of each tile's or strip's compressed data
    tiles: list[tuple[int, int]] = field(default_factory=list)
    #: (offset, length, type) of each PNG chunk
    chunks: list[tuple[int, int, bytes]] = field(default_factory=list)


def layout(data: bytes) -> Layout:
    """The :class:`Layout` of a clean file's bytes."""
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        import io

        import tifffile

        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            lay = Layout("tiff", tif.is_bigtiff, tif.byteorder == "<")
            for page in tif.pages:
                lay.entries += [tag.offset for tag in page.tags.values()]
                lay.tiles += [(int(o), int(n)) for o, n in
                              zip(page.dataoffsets, page.databytecounts) if n > 0]
        return lay
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        lay, pos = Layout("png"), 8
        while pos + 8 <= len(data):
            (n,) = struct.unpack(">I", data[pos:pos + 4])
            lay.chunks.append((pos, n, data[pos + 4:pos + 8]))
            pos += 12 + n
        return lay
    return Layout("other")


def write_seeds(folder: Path) -> list[Path]:
    """Seeds written here: a 600 x 800 PNG and a 1024 px tiled pyramidal JPEG TIFF (0.5 mpp),
    both with dark blobs on a light ground (foreground for every domain)."""
    import cv2

    from gigapatch import write_pyramidal_tiff

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:1024, :1024]
    blob = (xx - 500) ** 2 + (yy - 480) ** 2 < 300**2
    rgb = np.full((1024, 1024, 3), 240, np.uint8)
    rgb[blob] = (np.array([190, 100, 160]) + rng.integers(-25, 25, (int(blob.sum()), 3))
                 ).clip(0, 255).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    png, tif = folder / "seed.png", folder / "seed-pyramid.tiff"
    cv2.imwrite(str(png), cv2.cvtColor(rgb[:600, :800], cv2.COLOR_RGB2BGR))
    write_pyramidal_tiff(tif, rgb, downsamples=(4,), mpp=0.5)
    return [png, tif]


def shared_data() -> Path:
    env = os.environ.get("GIGAPATCH_TEST_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def seed_files(folder: Path) -> list[Path]:
    """The seed files: those of :data:`SHARED_SEEDS` that exist, and :func:`write_seeds`'."""
    data = shared_data()
    return [p for p in (data / s for s in SHARED_SEEDS) if p.is_file()] + write_seeds(folder)


# ---------------------------------------------------------------------------- mutations
def _put(data: bytearray, pos: int, raw: bytes) -> None:
    end = min(len(data), pos + len(raw))
    if 0 <= pos < end:
        data[pos:end] = raw[: end - pos]


def mutate(data: bytes, lay: Layout, kind: str, a: int, b: int, c: int) -> bytes:
    """A mutant of ``data``: mutation ``kind`` with its three parameters ``a``, ``b``, ``c``
    (any non-negative integers: they are reduced to what the kind needs, so a fuzzer may draw
    them freely).

    ``header``: byte ``a % 16`` set to ``b % 256``. ``ifd``: entry ``a`` of the IFD entries,
    field ``b % 3`` (type, count, value), set to a :data:`BOUNDARY` value, past the end of the
    file or random bits (by ``c``). ``tile``: tile ``a``, ``1 + b % 8`` bytes from relative
    position ``c`` set to bytes derived from ``c``. ``truncate``: the first ``a % len`` bytes.
    ``flip``: ``1 + b % 16`` bytes from ``a`` xor-ed with bits derived from ``c``. ``chunk``
    (PNG): chunk ``a``'s length or type, or an IHDR field, set by ``b``/``c``, CRC fixed.
    A kind that does not apply to the file (``ifd`` on a PNG) falls back to ``flip``.
    """
    out = bytearray(data)
    n = len(out)
    rng = random.Random(c)
    if kind == "header":
        out[a % min(16, n)] = b % 256
    elif kind == "ifd" and lay.kind == "tiff" and lay.entries:
        entry = lay.entries[a % len(lay.entries)]
        end = "<" if lay.little else ">"
        width = 8 if lay.bigtiff else 4
        which = b % 3
        choice = c % (len(BOUNDARY) + 2)
        if choice < len(BOUNDARY):
            value = BOUNDARY[choice]
        elif choice == len(BOUNDARY):
            value = n + rng.randrange(1, 1 << 16)
        else:
            value = rng.getrandbits(8 * width)
        if which == 0:  # the type (2 bytes)
            _put(out, entry + 2, struct.pack(end + "H", value & 0xFFFF))
        else:
            pos = entry + 4 if which == 1 else entry + 4 + width
            fmt = end + ("Q" if width == 8 else "I")
            _put(out, pos, struct.pack(fmt, value & ((1 << 8 * width) - 1)))
    elif kind == "tile" and lay.tiles:
        off, length = lay.tiles[a % len(lay.tiles)]
        k = 1 + b % 8
        start = off + (c % max(1, length - k + 1))
        _put(out, start, bytes(rng.getrandbits(8) for _ in range(k)))
    elif kind == "truncate":
        return bytes(out[: a % n])
    elif kind == "chunk" and lay.kind == "png" and lay.chunks:
        pos, length, ctype = lay.chunks[a % len(lay.chunks)]
        which = b % 4
        if ctype == b"IHDR" and which >= 2:  # width, height, depth, colour type
            field_at = pos + 8 + (0 if which == 2 else 4) + (8 if c % 3 == 2 else 0)
            value = BOUNDARY[c % len(BOUNDARY)]
            raw = (struct.pack(">I", value) if c % 3 != 2
                   else bytes([value % 256, (value >> 8) % 256]))
            _put(out, field_at, raw)
        elif which == 0:  # the length
            _put(out, pos, struct.pack(">I", BOUNDARY[c % len(BOUNDARY)]))
        else:  # the type, or a data byte
            _put(out, pos + 4 + (c % max(1, 4 + min(length, 64))), bytes([rng.getrandbits(8)]))
        body = bytes(out[pos + 4: pos + 8 + length])
        _put(out, pos + 8 + length, struct.pack(">I", zlib.crc32(body)))
    else:  # "flip", and the kinds that do not apply to this file
        k = 1 + b % 16
        for i in range(k):
            j = (a + i * (1 + c % 997)) % n
            out[j] ^= 1 + rng.getrandbits(8) % 255
    return bytes(out)


KINDS = ("header", "ifd", "tile", "truncate", "flip", "chunk")


def draw(rng: random.Random, lay: Layout) -> tuple[str, int, int, int]:
    """A random mutation (kind, a, b, c) suited to ``lay``: IFD and tile mutations on TIFFs
    most often, chunk ones on PNGs."""
    if lay.kind == "tiff":
        kind = rng.choices(KINDS[:5], weights=(1, 4, 4, 1, 2))[0]
    elif lay.kind == "png":
        kind = rng.choices(("header", "truncate", "flip", "chunk"), weights=(1, 1, 3, 4))[0]
    else:
        kind = rng.choices(("header", "truncate", "flip"), weights=(1, 1, 4))[0]
    return kind, rng.getrandbits(31), rng.getrandbits(31), rng.getrandbits(31)


# ---------------------------------------------------------------------------- one try
def probe(path: Path) -> dict[str, Any]:
    """What the public API makes of ``path`` (open, level 0 read whole, tile_image without
    writing): ``digest`` of the dimensions, the pixels and the patches' coordinates, and
    ``warnings`` (the number of warnings logged). Exceptions propagate."""
    import warnings

    import gigapatch

    seen: list[str] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Count(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with gigapatch.open_image(path) as image:
                w, h = image.dimensions
                # every pixel of level 0 (the seeds are small), else a region in its middle
                size = (w, h) if w * h <= WHOLE_PIXELS else (256, 256)
                x, y = (0, 0) if w * h <= WHOLE_PIXELS else (w // 2 - 128, h // 2 - 128)
                region = np.asarray(image.read_region((x, y), 0, size))
                ps = gigapatch.tile_image(image)
                coords = np.asarray(ps.coords)
    finally:
        root.removeHandler(handler)
    digest = hashlib.sha256()
    for part in (np.asarray([w, h]), region, coords):
        digest.update(str((part.dtype, part.shape)).encode() + part.tobytes())
    return {"digest": digest.hexdigest(), "warnings": len(seen) + len(caught),
            "patches": int(len(coords))}


def _innermost(tb: Any) -> str:
    """``file:line`` of the innermost frame of gigapatch (else the innermost) in ``tb``."""
    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if "gigapatch" in f.filename or "/core/" in f.filename
            or "/plugins/" in f.filename]
    f = (ours or frames or [None])[-1]
    return f"{Path(f.filename).name}:{f.lineno}" if f is not None else "?"


def child(path: Path, result: Path, limit_bytes: int) -> None:
    """The body of a forked child: probe ``path`` under the memory limit, write the outcome
    as JSON to ``result``, end without running the parent's exit handlers."""
    code = 0
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
        logging.getLogger().setLevel(logging.WARNING)
        from gigapatch import GigapatchError

        try:
            res = {"outcome": "ok", **probe(path)}
        except GigapatchError as e:
            res = {"outcome": "error", "message": str(e).splitlines()[0] if str(e) else "",
                   "lines": len(str(e).splitlines())}
        except MemoryError as e:
            res = {"outcome": "memory", "message": str(e)[:200], "where": _innermost(e.__traceback__)}
        except Exception as e:
            res = {"outcome": "unexpected", "type": type(e).__name__,
                   "message": str(e).splitlines()[0][:300] if str(e) else "",
                   "where": _innermost(e.__traceback__)}
        tmp = result.with_suffix(".part")
        tmp.write_text(json.dumps(res))
        tmp.rename(result)
    except BaseException:
        code = 3
    finally:
        os._exit(code)


@dataclass
class Try:
    seed: str
    mutation: tuple[str, int, int, int]
    outcome: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def run_all(tries: list[Try], clean: dict[str, str], workdir: Path, jobs: int,
            timeout: float, limit_bytes: int, keep: Path | None) -> list[Try]:
    """Run every mutant in a forked child, ``jobs`` at a time; classify each. A mutant's bytes
    are made just before its child starts (never all held at once: the children's address
    space limit counts the parent's)."""
    layouts: dict[str, tuple[bytes, Layout]] = {}
    pending = list(enumerate(tries))
    running: dict[int, tuple[int, float, Path, Path]] = {}
    done: list[Try] = []
    while pending or running:
        while pending and len(running) < jobs:
            i, t = pending.pop(0)
            if t.seed not in layouts:
                raw = Path(t.seed).read_bytes()
                layouts[t.seed] = (raw, layout(raw))
            data = (layouts[t.seed][0] if t.mutation[0] == "none"
                    else mutate(*layouts[t.seed], *t.mutation))
            suffix = Path(t.seed).suffix
            path = workdir / f"m{i}{suffix}"
            path.write_bytes(data)
            result = workdir / f"m{i}.json"
            pid = os.fork()
            if pid == 0:
                child(path, result, limit_bytes)
            running[pid] = (i, time.monotonic(), path, result)
        time.sleep(0.01)
        for pid, (i, t0, path, result) in list(running.items()):
            t = tries[i]
            wpid, status = os.waitpid(pid, os.WNOHANG)
            over = time.monotonic() - t0 > timeout
            if wpid == 0 and not over:
                continue
            if wpid == 0:  # a hang
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                t.outcome, t.detail = "hang", {"after_s": timeout}
            elif result.exists():
                res = json.loads(result.read_text())
                t.outcome = res.pop("outcome")
                if t.outcome == "ok" and t.seed in clean:
                    same = res["digest"] == clean[t.seed]
                    t.outcome = ("same" if same else
                                 "differs-warned" if res["warnings"] else "differs-silent")
                t.detail = res
            else:
                how = (f"signal {signal.Signals(os.WTERMSIG(status)).name}"
                       if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}")
                t.outcome, t.detail = "crash", {"how": how}
            t.seconds = round(time.monotonic() - t0, 3)
            if keep is not None and t.outcome in ("unexpected", "memory", "hang", "crash"):
                keep.mkdir(parents=True, exist_ok=True)
                name = f"{len(list(keep.glob('*.json'))):04d}-{t.outcome}"
                (keep / f"{name}{path.suffix}").write_bytes(path.read_bytes())
                (keep / f"{name}.json").write_text(json.dumps(asdict(t), indent=1))
            path.unlink(missing_ok=True)
            result.unlink(missing_ok=True)
            del running[pid]
            done.append(t)
    return done


def clean_digests(seeds: list[Path], workdir: Path, timeout: float, limit: int
                  ) -> dict[str, str]:
    """The clean seeds' digests (each in a child too, so the parent never opens an image)."""
    tries = [Try(str(s), ("none", 0, 0, 0)) for s in seeds]
    out = {}
    for t in run_all(tries, {}, workdir, 1, timeout, limit, None):
        if t.outcome != "error" and "digest" in t.detail:
            out[t.seed] = t.detail["digest"]
        else:
            raise SystemExit(f"seed {t.seed} does not read cleanly: {t.outcome} {t.detail}")
    return out


def summarise(done: list[Try]) -> dict[str, Any]:
    """Counts by outcome, by seed and outcome, and the distinct unexpected exceptions."""
    counts = Counter(t.outcome for t in done)
    per_seed: dict[str, Counter[str]] = {}
    for t in done:
        per_seed.setdefault(Path(t.seed).name, Counter())[t.outcome] += 1
    kinds: dict[str, Counter[str]] = {}
    for t in done:
        kinds.setdefault(t.mutation[0], Counter())[t.outcome] += 1
    unexpected = Counter(f"{t.detail.get('type', t.outcome)} at {t.detail.get('where', '?')}: "
                         f"{t.detail.get('message', t.detail.get('how', ''))[:120]}"
                         for t in done if t.outcome in ("unexpected", "memory", "crash"))
    multi = sum(1 for t in done if t.outcome == "error" and t.detail.get("lines", 1) > 1)
    return {"mutants": len(done), "counts": {k: counts.get(k, 0) for k in OUTCOMES},
            "per_seed": {k: dict(v) for k, v in per_seed.items()},
            "per_kind": {k: dict(v) for k, v in kinds.items()},
            "unexpected": dict(unexpected.most_common()), "multi_line_errors": multi}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutants", "--count", type=int, default=2000, help="mutated files to try")
    ap.add_argument("--jobs", type=int, default=2, help="children at a time")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds a mutant may take")
    ap.add_argument("--mem-gb", type=float, default=3.0, help="RLIMIT_AS of a child, in GB")
    ap.add_argument("--json", type=Path, help="write every try and the summary here")
    ap.add_argument("--keep", type=Path, help="save the failing mutants here")
    ap.add_argument("--seeds", type=Path, nargs="*", help="seed files (default: see the doc)")
    args = ap.parse_args(argv)

    import gigapatch.io.readers  # noqa: F401  (imports done once, before the forks)
    from gigapatch.plugin.manager import get_plugin_manager

    get_plugin_manager()
    for mod in ("tifffile", "imagecodecs", "cv2", "rasterio", "openslide", "h5py"):
        try:
            __import__(mod)
        except ImportError:
            pass
    limit = int(args.mem_gb * 2**30)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gigapatch-fuzz-") as tmp:
        work = Path(tmp)
        seeds = args.seeds or seed_files(work / "seeds")
        clean = clean_digests(seeds, work, args.timeout, limit)
        rng = random.Random(args.seed)
        layouts = {str(s): layout(s.read_bytes()) for s in seeds}
        tries = [Try(str(s), draw(rng, layouts[str(s)]))
                 for s in (seeds[i % len(seeds)] for i in range(args.mutants))]
        done = run_all(tries, clean, work, args.jobs, args.timeout, limit, args.keep)
    summary = summarise(done)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary["wall_s"] = round(time.perf_counter() - t_start, 1)
    summary["cpu_s_children"] = round(children.ru_utime + children.ru_stime, 1)
    summary["load_avg"] = os.getloadavg()
    summary["command"] = " ".join(["python", "benchmarks/fuzz.py", *(argv or sys.argv[1:])])
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "tries": [asdict(t) for t in done]},
                                        indent=1))
    bad = sum(summary["counts"][k] for k in ("unexpected", "memory", "hang", "crash"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
