"""gigapatch_metal_surface: grayscale metal surface scans (steel strip, castings).

A worked example of a third-party plugin: it imports only ``gigapatch``'s public API and is found
through the ``gigapatch`` entry-point group. It provides

* the ``metal_surface`` domain and its defaults (``metal_surface.yaml``);
* :func:`metal_mask`: metal vs a dark (or bright) scanner background by Otsu on blurred grey,
  or all metal when the grey levels do not split;
* per-patch ``defect`` (and ``local_contrast``) scores from full-resolution patches;
* Pascal-VOC boxes: :func:`read_voc_boxes`, :func:`box_labels`, :func:`box_overlap`;
* ``gigapatch demo --domain metal_surface``: a synthetic steel strip with defects at known
  boxes (:mod:`.synth`), tiled.

No images ship with the package: the NEU-DET test images have no open licence.
"""

from __future__ import annotations

from typing import Any

from gigapatch import __version__ as __version__  # the distribution's version: one place

from .cli import gigapatch_cli_commands  # noqa: F401
from .defects import defect_scores, gigapatch_score_patches, local_contrast, relative_defect  # noqa: F401
from .demo import gigapatch_demo  # noqa: F401
from .domain import gigapatch_domains  # noqa: F401
from .mask import gigapatch_foreground_mask, metal_mask, otsu_split, to_grey  # noqa: F401
from .outputs import gigapatch_patch_columns, gigapatch_write_outputs  # noqa: F401
from .reader import gigapatch_open_image  # noqa: F401
from .settings import MetalSettings
from .training import gigapatch_train  # noqa: F401

#: Pascal-VOC helpers, imported on first use (a run that tiles an image never needs them)
_VOC = ("box_labels", "box_overlap", "read_voc_boxes")


def __getattr__(name: str) -> Any:
    if name in _VOC:
        from . import voc

        return getattr(voc, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "MetalSettings",
    "box_labels",
    "box_overlap",
    "defect_scores",
    "local_contrast",
    "metal_mask",
    "otsu_split",
    "read_voc_boxes",
    "relative_defect",
    "to_grey",
]
