"""Where the checkout and the real test data are, for conftest.py and for tests run as scripts.

The real test data (whole-slide images, NEU-DET steel images, satellite scenes; read-only, each
folder described by its PROVENANCE.md) is the folder ``$GIGAPATCH_TEST_DATA`` when that is set,
else ``../shared/data`` beside the checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: the checkout (the folder of pyproject.toml)
REPO = Path(__file__).resolve().parents[1]
#: the benchmark scripts, imported by the tests of their helpers
BENCHMARKS = REPO / "benchmarks"
#: environment variable naming the real test data folder
DATA_ENV = "GIGAPATCH_TEST_DATA"


def shared_data_root() -> Path:
    """The real test data folder: ``$GIGAPATCH_TEST_DATA``, else ``../shared/data`` beside the
    checkout (it may be absent)."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data"


def need(path: Path, what: str) -> Path:
    """``path`` if it exists; else skip the test with a reason naming the path and what it is."""
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set ${DATA_ENV} or put the real test data at "
                    "../shared/data beside the checkout)")
    return path
