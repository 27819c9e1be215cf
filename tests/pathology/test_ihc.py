"""Tissue on IHC slides (issue #13 item 7): which slides carry eosin, haematoxylin that is not
marker ink, a pale greyish counterstain found by its optical density, synthetic IHC slides with
truth, and the real IHC slide kidney-48-5.tif against histolab's reference mask."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers_paths import need

from gigapatch import load_config, open_image, tile_image
from gigapatch_pathology.ink import pen_evidence, pen_mask
from gigapatch_pathology.stains import (
    DAB,
    GREY_HAEMATOXYLIN,
    HAEMATOXYLIN,
    ihc_from_he,
    stain_amounts,
    unit,
)
from gigapatch_pathology.synth import INK, synthetic_slide
from gigapatch_pathology.tissue import tissue_mask
from gigapatch_pathology.view import ViewStats

KIDNEY = "kidney-48-5.tif"
SIZE = (4096, 3072)


def balanced(od: np.ndarray) -> np.ndarray:
    """Pixels (n, 3) float32 on glass = 255 of optical densities ``od`` (n, 3)."""
    return (255.0 * np.exp(-np.asarray(od, np.float32))).astype(np.float32)


def test_ihc_texture_has_no_eosin_and_keeps_the_tissue():
    rng = np.random.default_rng(0)
    he = np.abs(rng.normal(0.5, 0.2, (2, 64, 64, 1))) * unit(HAEMATOXYLIN)
    ihc = ihc_from_he(he.astype(np.float32), np.random.default_rng(1))
    amounts = stain_amounts(ihc.reshape(-1, 3), (HAEMATOXYLIN, DAB))
    assert ihc.shape == he.shape and (ihc >= 0).all()
    assert (amounts[:, 0] > 0.05).mean() > 0.9  # the counterstain is where the nuclei were


@pytest.mark.parametrize("density", [0.5, 1.0, 1.5])
def test_haematoxylin_is_not_blue_ink_without_eosin(density):
    pure = balanced([unit(HAEMATOXYLIN) * density, unit(GREY_HAEMATOXYLIN) * density])
    ink = -np.log(np.asarray(INK["blue"], np.float32))
    inked = balanced([ink * 0.55 + unit(HAEMATOXYLIN) * density * 0.6, ink * 0.55])
    strong_h, _ = pen_evidence(pure, ("blue",), eosin=False)
    strong_i, _ = pen_evidence(inked, ("blue",), eosin=False)
    assert not strong_h.any() and strong_i.all()
    # the H&E rules (eosin present) are unchanged: bare dense haematoxylin reads as blue there
    if density >= 1.0:
        assert pen_evidence(pure[:1], ("blue",), eosin=True)[0].all()


@pytest.fixture(scope="module")
def ihc_slide():
    """A synthetic IHC slide (procedural texture: a pale, greyish counterstain on this seed) and
    its truth, at 1/8 of level 0."""
    img, truth = synthetic_slide(29, SIZE, None, stain="ihc", pen_width_um=(250.0, 800.0),
                                 truth_downsample=8)
    return img.read_level_downsampled(8.0), truth


@pytest.mark.slow
def test_synthetic_ihc_slide_reads_as_ihc(ihc_slide, cmu_texture):
    view, _ = ihc_slide
    assert not ViewStats(view).eosin
    he, _ = synthetic_slide(29, (2048, 1536), cmu_texture)
    assert ViewStats(he.read_level_downsampled(8.0)).eosin


@pytest.mark.slow
def test_pale_counterstain_is_tissue(ihc_slide):
    view, truth = ihc_slide
    h, w = view.shape[:2]
    clean = truth["tissue"][:h, :w] & ~truth["pen"][:h, :w]
    found = tissue_mask(view)
    saturation_only = tissue_mask(view, density_margin=0.0)

    def recall(m: np.ndarray) -> float:
        return float((m & clean).sum() / clean.sum())

    precision = (found & clean).sum() / found.sum()
    assert clean.sum() > 2000
    assert recall(found) > 0.85 and precision > 0.95
    assert recall(found) > recall(saturation_only) + 0.1  # the density rule finds the pale part
    ink = pen_mask(view)
    assert (ink & truth["pen"][:h, :w]).sum() > 0.9 * ink.sum()  # ink is ink, not tissue


@pytest.fixture(scope="module")
def kidney(pathology_dir: Path) -> Path:
    return need(pathology_dir / KIDNEY, "the IHC slide kidney-48-5.tif")


def _reference(pathology_dir: Path, shape: tuple[int, int]) -> np.ndarray:
    ref = np.load(need(pathology_dir / "reference_masks" / "histolab-tissue-mask-kidney-48-5.npy",
                       "histolab's kidney mask"))
    return cv2.resize(ref.astype(np.uint8), (shape[1], shape[0]),
                      interpolation=cv2.INTER_NEAREST).astype(bool)


def test_kidney_fragment_is_found_and_nothing_else(kidney, pathology_dir, caplog):
    with open_image(kidney) as img, caplog.at_level(logging.WARNING):
        ps = tile_image(img, load_config("pathology"))
        view = img.read_level_downsampled(8.0)
    mask = tissue_mask(view)
    ref = _reference(pathology_dir, mask.shape)
    assert ps.attrs["foreground_fraction"] >= 0.002
    assert mask.mean() >= 0.002 and (mask & ref).sum() >= 0.8 * mask.sum()
    ys, xs = np.nonzero(mask)
    assert xs.min() * 8 > 200 and ys.min() * 8 > 400  # only the fragment (x ~280-400, y ~500)
    # the grey smudges (x ~800-1250, y ~40-180) and the dark scribble (x ~250, y ~200)
    assert not mask[: 300 // 8, 750 // 8 : 1300 // 8].any()
    assert not mask[170 // 8 : 230 // 8, 220 // 8 : 300 // 8].any()
    # one fragment smaller than a 256 px patch: said so, not "almost no foreground"
    assert len(ps) == 0
    note = ps.attrs.get("foreground_note", "")
    assert "smaller than one patch" in note and "--patch-size" in note
    assert any("smaller than one patch" in r.getMessage() for r in caplog.records)
    assert not any("almost no foreground" in r.getMessage() for r in caplog.records)


def test_kidney_keeps_64_px_patches_on_the_fragment(kidney, pathology_dir, tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "gigapatch", "tile", str(kidney), "--domain", "pathology",
         "--patch-size", "64", "--out", str(tmp_path), "--quiet", "--no-overlay"],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    from gigapatch import PatchSet

    ps = PatchSet.read(tmp_path / "kidney-48-5.h5")
    assert len(ps) >= 1
    ref = _reference(pathology_dir, (901, 1493))  # level 0
    for x, y in ps.coords:
        assert ref[y : y + 64, x : x + 64].mean() > 0.9  # on the fragment
