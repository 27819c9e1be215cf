"""The command line on real slides and on bad input (one line, non-zero exit, no traceback)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gigapatch import PatchSet, coverage_report

SLIDES = [
    "CMU-1-Small-Region.svs",
    "tcga-cr-7395-01a-01-ts1.svs",
    "CMU-1-Small-Region.generic-pyramid.tiff",
    "CMU-1-Small-Region.pyramid.ome.tiff",
    "kidney-48-5.tif",
]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gigapatch", *args], capture_output=True, text=True, cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def tiled_all(pathology_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiled")
    res = run_cli("tile", *[str(pathology_dir / s) for s in SLIDES], "--domain", "pathology",
                  "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.parametrize("name", SLIDES)
def test_tile_every_shared_slide(tiled_all: Path, name: str) -> None:
    stem = name.removesuffix(".ome.tiff") if name.endswith(".ome.tiff") else name.rsplit(".", 1)[0]
    h5 = tiled_all / f"{stem}.h5"
    assert h5.is_file(), sorted(p.name for p in tiled_all.iterdir())
    assert (tiled_all / f"{stem}_overlay.png").is_file()
    ps = PatchSet.read(h5)
    w, h = ps.attrs["level0_width"], ps.attrs["level0_height"]
    size = ps.patch_size_level0
    if name == "kidney-48-5.tif":
        # a ~120 x 50 px fragment, smaller than one 256 px patch: loud but valid -- an empty
        # coords file and an "empty" row in the summary that says so
        assert ps.coords.shape == (0, 2)
        summary = (tiled_all / "summary.csv").read_text()
        assert any("kidney" in ln and ",empty," in ln for ln in summary.splitlines())
        return
    assert len(ps) > 0
    assert (ps.coords >= 0).all()
    assert (ps.coords[:, 0] + size <= w).all() and (ps.coords[:, 1] + size <= h).all()
    assert (ps.scores["foreground"] >= 0.5).all()


def test_cmu_patches_sit_on_tissue(tiled_all: Path, pathology_dir: Path) -> None:
    """Kept patches agree with histolab's tissue mask (a loose, independent reference)."""
    ps = PatchSet.read(tiled_all / "CMU-1-Small-Region.h5")
    ref = np.load(pathology_dir / "reference_masks" / "histolab-tissue-mask-cmu-1-small-region.npy")
    sy = ref.shape[0] / ps.attrs["level0_height"]
    sx = ref.shape[1] / ps.attrs["level0_width"]
    size = ps.patch_size_level0
    fractions = []
    for x, y in ps.coords:
        win = ref[int(y * sy): int((y + size) * sy) + 1, int(x * sx): int((x + size) * sx) + 1]
        fractions.append(win.mean())
    assert np.mean(fractions) > 0.8, np.mean(fractions)


def test_summary_and_mpp_recorded(tiled_all: Path) -> None:
    summary = (tiled_all / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("image_id,path,status")
    assert len(summary) == 1 + len(SLIDES)
    ps = PatchSet.read(tiled_all / "CMU-1-Small-Region.h5")
    assert ps.attrs["mpp"] == pytest.approx(0.499)
    tcga = PatchSet.read(tiled_all / "tcga-cr-7395-01a-01-ts1.h5")
    assert tcga.attrs["mpp"] is None  # unknown: left out of the h5 (never NaN), read as None
    # every run reports coverage and overlap: the summary repeats what coverage_report measures
    rows = {Path(r["path"]).name: r for r in csv.DictReader(summary)}
    row = rows["CMU-1-Small-Region.svs"]
    cov = coverage_report(ps.mask, ps.mask_downsample, ps.coords, ps.patch_size_level0)
    assert float(row["coverage"]) == pytest.approx(cov["coverage"], abs=1e-6)
    assert 0.0 < float(row["coverage"]) < 1.0  # min_foreground drops patches on little tissue
    # pathology's border placement: the aligned grid (stride == size, never overlapping itself)
    # plus patches shifted onto the border, which overlap it; the summary reports that overlap
    assert float(row["overlap"]) == pytest.approx(cov["overlap"], abs=1e-6)
    aligned = (ps.coords % ps.patch_size_level0 == 0).all(axis=1)
    assert 0 < aligned.sum() < len(ps)
    grid_only = coverage_report(ps.mask, ps.mask_downsample, ps.coords[aligned],
                                ps.patch_size_level0)
    assert grid_only["overlap"] == 0.0 < float(row["overlap"]) < 0.5


def _assert_one_line_error(res: subprocess.CompletedProcess, needle: str) -> None:
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert needle in lines[0], lines[0]


def test_bad_inputs_give_one_line(tmp_path: Path, pathology_dir: Path) -> None:
    out = tmp_path / "out"
    _assert_one_line_error(run_cli("tile", str(tmp_path / "nope.svs"), "--out", str(out)), "nope.svs")
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    _assert_one_line_error(run_cli("tile", str(empty_dir), "--out", str(out)), "empty_dir")
    empty = tmp_path / "empty.svs"
    empty.write_bytes(b"")
    _assert_one_line_error(run_cli("tile", str(empty), "--out", str(out)), "empty.svs")
    text = tmp_path / "notes.tiff"
    text.write_text("this is not an image\n" * 10)
    _assert_one_line_error(run_cli("tile", str(text), "--out", str(out)), "notes.tiff")
    trunc = tmp_path / "truncated.svs"
    data = (pathology_dir / "CMU-1-Small-Region.svs").read_bytes()
    trunc.write_bytes(data[: len(data) // 3])
    _assert_one_line_error(run_cli("tile", str(trunc), "--out", str(out)), "truncated.svs")
    # nothing half-written: no output, no temporary file (the records say what failed)
    if out.exists():
        assert not list(out.glob("*.h5"))
        assert [p.name for p in out.glob(".*")] in ([], [".gigapatch"])
        assert not list(out.rglob("*.tmp"))


def test_one_bad_image_in_a_cohort_is_recorded_and_the_rest_finish(tmp_path: Path, pathology_dir: Path) -> None:
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    shutil.copy(pathology_dir / "CMU-1-Small-Region.svs", cohort / "good.svs")
    (cohort / "bad.svs").write_bytes(b"garbage" * 100)
    out = tmp_path / "out"
    res = run_cli("tile", str(cohort), "--out", str(out), "--quiet", "--no-sharpness")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and "bad.svs" in res.stderr
    assert (out / "good.h5").is_file() and not (out / "bad.h5").exists()
    summary = (out / "summary.csv").read_text()
    assert "error" in summary and "ok" in summary


def test_small_patches_on_the_sparse_kidney_slide(tmp_path: Path, pathology_dir: Path) -> None:
    out = tmp_path / "out"
    # the fragment is about 120 x 50 px: 32 px patches find it, and nothing on the glass
    res = run_cli("tile", str(pathology_dir / "kidney-48-5.tif"), "--out", str(out), "--quiet",
                  "--patch-size", "32", "--min-foreground", "0.5")
    assert res.returncode == 0, res.stderr
    ps = PatchSet.read(out / "kidney-48-5.h5")
    assert 2 <= len(ps) <= 12
    ref = np.load(pathology_dir / "reference_masks" / "histolab-tissue-mask-kidney-48-5.npy")
    sy, sx = ref.shape[0] / 901, ref.shape[1] / 1493
    hits = [ref[int((y + 16) * sy), int((x + 16) * sx)] for x, y in ps.coords]
    assert all(hits)


def test_info_and_plugins() -> None:
    res = run_cli("plugins")
    assert res.returncode == 0 and "pathology" in res.stdout and "builtin" in res.stdout


def test_info_reports_levels(pathology_dir: Path) -> None:
    res = run_cli("info", str(pathology_dir / "CMU-1-Small-Region.pyramid.ome.tiff"))
    assert res.returncode == 0, res.stderr
    assert "0.499" in res.stdout and "tifffile" in res.stdout


def test_extract_writes_patches(tmp_path: Path, pathology_dir: Path) -> None:
    out = tmp_path / "out"
    res = run_cli("tile", str(pathology_dir / "CMU-1-Small-Region.svs"), "--out", str(out),
                  "--extract", "--quiet", "--no-sharpness")
    assert res.returncode == 0, res.stderr
    ps = PatchSet.read(out / "CMU-1-Small-Region.h5")
    files = sorted((out / "CMU-1-Small-Region").glob("*.jpg"))
    assert len(files) == len(ps) > 0


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    res = run_cli("demo", "--out", str(tmp_path / "demo"), "--size", "3072", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "patches kept" in res.stdout
    (h5,) = (tmp_path / "demo").rglob("*.h5")
    ps = PatchSet.read(h5)
    assert len(ps) > 0 and (ps.scores["foreground"] >= 0.5).all()


def test_physical_sizes_need_an_mpp(tmp_path: Path, pathology_dir: Path) -> None:
    tcga = str(pathology_dir / "tcga-cr-7395-01a-01-ts1.svs")
    out = tmp_path / "out"
    res = run_cli("tile", tcga, "--mpp", "0.5", "--out", str(out), "--quiet", "--no-sharpness")
    _assert_one_line_error(res, "--slide-mpp")
    assert "tcga-cr-7395-01a-01-ts1.svs" in res.stderr and not list(out.glob("*.h5"))
    res = run_cli("tile", tcga, "--mpp", "0.5", "--slide-mpp", "0.25", "--out", str(out), "--quiet",
                  "--no-sharpness")
    assert res.returncode == 0, res.stderr
    ps = PatchSet.read(out / "tcga-cr-7395-01a-01-ts1.h5")
    assert ps.attrs["mpp"] == 0.25 and ps.attrs["resize_factor"] == 2.0 and len(ps) > 0
    res = run_cli("tile", str(pathology_dir / "CMU-1-Small-Region.svs"), "--mpp", "1.0", "--out",
                  str(out), "--quiet", "--no-sharpness")
    assert res.returncode == 0, res.stderr
    ps = PatchSet.read(out / "CMU-1-Small-Region.h5")
    assert ps.attrs["patch_level"] == 0
    assert ps.attrs["resize_factor"] == pytest.approx(2.0, rel=0.01)
    assert ps.attrs["target_mpp"] == 1.0 and ps.attrs["effective_mpp"] == pytest.approx(1.0, rel=0.01)


def test_manifest_gives_a_per_image_mpp(tmp_path: Path, pathology_dir: Path) -> None:
    tcga = pathology_dir / "tcga-cr-7395-01a-01-ts1.svs"
    cmu = pathology_dir / "CMU-1-Small-Region.svs"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,slide_mpp\n{tcga},0.25\n{cmu},\n")
    out = tmp_path / "out"
    res = run_cli("tile", str(tcga), str(cmu), "--mpp", "0.5", "--manifest", str(manifest),
                  "--out", str(out), "--quiet", "--no-sharpness")
    assert res.returncode == 0, res.stderr
    assert PatchSet.read(out / "tcga-cr-7395-01a-01-ts1.h5").attrs["mpp"] == 0.25
    assert PatchSet.read(out / "CMU-1-Small-Region.h5").attrs["mpp"] == pytest.approx(0.499)


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    """An unknown flag gets click's usage message and exit code 2, not a generic error line."""
    res = run_cli("tile", str(tmp_path), "--no-such-flag")
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "No such option: --no-such-flag" in res.stderr
    assert "Usage:" in res.stderr


def test_console_exits_at_once_after_core_commands_with_everything_written(tmp_path: Path) -> None:
    """The ``gigapatch`` entry point skips the interpreter's teardown after a core command: its
    piped output still arrives whole, and its status is the command's."""
    res = run_cli("plugins")
    assert res.returncode == 0, res.stderr
    assert all(name in res.stdout for name in ("builtin", "pathology", "satellite", "metal_surface"))
    bad = run_cli("tile", str(tmp_path / "missing.svs"), "--out", str(tmp_path / "o"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "missing.svs" in bad.stderr


def test_console_still_runs_exit_handlers(tmp_path: Path) -> None:
    """A plugin's atexit handler runs before the quick exit, and the status is kept."""
    flag = tmp_path / "ran"
    code = (f"import atexit, pathlib; atexit.register(pathlib.Path({str(flag)!r}).write_text, 'x')\n"
            "from gigapatch.cli import console; console(['tile', 'no-such.svs', '--out', 'o'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert res.returncode == 2 and "no-such.svs" in res.stderr
    assert flag.read_text() == "x"


def test_console_leaves_other_commands_to_the_interpreter(capsys: pytest.CaptureFixture) -> None:
    from gigapatch.cli import console

    assert console(["--help"]) is None  # not a core command: it returns (this process lives on)
    assert "Usage" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:  # ... and a failing one raises its status as main does
        console(["train", "--no-such-option"])
    assert e.value.code == 2


def test_an_empty_image_warns_once(tmp_path: Path) -> None:
    """The library logs the warning; the CLI does not print it a second time."""
    import cv2

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 400, 3), 245, np.uint8))
    for quiet in ((), ("--quiet",)):  # a fresh --out each: a rerun skips the done image
        res = run_cli("tile", str(blank), "--out", str(tmp_path / f"out{len(quiet)}"), *quiet)
        assert res.returncode == 0, res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "blank" in lines[0] and "almost no foreground" in lines[0], lines
    # two images in two worker processes: each warning once, by the CLI from the image's record
    other = tmp_path / "blank2.png"
    cv2.imwrite(str(other), np.full((300, 400, 3), 245, np.uint8))
    res = run_cli("tile", str(blank), str(other), "--out", str(tmp_path / "pool"), "--workers", "2",
                  "--quiet")
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2 and all("almost no foreground" in ln for ln in lines), lines
    assert sum("blank:" in ln for ln in lines) == 1 and sum("blank2:" in ln for ln in lines) == 1


def test_info_keeps_long_file_names_on_one_line(tmp_path: Path, pathology_dir: Path) -> None:
    """File names are printed whole (rich wraps at 80 columns when the output is a pipe); a cut
    file among them is one error line naming it, and the others are still shown."""
    folder = tmp_path / ("a_folder_with_a_rather_long_name_" * 3) / "and_a_second_level"
    folder.mkdir(parents=True)
    long_name = folder / "CMU-1-Small-Region_with_a_long_name.svs"
    shutil.copy(pathology_dir / "CMU-1-Small-Region.svs", long_name)
    data = long_name.read_bytes()
    (folder / "cut.svs").write_bytes(data[: len(data) // 2])
    res = run_cli("info", str(folder))
    assert res.returncode == 1  # one of two images failed
    assert str(long_name) in res.stdout.splitlines()
    assert any(ln.startswith("reader: tifffile") and "mpp: 0.499" in ln
               for ln in res.stdout.splitlines())
    _assert_one_line_error(res, f"{folder / 'cut.svs'}: truncated file")
