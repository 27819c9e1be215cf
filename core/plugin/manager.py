"""The plugin manager: every plugin registered under the entry-point group ``gigapatch``.

The built-in defaults (:mod:`gigapatch.plugin.builtin`) are one of those entry points, like the
domain plugins: the core never imports a plugin, it only asks pluggy. At start-up every
registered implementation is checked against the specifications (:meth:`check_pending`), so a
misspelt hook name is an error, not a silently ignored function.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib.metadata import version as dist_version
from typing import Any

import pluggy

from gigapatch.errors import ConfigError
from gigapatch.plugin import hookspecs

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "gigapatch"


def new_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    """A fresh manager with gigapatch's hook specifications (and its entry points loaded).

    Raises
    ------
    ConfigError
        when a registered plugin implements a hook that no specification names (a typo).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        check_plugins(pm)
    return pm


def check_plugins(pm: pluggy.PluginManager) -> None:
    """:meth:`pluggy.PluginManager.check_pending` as one :class:`ConfigError` line naming the
    plugin and the hook it misspelt."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise ConfigError(f"plugin {e.plugin!r}: {e}") from None


@lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (created on first use)."""
    return new_plugin_manager()


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
                "version": dist.version if dist is not None else dist_version("gigapatch"),
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





def image_domain(image: Any) -> str:
    """The domain an image is tiled with when the run names none: the first plugin that claims
    it (``gigapatch_image_domain``), else ``"generic"``."""
    return get_plugin_manager().hook.gigapatch_image_domain(image=image) or "generic"
__all__ = ["check_plugins", "get_plugin_manager", "image_domain", "list_domains", "list_plugins", "new_plugin_manager"]
