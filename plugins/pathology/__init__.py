"""gigapatch_pathology: whole-slide images (OpenSlide reader, H&E tissue mask, pen and blur
artefacts, PANDA). Written exactly as a third-party plugin would be: it imports only ``gigapatch``'s
public API and is found through the ``gigapatch`` entry-point group."""

from __future__ import annotations

from gigapatch import __version__ as __version__  # the distribution's version: one place

from .demo import gigapatch_demo  # noqa: F401
from .domain import gigapatch_domains, gigapatch_image_domain  # noqa: F401
from .ink import gigapatch_exclusion_masks  # noqa: F401
from .learned import gigapatch_learned_mask  # noqa: F401
from .reader import gigapatch_open_image, gigapatch_readers  # noqa: F401
from .scores import (  # noqa: F401
    gigapatch_reads_pixels,
    gigapatch_reject_patches,
    gigapatch_score_patches,
    gigapatch_score_pixels,
)
from .tissue import gigapatch_foreground_mask  # noqa: F401
from .training import gigapatch_train  # noqa: F401
