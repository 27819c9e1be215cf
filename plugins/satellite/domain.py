"""Declares the ``satellite`` domain and its default config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gigapatch import hookimpl

DEFAULTS = Path(__file__).with_name("satellite.yaml")


@hookimpl
def gigapatch_domains() -> list[dict[str, Any]]:
    return [
        {
            "name": "satellite",
            "description": "GeoTIFF / COG scenes (rasterio): data vs no-data, clouds, water",
            "config": DEFAULTS,
        }
    ]
