"""Declares the ``metal_surface`` domain and its default config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gigapatch import hookimpl

DEFAULTS = Path(__file__).with_name("metal_surface.yaml")


@hookimpl
def gigapatch_domains() -> list[dict[str, Any]]:
    from .settings import MetalSettings

    return [
        {
            "name": "metal_surface",
            "description": "grayscale metal surface scans: metal vs background, defect scoring",
            "config": DEFAULTS,
            "settings": MetalSettings,
            "region_class": "Metal",
        }
    ]
