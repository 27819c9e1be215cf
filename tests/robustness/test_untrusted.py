"""Untrusted text (issue #15 item 5): YAML configs, ``--keep`` expressions and GeoJSON
annotations written by someone else load safely, in bounded time and memory, or fail in one
line naming the file (or the expression) and the problem. The hostile annotation files are
named ``*.json``: the session's check that every ``*.geojson`` written is valid skips them."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gigapatch.config import MAX_YAML_DEPTH, MAX_YAML_NODES, load_config, read_yaml, safe_yaml
from gigapatch.errors import ConfigError
from gigapatch.tiling import annotations as ann
from gigapatch.tiling.select import MAX_KEEP_CHARS, evaluate_keep

SCORES = {"foreground": np.array([0.2, 0.9, 1.0]), "sharpness": np.array([5.0, 50.0, np.nan])}


# ---------------------------------------------------------------------------- YAML
def laughs(levels: int = 9, width: int = 9) -> str:
    """A 'billion laughs' document: ``width ** levels`` strings through nested aliases."""
    lines, prev = [f"a: &a [{', '.join(['lol'] * width)}]"], "a"
    for i in range(1, levels + 1):
        name = f"l{i}"
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * width)}]")
        prev = name
    return "\n".join(lines) + "\n"


def test_billion_laughs_refused_in_a_separate_process(tmp_path: Path) -> None:
    """9^10 = 3.5 billion values through aliases: refused in one line, the process never grows
    past 1 GB of address space (RLIMIT_AS), where a walk of the expanded data needed GBs."""
    cfg = tmp_path / "laughs.yaml"
    cfg.write_text(laughs())
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from gigapatch.config import load_config\nfrom gigapatch.errors import ConfigError\n"
            f"try:\n    load_config('generic', {str(cfg)!r})\n"
            "except ConfigError as e:\n    print(e)\n    sys.exit(3)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 3, res.stderr[-2000:]
    assert "laughs.yaml" in res.stdout and f"more than {MAX_YAML_NODES:,} values" in res.stdout


def test_aliases_that_stay_small_are_fine() -> None:
    assert safe_yaml("a: &x [1, 2]\nb: *x\n", "t.yaml") == {"a": [1, 2], "b": [1, 2]}
    with pytest.raises(ConfigError, match="t.yaml: its aliases expand"):
        safe_yaml(laughs(levels=5, width=10), "t.yaml")  # 10^6 values


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,  # crashed libyaml's composer (a segfault) before the check
    "- " * 100_000 + "x\n",
    "{a: " * 50_000 + "1" + "}" * 50_000,
])
def test_deep_nesting_refused_without_a_crash(text: str) -> None:
    with pytest.raises(ConfigError, match=f"deep.yaml: YAML nested more than {MAX_YAML_DEPTH}"):
        safe_yaml(text, "deep.yaml")


def test_nesting_a_config_needs_is_fine() -> None:
    text = "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH
    assert safe_yaml(text, "t.yaml") is not None


@pytest.mark.parametrize("text, fragment", [
    ("patch: !!python/object/apply:os.system ['echo pwned']\n", "could not determine a "
     "constructor"),
    ("patch: !!python/name:os.system\n", "could not determine a constructor"),
    ("patch: {size: 256\n", "not valid YAML"),
])
def test_object_tags_and_bad_yaml_refused(tmp_path: Path, text: str, fragment: str) -> None:
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match="evil.yaml") as e:
        load_config("generic", cfg)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_big_and_binary_config_files(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match=r"big.yaml: 2,000,000 bytes is too large"):
        read_yaml(big)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"patch:\n  size: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bin.yaml: not a text \(UTF-8\) file: byte 15 is 0xff"):
        read_yaml(binary)


# ---------------------------------------------------------------------------- keep expressions
@pytest.mark.parametrize("expr, fragment", [
    ("__import__('os').system('echo pwned')", "Call is not allowed"),
    ("foreground.__class__", "Attribute is not allowed"),
    ("(lambda: 1)()", "Call is not allowed"),
    ("lambda x: x", "Lambda is not allowed"),
    ("[x for x in foreground]", "ListComp is not allowed"),
    ("any(x > 1 for x in foreground)", "Call is not allowed"),
    ("{x for x in foreground}", "SetComp is not allowed"),
    ("foreground ** 99999999", "Pow is not allowed"),
    ("9 ** 9 ** 9 ** 9", "Pow is not allowed"),
    ("foreground[0] > 1", "Subscript is not allowed"),
    ("'a' * 10**9", "only numbers are allowed"),
    ("(" * 300 + "foreground" + ")" * 300, "too many nested parentheses"),
    (" + ".join(["foreground"] * 1000), f"longer than {MAX_KEEP_CHARS:,} characters"),
    ("secret > 1", "unknown column 'secret'"),
    ("foreground >", "not a valid expression"),
])
def test_keep_rejects_in_one_line(expr: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        evaluate_keep(expr, SCORES)
    msg = str(e.value)
    assert msg.startswith("score.keep expression") and fragment in msg, msg
    assert "\n" not in msg and len(msg) < 400, msg  # one line, a long expression shortened
    assert "known columns: foreground, sharpness" in msg


def test_keep_still_evaluates() -> None:
    keep = evaluate_keep("foreground > 0.5 and not sharpness < 20", SCORES)
    assert keep.tolist() == [False, True, True]  # NaN < 20 is false, so 'not' keeps it
    assert evaluate_keep("foreground * 2 - 1 >= 0.8", SCORES).tolist() == [False, True, True]


# ---------------------------------------------------------------------------- annotations
def feature_collection(*rings: list[list[float]], name: str | None = None) -> dict:
    props = {"classification": {"name": name}} if name else {}
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": props,
         "geometry": {"type": "Polygon", "coordinates": [ring]}} for ring in rings]}


def write_json(path: Path, data: dict | str) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


SQUARE = [[100, 100], [600, 100], [600, 600], [100, 600], [100, 100]]


@pytest.mark.parametrize("ring, fragment", [
    ([[100, 100], [math.nan, 100], [600, 600], [100, 100]], "a coordinate is NaN or infinite"),
    ([[100, 100], [math.inf, 100], [600, 600], [100, 100]], "a coordinate is NaN or infinite"),
    ([[1e300, 1e300], [2e300, 1e300], [2e300, 2e300], [1e300, 1e300]], "coordinates reach 2e+300"),
])
def test_bad_coordinates_name_the_feature(tmp_path: Path, ring: list, fragment: str) -> None:
    path = write_json(tmp_path / "a.json", json.dumps(feature_collection(SQUARE, ring)))
    with pytest.raises(ConfigError) as e:
        ann.read_annotations(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: not usable GeoJSON: feature 1: ") and fragment in msg, msg


def test_include_polygon_off_the_image_is_an_error(tmp_path: Path) -> None:
    """An include polygon far outside the image kept 0 patches silently."""
    far = [[x + 1e8, y + 1e8] for x, y in SQUARE]
    path = write_json(tmp_path / "far.json", feature_collection(far))
    with pytest.raises(ConfigError, match=r"far.json: no include polygon lies on the image "
                                          r"\(800 x 800 level-0 px\)"):
        ann.annotation_mask(path, (100, 100), 8.0, np.ones((100, 100), bool))
    ok = write_json(tmp_path / "ok.json", feature_collection(SQUARE, far))
    assert ann.annotation_mask(ok, (100, 100), 8.0, np.ones((100, 100), bool)).any()


def test_bow_tie_is_repaired(tmp_path: Path) -> None:
    """A self-intersecting include polygon (a bow tie) is made valid: both lobes count."""
    bow = [[0, 0], [800, 800], [800, 0], [0, 800], [0, 0]]
    path = write_json(tmp_path / "bow.json", feature_collection(bow))
    m = ann.annotation_mask(path, (100, 100), 8.0)
    assert m[50, 5] and m[50, 95]  # left and right lobes
    assert not m[5, 50] and not m[95, 50]  # top and bottom: outside
    assert 0.45 < m.mean() < 0.55


def dense_circle(n: int, cx: float = 400, cy: float = 400, r: float = 300,
                 wiggle: float = 20) -> list[list[float]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rr = r + wiggle * np.sin(t * (n // 200))
    ring = np.c_[cx + rr * np.cos(t), cy + rr * np.sin(t)].tolist()
    return [*ring, ring[0]]


def test_dense_ring_rasterised_like_the_scan_conversion() -> None:
    """A ring over DENSE_RING vertices goes through indexed point-in-polygon tests; the pixels
    are those the scan conversion gives (pixel centres inside), bar ties on the boundary."""
    from shapely.geometry import Polygon

    poly = Polygon(dense_circle(ann.DENSE_RING + 5000))
    fast = ann.rasterize_polygons([poly], (100, 100), 8.0)
    old, ann.DENSE_RING = ann.DENSE_RING, 10**9
    try:
        slow = ann.rasterize_polygons([poly], (100, 100), 8.0)
    finally:
        ann.DENSE_RING = old
    assert fast.sum() > 4000
    assert (fast != slow).sum() <= 2, (fast != slow).sum()


def test_a_million_vertices_in_bounded_time_and_memory(tmp_path: Path) -> None:
    """A 1,000,000-vertex include polygon (ran past 180 s): read and rasterised in a process
    capped at 2 GB of address space and 60 s (a hang fails the test)."""
    path = write_json(tmp_path / "dense.json", feature_collection(dense_circle(1_000_000)))
    code = ("import resource\nresource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
            "import numpy as np\nfrom gigapatch.tiling.annotations import annotation_mask\n"
            f"m = annotation_mask({str(path)!r}, (200, 200), 4.0)\nprint(int(m.sum()))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    area = math.pi * 300**2 / 16  # the circle in mask px (the wiggle averages out)
    assert abs(int(res.stdout) - area) < 0.05 * area


def test_vertex_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ann, "MAX_VERTICES", 10)
    path = write_json(tmp_path / "many.json", feature_collection(SQUARE, SQUARE, SQUARE))
    with pytest.raises(ConfigError, match=r"many.json: not usable GeoJSON: more than 10 "
                                          r"vertices \(feature 2\)"):
        ann.read_annotations(path)


@pytest.mark.parametrize("text, fragment", [
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": 5, '
     '"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}]}',
     "'properties' is not an object"),
    ('{"type": "Polygon", "coordinates": [[["a", 0], [1, 0], [1, 1]]]}', "bad geometry"),
    ('{"type": "Polygon", "coordinates": 7}', "bad geometry"),
])
def test_malformed_geojson_in_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = write_json(tmp_path / "bad.json", text)
    with pytest.raises(ConfigError) as e:
        ann.read_annotations(path)
    assert str(e.value).startswith(f"{path}: ") and fragment in str(e.value), str(e.value)
    assert "\n" not in str(e.value)

