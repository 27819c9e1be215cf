"""Layers enforced by tools: the import-linter contracts, mypy, a lean ``import gigapatch``, no
import cycle.

The contracts live in pyproject.toml (``[tool.importlinter]``): the core never imports a plugin,
plugins never import each other, the core's stages import only the stages below them, and plugins
import only the public API (``gigapatch`` and the ``gigapatch.training`` facade). mypy checks the
core and the three plugins with the settings of ``[tool.mypy]``.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from helpers_paths import REPO

#: package name -> its folder in the checkout (pyproject's package-dir)
PACKAGES = {
    "gigapatch": REPO / "core",
    "gigapatch_pathology": REPO / "plugins" / "pathology",
    "gigapatch_metal_surface": REPO / "plugins" / "metal_surface",
    "gigapatch_satellite": REPO / "plugins" / "satellite",
}

#: heavy optional dependencies the tiling side must never import
HEAVY = ("torch", "timm", "sklearn", "rasterio", "dask", "skimage", "shapely")


def test_import_contracts_are_kept() -> None:
    code = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    res = subprocess.run(
        [sys.executable, "-c", code, "--no-cache"], cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    kept = re.search(r"Contracts: (\d+) kept, 0 broken", res.stdout)
    assert kept is not None and int(kept[1]) >= 4, res.stdout[-2000:]


def _package_farm(root: Path) -> Path:
    """A folder of symlinks, one per package under its import name, for mypy to find them by
    name (the checkout's folders are ``core/`` and ``plugins/<domain>/``)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, folder in PACKAGES.items():
        link = root / name
        if link.is_symlink() and Path(os.readlink(link)) == folder:
            continue
        tmp = root / f".{name}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(folder, target_is_directory=True)
        os.replace(tmp, link)  # atomic: a concurrent run sees the old link or the new one
    return root


@pytest.mark.slow
def test_mypy_finds_no_errors() -> None:
    """mypy over the core and the plugins; its cache is kept in the gitignored build/."""
    work = REPO / "build" / "typecheck"
    farm = _package_farm(work / "packages")
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
           "--cache-dir", str(work / "mypy-cache")]
    for name in PACKAGES:
        cmd += ["-p", name]
    env = {**os.environ, "MYPYPATH": str(farm)}
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0 and "Success: no issues found" in res.stdout, (
        res.stdout[-6000:] + res.stderr[-2000:]
    )


def _imported_by(*args: str) -> set[str]:
    """Top-level names of every module a ``python -X importtime`` run imported (or tried to)."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    names = set()
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "imported package" not in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_import_gigapatch_loads_no_heavy_dependency() -> None:
    loaded = _imported_by("-c", "import gigapatch")
    assert {"gigapatch", "pluggy"} <= loaded  # the probe sees the imports
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_tile_run_on_a_tiff_loads_no_heavy_dependency(pathology_dir: Path, tmp_path: Path) -> None:
    """The console command, as a user runs it (defaults: overlay and sharpness on)."""
    tiff = pathology_dir / "CMU-1-Small-Region.generic-pyramid.tiff"
    loaded = _imported_by("-m", "gigapatch", "tile", str(tiff), "--out", str(tmp_path), "--quiet")
    assert (tmp_path / "CMU-1-Small-Region.generic-pyramid.h5").is_file()  # the run did its work
    assert {"tifffile", "h5py", "cv2"} <= loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def _cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Every import that closes a cycle, as the cycle's modules (importer first)."""
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                found.append((importer, *back[:-1]))
    return found


def test_cycle_finder_sees_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph) == [("p.a", "p.b", "p.c"), ("p.b", "p.c", "p.a"), ("p.c", "p.a", "p.b")]


def test_gigapatch_has_no_import_cycle() -> None:
    """Counting imports inside functions, and the names the lazy facades (``gigapatch`` and
    ``gigapatch.training``) load on first use as imports of their modules; ``TYPE_CHECKING``
    imports are not run, so they do not count."""
    import gigapatch
    import gigapatch.training

    graph = grimp.build_graph(
        "gigapatch", include_external_packages=False, exclude_type_checking_imports=True,
        cache_dir=None,
    )
    assert graph.find_modules_directly_imported_by("gigapatch.training.datasets")  # sees imports
    for facade in (gigapatch, gigapatch.training):
        for module in set(facade._LAZY.values()):
            full = module if module.startswith("gigapatch.") else f"{facade.__name__}.{module}"
            assert full in graph.modules, full
            graph.add_import(importer=facade.__name__, imported=full)
    assert _cycles(graph) == []


def _type_checking_imports(source: Path) -> dict[str, str]:
    """name -> module of every ``from module import name`` under ``if TYPE_CHECKING:``."""
    found = {}
    for node in ast.parse(source.read_text()).body:
        guarded = isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        if guarded:
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom) and imp.module is not None:
                    found.update({alias.name: imp.module for alias in imp.names})
    return found


@pytest.mark.parametrize("facade", ["gigapatch", "gigapatch.training"])
def test_type_checkers_see_every_lazy_public_name(facade: str) -> None:
    """The facades load their names on first use (``_LAZY``); their ``TYPE_CHECKING`` imports
    give mypy the same names from the same modules, so plugins are checked against real types
    instead of ``Any``."""
    module = importlib.import_module(facade)
    lazy = {
        name: target if target.startswith("gigapatch.") else f"{facade}.{target}"
        for name, target in module._LAZY.items()
    }
    seen = _type_checking_imports(Path(module.__file__))
    assert seen == lazy
