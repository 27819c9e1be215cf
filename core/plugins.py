"""The plugin manager: built-in defaults plus everything registered under the entry-point group
``gigapatch``. The core never imports a plugin package; it only asks pluggy."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import pluggy

from . import hookspecs

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "gigapatch"


def _new_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    from . import builtin

    pm.register(builtin, name="builtin")
    if load_entrypoints:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


@lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager (created on first use)."""
    return _new_manager()


def list_plugins() -> list[dict[str, Any]]:
    """Name, version and implemented hooks of every registered plugin."""
    pm = get_plugin_manager()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        dist = dists.get(id(plugin))
        out.append(
            {
                "name": name,
                "module": getattr(plugin, "__name__", repr(plugin)),
                "version": dist.version if dist is not None else _own_version(),
                "hooks": hooks,
            }
        )
    return out


def list_domains() -> dict[str, dict[str, Any]]:
    """All domains declared through ``gigapatch_domains``, by name."""
    domains: dict[str, dict[str, Any]] = {}
    for result in get_plugin_manager().hook.gigapatch_domains():
        for d in result or []:
            domains[d["name"]] = d
    return domains


def _own_version() -> str:
    from . import __version__

    return __version__
