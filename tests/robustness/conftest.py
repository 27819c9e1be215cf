"""Fixtures of the robustness tests (the plain helpers are in helpers_robustness.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers_robustness import write_tiff


@pytest.fixture(scope="session")
def small_rgb_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512 x 768 tiled RGB TIFF with a dark blob on white (foreground for every domain)."""
    from helpers_tiff import smooth_rgb

    img = np.full((512, 768, 3), 245, np.uint8)
    img[96:416, 128:640] = smooth_rgb(320, 512, seed=3) // 2
    return write_tiff(tmp_path_factory.mktemp("rgb") / "small.tiff", img, tile=(256, 256),
                      photometric="rgb")


@pytest.fixture
def tmp_copy(tmp_path: Path) -> Callable[[Path, str], Path]:
    """``tmp_copy(src, name)``: a private copy of ``src`` under ``tmp_path`` named ``name``."""

    def copy(src: Path, name: str) -> Path:
        dst = tmp_path / "in" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return dst

    return copy
