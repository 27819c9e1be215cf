"""Training on gigapixel images: the tile-mosaic recipe, the resize baseline, timm models, QWK.

Generic: a folder with a label table (default ``labels.csv`` of ``image_id, label``) beside its
images (default ``images/<image_id>.<suffix>``). A domain plugin brings its own layout and
recipe through its ``gigapatch_train`` hook, usually by putting its defaults beneath the user's
config and calling :func:`train`. This module is public API for plugins: they import from
``gigapatch.training`` only (never from its submodules).

Needs the ``train`` extras (torch, torchvision, timm, scikit-learn, pandas, matplotlib). Nothing is
imported until a name is used, so ``import gigapatch.training`` costs nothing and the tiling side
of gigapatch never loads torch.

Main entry points: :func:`train`, :func:`predict`, :func:`create_model`, :class:`TrainConfig`,
:func:`validate_train_config`, :func:`load_samples`, :class:`MosaicDataset`,
:class:`ResizeDataset`, :class:`PatchDataset`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "train": "trainer",
    "quadratic_kappa": "trainer",
    "load_checkpoint": "trainer",
    "predict": "inference",  # not a module named predict: the package attribute stays the function
    "create_model": "models",
    "ordinal_encode": "models",
    "ordinal_decode": "models",
    "ordinal_probs": "models",
    "TrainConfig": "config",
    "DataConfig": "config",
    "load_train_config": "config",
    "read_train_config": "config",
    "validate_train_config": "config",
    "MosaicDataset": "datasets",
    "ResizeDataset": "datasets",
    "PatchDataset": "datasets",
    "SlideItem": "datasets",
    "build_items": "datasets",
    "load_samples": "samples",
    "Sample": "samples",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gigapatch.training' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from gigapatch.training.config import (  # noqa: F401
        DataConfig,
        TrainConfig,
        load_train_config,
        read_train_config,
        validate_train_config,
    )
    from gigapatch.training.datasets import (  # noqa: F401
        MosaicDataset,
        PatchDataset,
        ResizeDataset,
        SlideItem,
        build_items,
    )
    from gigapatch.training.inference import predict  # noqa: F401
    from gigapatch.training.models import (  # noqa: F401
        create_model,
        ordinal_decode,
        ordinal_encode,
        ordinal_probs,
    )
    from gigapatch.training.samples import Sample, load_samples  # noqa: F401
    from gigapatch.training.trainer import load_checkpoint, quadratic_kappa, train  # noqa: F401
