"""H&E tissue mask (placeholder until implemented)."""
from __future__ import annotations

from gigapatch import hookimpl


@hookimpl
def gigapatch_foreground_mask(rgb, domain, config):
    return None
