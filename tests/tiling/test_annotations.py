"""Annotations in GeoJSON: polygons rasterised by pixel centre, include and exclude classes, bare
lists, points and broken files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from gigapatch import ConfigError
from gigapatch.config import AnnotationConfig
from gigapatch.tiling.annotations import annotation_mask, rasterize_polygons, read_annotations


def _fc(*feats):
    return {"type": "FeatureCollection", "features": list(feats)}


def _feat(coords, name=None, holes=()):
    props = {"objectType": "annotation"}
    if name is not None:
        props["classification"] = {"name": name}
    ring = [list(map(float, p)) for p in coords] + [list(map(float, coords[0]))]
    rings = [ring] + [[list(map(float, p)) for p in h] + [list(map(float, h[0]))] for h in holes]
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": rings},
            "properties": props}


def test_rasterize_matches_pixel_centres():
    rng = np.random.default_rng(0)
    ang = np.sort(rng.uniform(0, 2 * np.pi, 40))
    rad = rng.uniform(200, 400, 40)
    poly = shapely.Polygon(np.c_[500 + rad * np.cos(ang), 480 + rad * np.sin(ang)])
    poly = poly.difference(shapely.Point(500, 480).buffer(90))  # a hole
    ds = 8.0
    m = rasterize_polygons([poly], (125, 130), ds)
    yy, xx = np.mgrid[0:125, 0:130]
    truth = shapely.contains_xy(poly, (xx + 0.5) * ds, (yy + 0.5) * ds)
    assert truth.sum() > 2000
    assert not m[62, 62]  # centre of the hole
    # pixel-centre rule: at most a few exactly-on-the-edge pixels may differ
    assert (m != truth).sum() <= 3


def test_include_exclude_logic(tmp_path):
    f = tmp_path / "ann.geojson"
    f.write_text(json.dumps(_fc(
        _feat([(0, 0), (640, 0), (640, 640), (0, 640)], "Tumor"),
        _feat([(0, 0), (320, 0), (320, 320), (0, 320)], "Ignore pen"),
        _feat([(640, 640), (960, 640), (960, 960), (640, 960)], "Stroma"),
    )))
    base = np.zeros((60, 60), bool)
    base[:, :30] = True  # left half = 0..480 px at ds 16
    cfg = AnnotationConfig(include=["Tumor"])
    m = annotation_mask(f, (60, 60), 16.0, base, cfg)
    expected = np.zeros((60, 60), bool)
    expected[:40, :30] = True
    expected[:20, :20] = False  # Ignore* excluded
    assert np.array_equal(m, expected)
    # no base mask: include polygons alone (include None -> every non-excluded polygon)
    m2 = annotation_mask(f, (60, 60), 16.0, None, AnnotationConfig())
    exp2 = np.zeros((60, 60), bool)
    exp2[:40, :40] = True
    exp2[40:60, 40:60] = True
    exp2[:20, :20] = False
    assert np.array_equal(m2, exp2)
    # only exclude polygons: base minus exclude
    g = tmp_path / "ex.geojson"
    g.write_text(json.dumps(_fc(_feat([(0, 0), (320, 0), (320, 320), (0, 320)], "Exclude"))))
    m3 = annotation_mask(g, (60, 60), 16.0, np.ones((60, 60), bool))
    assert m3.sum() == 3600 - 400
    inc, exc = read_annotations(f, AnnotationConfig(include=["Str*"], exclude=["Tum*"]))
    assert len(inc) == 1 and len(exc) == 1 and inc[0].area == 320 * 320


def test_reads_bare_list_points_and_invalid(tmp_path):
    bowtie = {"type": "Feature", "properties": {"classification": {"name": "Tissue"}},
              "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [100, 100], [100, 0],
                                                               [0, 100], [0, 0]]]}}
    point = {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [5, 5]}}
    f = tmp_path / "list.json"
    f.write_text(json.dumps([bowtie, point]))
    inc, exc = read_annotations(f)
    assert len(inc) == 1 and inc[0].is_valid and inc[0].area == pytest.approx(5000)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{not json", "not valid JSON"),
        ('{"features": []}', "no 'type'"),
        ('{"type": "FeatureCollection"}', "'features' list"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature"}]}', "no geometry"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry":'
         ' {"type": "Polygon", "coordinates": [[1, 2]]}}]}', "bad geometry"),
    ],
)
def test_bad_geojson_is_config_error(tmp_path, text, problem):
    f = tmp_path / "bad.geojson"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        annotation_mask(f, (10, 10), 1.0)
    assert str(f) in str(e.value) and problem in str(e.value)
    with pytest.raises(ConfigError, match="not found"):
        read_annotations(tmp_path / "missing.geojson")
