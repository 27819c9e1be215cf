"""A cohort's inputs: files, folders, globs and manifests (CSV, Parquet) become validated tasks
with unique image ids; every problem is one error line naming the rows, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gigapatch.cohort.inputs import ImageTask, collect_tasks, unique_image_ids
from gigapatch.errors import ConfigError, ImageError
from gigapatch.outputs.run import ConfigRecipe


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"II*\0" + b"\0" * 60)  # existence is all the inputs check
    return path


def check(domain: str | None, overrides: dict) -> None:
    ConfigRecipe().config(domain or "generic", overrides)


def test_ids_are_the_stems_and_made_unique_deterministically(tmp_path: Path) -> None:
    a = touch(tmp_path / "site-a" / "s1.svs")
    b = touch(tmp_path / "site-b" / "s1.svs")
    c = touch(tmp_path / "site-a" / "s1.tiff")
    d = touch(tmp_path / "site-a" / "s2.ome.tiff")
    ids = unique_image_ids([a, b, c, d])
    assert ids[3] == "s2"  # .ome.tiff is one extension, as Image.image_id says
    assert len(set(ids)) == 4
    # the same paths in another order get the same ids
    again = dict(zip([d, c, b, a], unique_image_ids([d, c, b, a])))
    assert [again[p] for p in (a, b, c, d)] == ids
    assert unique_image_ids([a, b]) == ["site-a_s1", "site-b_s1"]


def test_files_folders_and_globs(tmp_path: Path) -> None:
    for name in ("x1.svs", "x2.svs", "notes.txt"):
        touch(tmp_path / "slides" / name)
    touch(tmp_path / "deep" / "a" / "y.tiff")
    tasks = collect_tasks([tmp_path / "slides", str(tmp_path / "deep" / "**" / "*.tiff")])
    assert [t.image_id for t in tasks] == ["x1", "x2", "y"]
    with pytest.raises(ImageError, match="no image file matches"):
        collect_tasks([str(tmp_path / "*.ndpi")])
    with pytest.raises(ImageError, match="nope.svs"):
        collect_tasks([tmp_path / "nope.svs"])
    with pytest.raises(ConfigError, match="no images given"):
        collect_tasks([])


def test_a_manifest_gives_ids_labels_splits_domains_and_overrides(tmp_path: Path) -> None:
    touch(tmp_path / "img" / "a.svs")
    touch(tmp_path / "img" / "b.svs")
    touch(tmp_path / "c.svs")
    man = tmp_path / "cohort.csv"
    man.write_text("image_id,path,label,split,domain,slide_mpp,patch.size,score.top_n\n"
                   "case-1,img/a.svs,tumour,train,pathology,0.25,512,\n"
                   ",img/b.svs,normal,test,,,,100\n")
    tasks = collect_tasks([tmp_path / "c.svs"], man, check=check)
    assert tasks[0] == ImageTask("case-1", tmp_path / "img" / "a.svs",
                                 {"patch.slide_mpp": 0.25, "patch.size": 512}, "tumour", "train",
                                 "pathology")
    assert tasks[1] == ImageTask("b", tmp_path / "img" / "b.svs", {"score.top_n": 100}, "normal",
                                 "test", None)
    assert tasks[2] == ImageTask("c", tmp_path / "c.svs")  # a path no row names joins the cohort


def test_a_parquet_manifest(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    touch(tmp_path / "a.svs")
    touch(tmp_path / "b.svs")
    man = tmp_path / "cohort.parquet"
    pq.write_table(pa.table({"image_id": ["A", "B"], "path": ["a.svs", "b.svs"],
                             "slide_mpp": [0.5, None], "label": [1, 0]}), man)
    tasks = collect_tasks([], man, check=check)
    assert [(t.image_id, t.overrides, t.label) for t in tasks] == [
        ("A", {"patch.slide_mpp": 0.5}, "1"), ("B", {}, "0")]
    pq.write_table(pa.table({"path": ["a.svs"], "slide_mpp": [-1.0]}), man)
    with pytest.raises(ConfigError, match=r"row 2 \(a\).*slide_mpp"):
        collect_tasks([], man, check=check)


@pytest.mark.parametrize(("text", "needle"), [
    ("path,colour\na.svs,red\n", "unknown column(s) 'colour'"),
    ("image_id,path\nx,a.svs\nx,b.svs\n", "rows 2 and 3: duplicate image_id 'x'"),
    ("path\na.svs\nmissing.svs\n", "row 3: " ),
    ("path,slide_mpp\na.svs,0.25\nb.svs,-0.5\n", "row 3 (b): config key 'patch.slide_mpp'"),
    ("path,slide_mpp\na.svs,fast\n", "row 2 (a): config key 'patch.slide_mpp'"),
    ("path,domain\na.svs,astronomy\n", "row 2 (a): unknown domain 'astronomy'"),
    ("image_id,path\n../up,a.svs\n", "cannot name a file"),
    ("image,file\na,a.svs\n", "a manifest needs a 'path' column"),
    ("path\n", "no rows"),
])
def test_a_bad_manifest_is_one_error_naming_the_row(tmp_path: Path, text: str, needle: str
                                                    ) -> None:
    touch(tmp_path / "a.svs")
    touch(tmp_path / "b.svs")
    man = tmp_path / "m.csv"
    man.write_text(text)
    with pytest.raises(ConfigError) as e:
        collect_tasks([], man, check=check)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and msg.startswith(str(man)), msg
    if "missing" in text:
        assert "missing.svs: no such file" in msg


def test_every_bad_row_is_named_in_the_one_line(tmp_path: Path) -> None:
    man = tmp_path / "m.csv"
    man.write_text("path\n" + "".join(f"gone{i}.svs\n" for i in range(5)))
    with pytest.raises(ConfigError) as e:
        collect_tasks([], man)
    msg = str(e.value)
    assert "row 2:" in msg and "row 4:" in msg and "(and 2 more)" in msg, msg


def test_the_cli_refuses_a_bad_manifest_before_any_work(tmp_path: Path) -> None:
    touch(tmp_path / "a.svs")
    man = tmp_path / "m.csv"
    man.write_text("image_id,path,slide_mpp\nA,a.svs,0.25\nB,gone.svs,\nC,a.svs,zero\n")
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "gigapatch", "tile", "--manifest", str(man),
                          "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "row 3: " in lines[0] and "gone.svs" in lines[0] and "row 4 (C)" in lines[0], lines
    assert not out.exists()  # before any work
