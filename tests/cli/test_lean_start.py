"""Lean start: a ``gigapatch tile`` run imports only what it uses.

Whole-process time on a slide is mostly Python start-up and imports (the mask and coordinates of a
40k px slide take well under 0.1 s once the modules are loaded), so a stray top-level import shows
up in every run. These tests run the real CLI in a subprocess and look at ``sys.modules`` after it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_cli import RUN_CLI

from gigapatch.io.tiff_write import write_pyramidal_tiff

#: never needed by a quiet ``tile`` run of a TIFF slide without --extract / --overlay / --geojson
NOT_IMPORTED = (
    "torch", "timm", "sklearn", "rasterio", "dask", "skimage", "shapely", "scipy", "pandas",
    "pyarrow", "matplotlib", "openslide", "PIL", "rich", "xml",
)


def _loaded_by_tile(slide: Path, out: Path, *flags: str) -> set[str]:
    res = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "tile", str(slide), "--out", str(out), "--domain",
         "pathology", "--quiet", "--no-sharpness", "--no-overlay", *flags],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


@pytest.fixture(scope="module")
def small_svs(tmp_path_factory) -> Path:
    """A 2048 px Aperio-style tiled JPEG pyramid: pinkish tissue disc on white glass."""
    yy, xx = np.mgrid[:2048, :2048]
    tissue = (xx - 900) ** 2 + (yy - 1100) ** 2 < 700**2
    rng = np.random.default_rng(0)
    rgb = np.full((2048, 2048, 3), 242, np.uint8)
    rgb[tissue] = (np.array([200, 110, 170]) + rng.integers(-20, 20, (int(tissue.sum()), 3))
                   ).clip(0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("lean") / "small.svs"
    return write_pyramidal_tiff(path, rgb, downsamples=(4, 16), mpp=0.5, magnification=20, svs=True)


def test_tile_run_imports_nothing_it_does_not_use(small_svs: Path, tmp_path: Path) -> None:
    loaded = _loaded_by_tile(small_svs, tmp_path)
    for stem in ("small.h5", "small.csv", "small.yaml", "summary.csv"):  # the run did its work
        assert (tmp_path / stem).is_file(), sorted(p.name for p in tmp_path.iterdir())
    assert {"numpy", "h5py", "tifffile", "gigapatch_pathology"} <= loaded  # the probe sees imports
    assert loaded.isdisjoint(NOT_IMPORTED), sorted(loaded & set(NOT_IMPORTED))


def test_real_svs_is_read_without_openslide(pathology_dir: Path, tmp_path: Path) -> None:
    """The pathology plugin leaves Aperio SVS to the core's tifffile reader without asking
    OpenSlide (its import costs ~25 ms of every run, with PIL)."""
    loaded = _loaded_by_tile(pathology_dir / "CMU-1-Small-Region.svs", tmp_path)
    assert (tmp_path / "CMU-1-Small-Region.h5").is_file()
    assert "openslide" not in loaded and "PIL" not in loaded


def test_main_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    """``main`` does not tune the garbage collector: the caller's thresholds stay, also when it
    exits with an error."""
    import gc

    from gigapatch.cli.app import main

    before = gc.get_threshold()
    with pytest.raises(SystemExit) as e:
        main(["tile", str(tmp_path / "missing.svs"), "--out", str(tmp_path), "--quiet"])
    assert e.value.code == 2  # one-line error, as before
    assert gc.get_threshold() == before and gc.isenabled()


BLAS_PROBE = """
import os, sys
import gigapatch.cli as cli
cli.main = lambda argv: None  # the console's set-up only
cli.console([])
import numpy
from threadpoolctl import threadpool_info
blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print("BLAS", os.environ["OPENBLAS_NUM_THREADS"], blas)
"""


@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("2", "2")])
def test_console_runs_numpy_blas_on_one_thread_unless_told(given: str | None, expected: str) -> None:
    """The ``gigapatch`` command runs numpy's BLAS pool on one thread (images and reads are
    what it parallelises), inherited by its worker processes; a caller's own
    ``OPENBLAS_NUM_THREADS`` wins."""
    pytest.importorskip("threadpoolctl")
    import os

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    res = subprocess.run([sys.executable, "-c", BLAS_PROBE], capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("BLAS "))
    var, threads = line.split(" ", 2)[1:]
    assert var == expected
    assert threads in ("[]", f"[{expected}]")  # [] only where numpy's BLAS is not OpenBLAS
