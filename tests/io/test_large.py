"""Level 0 is never read whole: tiling a 100,000 x 100,000 px tiled TIFF stays under 1 GB."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SIDE = 100_000
TILE = 256


def _tissue_tile(rng: np.random.Generator) -> np.ndarray:
    """A pink/purple H&E-like tile."""
    base = np.array([225, 150, 200], np.float32)
    noise = rng.normal(0, 18, (TILE, TILE, 1)).astype(np.float32)
    t = base + noise * np.array([0.6, 1.0, 0.5], np.float32)
    nuclei = rng.random((TILE, TILE)) < 0.02
    t[nuclei] = (90, 40, 140)
    return np.clip(t, 0, 255).astype(np.uint8)


def write_sparse_slide(path: Path) -> tuple[int, int, int, int]:
    """A sparse pyramidal TIFF (levels 1, 4, 16, 64): empty (zero-byte) tiles everywhere except a
    block of tissue tiles; returns the tissue block (x0, y0, x1, y1) in level-0 px."""
    import imagecodecs
    import tifffile

    rng = np.random.default_rng(0)
    tiles = [imagecodecs.jpeg8_encode(_tissue_tile(rng), level=85) for _ in range(8)]
    block = (156 * TILE, 203 * TILE, 168 * TILE, 211 * TILE)  # 12 x 8 level-0 tiles of tissue
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for i, ds in enumerate((1, 4, 16, 64)):
            w = h = SIDE // ds
            ntx = -(-w // TILE)
            nty = -(-h // TILE)
            bx0, by0 = block[0] // ds // TILE, block[1] // ds // TILE
            bx1, by1 = -(-block[2] // ds // TILE), -(-block[3] // ds // TILE)

            def gen(ntx=ntx, nty=nty, bx0=bx0, by0=by0, bx1=bx1, by1=by1):
                for ty in range(nty):
                    for tx in range(ntx):
                        inside = bx0 <= tx < bx1 and by0 <= ty < by1
                        yield tiles[(tx + ty) % len(tiles)] if inside else b""

            tw.write(gen(), shape=(h, w, 3), dtype=np.uint8, tile=(TILE, TILE), compression="jpeg",
                     photometric="rgb", subfiletype=0 if i == 0 else 1,
                     resolution=(1e4 / (0.25 * ds),) * 2, resolutionunit="CENTIMETER")
    return block


def test_100k_slide_stays_under_1gb(tmp_path: Path) -> None:
    slide = tmp_path / "huge.tif"
    block = write_sparse_slide(slide)
    assert slide.stat().st_size < 20e6  # small on disk
    out = tmp_path / "out"
    # the CLI runs in a fresh process that reports its own peak RSS (VmHWM) when it ends;
    # ru_maxrss would also count the forking pytest process's pages
    code = (
        "import sys\n"
        "from gigapatch.cli.app import main\n"
        "try:\n"
        f"    main(['tile', {str(slide)!r}, '--out', {str(out)!r}, '--quiet', '--domain', 'pathology'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
        "print('PEAK_KB', int(hwm.split()[1]))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    peak_kb = int(res.stdout.split("PEAK_KB")[-1])
    assert peak_kb < 1024 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
    print(f"100k x 100k slide: peak RSS {peak_kb / 1024:.0f} MB")
    from gigapatch import PatchSet

    ps = PatchSet.read(out / "huge.h5")
    assert ps.attrs["level0_width"] == SIDE
    assert len(ps) > 0
    x, y = ps.coords[:, 0], ps.coords[:, 1]
    size = ps.patch_size_level0
    # every kept patch lies on the tissue block (with a mask pixel of slack)
    slack = ps.mask_downsample
    assert (x >= block[0] - slack).all() and (x + size <= block[2] + slack).all()
    assert (y >= block[1] - slack).all() and (y + size <= block[3] + slack).all()
    # and the block is covered: 12 x 8 tiles of 256 px -> 96 patches on the aligned grid
    assert 0.9 * 96 <= len(ps) <= 96
