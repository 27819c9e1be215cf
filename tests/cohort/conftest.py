"""Fixtures of the cohort tests: the cohort of generated pyramidal TIFFs (one of them corrupt),
a test-only plugin that makes chosen images slow, and the CLI in a subprocess.

The slow plugin is a real plugin of the entry-point group ``gigapatch``, installed for the
subprocesses only: a ``.dist-info`` folder with its ``entry_points.txt`` beside the module, on
their ``PYTHONPATH`` (which worker processes inherit). Its ``gigapatch_open_image`` runs first and
sleeps ``GIGAPATCH_TEST_SLOW_S`` seconds on files whose name starts with ``slow``, then lets the
core open the file. Nothing in gigapatch knows about it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers_cohort import SLOW_PLUGIN, make_cohort


@pytest.fixture(scope="session")
def cohort_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cohort's images, made once; copy them (:func:`cohort`) before changing any."""
    return make_cohort(tmp_path_factory.mktemp("cohort-src"))


@pytest.fixture
def cohort(cohort_src: Path, tmp_path: Path) -> Path:
    """A private copy of the cohort (a test may change its files)."""
    folder = tmp_path / "images"
    shutil.copytree(cohort_src, folder)
    return folder


@pytest.fixture(scope="session")
def slow_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the slow test plugin and its dist-info (put it on PYTHONPATH)."""
    root = tmp_path_factory.mktemp("slow-plugin")
    (root / "gigapatch_test_slow.py").write_text(SLOW_PLUGIN)
    info = root / "gigapatch_test_slow-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gigapatch-test-slow\n"
                                   "Version: 0.0\n")
    (info / "entry_points.txt").write_text("[gigapatch]\ntest_slow = gigapatch_test_slow\n")
    return root


@pytest.fixture
def cli(slow_plugin: Path) -> Callable[..., subprocess.Popen]:
    """``cli(*args, slow_s=None, umask=None)``: ``python -m gigapatch ARGS`` started in a
    subprocess (stdout and stderr piped, text), with the slow plugin installed when ``slow_s``
    is given."""

    def start(*args: str, slow_s: float | None = None, umask: int | None = None
              ) -> subprocess.Popen:
        env = dict(os.environ)
        if slow_s is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(slow_plugin), *filter(None, [env.get("PYTHONPATH")])])
            env["GIGAPATCH_TEST_SLOW_S"] = str(slow_s)
        return subprocess.Popen(
            [sys.executable, "-m", "gigapatch", *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env,
            preexec_fn=None if umask is None else (lambda: os.umask(umask) and None),
        )

    return start
