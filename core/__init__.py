"""gigapatch: turn gigapixel images into the few thousand patches that matter.

The public API: everything a user or a plugin needs is importable from here, and plugins import
only from here. Names are loaded on first use (PEP 562), so ``import gigapatch`` and the CLI never
pay for a stage a command does not run.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from gigapatch.plugin.hookspecs import hookimpl, hookspec
from gigapatch.version import __version__

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # errors and config
    "GigapatchError": "gigapatch.errors",
    "ImageError": "gigapatch.errors",
    "ConfigError": "gigapatch.errors",
    "ResolutionError": "gigapatch.errors",
    "OutputError": "gigapatch.errors",
    "Config": "gigapatch.config",
    "load_config": "gigapatch.config",
    "plugin_settings": "gigapatch.config",
    # plugins
    "ImageContext": "gigapatch.plugin.context",
    "ScoreContext": "gigapatch.plugin.context",
    "get_plugin_manager": "gigapatch.plugin.manager",
    "list_domains": "gigapatch.plugin.manager",
    "TileOption": "gigapatch.plugin.options",
    # reading
    "Image": "gigapatch.io.image",
    "ArrayImage": "gigapatch.io.image",
    "pad_region": "gigapatch.io.image",
    "open_image": "gigapatch.io.readers",
    "find_images": "gigapatch.io.readers",
    "available_readers": "gigapatch.io.readers",
    "PlainImage": "gigapatch.io.readers",
    "TiffImage": "gigapatch.io.tiff",
    "write_pyramidal_tiff": "gigapatch.io.tiff_write",
    "NativeTiffImage": "gigapatch.io.native_tiff",
    "PixelSize": "gigapatch.io.physical",
    "as_grey": "gigapatch.io.samples",
    "PatchGeometry": "gigapatch.io.geometry",
    "resolve_geometry": "gigapatch.io.geometry",
    "read_patches": "gigapatch.io.patches",
    "patches_to_array": "gigapatch.io.patches",
    "atomic_path": "gigapatch.io.atomic",
    "file_lock": "gigapatch.io.atomic",
    "write_text_atomic": "gigapatch.io.atomic",
    # tiling
    "otsu_saturation_mask": "gigapatch.tiling.mask",
    "refine_mask": "gigapatch.tiling.refine",
    "pad_mask": "gigapatch.tiling.refine",
    "Region": "gigapatch.tiling.segment",
    "segment_mask": "gigapatch.tiling.segment",
    "regions_to_mask": "gigapatch.tiling.segment",
    "integral_image": "gigapatch.tiling.integral",
    "box_sums": "gigapatch.tiling.integral",
    "mask_fraction": "gigapatch.tiling.integral",
    "axis_positions": "gigapatch.tiling.place",
    "grid_coords": "gigapatch.tiling.place",
    "optimal_coords": "gigapatch.tiling.place",
    "coverage_report": "gigapatch.tiling.coverage",
    "laplacian_variance": "gigapatch.tiling.score",
    "tenengrad": "gigapatch.tiling.score",
    "sharpness_batch": "gigapatch.tiling.score",
    "batched_pixel_scores": "gigapatch.tiling.score",
    "select_patches": "gigapatch.tiling.select",
    # outputs
    "PatchSet": "gigapatch.outputs.patchset",
    "extract_patches": "gigapatch.outputs.extract",
    "write_overlay": "gigapatch.outputs.overlay",
    "contact_sheet": "gigapatch.outputs.overlay",
    "export_geojson": "gigapatch.outputs.geojson",
    "tile_image": "gigapatch.outputs.run",
    "ConfigRecipe": "gigapatch.outputs.run",
    # cohorts
    "tile_many": "gigapatch.cohort",
    # training (needs the train extra)
    "make_mosaic": "gigapatch.training.stitch",
    "select_tiles": "gigapatch.training.stitch",
}

__all__ = ["__version__", "hookimpl", "hookspec", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gigapatch' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from gigapatch.cohort import tile_many  # noqa: F401
    from gigapatch.config import Config, load_config, plugin_settings  # noqa: F401
    from gigapatch.errors import (  # noqa: F401
        ConfigError,
        GigapatchError,
        ImageError,
        OutputError,
        ResolutionError,
    )
    from gigapatch.io.atomic import atomic_path, file_lock, write_text_atomic  # noqa: F401
    from gigapatch.io.geometry import PatchGeometry, resolve_geometry  # noqa: F401
    from gigapatch.io.image import ArrayImage, Image, pad_region  # noqa: F401
    from gigapatch.io.native_tiff import NativeTiffImage  # noqa: F401
    from gigapatch.io.patches import patches_to_array, read_patches  # noqa: F401
    from gigapatch.io.physical import PixelSize  # noqa: F401
    from gigapatch.io.readers import PlainImage, available_readers, find_images, open_image  # noqa: F401
    from gigapatch.io.samples import as_grey  # noqa: F401
    from gigapatch.io.tiff import TiffImage  # noqa: F401
    from gigapatch.io.tiff_write import write_pyramidal_tiff  # noqa: F401
    from gigapatch.outputs.extract import extract_patches  # noqa: F401
    from gigapatch.outputs.geojson import export_geojson  # noqa: F401
    from gigapatch.outputs.overlay import contact_sheet, write_overlay  # noqa: F401
    from gigapatch.outputs.patchset import PatchSet  # noqa: F401
    from gigapatch.outputs.run import ConfigRecipe, tile_image  # noqa: F401
    from gigapatch.plugin.context import ImageContext, ScoreContext  # noqa: F401
    from gigapatch.plugin.manager import get_plugin_manager, list_domains  # noqa: F401
    from gigapatch.plugin.options import TileOption  # noqa: F401
    from gigapatch.tiling.coverage import coverage_report  # noqa: F401
    from gigapatch.tiling.integral import box_sums, integral_image, mask_fraction  # noqa: F401
    from gigapatch.tiling.mask import otsu_saturation_mask  # noqa: F401
    from gigapatch.tiling.place import axis_positions, grid_coords, optimal_coords  # noqa: F401
    from gigapatch.tiling.refine import pad_mask, refine_mask  # noqa: F401
    from gigapatch.tiling.score import (  # noqa: F401
        batched_pixel_scores,
        laplacian_variance,
        sharpness_batch,
        tenengrad,
    )
    from gigapatch.tiling.segment import Region, regions_to_mask, segment_mask  # noqa: F401
    from gigapatch.tiling.select import select_patches  # noqa: F401
    from gigapatch.training.stitch import make_mosaic, select_tiles  # noqa: F401
