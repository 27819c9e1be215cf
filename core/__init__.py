"""gigapatch: turn gigapixel images into the few thousand patches that matter.

The public API is imported lazily (PEP 562) so that ``import gigapatch`` and the CLI start fast and
never pay for modules a command does not use. Plugins import only from here.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl, hookspec

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "Image": "image",
    "ArrayImage": "image",
    "pad_region": "image",
    "GigapatchError": "errors",
    "ImageError": "errors",
    "ConfigError": "errors",
    "ResolutionError": "errors",
    "Config": "config",
    "load_config": "config",
    "plugin_settings": "config",
    "PatchGeometry": "geometry",
    "resolve_geometry": "geometry",
    "Region": "segment",
    "segment_mask": "segment",
    "regions_to_mask": "segment",
    "ScoreContext": "score",
    "mask_fraction": "score",
    "integral_image": "score",
    "laplacian_variance": "score",
    "batched_pixel_scores": "score",
    "tenengrad": "score",
    "otsu_saturation_mask": "mask",
    "refine_mask": "refine",
    "pad_mask": "refine",
    "grid_coords": "place",
    "optimal_coords": "place",
    "coverage_report": "place",
    "PatchSet": "patchset",
    "open_image": "readers",
    "TiffImage": "tiff",
    "find_images": "readers",
    "available_readers": "readers",
    "patches_to_array": "extract",
    "PlainImage": "readers",
    "read_patches": "extract",
    "extract_patches": "extract",
    "tile_image": "pipeline",
    "make_mosaic": "stitch",
    "select_tiles": "stitch",
    "get_plugin_manager": "plugins",
}

__all__ = ["__version__", "hookimpl", "hookspec", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gigapatch' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from .config import Config, load_config  # noqa: F401
    from .errors import ConfigError, GigapatchError, ImageError, ResolutionError  # noqa: F401
    from .geometry import PatchGeometry, resolve_geometry  # noqa: F401
    from .image import ArrayImage, Image, pad_region  # noqa: F401
    from .score import ScoreContext  # noqa: F401
    from .segment import Region  # noqa: F401
