"""Outputs reachable from the CLI and read right by their consumers: WebDataset shards whose keys
never collide across images and whose samples carry their scores, tables with the image id, the
contact sheet, and ``tile --help`` naming them."""

from __future__ import annotations

import csv
import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from helpers_cli import run_cli
from PIL import Image as PILImage

from gigapatch import PatchSet, contact_sheet, open_image, write_pyramidal_tiff

#: WebDataset's split of a member name into sample key and extension (``tariterators``): the
#: key runs to the first dot of the last path component
WDS_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")


def slide_like(seed: int, size: int = 1024) -> np.ndarray:
    """A pink textured square of 'tissue' on near-white glass."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 242, np.float32) + rng.normal(0, 2, (size, size, 1))
    m = np.zeros((size, size), bool)
    m[128:896, 128:896] = True
    tissue = np.array([215, 140, 190], np.float32) + rng.normal(0, 12, (size, size, 1)) * [0.5, 1, 0.6]
    img[m] = tissue[m]
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def two_slides(tmp_path_factory) -> list[Path]:
    """Two TIFF 'slides' whose patches sit at the same x, y (ids with dots, as real ones have)."""
    d = tmp_path_factory.mktemp("slides")
    paths = []
    for k, name in enumerate(("case.1.a.tif", "case.2.b.tif")):
        paths.append(write_pyramidal_tiff(d / name, slide_like(k), mpp=0.5))
    return paths


def wds_samples(shards: list[Path]) -> dict[str, dict[str, bytes]]:
    """WebDataset's grouping: consecutive members with one key form a sample (key -> ext -> bytes);
    a key seen twice would be two samples, so it is an error here."""
    samples: dict[str, dict[str, bytes]] = {}
    for shard in shards:
        last = None
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                key, ext = WDS_KEY.match(m.name).groups()
                if key != last:
                    assert key not in samples, f"key {key} in two samples"
                    samples[key] = {}
                    last = key
                samples[key][ext] = tar.extractfile(m).read()
    return samples


@pytest.mark.slow
def test_tar_shards_of_two_images_never_collide_and_carry_scores(
    two_slides: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    res = run_cli("tile", *map(str, two_slides), "--out", str(out), "--extract", "--format", "tar",
                  "--patch-size", "128", "--set", "output.table=parquet", "-q")
    assert res.returncode == 0, res.stderr[-2000:]
    ids = [p.stem for p in two_slides]
    shards = sorted(out.glob("*/shard-*.tar"))
    assert {s.parent.name for s in shards} == set(ids)
    samples = wds_samples(shards)
    sets = {i: PatchSet.read(out / f"{i}.h5") for i in ids}
    assert len(samples) == sum(len(ps) for ps in sets.values())  # every patch, no key twice
    xy = [{tuple(c) for c in ps.coords.tolist()} for ps in sets.values()]
    assert xy[0] & xy[1], "the two slides should share patch positions for this test"
    for image_id, ps in sets.items():
        for k, (x, y) in enumerate(ps.coords.tolist()):
            sample = samples[f"{image_id}/{x}_{y}"]
            assert set(sample) == {"jpg", "json"}
            meta = json.loads(sample["json"])
            assert (meta["image_id"], meta["x"], meta["y"]) == (image_id, x, y)
            assert meta["foreground"] == pytest.approx(float(ps.scores["foreground"][k]), abs=1e-6)
            assert set(ps.scores) <= set(meta) and "region" in meta and meta["size"] == 128
            assert PILImage.open(io.BytesIO(sample["jpg"])).size == (128, 128)
    # the tables say which image each row is from
    import pyarrow.parquet as pq

    for image_id in ids:
        table = pq.read_table(out / f"{image_id}.parquet").to_pydict()
        assert list(table)[0] == "image_id" and set(table["image_id"]) == {image_id}


def test_csv_table_carries_the_image_id(tmp_path: Path) -> None:
    ps = PatchSet("slide.7", np.array([[0, 0], [256, 0]]), {"foreground": np.ones(2, np.float32)},
                  attrs={"patch_size": 256, "patch_size_level0": 256, "patch_level": 0})
    rows = list(csv.DictReader(io.StringIO(ps.write_table(tmp_path / "t.csv").read_text())))
    assert [r["image_id"] for r in rows] == ["slide.7", "slide.7"]
    assert [r["x"] for r in rows] == ["0", "256"]


def test_contact_sheet_from_the_cli_and_from_a_patchset(two_slides: list[Path], tmp_path: Path) -> None:
    res = run_cli("tile", str(two_slides[0]), "--out", str(tmp_path), "--contact-sheet",
                  "--mpp", "1.0", "--patch-size", "96", "-q")
    assert res.returncode == 0, res.stderr[-2000:]
    image_id = two_slides[0].stem
    sheet = np.asarray(PILImage.open(tmp_path / f"{image_id}_contact.png"))
    ps = PatchSet.read(tmp_path / f"{image_id}.h5")
    # what a user writes in Python, with the PatchSet read back (its geometry: read at level 0,
    # resized from 192 px to 96)
    g = ps.geometry
    assert (g.size, g.read_size, g.level, g.size_level0) == (96, 192, 0, 192)
    with open_image(two_slides[0]) as img:
        again = contact_sheet(img, ps.coords, g, ps.scores, "foreground")
    assert sheet.shape == again.shape and np.array_equal(sheet, again)


def test_tile_help_names_every_output(tmp_path: Path) -> None:
    res = run_cli("tile", "--help")
    text = " ".join(res.stdout.replace("│", " ").split())  # rich's boxes wrap the help
    for needle in ("--format", "tar", "WebDataset", "--contact-sheet", "--geojson", "--set",
                   "plugin.<domain>", "gigapatch plugins"):
        assert needle in text, needle


def test_a_bad_format_is_one_line(two_slides: list[Path], tmp_path: Path) -> None:
    res = run_cli("tile", str(two_slides[0]), "--out", str(tmp_path), "--extract", "--format", "gif")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "output.format" in res.stderr and "tar" in res.stderr


# --------------------------------------------------------------------------- a domain's own outputs


@pytest.mark.slow
def test_a_domains_own_outputs_come_from_the_cli(
    metal_surface_dir: Path, satellite_dir: Path, tmp_path: Path
) -> None:
    """Metal VOC labels and defect records, satellite footprints: switched by --set, no Python."""
    from helpers_geojson import invalid_geojson

    src = tmp_path / "steel"
    src.mkdir()
    for ext in ("jpg", "xml"):  # the Pascal-VOC file beside the image is what labels it
        (src / f"inclusion_1.{ext}").write_bytes((metal_surface_dir / f"inclusion_1.{ext}").read_bytes())
    res = run_cli("tile", str(src / "inclusion_1.jpg"), "--domain", "metal_surface",
                  "--patch-size", "40", "--out", str(tmp_path / "m"), "-q")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "m" / "inclusion_1.csv").open()))
    assert {r["label"] for r in rows} >= {"inclusion"}
    assert (tmp_path / "m" / "inclusion_1_defects.geojson").is_file()
    res = run_cli("tile", str(satellite_dir / "RGB.byte.tif"), "--set",
                  "plugin.satellite.footprints=native", "--out", str(tmp_path / "s"), "-q")
    assert res.returncode == 0, res.stderr[-2000:]
    footprints = tmp_path / "s" / "RGB.byte_footprints.geojson"
    n = len(PatchSet.read(tmp_path / "s" / "RGB.byte.h5"))
    assert n > 0 and len(json.loads(footprints.read_text())["features"]) == n
    assert invalid_geojson(sorted(tmp_path.rglob("*.geojson"))) == []
