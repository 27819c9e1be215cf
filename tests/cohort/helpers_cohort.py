"""Helpers of the cohort tests: a small cohort of generated pyramidal TIFFs (one corrupt), the
test-only slow plugin's source, and readers of what a run left."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
from helpers_paths import BENCHMARKS

from gigapatch import write_pyramidal_tiff

sys.path.insert(0, str(BENCHMARKS))
from kills import tissue_rgb  # one generator for the kill script and the tests

#: the good images of the cohort (the corrupt one is ``corrupt.tiff``)
GOOD = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")

SLOW_PLUGIN = '''
import os, time
from pathlib import Path
from gigapatch import hookimpl

@hookimpl(tryfirst=True)
def gigapatch_open_image(path: Path, domain):
    if Path(path).name.startswith("slow"):
        time.sleep(float(os.environ.get("GIGAPATCH_TEST_SLOW_S", "30")))
    return None
'''


def make_cohort(folder: Path, names: tuple[str, ...] = GOOD, corrupt: bool = True,
                side: int = 1024) -> Path:
    """``folder/<name>.tiff`` per name (a JPEG pyramid at 0.5 mpp), plus ``corrupt.tiff``
    (the first third of a good one)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        write_pyramidal_tiff(folder / f"{name}.tiff", tissue_rgb(side, i), downsamples=(4,),
                             mpp=0.5)
    if corrupt:
        data = (folder / f"{names[0]}.tiff").read_bytes()
        (folder / "corrupt.tiff").write_bytes(data[: len(data) // 3])
    return folder


def finish(proc: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    """Wait for ``proc``; its return code and output."""
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def coords_bytes(h5: Path) -> bytes:
    """The raw bytes of the ``coords`` dataset of an h5 (dtype and shape included)."""
    with h5py.File(h5, "r") as f:
        d = f["coords"][()]
    return str((d.dtype, d.shape)).encode() + d.tobytes()


def file_stamps(out: Path, names: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """``(inode, mtime_ns)`` of every output file of the images ``names`` and their records."""
    stamps = {}
    for name in names:
        files = [*out.glob(f"{name}.*"), *out.glob(f"{name}_*"),
                 out / ".gigapatch" / "records" / f"{name}.json"]
        for p in files:
            st = p.stat()
            stamps[str(p.relative_to(out))] = (st.st_ino, st.st_mtime_ns)
    return stamps
