"""The benchmark script and its synthetic slide, at a tiny size, so that neither can rot."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_paths import BENCHMARKS as BENCH

sys.path.insert(0, str(BENCH))

import synthetic_slide as ss


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> ss.SlideInfo:
    return ss.make_slide(tmp_path_factory.mktemp("slide") / "s.svs", 3000, seed=3)


def test_slide_is_svs_like_for_openslide_and_tifffile(slide: ss.SlideInfo) -> None:
    import openslide
    import tifffile

    with openslide.OpenSlide(str(slide.path)) as osr:
        assert osr.properties["openslide.vendor"] == "aperio"
        assert float(osr.properties["openslide.mpp-x"]) == pytest.approx(0.25)
        assert float(osr.properties["openslide.objective-power"]) == pytest.approx(40)
        assert osr.level_dimensions == ((3000, 3000), (750, 750), (187, 187), (46, 46))
        assert "thumbnail" in osr.associated_images
        ref = np.asarray(osr.read_region((0, 0), 0, (3000, 3000)))[..., :3]
    with tifffile.TiffFile(slide.path) as tf:
        assert tf.is_svs
        series = tf.series[0]
        assert [lv.shape[:2] for lv in series.levels] == [(3000, 3000), (750, 750), (187, 187),
                                                          (46, 46)]
        page = tf.pages[0]
        assert page.is_tiled and (page.tilewidth, page.tilelength) == (256, 256)
        assert int(page.compression) == 7  # JPEG
        lv0 = page.asarray()
    np.testing.assert_array_equal(lv0, ref)  # both decoders agree on every pixel


def test_tile_classes_match_the_pixels(slide: ss.SlideInfo) -> None:
    import cv2
    import openslide

    with openslide.OpenSlide(str(slide.path)) as osr:
        rgb = np.asarray(osr.read_region((0, 0), 0, (3000, 3000)))[..., :3]
    sat = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1]
    tissue = sat > 40  # H&E-like stain is saturated, glass is not
    frac = []
    for (ty, tx), c in np.ndenumerate(slide.tile_class):
        f = tissue[ty * 256 : ty * 256 + 256, tx * 256 : tx * 256 + 256].mean()
        frac.append((c, f))
    glass = [f for c, f in frac if c == ss.GLASS]
    full = [f for c, f in frac if c == ss.TISSUE]
    edge = [f for c, f in frac if c == ss.EDGE]
    assert glass and full and edge
    assert max(glass) < 0.01
    assert min(full) > 0.9
    assert 0.0 < np.mean(edge) < 1.0
    assert slide.tissue_fraction == pytest.approx(0.25, abs=0.01)
    assert abs(tissue.mean() - 0.25) < 0.05


def test_classify_agrees_with_the_interpolated_field() -> None:
    field = ss.tissue_field(5000, 0.3, seed=1)
    for li, d in enumerate((1, 4)):
        src = ss._TileSource(5000, 256, (1, 4), field, seed=1, quality=80, n_bank=2, n_glass=1)
        cls = src.classes[li]
        for (ty, tx), c in np.ndenumerate(cls):
            m = src._mask(d, ty, tx)
            if c == ss.TISSUE:
                assert m.all()
            elif c == ss.GLASS:
                assert not m.any()


def test_slide_is_deterministic(tmp_path: Path) -> None:
    a = ss.make_slide(tmp_path / "a.svs", 1500, seed=5)
    b = ss.make_slide(tmp_path / "b.svs", 1500, seed=5)
    c = ss.make_slide(tmp_path / "c.svs", 1500, seed=6)

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    assert digest(a.path) == digest(b.path)
    assert digest(a.path) != digest(c.path)
    np.testing.assert_array_equal(a.tile_class, b.tile_class)


@pytest.mark.slow
def test_run_script_smoke(tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    dump = tmp_path / "r.json"
    cmd = [sys.executable, str(BENCH / "run.py"), "--sizes", "3000", "--quick", "--repeats", "1",
           "--warmup", "0", "--no-reference", "--workdir", str(tmp_path / "work"),
           "--results", str(results), "--json", str(dump), "--checks", "4",
           "--openslide-patches", "20"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = results.read_text()
    assert "| figure | 3k | target |" in table
    assert "mask + coords" in table and "extraction" in table
    (r,) = json.loads(dump.read_text())
    assert r["errors"] == []
    for key in ("decode_1", "decode_2", "encode_1", "openslide_1", "gp_wall", "gp_rss",
                "extract_grid", "extract_grid_nopass", "extract_opt", "extract_grid_tar",
                "extract_grid_nopass_tar", "adj_decode_2"):
        assert r[key] > 0, key
    # the CLI (pathology's default border placement) and tile_image keep the same patches
    assert r["gp_n"] == r["border_n"] >= r["grid_n"] > 0
    assert 0 < r["grid_cov"] <= 1 and 0 < r["opt_cov"] <= 1
    # the fast reader gives OpenSlide's pixels; passthrough files are the stored tiles
    assert r["extract_grid_pix"]["read_maxdiff"] == 0
    assert r["extract_grid_pix"]["file_maxdiff"] == 0
    assert r["extract_grid_nopass_pix"]["file_psnr"] > 35  # re-encoded at q90
    assert "n/a" in table  # hs2p skipped: its cells read n/a


def test_per_image_script_tiles_in_one_process_with_the_flags_given(
    slide: ss.SlideInfo, capsys: pytest.CaptureFixture[str]
) -> None:
    import per_image

    import gigapatch

    sets = ["patch.placement=grid", "score.sharpness=false"]
    assert per_image.main([str(slide.path), "--repeats", "2", "--warmup", "0", "--set", sets[0],
                           "--set", sets[1]]) == 0
    line = capsys.readouterr().out
    config = gigapatch.load_config("pathology", None, per_image.parse_sets(sets))
    assert config.patch.placement == "grid" and config.score.sharpness is False
    n = len(gigapatch.tile_image(slide.path, config, None))
    assert n > 0 and line.startswith(f"s.svs: {n} patches; per image ")
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        per_image.parse_sets(["patch.size"])


def test_lp_bound_is_exact_on_known_covers_and_between_the_line_bound_and_a_placement() -> None:
    """The LP bound of benchmarks/placement.py: exact where the optimum is known, never above a
    real cover's count, never below the line bound (a feasible solution of the LP's dual)."""
    import cv2
    from placement import line_bound, lp_bound

    from gigapatch import coverage_report, optimal_coords

    m = np.zeros((40, 40), bool)
    m[4:28, 8:24] = True  # 3 x 2 patches of 8 px, tiled exactly: area bound = 6
    assert lp_bound(m, 8) == pytest.approx(6.0, abs=1e-6)
    m = np.zeros((40, 40), bool)
    m[5:13, 3:12] = True  # 9 px wide: pixels 3 and 11 share no patch, so 2
    assert lp_bound(m, 8) == pytest.approx(2.0, abs=1e-6)
    m[30:38, 30:38] = True  # a second group, solved apart: one more patch
    assert lp_bound(m, 8) == pytest.approx(3.0, abs=1e-6)

    rng = np.random.default_rng(5)
    m = np.zeros((96, 96), np.uint8)
    for _ in range(4):
        c = rng.integers(20, 76, 2)
        ax = rng.integers(6, 18, 2)
        cv2.ellipse(m, (int(c[0]), int(c[1])), (int(ax[0]), int(ax[1])),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
    m = m.astype(bool)
    lp = lp_bound(m, 8)
    opt = optimal_coords(m, 8.0, 64, 64, (768, 768), min_foreground=0.0)
    assert coverage_report(m, 8.0, opt, 64)["coverage"] == 1.0
    assert max(line_bound(m, 8), line_bound(m.T, 8)) - 1e-6 <= lp <= len(opt) + 1e-6
    # a budget (pixels allowed uncovered) can only lower it
    assert lp_bound(m, 8, budget=20) <= lp + 1e-6


def test_versions_script_splits_each_process_and_runs_a_baseline_both_ways(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """benchmarks/versions.py with this interpreter as its own baseline: every row is there, and
    a stamped process's start-up, main() and teardown add up to no more than its wall time."""
    import versions

    assert versions.flag_sets(["--no-sharpness", "--set", "a.b=1", "--quiet"]) == [
        "score.sharpness=false", "a.b=1"]
    with pytest.raises(SystemExit, match="LABEL=VALUE"):
        versions.main(["--baseline", sys.executable])
    assert versions.main(["--baseline", f"self={sys.executable}", "--sizes", "3000",
                          "--repeats", "1", "--warmup", "0", "--per-image-repeats", "1",
                          "--per-image-rounds", "1",
                          "--workdir", str(tmp_path), "--no-reference", "--cohort", "2"]) == 0
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 10 and cells[1] == "3k":
            rows[cells[0]] = cells[2:]
    assert set(rows) == {"this checkout", "this checkout, grid placement", "self as it ships",
                         "self, plain exit", "this checkout, one worker"}
    one = rows.pop("this checkout, one worker")  # a cohort figure only
    assert one[:6] == ["-"] * 6 and float(one[6]) > 0
    for label in ("this checkout", "self, plain exit"):
        wall, _, start, main, after, per_image, cohort, _ = (float(v) if v != "-" else None
                                                             for v in rows[label])
        assert start > 0 and main > 0 and after > 0 and per_image > 0
        assert start + main + after <= wall + 0.002  # four figures rounded to the ms
        # a figure only: how it compares with one process is the benchmark's to say, not a
        # test's (on a loaded 2-core runner, two images in a fresh pool took longer than one
        # process); that each cohort run tiles its own folder is checked below
        assert cohort is not None and cohort > 0
    assert rows["self as it ships"][2:5] == ["-", "-", "-"]


def test_versions_cohort_commands_write_into_their_own_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every cohort command tiles the folder of copies into the folder it is timed with (a run
    into another command's folder would find the images done and skip them)."""
    import argparse

    import versions

    slide = tmp_path / "s.svs"
    slide.write_bytes(b"")
    cmds = {label: ([sys.executable, "-m", "gigapatch", "tile", str(slide), "--out",
                     str(tmp_path / f"out-{i}")], tmp_path / f"out-{i}", None)
            for i, label in enumerate(["this checkout", "old"])}
    cmds["hs2p 6.1.0"] = (["hs2p"], tmp_path / "out-hs2p", None)
    seen = {}

    def fake_time(many, repeats, warmup, env):  # type: ignore[no-untyped-def]
        seen.update(many)
        return {label: {"wall": 4.0} for label in many}

    monkeypatch.setattr(versions, "time_commands", fake_time)
    args = argparse.Namespace(cohort=4, repeats=1, warmup=0)
    per = versions.cohort_runs(cmds, slide, "hs2p-python", args, {}, tmp_path)
    assert per == {label: 1.0 for label in [*cmds, "this checkout, one worker"]}
    folders = set()
    for label, (cmd, out, _) in seen.items():
        if label == "hs2p 6.1.0":
            assert str(out) in cmd and str(slide) not in cmd
            assert len([a for a in cmd if a.endswith(".svs")]) == 4  # the copies
            continue
        assert cmd[cmd.index("--out") + 1] == str(out) and str(slide) not in cmd
        folders.add(out)
    assert len(folders) == 3
    assert seen["this checkout, one worker"][0][-2:] == ["--workers", "1"]
