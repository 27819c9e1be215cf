"""The domain a run takes when it names none: a slide is tiled as pathology without importing
rasterio, and ``gigapatch demo`` alone is the pathology demo. Each plugin's own demo is checked
against its ground truth in its folder (tests/metal_surface/test_metal_demo.py,
tests/satellite/test_satellite_demo.py, where a GeoTIFF is also shown to be a satellite scene)."""

from __future__ import annotations

from pathlib import Path

from helpers_cli import printed_paths, run_cli, tile_without_domain

from gigapatch import PatchSet


def test_a_slide_is_tiled_as_pathology_without_rasterio(pathology_dir: Path, tmp_path: Path) -> None:
    slides = [pathology_dir / "CMU-1-Small-Region.svs",
              pathology_dir / "CMU-1-Small-Region.generic-pyramid.tiff"]
    loaded = tile_without_domain(tmp_path, *slides)
    assert "rasterio" not in loaded
    for slide in slides:
        assert PatchSet.read(tmp_path / f"{slide.stem}.h5").attrs["domain"] == "pathology"


def test_demo_without_domain_is_pathologys(tmp_path: Path) -> None:
    """``gigapatch demo`` alone runs the pathology demo (a small slide here: the full one is run
    by tests/cli/test_cli.py::test_demo_runs_end_to_end)."""
    res = run_cli("demo", "--size", "1024", "--out", str(tmp_path), "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    paths, _ = printed_paths(res.stdout)
    assert paths["demo image"].name == "demo-slide-0.tiff"
    assert "domain: pathology" in paths["config"].read_text()
