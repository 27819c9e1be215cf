"""Fixtures of every test folder: the real test data, found in one place.

Tests that need the real data ask for ``shared_data`` or one of the per-domain fixtures below and
are skipped, with the path that was looked at, when it is absent (see tests/helpers_paths.py for
where it is looked for). Synthetic slides that merely borrow a real H&E texture take
``cmu_texture`` and fall back to the procedural texture without the data.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_geojson import invalid_geojson
from helpers_paths import need, shared_data_root

WHAT = "the read-only real test data (slides, NEU-DET steel, satellite scenes)"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real test data folder (skips without it)."""
    return need(shared_data_root(), WHAT)


@pytest.fixture(scope="session")
def pathology_dir(shared_data: Path) -> Path:
    """Whole-slide images: CMU-1-Small-Region (SVS, OME, generic pyramid), TCGA, kidney."""
    return need(shared_data / "pathology", "the pathology slides of " + WHAT)


@pytest.fixture(scope="session")
def metal_surface_dir(shared_data: Path) -> Path:
    """NEU-DET steel surface images with their Pascal VOC boxes."""
    return need(shared_data / "metal_surface" / "NEU-DET", "the NEU-DET images of " + WHAT)


@pytest.fixture(scope="session")
def satellite_dir(shared_data: Path) -> Path:
    """GeoTIFF scenes: rasterio's RGB.byte (plain and COG), rgbn, a Landsat 8 crop."""
    return need(shared_data / "satellite", "the satellite scenes of " + WHAT)


@pytest.fixture(scope="session")
def cmu_svs(pathology_dir: Path) -> Path:
    """CMU-1-Small-Region.svs, the CC0 Aperio H&E slide (skips without it)."""
    return need(pathology_dir / "CMU-1-Small-Region.svs", "the CMU-1-Small-Region slide")


@pytest.fixture(scope="session")
def cmu_texture() -> Path | None:
    """CMU-1-Small-Region.svs as texture of synthetic slides; None (the procedural texture)
    without the real data."""
    path = shared_data_root() / "pathology" / "CMU-1-Small-Region.svs"
    return path if path.exists() else None


@pytest.fixture(scope="session", autouse=True)
def geojson_written_is_valid(tmp_path_factory: pytest.TempPathFactory):
    """After the session: every GeoJSON written under the session's temporary folders (the
    tests' ``tmp_path``: the core's exports, a domain's own files, CLI runs included) passes
    ``shapely.is_valid``."""
    yield
    base = tmp_path_factory.getbasetemp()
    bad = invalid_geojson(sorted(base.rglob("*.geojson")))
    if bad:
        pytest.fail(f"{len(bad)} invalid GeoJSON geometries written during the tests:\n"
                    + "\n".join(bad[:20]), pytrace=False)
