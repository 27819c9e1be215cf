"""Commands that plugins add to the ``gigapatch`` command line (``gigapatch_cli_commands``).

Every plugin's hook is called once per process, before the command line is parsed; a plugin
registers its commands on the typer app. A command name already taken (by the core or another
plugin) is one :class:`~gigapatch.ConfigError` line naming both.
"""

from __future__ import annotations

from typing import Any

#: attribute set on the app once the plugins' commands are in
_DONE = "_gigapatch_plugin_commands"


def _names(app: Any) -> list[str | None]:
    return [c.name or (c.callback.__name__.replace("_", "-") if c.callback else None)
            for c in app.registered_commands]


def add_plugin_commands(app: Any) -> None:
    """Let every plugin add its commands to ``app`` (once; later calls do nothing)."""
    if getattr(app, _DONE, False):
        return
    setattr(app, _DONE, True)
    from gigapatch.errors import ConfigError
    from gigapatch.plugin.manager import get_plugin_manager

    pm = get_plugin_manager()
    for impl in pm.hook.gigapatch_cli_commands.get_hookimpls():
        before = _names(app)
        impl.function(app=app)
        after = _names(app)
        added = after[len(before):]
        clash = [n for n in added if n in before or added.count(n) > 1]
        if clash:
            del app.registered_commands[len(before):]
            raise ConfigError(f"plugin {impl.plugin_name!r}: command {clash[0]!r} is already a "
                              "gigapatch command")


__all__ = ["add_plugin_commands"]
