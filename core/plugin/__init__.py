"""The plugin contract: hook specifications, the per-image context and the plugin manager.

The one folder a plugin author reads: :mod:`~gigapatch.plugin.hookspecs` (what a plugin can do),
:mod:`~gigapatch.plugin.context` (what it is given), :mod:`~gigapatch.plugin.builtin` (the
defaults, written as a plugin).
"""
