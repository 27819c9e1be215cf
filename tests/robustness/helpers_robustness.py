"""Shared helpers of the robustness tests (bad inputs, fuzzing, kills): the CLI in a subprocess
with a time bound, the leftovers a failed or killed run must not leave in ``--out``, and small
bad files made on the spot. Import them as ``from helpers_robustness import ...`` (never ``from
conftest import``: every test folder has a conftest); the fixtures are in conftest.py here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: file names a finished output folder never holds: temporary files of atomic writes
#: (``.<name>.<tag>.tmp``), staging folders of patch extraction (``.<id>.<pid>.<tid>.partial``)
PARTIAL = re.compile(r"^\..*\.(tmp|partial)$|\.tmp$|\.partial$")
#: what a traceback or a raw exception class looks like on stderr
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s+File \"", re.M)


def gigapatch(*args: str | Path, timeout: float = 120, cwd: Path | None = None,
              preexec_fn: Callable[[], Any] | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m gigapatch ARGS`` in a fresh process (text output captured). A run past
    ``timeout`` seconds is killed and fails the test as a hang."""
    full_env = dict(os.environ)
    full_env.pop("GIGAPATCH_DEBUG", None)
    full_env.update(env or {})
    try:
        return subprocess.run([sys.executable, "-m", "gigapatch", *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              preexec_fn=preexec_fn, env=full_env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gigapatch {' '.join(map(str, args))}: no answer in {timeout:g} s (a hang)",
                    pytrace=False)


def error_lines(stderr: str) -> list[str]:
    """The ``error: ...`` lines of ``stderr``."""
    return [ln for ln in stderr.splitlines() if ln.startswith("error: ")]


def leftovers(out: Path) -> list[Path]:
    """Temporary files and staging folders anywhere under ``out`` (a finished or failed run
    leaves none)."""
    if not out.exists():
        return []
    return sorted(p for p in out.rglob("*") if PARTIAL.search(p.name))


def files_under(out: Path) -> list[str]:
    """Every file under ``out`` (relative, POSIX), the run's bookkeeping folder left out."""
    if not out.exists():
        return []
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and ".gigapatch" not in p.relative_to(out).parts)


def image_outputs(out: Path, image_id: str) -> list[str]:
    """The files of one image under ``out``: ``<id>.*``, ``<id>_*`` and its patch folder."""
    return [f for f in files_under(out)
            if f.startswith((f"{image_id}.", f"{image_id}_", f"{image_id}/"))]


def write_tiff(path: Path, data: np.ndarray, **kw: Any) -> Path:
    """``data`` written as one TIFF page by tifffile (``kw``: its write options)."""
    import tifffile

    tifffile.imwrite(path, data, **kw)
    return path


def truncate_copy(src: Path, dst: Path, fraction: float) -> Path:
    """The first ``fraction`` of ``src``'s bytes as ``dst``."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst
