"""The helpers of benchmarks/quality.py: the texture each seed is drawn with, and the pooled
figures the targets are checked on."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest
from helpers_paths import BENCHMARKS, need


@pytest.fixture(scope="module")
def quality() -> ModuleType:
    """benchmarks/quality.py, imported as a module."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import quality
    finally:
        sys.path.remove(str(BENCHMARKS))
    return quality


def test_mixed_textures_take_the_real_slides_in_turn(
    quality: ModuleType, pathology_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmu = need(pathology_dir / "CMU-1-Small-Region.svs", "the CMU-1-Small-Region slide")
    tcga = need(pathology_dir / "tcga-cr-7395-01a-01-ts1.svs", "the TCGA slide")
    monkeypatch.setitem(quality.TEXTURES, "cmu", cmu)  # the data wherever the fixture found it
    monkeypatch.setitem(quality.TEXTURES, "tcga", tcga)
    names = [quality.texture_for("mixed", s)[0] for s in range(300, 306)]
    assert names == ["cmu", "tcga", "procedural"] * 2
    assert quality.texture_for("tcga", 1) == ("tcga", tcga)
    assert quality.texture_for("procedural", 1) == ("procedural", None)


def test_a_missing_texture_falls_back_to_procedural(
    quality: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(quality.TEXTURES, "cmu", tmp_path / "missing.svs")
    assert quality.texture_for("cmu", 0) == ("procedural", None)
    assert quality.texture_for("mixed", 300) == ("procedural", None)  # 300 % 3 -> cmu


def test_pooled_quality_weighs_every_kept_patch_once(quality: ModuleType) -> None:
    """benchmarks/quality.py's pooled figures: sums of areas and of patches, not slide means."""
    pool = quality.pool
    rows = [
        {"n_kept": 3.0, "covered_px": 90.0, "target_px": 100.0, "tissue_fraction": 0.9,
         "pen_bad": 1 / 3, "blur_bad": 0.0},
        {"n_kept": 97.0, "covered_px": 900.0, "target_px": 900.0, "tissue_fraction": 1.0,
         "pen_bad": 0.0, "blur_bad": 2 / 97},
    ]
    p = pool(rows)
    assert p["coverage"] == pytest.approx(990 / 1000)
    assert p["tissue_fraction"] == pytest.approx((3 * 0.9 + 97 * 1.0) / 100)
    assert p["pen_bad"] == pytest.approx(1 / 100)
    assert p["blur_bad"] == pytest.approx(2 / 100)


def test_pooled_usable_tissue_and_the_stain_of_each_seed(quality: ModuleType) -> None:
    rows = [
        {"n_kept": 10.0, "covered_px": 1.0, "target_px": 1.0, "tissue_fraction": 0.9,
         "pen_bad": 0.0, "blur_bad": 0.0, "usable_covered_px": 110.0, "usable_target_px": 100.0,
         "usable_precision": 0.9, "overlap": 0.1},
        {"n_kept": 30.0, "covered_px": 1.0, "target_px": 1.0, "tissue_fraction": 0.9,
         "pen_bad": 0.0, "blur_bad": 0.0, "usable_covered_px": 290.0, "usable_target_px": 300.0,
         "usable_precision": 1.0, "overlap": 0.0},
    ]
    p = quality.pool(rows)
    assert p["usable_cover"] == pytest.approx(400 / 400)
    assert p["usable_precision"] == pytest.approx((10 * 0.9 + 30) / 40)
    assert p["overlap"] == pytest.approx(1 / 40)
    assert quality.passes(p, quality.USABLE_TARGETS)
    hs2p = [{f"hs2p_{k}": v for k, v in r.items()} for r in rows]
    assert quality.pool(hs2p, "hs2p_") == p
    assert [quality.stain_for("mixed", s) for s in range(4)] == ["he", "ihc", "he", "ihc"]
    assert quality.stain_for("ihc", 2) == "ihc"
