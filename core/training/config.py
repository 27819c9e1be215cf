"""The training configuration: pydantic models with ``extra="forbid"`` (unknown keys are errors).

One key, ``arm``, picks the recipe: ``mosaic`` (N tiles of each image stitched into one picture,
the tile-concatenation recipe) or ``resize`` (the whole image at a low level resized to S x S,
the baseline). ``patch`` trains on single patches (one image file or patch, one label).
Precedence: model defaults < the domain's defaults (applied by its ``gigapatch_train`` hook) <
YAML file < CLI flags (see :func:`read_train_config` and :func:`load_train_config`). A flag also
replaces the file's keys that only make sense with the file's value of it
(:data:`FLAG_REPLACES`): ``--folds 2`` runs every fold of a 2-fold split even when the file
lists ``fold: [0]``; give ``--fold`` as well to run fewer.

Epochs and folds are numbered from 0 everywhere: the log lines, ``metrics.csv``, the
checkpoints and ``summary.json`` (``epochs: 10`` runs epochs 0..9).

The data layout defaults to a generic labelled folder::

    labels.csv          image_id,label   (integer labels 0..C-1)
    images/<image_id>.<any image suffix>

``num_classes`` may be left out: it is then ``len(data.label_names)`` when names are given, else
it is inferred from the labels once the table is read (:func:`resolve_num_classes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Where the images and labels are: ``labels.csv`` (``image_id, label``) beside ``images/``."""

    csv: str = Field("labels.csv", description="label table inside the data folder")
    images: str = Field("images", description="image folder inside the data folder")
    suffix: str | None = Field(
        None, description="image file suffix, e.g. '.tiff' (None: the one image file <id>.*)"
    )
    id_column: str = "image_id"
    label_column: str = "label"
    group_column: str | None = Field(
        None, description="optional column kept with each sample (e.g. the data source)"
    )
    label_names: list[str] | None = Field(None, description="class names (default: 0..C-1)")
    coords_dir: Path | None = Field(
        None, description="folder of <image_id>.h5 PatchSets to use (default: tile and cache them)"
    )
    patches_dir: Path | None = Field(
        None, description="folder of extracted patches, <patches_dir>/<image_id>/*.png|jpg"
    )
    limit: int | None = Field(None, ge=1, description="use only the first N rows (smoke runs)")


class MosaicConfig(_Strict):
    """The tile-mosaic arm: N tiles of ``tile_size`` px read at ``level``."""

    n_tiles: int = Field(36, ge=1)
    tile_size: int = Field(256, ge=8, description="tile side in the mosaic (px)")
    level: int = Field(1, ge=0, description="pyramid level the tiles are read at")
    group: Literal["first", "middle", "last", "random", "cycle"] = Field(
        "first", description="which group of N ranked tiles a training mosaic uses"
    )
    rank_by: str = Field("foreground", description="PatchSet score column that ranks the tiles")
    min_foreground: float = Field(0.1, ge=0, le=1, description="tiling: keep tiles with this much")
    tiling: dict[str, Any] = Field(
        default_factory=dict, description="extra gigapatch tiling config (e.g. {mask: {...}})"
    )
    max_open: int = Field(8, ge=1, description="open images kept per loader worker (LRU)")


class ResizeConfig(_Strict):
    """The resize arm: the whole image at ``level`` resized to ``size`` x ``size``."""

    size: int = Field(256, ge=8)
    level: int = Field(-1, description="pyramid level read (-1 = the smallest)")
    pad_square: bool = Field(False, description="pad to a square with white before resizing")


class OptimConfig(_Strict):
    name: Literal["adamw", "adam"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    scheduler: Literal["cosine", "none"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)


class TrainConfig(_Strict):
    """The whole training configuration (frozen into every checkpoint)."""

    domain: str | None = None
    arm: Literal["mosaic", "resize", "patch"] = "mosaic"
    model: str = Field("resnext50_32x4d", description="timm model name")
    pretrained: str | None = Field(None, description="local weights file (never downloaded)")
    head: Literal["classification", "ordinal"] = "classification"
    num_classes: int | None = Field(
        None, ge=2, description="classes C (default: len(label_names), else from the labels)"
    )
    data: DataConfig = DataConfig()
    mosaic: MosaicConfig = MosaicConfig()
    resize: ResizeConfig = ResizeConfig()
    patch_size: int = Field(224, ge=8, description="input side for arm 'patch'")
    augment: bool = Field(True, description="random flips (per tile and whole image)")
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    optim: OptimConfig = OptimConfig()
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    workers: int | None = Field(
        None, ge=0,
        description="loader worker processes (default: the cores this process may use, at "
        "most 8); more than the cores are capped to them",
    )
    folds: int = Field(4, ge=2, description="stratified K-fold on the label")
    fold: list[int] | None = Field(None, description="fold(s) to run (default: all)")
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = Field("auto", description="CUDA only")
    channels_last: bool = Field(True, description="CUDA only")
    resume: bool = Field(False, description="continue each fold from its last.pt")
    save_every: int = Field(1, ge=1, description="write last.pt every N epochs")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.fold is not None:
            bad = [f for f in self.fold if not 0 <= f < self.folds]
            if bad:
                raise ValueError(f"fold {bad} outside 0..{self.folds - 1}")
        names = self.data.label_names
        if names is not None and self.num_classes is None:
            if len(names) < 2:
                raise ValueError(f"{len(names)} label_names: at least 2 classes are needed")
            self.num_classes = len(names)  # re-validates: the names now match
        elif names is not None and len(names) != self.num_classes:
            raise ValueError(f"{len(names)} label_names for num_classes={self.num_classes}")
        return self

    @property
    def input_size(self) -> int:
        """Side of the network input for this arm (px)."""
        if self.arm == "mosaic":
            from gigapatch.training.stitch import grid_side

            return grid_side(self.mosaic.n_tiles) * self.mosaic.tile_size
        if self.arm == "resize":
            return self.resize.size
        return self.patch_size

    @property
    def classes(self) -> int:
        """``num_classes``, which must be known by now (see :func:`resolve_num_classes`)."""
        if self.num_classes is None:
            raise ValueError("num_classes is not resolved yet: read the label table first")
        return self.num_classes

    @property
    def label_names(self) -> list[str]:
        return self.data.label_names or [str(i) for i in range(self.classes)]


# flag name -> dotted config key
FLAG_KEYS: dict[str, str] = {
    "epochs": "epochs",
    "model": "model",
    "batch_size": "batch_size",
    "folds": "folds",
    "fold": "fold",
    "arm": "arm",
    "workers": "workers",
    "lr": "optim.lr",
    "seed": "seed",
    "device": "device",
    "pretrained": "pretrained",
    "resume": "resume",
    "n_tiles": "mosaic.n_tiles",
    "tile_size": "mosaic.tile_size",
    "limit": "data.limit",
}


#: a flag (dotted key) -> the file's keys it replaces unless they are flags too
FLAG_REPLACES: dict[str, tuple[str, ...]] = {
    "folds": ("fold",),  # fold indices belong to the file's fold count
}


def _nest(overrides: dict[str, Any]) -> dict[str, Any]:
    from gigapatch.config import nest_dotted

    return nest_dotted(overrides)


def _drop(data: dict[str, Any], dotted: str) -> dict[str, Any]:
    """``data`` without the key ``dotted`` (a copy where something is dropped)."""
    head, _, rest = dotted.partition(".")
    if head not in data:
        return data
    if not rest:
        return {k: v for k, v in data.items() if k != head}
    if not isinstance(data[head], dict):
        return data
    return {**data, head: _drop(data[head], rest)}


#: loader workers when ``workers`` is left out, at most
DEFAULT_MAX_WORKERS = 8


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one), shared by the
    processes of one ``torchrun`` node (``LOCAL_WORLD_SIZE``)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))


def resolve_workers(requested: int | None) -> tuple[int, str | None]:
    """Loader worker processes for ``requested`` on this machine, and a note when it differs.

    Returns
    -------
    ``(n, note)``: ``n`` = ``min(cores, 8)`` when ``requested`` is None, ``min(requested,
    cores)`` otherwise; ``note`` is one line saying why a requested number was capped, or None.
    """
    cores = available_cores()
    if requested is None:
        return min(cores, DEFAULT_MAX_WORKERS), None
    if requested > cores:
        return cores, (f"workers: {requested} asked for, {cores} CPU cores available: using "
                       f"{cores} loader workers")
    return requested, None


def validate_train_config(data: dict[str, Any] | TrainConfig, source: str | None = None) -> TrainConfig:
    """Validate a dict into a :class:`TrainConfig`; one-line :class:`ConfigError` otherwise."""
    if isinstance(data, TrainConfig):
        return data
    from gigapatch.config import validate

    return validate(TrainConfig, data, source=source)


def read_train_config(
    file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The keys a user gave: YAML ``file`` < ``overrides`` (dotted keys allowed, None values
    ignored), not validated and without defaults, so a domain can put its defaults beneath them.
    An override also removes the file's keys it replaces (:data:`FLAG_REPLACES`) unless those
    are overridden too."""
    from gigapatch.config import deep_merge, read_yaml

    data = read_yaml(file) if file is not None else {}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    for flag, replaced in FLAG_REPLACES.items():
        if flag in given:
            for key in replaced:
                if key not in given:
                    data = _drop(data, key)
    return deep_merge(data, _nest(given))


def load_train_config(
    file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Defaults < YAML ``file`` < ``overrides`` (dotted keys allowed, None values ignored)."""
    return validate_train_config(
        read_train_config(file, overrides), str(file) if file is not None else None
    )


def resolve_num_classes(cfg: TrainConfig, labels: list[int], source: str | Path) -> TrainConfig:
    """``cfg`` with ``num_classes`` set: as given, else ``max(labels) + 1``.

    Raises
    ------
    ConfigError : the labels name fewer than 2 classes and ``num_classes`` is not set.
    """
    if cfg.num_classes is not None:
        return cfg
    from gigapatch.errors import ConfigError

    n = max(labels, default=-1) + 1
    if n < 2:
        raise ConfigError(f"{source}: the labels hold fewer than 2 classes; set num_classes")
    return validate_train_config({**cfg.model_dump(mode="json"), "num_classes": n}, str(source))
