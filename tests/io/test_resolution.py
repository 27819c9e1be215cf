from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gigapatch import ArrayImage
from gigapatch.io.resolution import check_mpp, mpp_sources


class PropImage(ArrayImage):
    """An in-memory image carrying a properties dict (as a file reader would)."""

    def __init__(self, props: dict[str, Any], mpp: float | None = None, mag: float | None = None):
        super().__init__(np.zeros((256, 256, 3), np.uint8), downsamples=(2, 4), mpp=mpp,
                         magnification=mag, path="slide.svs")
        self._props = props

    @property
    def properties(self) -> dict[str, Any]:
        return self._props


def _openslide_props(path) -> dict[str, str]:
    openslide = pytest.importorskip("openslide")
    with openslide.OpenSlide(str(path)) as s:
        return dict(s.properties)


def test_real_aperio_sources_agree(pathology_dir):
    props = _openslide_props(pathology_dir / "CMU-1-Small-Region.svs")
    src = mpp_sources(PropImage(props))
    assert src["openslide.mpp-x"] == pytest.approx(0.499)
    assert src["aperio.MPP"] == pytest.approx(0.499)
    assert src["objective-power"] == pytest.approx(0.5)  # 20x with 10x = 1 um/px
    mpp, warnings = check_mpp(PropImage(props))
    assert mpp == pytest.approx(0.499)
    assert warnings == []


def test_real_file_without_mpp(pathology_dir):
    props = _openslide_props(pathology_dir / "tcga-cr-7395-01a-01-ts1.svs")
    assert "openslide.mpp-x" not in props
    mpp, warnings = check_mpp(PropImage(props))
    assert mpp is None and warnings == []


def test_real_ome_and_tiff_tags(pathology_dir):
    tifffile = pytest.importorskip("tifffile")
    with tifffile.TiffFile(pathology_dir / "CMU-1-Small-Region.pyramid.ome.tiff") as t:
        page = t.pages[0]
        props = {
            "ome_xml": t.ome_metadata,
            "tiff.XResolution": page.tags["XResolution"].value,
            "tiff.YResolution": page.tags["YResolution"].value,
            "tiff.ResolutionUnit": page.tags["ResolutionUnit"].value,  # RESUNIT enum
        }
    src = mpp_sources(PropImage(props))
    assert src["ome.PhysicalSizeX"] == pytest.approx(0.499)
    assert src["ome.PhysicalSizeY"] == pytest.approx(0.499)
    assert src["tiff.XResolution"] == pytest.approx(0.499)  # 1e7/499 px per cm
    assert check_mpp(PropImage(props)) == (pytest.approx(0.499), [])


def test_tiff_units_and_missing_unit():
    per_inch = {"tiff.XResolution": "50800", "tiff.ResolutionUnit": "inch"}
    assert mpp_sources(PropImage(per_inch))["tiff.XResolution"] == pytest.approx(0.5)
    per_cm = {"tiff.XResolution": "40000", "tiff.ResolutionUnit": "centimeter"}
    assert mpp_sources(PropImage(per_cm))["tiff.XResolution"] == pytest.approx(0.25)
    no_unit = {"tiff.XResolution": "40000", "tiff.ResolutionUnit": "none"}
    assert "tiff.XResolution" not in mpp_sources(PropImage(no_unit))
    ome_nm = {"ome.PhysicalSizeX": "250", "ome.PhysicalSizeXUnit": "nm"}
    assert mpp_sources(PropImage(ome_nm))["ome.PhysicalSizeX"] == pytest.approx(0.25)


def test_disagreement_warns_naming_each_source():
    props = {"openslide.mpp-x": "0.25", "aperio.MPP": "0.2527", "openslide.objective-power": "20"}
    mpp, warnings = check_mpp(PropImage(props))
    assert mpp == pytest.approx(0.25)
    assert len(warnings) == 1
    w = warnings[0]
    assert "slide.svs" in w
    assert "openslide.mpp-x=0.25" in w and "aperio.MPP=0.2527" in w
    assert "objective-power=0.5" in w
    # within tolerance: no warning
    assert check_mpp(PropImage(props), rel_tol=1.5)[1] == []


def test_priority_reader_mpp_sources_levels_and_bogus():
    img = PropImage(
        {"mpp_sources": {"vendor.xml": 0.26}, "level_mpp": [None, 0.52, 1.04],
         "tiff.XResolution": "72", "tiff.ResolutionUnit": "inch"},
        mpp=0.26, mag=40,
    )
    src = mpp_sources(img)
    assert src["vendor.xml"] == 0.26 and src["reader"] == 0.26
    assert src["level[1]"] == pytest.approx(0.26) and src["level[2]"] == pytest.approx(0.26)
    assert src["objective-power"] == pytest.approx(0.25)
    mpp, warnings = check_mpp(img)
    assert mpp == 0.26
    assert any("implausible" in w and "tiff.XResolution=352.8" in w for w in warnings)
    assert not any("disagree" in w for w in warnings)  # 0.25 vs 0.26 is within 5 %


def test_objective_power_alone_is_used_last():
    mpp, warnings = check_mpp(PropImage({"aperio.AppMag": "40"}))
    assert mpp == pytest.approx(0.25) and warnings == []
    assert check_mpp(PropImage({"openslide.mpp-x": "nan", "aperio.MPP": "-1"})) == (None, [])
