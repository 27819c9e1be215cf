"""Labelled image tables, PANDA layout by default.

PANDA (Kaggle "Prostate cANcer graDe Assessment") ships ``train.csv`` with the columns
``image_id, data_provider, isup_grade, gleason_score`` and the biopsies as
``train_images/<image_id>.tiff`` (generic pyramidal TIFF, levels at downsample 1, 4 and 16).
Any folder with a CSV of ids and integer labels and an image folder works the same way
(see :class:`gigapatch.training.config.DataConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gigapatch.errors import ConfigError, ImageError
from gigapatch.training.config import DataConfig

#: Gleason score (major+minor) -> ISUP grade group
GLEASON_TO_ISUP: dict[str, int] = {
    "0+0": 0, "negative": 0,
    "3+3": 1,
    "3+4": 2,
    "4+3": 3,
    "4+4": 4, "3+5": 4, "5+3": 4,
    "4+5": 5, "5+4": 5, "5+5": 5,
}


@dataclass
class Sample:
    """One labelled image: id, file, integer label (grade) and the row's data provider."""

    image_id: str
    path: Path
    label: int
    provider: str = ""


def isup_from_gleason(score: str) -> int:
    """ISUP grade group (0..5) of a Gleason score such as ``"3+4"`` or ``"negative"``."""
    key = str(score).strip().lower().replace(" ", "")
    if key not in GLEASON_TO_ISUP:
        raise ValueError(f"unknown Gleason score {score!r}")
    return GLEASON_TO_ISUP[key]


def load_samples(data_dir: str | Path, cfg: DataConfig | None = None, num_classes: int | None = None) -> list[Sample]:
    """Read the label table of ``data_dir`` and check that every image is there.

    Parameters
    ----------
    data_dir : folder holding ``cfg.csv`` and ``cfg.images/<id><cfg.suffix>``.
    cfg : table layout (default: PANDA's).
    num_classes : when given, labels outside ``0..num_classes-1`` are an error.

    Returns
    -------
    list of :class:`Sample`, in table order (first ``cfg.limit`` rows when set).

    Raises
    ------
    ConfigError : missing table or columns, bad labels. ImageError : an image file is missing.
    """
    import pandas as pd

    cfg = cfg or DataConfig()
    data_dir = Path(data_dir)
    table = data_dir / cfg.csv
    if not data_dir.is_dir():
        raise ConfigError(f"{data_dir}: data folder not found")
    if not table.is_file():
        raise ConfigError(
            f"{data_dir}: no {cfg.csv} (expected PANDA layout: {cfg.csv} + "
            f"{cfg.images}/<{cfg.id_column}>{cfg.suffix})"
        )
    try:
        df = pd.read_csv(table, dtype={cfg.id_column: str})
    except Exception as e:
        raise ConfigError(f"{table}: cannot read the table ({type(e).__name__}: {e})") from None
    for col in (cfg.id_column, cfg.label_column):
        if col not in df.columns:
            raise ConfigError(f"{table}: no column {col!r} (columns: {', '.join(df.columns)})")
    if cfg.limit is not None:
        df = df.iloc[: cfg.limit]
    if len(df) == 0:
        raise ConfigError(f"{table}: the table has no rows")
    labels = pd.to_numeric(df[cfg.label_column], errors="coerce")
    bad = labels.isna() | (labels != labels.round())
    if num_classes is not None:
        bad |= (labels < 0) | (labels >= num_classes)
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise ConfigError(
            f"{table}: row {row + 2}: label {df[cfg.label_column].iloc[row]!r} is not an "
            f"integer in 0..{(num_classes or 0) - 1 if num_classes else 'C-1'}"
        )
    images = data_dir / cfg.images
    providers = df["data_provider"].astype(str) if "data_provider" in df.columns else None
    samples = []
    for i, (image_id, label) in enumerate(zip(df[cfg.id_column].astype(str), labels.astype(int))):
        path = images / f"{image_id}{cfg.suffix}"
        if not path.is_file():
            raise ImageError(path, f"image of {cfg.csv} row {i + 2} not found")
        samples.append(
            Sample(image_id, path, int(label), providers.iloc[i] if providers is not None else "")
        )
    return samples


def write_table(path: str | Path, samples: list[Sample], label_column: str = "isup_grade") -> Path:
    """Write ``samples`` as a PANDA-style table (image_id, data_provider, label, gleason_score)."""
    import csv

    inv: dict[int, str] = {}
    for score, grade in GLEASON_TO_ISUP.items():
        inv.setdefault(grade, score)
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "data_provider", label_column, "gleason_score"])
        for s in samples:
            w.writerow([s.image_id, s.provider, s.label, inv.get(s.label, "")])
    return path
