"""The PANDA layout: the pathology domain's training data defaults and its Gleason -> ISUP table.

PANDA (Kaggle "Prostate cANcer graDe Assessment") ships ``train.csv`` with the columns
``image_id, data_provider, isup_grade, gleason_score`` and the biopsies as
``train_images/<image_id>.tiff`` (generic pyramidal TIFF, levels at downsample 1, 4 and 16),
graded into 6 ISUP classes (0 = benign, 1..5). :func:`with_panda_defaults` puts this layout
beneath a user's training config; the core reads it with :func:`gigapatch.training.load_samples`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gigapatch.training import Sample

#: the ``data:`` keys of the PANDA layout (see :class:`gigapatch.training.DataConfig`)
PANDA_DATA: dict[str, Any] = {
    "csv": "train.csv",
    "images": "train_images",
    "suffix": ".tiff",
    "id_column": "image_id",
    "label_column": "isup_grade",
    "group_column": "data_provider",
}

#: ISUP grade groups 0..5
PANDA_NUM_CLASSES = 6

#: Gleason score (major+minor) -> ISUP grade group
GLEASON_TO_ISUP: dict[str, int] = {
    "0+0": 0, "negative": 0,
    "3+3": 1,
    "3+4": 2,
    "4+3": 3,
    "4+4": 4, "3+5": 4, "5+3": 4,
    "4+5": 5, "5+4": 5, "5+5": 5,
}


def isup_from_gleason(score: str) -> int:
    """ISUP grade group (0..5) of a Gleason score such as ``"3+4"`` or ``"negative"``."""
    key = str(score).strip().lower().replace(" ", "")
    if key not in GLEASON_TO_ISUP:
        raise ValueError(f"unknown Gleason score {score!r}")
    return GLEASON_TO_ISUP[key]


def with_panda_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (the user's training keys) over the PANDA defaults: the user's keys win.

    Sets the ``data`` layout keys the user left out and ``num_classes`` = 6 unless the user set
    ``num_classes`` or ``data.label_names`` (then the names give the classes). Keys set to None
    count as left out. ``config`` is not modified.
    """
    out = dict(config)
    user_data = {k: v for k, v in (config.get("data") or {}).items() if v is not None}
    out["data"] = {**PANDA_DATA, **user_data}
    if config.get("num_classes") is None and not user_data.get("label_names"):
        out["num_classes"] = PANDA_NUM_CLASSES
    return out


def write_table(path: str | Path, samples: Sequence[Sample], label_column: str = "isup_grade") -> Path:
    """Write ``samples`` as a PANDA ``train.csv``: image_id, data_provider (the sample's
    ``group``), the label and a Gleason score of that grade ("" beyond grade 5)."""
    inv: dict[int, str] = {}
    for score, grade in GLEASON_TO_ISUP.items():
        inv.setdefault(grade, score)
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "data_provider", label_column, "gleason_score"])
        for s in samples:
            w.writerow([s.image_id, s.group, s.label, inv.get(s.label, "")])
    return path
