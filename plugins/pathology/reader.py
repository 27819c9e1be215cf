"""OpenSlide reader (placeholder until implemented)."""
from __future__ import annotations

from gigapatch import hookimpl


@hookimpl
def gigapatch_open_image(path, domain):
    return None
