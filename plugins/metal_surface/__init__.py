"""gigapatch_metal_surface: placeholder plugin package; its hooks arrive with its own issue."""

__version__ = "0.1.0"
