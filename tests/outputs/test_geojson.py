"""GeoJSON export (QuPath feature collections of regions and patches): valid geometries, region
classes per domain, and its regions read back as include polygons (the annotation reader itself:
tests/tiling/test_annotations.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from gigapatch import PatchSet, Region, segment_mask
from gigapatch.outputs.geojson import export_geojson, to_geojson
from gigapatch.tiling.annotations import annotation_mask, rasterize_polygons, read_annotations

SQUARE = np.array([[100, 100], [900, 100], [900, 700], [100, 700]], float)
HOLE = np.array([[300, 300], [500, 300], [500, 500], [300, 500]], float)


def _patchset(domain: str | None = "pathology") -> PatchSet:
    coords = np.array([[128, 128], [384, 128], [640, 384]])
    return PatchSet(
        image_id="s",
        coords=coords,
        scores={"foreground": np.array([1.0, 0.75, 0.5], np.float32),
                "sharpness": np.array([10.5, np.nan, 3.0], np.float32)},
        attrs={"patch_size_level0": 256, "patch_size": 256, "domain": domain},
        rejected_coords=np.array([[0, 0]]),
        rejected_reason=np.array(["foreground"]),
        rejected_scores={"foreground": np.array([0.1], np.float32)},
        regions=[Region(exterior=SQUARE, holes=[HOLE], label=0)],
    )


def test_export_is_qupath_feature_collection(tmp_path):
    out = export_geojson(_patchset(), tmp_path / "a" / "s.geojson")
    data = json.loads(out.read_text())  # strict JSON (NaN written as null)
    assert data["type"] == "FeatureCollection"
    ann = [f for f in data["features"] if f["properties"]["objectType"] == "annotation"]
    det = [f for f in data["features"] if f["properties"]["objectType"] == "detection"]
    assert len(ann) == 1 and len(det) == 3
    assert ann[0]["properties"]["classification"]["name"] == "Tissue"
    rings = ann[0]["geometry"]["coordinates"]
    assert len(rings) == 2 and rings[0][0] == rings[0][-1]  # exterior + hole, closed
    poly = shapely.geometry.shape(ann[0]["geometry"])
    assert poly.area == pytest.approx(800 * 600 - 200 * 200)
    box = shapely.geometry.shape(det[1]["geometry"])
    assert box.bounds == (384, 128, 640, 384)
    assert det[1]["properties"]["measurements"] == {"foreground": 0.75, "sharpness": None}
    assert det[0]["properties"]["measurements"]["sharpness"] == pytest.approx(10.5)
    assert not list(tmp_path.glob("a/.*"))  # no temporary left behind


def test_export_rejected(tmp_path):
    out = export_geojson(_patchset(), tmp_path / "s.geojson", include_rejected=True)
    names = [f["properties"]["classification"]["name"] for f in json.loads(out.read_text())["features"]]
    assert names.count("Rejected: foreground") == 1 and names.count("Patch") == 3


def test_round_trip_regions_become_include_polygons(tmp_path):
    ps = _patchset()
    out = export_geojson(ps, tmp_path / "s.geojson")
    include, exclude = read_annotations(out)
    assert exclude == [] and len(include) == 1  # detections are skipped
    assert include[0].equals(ps.regions[0].to_shapely())
    # the mask of the re-read regions equals the rasterised originals
    m = annotation_mask(out, (50, 60), 16.0)
    assert np.array_equal(m, rasterize_polygons([ps.regions[0].to_shapely()], (50, 60), 16.0))


@pytest.mark.parametrize(("domain", "name"), [
    ("pathology", "Tissue"), ("metal_surface", "Metal"), ("satellite", "Land"),
    ("generic", "Foreground"), (None, "Foreground"),
])
def test_region_class_is_the_domains(domain, name):
    fc = to_geojson(_patchset(domain))
    ann = [f for f in fc["features"] if f["properties"]["objectType"] == "annotation"]
    assert [f["properties"]["classification"]["name"] for f in ann] == [name]
    assert fc["generator"].startswith("gigapatch ")  # what tests/conftest.py checks for


def pinched_mask() -> np.ndarray:
    """Pixels meeting only at corners (rings that touch themselves), a hole whose ring touches
    itself, and a hole touching the exterior at a corner."""
    m = np.zeros((12, 14), bool)
    m[1:5, 1:5] = True
    m[5:9, 5:9] = True  # touches the first square at one corner
    m[2:11, 9:13] = True
    m[4, 10] = m[5, 11] = False  # two hole pixels meeting at a corner
    m[6, 12] = False  # a notch at the edge
    m[0, 0] = True  # a pixel touching a region's corner
    return m


def test_every_exported_region_is_valid_and_keeps_its_pixels(tmp_path):
    rng = np.random.default_rng(3)
    masks = [pinched_mask()] + [rng.random((20, 24)) < 0.5 for _ in range(20)]
    n_invalid_rings = 0
    for k, m in enumerate(masks):
        regions = segment_mask(m, 8.0)
        n_invalid_rings += sum(not r.to_shapely().is_valid for r in regions)
        ps = _patchset()
        ps.regions = regions
        out = export_geojson(ps, tmp_path / f"m{k}.geojson")
        feats = json.loads(out.read_text())["features"]
        geoms = [shapely.geometry.shape(f["geometry"]) for f in feats
                 if f["properties"]["objectType"] == "annotation"]
        assert all(g.is_valid for g in geoms), [shapely.is_valid_reason(g) for g in geoms]
        for g, r in zip(geoms, regions, strict=True):
            assert g.area == pytest.approx(r.area)
        # read back as include polygons, the regions give the mask they came from
        assert np.array_equal(annotation_mask(out, m.shape, 8.0), m)
    assert n_invalid_rings > 10  # the exact pixel rings do touch themselves: the repair is tested


def test_the_suites_geojson_check_catches_an_invalid_geometry(tmp_path):
    """tests/conftest.py's end-of-session check (every GeoJSON written passes is_valid) can fail.
    (The files are named .json: invalid on purpose, they are not the session's outputs.)"""
    from helpers_geojson import invalid_geojson

    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]}
    broken = {"type": "Polygon", "coordinates": [[1, 2]]}
    fc = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": bowtie}]}
    (tmp_path / "a.json").write_text(json.dumps(fc))
    fc2 = {"type": "FeatureCollection", "generator": "gigapatch 0",
           "features": [{"type": "Feature", "geometry": broken}]}
    (tmp_path / "b.json").write_text(json.dumps(fc2))
    fc2.pop("generator")  # someone else's malformed input: not ours to judge
    (tmp_path / "c.json").write_text(json.dumps(fc2))
    export_geojson(_patchset(), tmp_path / "d.json")
    bad = invalid_geojson(sorted(tmp_path.glob("*.json")))
    assert len(bad) == 2 and "a.json" in bad[0] and "Self-intersection" in bad[0]
    assert "b.json" in bad[1]
