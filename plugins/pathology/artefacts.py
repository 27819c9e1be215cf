"""Pen and blur artefacts (placeholder until implemented)."""
from __future__ import annotations

from gigapatch import hookimpl


@hookimpl
def gigapatch_exclusion_masks(rgb, domain, config):
    return None


@hookimpl
def gigapatch_score_patches(image, coords, context):
    return None
