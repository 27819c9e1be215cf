"""``gigapatch train --domain pathology``: the core's trainer on the PANDA layout.

The PANDA defaults (:data:`gigapatch_pathology.panda.PANDA_DATA`, 6 ISUP classes) go beneath the
user's config, so ``gigapatch train --domain pathology --data PANDA`` reads ``train.csv`` +
``train_images/<id>.tiff`` and any key of the user's config or flags still wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gigapatch import hookimpl

from .panda import with_panda_defaults

DOMAIN = "pathology"


@hookimpl
def gigapatch_train(config: dict[str, Any], data: Path, out: Path, domain: str | None) -> dict[str, Any] | None:
    """Train on a PANDA-layout folder when ``domain`` is pathology; None for any other domain."""
    if domain != DOMAIN:
        return None
    from gigapatch.training import train

    return train(with_panda_defaults(config), data, out)
