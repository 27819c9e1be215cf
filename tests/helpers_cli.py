"""Running the ``gigapatch`` CLI in a subprocess and reading what it printed and imported (shared
by the demo tests of every domain)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gigapatch import PatchSet


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m gigapatch ARGS`` in a fresh process, its output captured as text."""
    return subprocess.run([sys.executable, "-m", "gigapatch", *args], capture_output=True,
                          text=True, timeout=timeout)


def printed_paths(stdout: str) -> tuple[dict[str, Path], int]:
    """The ``key: path`` lines of ``gigapatch demo`` and its ``N patches kept``."""
    paths: dict[str, Path] = {}
    kept = -1
    for line in stdout.splitlines():
        if line.endswith(" patches kept"):
            kept = int(line.split()[0])
        elif ": " in line:
            key, value = line.split(": ", 1)
            paths[key.strip()] = Path(value)
    return paths, kept


def run_demo(domain: str, out: Path, *flags: str) -> tuple[dict[str, Path], int]:
    """``gigapatch demo --domain DOMAIN``: the files it printed (all written) and its patch count."""
    res = run_cli("demo", "--domain", domain, "--out", str(out), "--quiet", *flags)
    assert res.returncode == 0, res.stderr[-2000:]
    paths, kept = printed_paths(res.stdout)
    missing = [str(p) for p in paths.values() if not p.exists()]
    assert not missing, missing
    assert kept > 0 and len(PatchSet.read(paths["h5"])) == kept
    return paths, kept


#: runs the console entry point, then prints the top-level modules it loaded as JSON
RUN_CLI = """
import json, sys
from gigapatch.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    if e.code:
        raise
print("MODULES " + json.dumps(sorted({m.split('.')[0] for m in sys.modules})))
"""


def tile_without_domain(out: Path, *images: Path) -> set[str]:
    """``gigapatch tile IMAGES --out OUT`` with no --domain; the top-level modules it loaded."""
    res = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "tile", *map(str, images), "--out", str(out), "--quiet",
         "--no-overlay"],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))
