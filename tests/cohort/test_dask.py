"""The same cohort on a real Dask distributed cluster (a LocalCluster of two worker processes)
and on the local process pool: the good images give byte-identical coords, the corrupt one is
recorded with a clear reason, and the exit code says that one failed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers_cohort import GOOD, coords_bytes, finish

pytestmark = pytest.mark.slow

FLAGS = ("--patch-size", "128", "--no-sharpness", "--quiet")


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed", reason="needs dask[distributed] (the dask "
                                      "extra: pip install 'gigapatch[dask]')")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        yield cluster


def test_a_dask_cluster_gives_the_local_pools_coords(cli, cohort: Path, tmp_path: Path,
                                                      cluster) -> None:
    local, dask = tmp_path / "local", tmp_path / "dask"
    on_pool = finish(cli("tile", str(cohort), "--out", str(local), "--workers", "2", *FLAGS))
    on_dask = finish(cli("tile", str(cohort), "--out", str(dask), "--scheduler",
                         cluster.scheduler_address, *FLAGS))
    for res in (on_pool, on_dask):
        assert res.returncode == 1, res.stderr  # some failed: the corrupt image
        assert "corrupt.tiff" in res.stderr and "Traceback" not in res.stderr
    for name in GOOD:
        assert coords_bytes(dask / f"{name}.h5") == coords_bytes(local / f"{name}.h5"), name
        assert len(coords_bytes(dask / f"{name}.h5")) > 100  # patches were kept
    recs = {p.stem: json.loads(p.read_text()) for p in (dask / ".gigapatch/records").glob("*")}
    assert sorted(recs) == sorted((*GOOD, "corrupt"))
    bad = recs["corrupt"]
    assert bad["status"] == "error" and bad["n_patches"] == 0 and not bad["outputs"]
    assert bad["reason"].startswith(str(cohort / "corrupt.tiff")) and "truncated" in bad["reason"]
    # tiled in the cluster's two worker processes
    from distributed import Client

    with Client(cluster) as client:
        pids = set(client.run(os.getpid).values())
    assert len(pids) == 2
    assert {int(r["worker"].rsplit(":", 1)[1]) for r in recs.values()} <= pids
    assert (dask / "summary.csv").read_text().count("\n") == len(GOOD) + 2
