"""Fuzzed readers: mutated SVS / TIFF / GeoTIFF / PNG bytes through the public API
(``open_image``, a read of level 0, ``tile_image``) let only gigapatch's own errors escape.

The mutations (header bytes, one IFD entry's type / count / value, tile bytes, truncation,
random bytes, PNG chunk fields with their CRC fixed) are :func:`fuzz.mutate` of the documented
script ``benchmarks/fuzz.py`` (which runs thousands, each in a child process); here hypothesis
draws a small, derandomised set (the same examples on every run) and runs each in this process,
under an address-space limit (an unchecked declared size fails as a MemoryError, not by taking
the machine's memory) and a per-example time bound (a hang fails the test).
"""

from __future__ import annotations

import resource
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers_paths import BENCHMARKS

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(BENCHMARKS))
import fuzz

from gigapatch import GigapatchError

#: address space an example may use beyond what the process holds when it starts
HEADROOM = 3 * 2**30
#: seconds an example may take
BOUND_S = 30

pytestmark = pytest.mark.slow


class Hang(BaseException):
    """An example ran past :data:`BOUND_S` (a BaseException: no reader may swallow it)."""


@contextmanager
def bounded() -> Iterator[None]:
    """The block under an address-space limit (current size + :data:`HEADROOM`) and a SIGALRM
    time bound; both are lifted afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * resource.getpagesize()
    limit = vm + HEADROOM if hard == resource.RLIM_INFINITY else min(hard, vm + HEADROOM)

    def alarm(signum: int, frame: object) -> None:
        raise Hang

    old = signal.signal(signal.SIGALRM, alarm)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.alarm(BOUND_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, bytes, fuzz.Layout]]:
    """The seed files (the small shared ones that exist, and those the script writes), with
    their bytes and layouts; each reads cleanly."""
    files = fuzz.seed_files(tmp_path_factory.mktemp("seeds"))
    out = []
    for p in files:
        fuzz.probe(p)  # a clean seed reads without an error
        data = p.read_bytes()
        out.append((p, data, fuzz.layout(data)))
    return out


def check_mutant(seed: tuple[Path, bytes, fuzz.Layout], mutation: tuple[str, int, int, int],
                 folder: Path) -> None:
    """Probe one mutant: it reads, or raises a gigapatch error whose message is one line naming
    the file; anything else (or a hang) fails the test."""
    path, data, lay = seed
    mutant = folder / f"mutant{path.suffix}"
    mutant.write_bytes(fuzz.mutate(data, lay, *mutation))
    try:
        with bounded():
            fuzz.probe(mutant)
    except GigapatchError as e:
        msg = str(e)
        assert len(msg.splitlines()) == 1, f"{mutation} on {path.name}: {msg!r}"
        assert str(mutant) in msg or mutant.name in msg, f"{mutation}: {msg!r} names no file"
    except Hang:
        pytest.fail(f"{mutation} on {path.name}: no answer in {BOUND_S} s (a hang)")
    except MemoryError:
        pytest.fail(f"{mutation} on {path.name}: MemoryError (a declared size allocated "
                    "unchecked)")


mutations = st.tuples(st.sampled_from(fuzz.KINDS), st.integers(0, 2**31 - 1),
                      st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1))


@settings(max_examples=120, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(which=st.integers(0, 63), mutation=mutations)
def test_mutated_files_raise_only_gigapatch_errors(seeds, tmp_path: Path, which: int,
                                                   mutation: tuple[str, int, int, int]) -> None:
    check_mutant(seeds[which % len(seeds)], mutation, tmp_path)


def test_the_mutations_change_what_they_say(seeds) -> None:
    """Each kind changes the bytes it targets (a fuzzer whose mutations are no-ops finds
    nothing): an IFD entry's value, a tile's bytes, a cut, a PNG chunk with a valid CRC."""
    import zlib

    tiff = next(s for s in seeds if s[2].kind == "tiff" and s[2].tiles)
    _, data, lay = tiff
    m = fuzz.mutate(data, lay, "ifd", 0, 2, 0)  # entry 0's value set to 0
    width = 8 if lay.bigtiff else 4
    at = lay.entries[0] + 4 + width
    assert m[at:at + width] == bytes(width) and len(m) == len(data)
    off, length = lay.tiles[3]
    m = fuzz.mutate(data, lay, "tile", 3, 7, 12345)
    diff = np.flatnonzero(np.frombuffer(m, np.uint8) != np.frombuffer(data, np.uint8))
    assert len(diff) and off <= diff.min() and diff.max() < off + length
    assert len(fuzz.mutate(data, lay, "truncate", 1000, 0, 0)) == 1000
    png = next(s for s in seeds if s[2].kind == "png")
    _, data, lay = png
    m = fuzz.mutate(data, lay, "chunk", 0, 2, 1)  # IHDR width set to 1
    pos, n, ctype = lay.chunks[0]
    assert ctype == b"IHDR" and m[pos + 8:pos + 12] == (1).to_bytes(4, "big")
    assert zlib.crc32(m[pos + 4:pos + 8 + n]).to_bytes(4, "big") == m[pos + 8 + n:pos + 12 + n]
