"""Training on gigapixel images: the PANDA tile-mosaic recipe, the resize baseline, timm models, QWK.

Needs the ``train`` extras (torch, torchvision, timm, scikit-learn, pandas, matplotlib). Nothing is
imported until a name is used, so ``import gigapatch.training`` costs nothing and the tiling side
of gigapatch never loads torch.

Main entry points: :func:`train`, :func:`predict`, :func:`create_model`, :class:`TrainConfig`,
:class:`MosaicDataset`, :class:`ResizeDataset`, :class:`PatchDataset`, :func:`write_cohort`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY: dict[str, str] = {
    "train": "trainer",
    "quadratic_kappa": "trainer",
    "load_checkpoint": "trainer",
    "predict": "predict",
    "create_model": "models",
    "ordinal_encode": "models",
    "ordinal_decode": "models",
    "ordinal_probs": "models",
    "TrainConfig": "config",
    "load_train_config": "config",
    "MosaicDataset": "datasets",
    "ResizeDataset": "datasets",
    "PatchDataset": "datasets",
    "SlideItem": "datasets",
    "build_items": "datasets",
    "load_samples": "panda",
    "Sample": "panda",
    "isup_from_gleason": "panda",
    "write_cohort": "cohort",
    "CohortSpec": "cohort",
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
