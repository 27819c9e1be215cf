"""Declares the ``pathology`` domain and its default config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gigapatch import hookimpl

DEFAULTS = Path(__file__).with_name("pathology.yaml")


@hookimpl
def gigapatch_domains() -> list[dict[str, Any]]:
    return [
        {
            "name": "pathology",
            "description": "H&E / IHC whole-slide images: tissue vs glass, pen and blur artefacts",
            "config": DEFAULTS,
        }
    ]
