"""The wheel must carry every subpackage: build it, install it apart, import every module."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers_paths import REPO

pytestmark = pytest.mark.slow


def clean_source(dest: Path) -> Path:
    """The files the wheel is built from, copied out of the checkout: a build there reuses its
    ignored build/ folder, where modules deleted from the sources linger."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("core", "plugins"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_wheel_installs_and_imports_every_module(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    src = clean_source(tmp_path / "src")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheel_dir), str(src)],
        check=True, capture_output=True,
    )
    (wheel,) = wheel_dir.glob("gigapatch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = sorted(
        n[:-3].replace("/", ".").removesuffix(".__init__")
        for n in names if n.endswith(".py") and not n.endswith("__main__.py")
    )
    # every source module of the checkout must be in the wheel
    source_dirs = {
        "gigapatch": REPO / "core", "gigapatch_pathology": REPO / "plugins/pathology",
        "gigapatch_metal_surface": REPO / "plugins/metal_surface",
        "gigapatch_satellite": REPO / "plugins/satellite",
    }
    for pkg, root in source_dirs.items():
        for f in root.rglob("*.py"):
            if "__pycache__" in f.parts or f.name == "__main__.py":
                continue
            rel = f.relative_to(root).with_suffix("")
            mod = ".".join((pkg, *rel.parts)).removesuffix(".__init__")
            assert mod in modules, f"{mod} missing from the wheel"
    for data in ("gigapatch_pathology/pathology.yaml", "gigapatch_satellite/satellite.yaml",
                 "gigapatch_metal_surface/metal_surface.yaml", "gigapatch/py.typed"):
        assert data in names, data
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    code = (
        "import importlib, sys\n"
        f"mods = {modules!r}\n"
        "for m in mods:\n"
        "    mod = importlib.import_module(m)\n"
        f"    assert mod.__file__.startswith({str(target)!r}), (m, mod.__file__)\n"
        "print(len(mods))\n"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert int(res.stdout.strip()) == len(modules)
