"""The fast paths of a ``tile`` run give what the plain ones give.

- the table: :func:`gigapatch.outputs.patchset._csv_text` formats each distinct value once; its text must
  be ``csv.writer``'s, byte for byte (floats from float32, NaN, -0.0, bools, strings that need
  quoting);
- the CLI imports numpy with one OpenBLAS thread (its worker pool costs ~55 ms of CPU at start-up)
  and leaves the environment as it found it.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from gigapatch.outputs import patchset
from gigapatch.outputs.patchset import _csv_text


def _csv_writer_text(cols: dict[str, np.ndarray]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(list(cols))
    w.writerows(zip(*[c.tolist() for c in cols.values()]))
    return buf.getvalue()


@pytest.mark.parametrize("seed", range(40))
def test_csv_text_is_csv_writers_text(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if seed % 2:  # the table written in pieces of a few rows: the same text
        monkeypatch.setattr(patchset, "CSV_CHUNK_ROWS", 1 + seed % 7)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    special = np.array([0.0, -0.0, np.nan, 1.0, 0.8, 1 / 3, np.inf, -np.inf, 1e-8], np.float32)
    f = rng.choice(special, n)
    reasons = ["", "foreground", "pen", "top_n"]
    if seed % 3 == 0:  # values csv quotes: the whole table goes through csv.writer
        reasons += ["a,b", 'say "x"', "two\nlines"]
    coords = rng.integers(-5, 10**9, (n, 2))
    cols = {
        "x": coords[:, 0],  # a strided column, as PatchSet.table gives without rejected
        "y": coords[:, 1],
        "level": np.full(n, 0),
        "size_level0": np.full(n, 256.0 if seed % 2 else 256),
        "kept": rng.random(n) < 0.5,
        "reason": rng.choice(np.array(reasons, dtype="U16"), n),
        "foreground": f,
        "sharpness": (rng.random(n) * 1e4).astype(np.float32),
        "f64": rng.random(n),
        "f16": f.astype(np.float16),
    }
    assert _csv_text(cols) == _csv_writer_text(cols)
    one = {"only": np.array(["", "a"], dtype="U4")[: n % 3]}  # csv quotes a lone empty field
    assert _csv_text(one) == _csv_writer_text(one)
