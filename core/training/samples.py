"""Labelled image tables: a CSV of image ids and integer labels beside a folder of images.

The generic layout (the defaults of :class:`gigapatch.training.config.DataConfig`)::

    <data>/labels.csv          image_id,label        (labels 0..C-1)
    <data>/images/<image_id>.<suffix>                 (any one image file per id)

A domain may ship its own layout as defaults beneath the user's config (e.g. PANDA's
``train.csv`` + ``train_images/<id>.tiff`` for pathology); the reader is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gigapatch.errors import ConfigError, ImageError
from gigapatch.training.config import DataConfig


@dataclass
class Sample:
    """One labelled image: id, file, integer label and the row's group (``data.group_column``)."""

    image_id: str
    path: Path
    label: int
    group: str = ""


def _suffix_index(folder: Path) -> dict[str, list[Path]]:
    """id -> files ``<id>.*`` of ``folder``, for every id a file name can start with.

    A name with several dots (``a.b.ome.tiff``) is listed under each prefix (``a``, ``a.b``,
    ``a.b.ome``), so ids may hold dots. One directory listing for the whole table.
    """
    index: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        name = p.name
        dot = name.find(".", 1)
        while dot != -1:
            index.setdefault(name[:dot], []).append(p)
            dot = name.find(".", dot + 1)
    return index


def _find_image(image_id: str, found: list[Path], folder: Path, where: str) -> Path:
    """The one image among the files ``<image_id>.*``; sidecars (non-image suffixes) are
    dropped when there are several."""
    from gigapatch.io.readers import IMAGE_SUFFIXES

    if len(found) > 1:
        found = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES] or found
    if not found:
        raise ImageError(folder / f"{image_id}.*", f"image of {where} not found")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ImageError(
            folder / f"{image_id}.*", f"image of {where} is ambiguous ({names}); set data.suffix"
        )
    return found[0]


def _image_paths(images: Path, ids: Sequence[str], cfg: DataConfig) -> list[Path]:
    """The image file of every id, in order (ImageError for a missing or ambiguous one)."""
    if cfg.suffix is not None:
        paths = [images / f"{image_id}{cfg.suffix}" for image_id in ids]
        for i, path in enumerate(paths):
            if not path.is_file():
                raise ImageError(path, f"image of {cfg.csv} row {i + 2} not found")
        return paths
    if not images.is_dir():
        raise ImageError(images, f"image folder of {cfg.csv} not found")
    index = _suffix_index(images)
    return [
        _find_image(image_id, index.get(image_id, []), images, f"{cfg.csv} row {i + 2}")
        for i, image_id in enumerate(ids)
    ]


def load_samples(data_dir: str | Path, cfg: DataConfig | None = None, num_classes: int | None = None) -> list[Sample]:
    """Read the label table of ``data_dir`` and check that every image is there.

    Parameters
    ----------
    data_dir : folder holding ``cfg.csv`` and ``cfg.images/<id><cfg.suffix>`` (``cfg.suffix``
        None: the one image file ``<id>.*``).
    cfg : table layout (default: ``labels.csv`` of ``image_id, label`` beside ``images/``).
    num_classes : when given, labels outside ``0..num_classes-1`` are an error.

    Returns
    -------
    list of :class:`Sample`, in table order (first ``cfg.limit`` rows when set).

    Raises
    ------
    ConfigError : missing table or columns, bad labels. ImageError : an image file is missing
        (or, without ``cfg.suffix``, several image files share its id).
    """
    import pandas as pd

    cfg = cfg or DataConfig()
    data_dir = Path(data_dir)
    table = data_dir / cfg.csv
    if not data_dir.is_dir():
        raise ConfigError(f"{data_dir}: data folder not found")
    if not table.is_file():
        raise ConfigError(
            f"{data_dir}: no {cfg.csv} (expected layout: {cfg.csv} of {cfg.id_column},"
            f"{cfg.label_column} + {cfg.images}/<{cfg.id_column}>{cfg.suffix or '.<suffix>'})"
        )
    try:
        df = pd.read_csv(table, dtype={cfg.id_column: str})
    except Exception as e:
        raise ConfigError(f"{table}: cannot read the table ({type(e).__name__}: {e})") from None
    for col in (cfg.id_column, cfg.label_column, cfg.group_column):
        if col is not None and col not in df.columns:
            raise ConfigError(f"{table}: no column {col!r} (columns: {', '.join(df.columns)})")
    if cfg.limit is not None:
        df = df.iloc[: cfg.limit]
    if len(df) == 0:
        raise ConfigError(f"{table}: the table has no rows")
    labels = pd.to_numeric(df[cfg.label_column], errors="coerce")
    bad = labels.isna() | (labels != labels.round()) | (labels < 0)
    if num_classes is not None:
        bad |= labels >= num_classes
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise ConfigError(
            f"{table}: row {row + 2}: label {str(df[cfg.label_column].iloc[row])!r} is not an "
            f"integer in 0..{num_classes - 1 if num_classes else 'C-1'}"
        )
    ids = df[cfg.id_column].astype(str).tolist()
    paths = _image_paths(data_dir / cfg.images, ids, cfg)
    groups = df[cfg.group_column].astype(str).tolist() if cfg.group_column else [""] * len(ids)
    return [
        Sample(image_id, path, int(label), group)
        for image_id, path, label, group in zip(ids, paths, labels.astype(int), groups)
    ]

