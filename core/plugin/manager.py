"""The plugin manager: every plugin registered under the entry-point group ``gigapatch``.

The built-in defaults (:mod:`gigapatch.plugin.builtin`) are one of those entry points, like the
domain plugins: the core never imports a plugin, it only asks pluggy. At start-up every
registered implementation is checked against the specifications in
:mod:`gigapatch.plugin.hookspecs` (pluggy's ``check_pending``), so a misspelt hook name, or an
argument a specification does not have, is a one-line :class:`~gigapatch.ConfigError` naming the
plugin, not a silently ignored function or a traceback.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from importlib.metadata import version as dist_version
from typing import Any

import pluggy

from gigapatch.errors import ConfigError
from gigapatch.plugin import hookspecs

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "gigapatch"
#: every hook a plugin may implement (the names of :mod:`gigapatch.plugin.hookspecs`)
HOOK_NAMES = tuple(sorted(n for n in vars(hookspecs) if n.startswith("gigapatch_")))


def new_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    """A fresh manager with gigapatch's hook specifications (and its entry points loaded).

    Parameters
    ----------
    load_entrypoints : load and check every plugin of the entry-point group ``gigapatch``
        (False: specifications only, for tests that register plugins themselves and then call
        :func:`check_plugins`).

    Raises
    ------
    ConfigError
        when a registered plugin implements a hook that no specification names (a typo), names
        an argument its hook's specification does not have (one line naming the plugin), or
        cannot be imported at all.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if load_entrypoints:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except pluggy.PluginValidationError as e:
            raise ConfigError(plugin_error(pm, e)) from None
        except Exception as e:  # a plugin that does not import: one line, not a traceback
            raise ConfigError(f"a plugin of the entry-point group {ENTRY_POINT_GROUP!r} cannot "
                              f"be loaded: {type(e).__name__}: {e}") from e
        check_plugins(pm)
    return pm


def check_plugins(pm: pluggy.PluginManager) -> None:
    """:meth:`pluggy.PluginManager.check_pending`: every registered ``@hookimpl`` must name a
    hook of :mod:`gigapatch.plugin.hookspecs`.

    Raises
    ------
    ConfigError
        one line naming the plugin and the unknown hook (with the closest hook name, if any).
    """
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise ConfigError(plugin_error(pm, e)) from None


def plugin_error(pm: pluggy.PluginManager, error: pluggy.PluginValidationError) -> str:
    """pluggy's (multi-line) validation error as one line: ``plugin 'NAME': problem``."""
    import difflib
    import inspect

    plugin = error.plugin
    name = pm.get_name(plugin) or getattr(plugin, "__name__", None) or repr(plugin)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    unknown = re.match(r"unknown hook '(\w+)'", lines[0]) if lines else None
    if unknown is not None:
        hook = unknown.group(1)
        close = difflib.get_close_matches(hook, HOOK_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"plugin {name!r}: unknown hook {hook!r}{hint}"
    text = " ".join(lines)
    defined = re.search(r"hookimpl definition: (\w+\(.*?\))", text)
    extra = re.search(r"Argument\(s\) \{(.*?)\} are declared", text)
    if defined is not None and extra is not None:
        hook = defined.group(1).split("(")[0]
        spec = getattr(hookspecs, hook, None)
        takes = ", ".join(inspect.signature(spec).parameters) if spec is not None else "?"
        return (f"plugin {name!r}: {defined.group(1)} names argument(s) {extra.group(1)} that "
                f"the hook does not have (it takes {takes})")
    return f"plugin {name!r}: " + re.sub(rf"^Plugin {re.escape(repr(name))} ", "", "; ".join(lines))


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
    """The domain an image is tiled with when the run names none (no ``--domain``, no
    ``domain:`` in the config file): the first plugin whose ``gigapatch_image_domain`` claims it,
    else ``"generic"`` (the one domain the core itself names)."""
    return get_plugin_manager().hook.gigapatch_image_domain(image=image) or "generic"


__all__ = [
    "HOOK_NAMES",
    "check_plugins",
    "get_plugin_manager",
    "image_domain",
    "list_domains",
    "list_plugins",
    "new_plugin_manager",
    "plugin_error",
]
