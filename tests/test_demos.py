"""Every domain's one-command demo, through the CLI, checked against the demo's own ground truth;
and the rule that picks an image's domain when the run names none (a GeoTIFF is a satellite
scene, a slide never imports rasterio)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gigapatch import PatchSet


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gigapatch", *args], capture_output=True,
                          text=True, timeout=timeout)


def printed_paths(stdout: str) -> tuple[dict[str, Path], int]:
    """The ``key: path`` lines of ``gigapatch demo`` and its ``N patches kept``."""
    paths: dict[str, Path] = {}
    kept = -1
    for line in stdout.splitlines():
        if line.endswith(" patches kept"):
            kept = int(line.split()[0])
        elif ": " in line:
            key, value = line.split(": ", 1)
            paths[key.strip()] = Path(value)
    return paths, kept


def run_demo(domain: str, out: Path, *flags: str) -> tuple[dict[str, Path], int]:
    res = run_cli("demo", "--domain", domain, "--out", str(out), "--quiet", *flags)
    assert res.returncode == 0, res.stderr[-2000:]
    paths, kept = printed_paths(res.stdout)
    missing = [str(p) for p in paths.values() if not p.exists()]
    assert not missing, missing
    assert kept > 0 and len(PatchSet.read(paths["h5"])) == kept
    return paths, kept


def rank_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (Mann-Whitney)."""
    ranks = np.empty(len(score))
    ranks[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ----------------------------------------------------------------------------- metal_surface


def test_metal_demo_keeps_and_ranks_the_true_defects(tmp_path: Path) -> None:
    import shapely
    import tifffile

    from gigapatch_metal_surface import box_overlap, read_voc_boxes

    paths, kept = run_demo("metal_surface", tmp_path / "demo")
    assert {"demo image", "boxes", "h5", "table", "overlay", "config", "patches"} <= set(paths)
    with tifffile.TiffFile(paths["demo image"]) as tf:  # one grey channel, tiled, a pyramid
        page = tf.pages[0]
        assert page.samplesperpixel == 1 and page.is_tiled and len(tf.series[0].levels) >= 2
    ps = PatchSet.read(paths["h5"])
    assert ps.attrs["domain"] == "metal_surface"
    boxes = read_voc_boxes(paths["boxes"])
    assert len(boxes) == 8 and len({b[0] for b in boxes}) == 5
    # every true box lies under kept patches
    size = ps.patch_size_level0
    kept_area = shapely.union_all(shapely.box(*ps.coords.T, *(ps.coords + size).T))
    for name, x0, y0, x1, y1 in boxes:
        box = shapely.box(x0 - 1, y0 - 1, x1, y1)
        assert box.intersection(kept_area).area / box.area > 0.95, name
    # and the defect score finds them: patches on a box outrank the rest
    on_box = box_overlap(ps.coords, size, boxes) > 0
    assert rank_auc(on_box, ps.scores["defect"]) > 0.75
    rank = np.empty(kept, int)
    rank[np.argsort(-ps.scores["defect"])] = np.arange(kept)
    for box in boxes:  # every defect has a patch in the top quarter
        assert rank[box_overlap(ps.coords, size, [box]) > 0.05].min() < kept / 4, box


def test_metal_strip_is_deterministic_and_its_boxes_exact() -> None:
    from gigapatch_metal_surface.synth import BOX_MIN_DELTA, steel_strip

    a, boxes = steel_strip(3, (768, 2048))
    b, again = steel_strip(3, (768, 2048))
    c, _ = steel_strip(4, (768, 2048))
    assert np.array_equal(a, b) and boxes == again and not np.array_equal(a, c)
    clean, none = steel_strip(3, (768, 2048), n_defects=0)
    assert none == []
    changed = np.abs(a.astype(np.int16) - clean.astype(np.int16)) >= BOX_MIN_DELTA
    inside = np.zeros_like(changed)
    for _, x0, y0, x1, y1 in boxes:
        inside[y0 - 1 : y1, x0 - 1 : x1] = True
        assert changed[y0 - 1 : y1, x0 - 1 : x1].any()
    assert not (changed & ~inside).any()  # nothing changes outside the boxes


def test_metal_demo_too_small_is_one_line_error(tmp_path: Path) -> None:
    res = run_cli("demo", "--domain", "metal_surface", "--size", "300", "--out", str(tmp_path))
    assert res.returncode != 0 and "--size" in res.stderr
    assert "Traceback" not in res.stderr


# ----------------------------------------------------------------------------- satellite


def test_satellite_demo_keeps_clear_land_only(tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio")
    from gigapatch_satellite.synth import synthetic_scene

    paths, kept = run_demo("satellite", tmp_path / "demo", "--size", "1536", "--seed", "2")
    ps = PatchSet.read(paths["h5"])
    assert ps.attrs["domain"] == "satellite"
    with rasterio.open(paths["demo image"]) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.count == 4 and ds.dtypes[0] == "uint16"
        assert ds.nodata == 0 and ds.overviews(1) == [2, 4, 8]
        valid = ds.dataset_mask() > 0
        bounds = ds.bounds
    assert not valid[0, 0] and not valid[-1, -1] and valid[768, 768]  # rotated footprint
    _, truth = synthetic_scene(2, 1536)
    assert np.array_equal(truth["valid"], valid)
    assert truth["water"].any() and truth["cloud"].any()
    # kept: the grid cells (of the run's grid) that are mostly clear land, and no others
    clear = truth["valid"] & ~truth["water"] & ~truth["cloud"]
    size = ps.patch_size_level0
    x0, y0 = ps.coords.min(axis=0) % size
    cells = {(x, y): clear[y : y + size, x : x + size].mean()
             for y in range(y0, 1536 - size + 1, size) for x in range(x0, 1536 - size + 1, size)}
    kept_cells = {(int(x), int(y)) for x, y in ps.coords}
    assert kept_cells <= set(cells) and min(cells[c] for c in kept_cells) > 0.45
    mostly_clear = {c for c, f in cells.items() if f >= 0.6}
    assert len(mostly_clear & kept_cells) >= 0.95 * len(mostly_clear)
    # footprints: one polygon a patch, in the scene's CRS, inside its bounds
    geo = json.loads(paths["footprints"].read_text())
    assert len(geo["features"]) == kept
    assert geo["crs"]["properties"]["name"].endswith("32633")
    left, bottom, right, top = geo["bbox"]
    assert bounds.left <= left < right <= bounds.right and bounds.bottom <= bottom < top <= bounds.top


# ----------------------------------------------------------------------------- default domain

#: runs the console entry point, then prints the top-level modules it loaded as JSON
RUN_CLI = """
import json, sys
from gigapatch.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    if e.code:
        raise
print("MODULES " + json.dumps(sorted({m.split('.')[0] for m in sys.modules})))
"""


def tile_without_domain(out: Path, *images: Path) -> set[str]:
    """``gigapatch tile IMAGES --out OUT`` with no --domain; the top-level modules it loaded."""
    res = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "tile", *map(str, images), "--out", str(out), "--quiet",
         "--no-overlay"],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def test_a_geotiff_is_tiled_as_a_satellite_scene(tmp_path: Path) -> None:
    pytest.importorskip("rasterio")
    from gigapatch_satellite.synth import synthetic_scene, write_geotiff

    bands, _ = synthetic_scene(0, 768)
    scene = write_geotiff(tmp_path / "scene.tif", bands)
    loaded = tile_without_domain(tmp_path / "out", scene)
    assert "rasterio" in loaded
    ps = PatchSet.read(tmp_path / "out" / "scene.h5")
    assert ps.attrs["domain"] == "satellite" and ps.attrs["reader"] == "rasterio"
    assert "domain: satellite" in (tmp_path / "out" / "scene.yaml").read_text()


def test_a_slide_is_tiled_as_pathology_without_rasterio(pathology_dir: Path, tmp_path: Path) -> None:
    slides = [pathology_dir / "CMU-1-Small-Region.svs",
              pathology_dir / "CMU-1-Small-Region.generic-pyramid.tiff"]
    loaded = tile_without_domain(tmp_path, *slides)
    assert "rasterio" not in loaded
    for slide in slides:
        assert PatchSet.read(tmp_path / f"{slide.stem}.h5").attrs["domain"] == "pathology"


def test_demo_without_domain_is_pathologys(tmp_path: Path) -> None:
    """``gigapatch demo`` alone runs the pathology demo (a small slide here: the full one is run
    by tests/test_cli.py::test_demo_runs_end_to_end)."""
    res = run_cli("demo", "--size", "1024", "--out", str(tmp_path), "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    paths, _ = printed_paths(res.stdout)
    assert paths["demo image"].name == "demo-slide-0.tiff"
    assert "domain: pathology" in paths["config"].read_text()
