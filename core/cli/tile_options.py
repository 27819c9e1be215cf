"""Flags that plugins add to ``gigapatch tile`` (``gigapatch_tile_options``, :class:`TileOption`).

:class:`TileCommand` is the click command of ``gigapatch tile``. The first time it parses a
command line or shows its help, it asks every plugin for its options (once per process; the
other commands never do) and adds them to its parameters, built by typer like the core's own,
so ``gigapatch tile --help`` lists them in a panel per domain. A flag the core or another plugin
already has, or a value of ``--format`` / ``--geojson`` that is taken, is one
:class:`~gigapatch.ConfigError` line naming both.

``--geojson`` is a boolean flag of the core, and click cannot give a flag an optional value, so
``--geojson wgs84`` (or ``--geojson=wgs84``) is taken off the command line before click parses
it when ``wgs84`` is a plugin's value of ``--geojson``; a bare ``--geojson`` is the QuPath export
as before. :func:`plugin_overrides` turns what was given into config overrides: a new flag sets
its key to the value read as YAML (as ``--set KEY=VALUE`` does), a plugin value applies its
overrides, each to its option's domain only.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from gigapatch.plugin.options import TileOption

log = logging.getLogger("gigapatch")

#: ctx.meta key of what the plugins' flags were given (a :class:`GivenFlags`)
META = "gigapatch.tile_options"


@dataclass
class PluginFlags:
    """Every plugin's ``gigapatch tile`` options, checked, with the click parameters of the new
    flags."""

    #: click parameter name -> (plugin, option) of every new flag
    new: dict[str, tuple[str, TileOption]] = field(default_factory=dict)
    #: core flag -> value -> (plugin, option) of every plugin value of a core flag
    values: dict[str, dict[str, tuple[str, TileOption]]] = field(default_factory=dict)
    #: the typer-built click parameters of the new flags
    params: list[Any] = field(default_factory=list)


@dataclass
class GivenFlags:
    """What a ``gigapatch tile`` command line gave the plugins' flags."""

    #: (plugin, option, text) of every new flag given
    new: list[tuple[str, TileOption, str]] = field(default_factory=list)
    #: core flag -> the plugin values given to it, in order
    values: dict[str, list[str]] = field(default_factory=dict)
    #: every plugin value of a core flag (as :attr:`PluginFlags.values`)
    known: dict[str, dict[str, tuple[str, TileOption]]] = field(default_factory=dict)


def _core_values(flag: str) -> tuple[str, ...]:
    """The values the core itself gives ``flag`` (``--format``: jpeg, png, tar)."""
    if flag != "--format":
        return ()
    from typing import get_args

    from gigapatch.config import OutputConfig

    return tuple(str(v) for v in get_args(OutputConfig.model_fields["format"].annotation))


def collect_plugin_flags(core: Mapping[str, Any]) -> PluginFlags:
    """Ask every plugin for its options (``gigapatch_tile_options``) and check them against the
    core's flags ``core`` (flag name -> click parameter) and each other.

    Raises
    ------
    ConfigError
        one line naming the plugin and what its option clashes with (the core's flag, or the
        other plugin), or what is wrong with the option.
    """
    from gigapatch.errors import ConfigError
    from gigapatch.plugin.manager import get_plugin_manager
    from gigapatch.plugin.options import EXTENSIBLE_FLAGS, TileOption

    out = PluginFlags()
    owner: dict[str, str] = {}  # a plugin's new flag name -> that plugin
    declared: list[tuple[str, TileOption]] = []
    for impl in get_plugin_manager().hook.gigapatch_tile_options.get_hookimpls():
        plugin = impl.plugin_name
        answer = impl.function()
        if answer is None:
            continue
        if not isinstance(answer, (list, tuple)) or not all(isinstance(o, TileOption)
                                                             for o in answer):
            raise ConfigError(f"plugin {plugin!r}: gigapatch_tile_options must return a list of "
                              "gigapatch.TileOption")
        for opt in answer:
            if opt.values:
                flag = opt.name
                param = core.get(flag)
                if flag not in EXTENSIBLE_FLAGS or param is None:
                    raise ConfigError(
                        f"plugin {plugin!r}: tile option {flag} gives values to a flag that takes "
                        f"none from plugins ({', '.join(EXTENSIBLE_FLAGS)} do); a new flag needs "
                        "a config key")
                taken = out.values.setdefault(flag, {})
                for value in opt.values:
                    if value in _core_values(flag):
                        raise ConfigError(f"plugin {plugin!r}: tile option {flag} {value} "
                                          f"clashes with the core's {flag} {value}")
                    if value in taken:
                        raise ConfigError(f"plugin {plugin!r}: tile option {flag} {value} "
                                          f"clashes with plugin {taken[value][0]!r}'s {flag} "
                                          f"{value}")
                    if not value or value.startswith("-"):
                        raise ConfigError(f"plugin {plugin!r}: tile option {flag} {value!r}: a "
                                          "value cannot be empty or start with '-'")
                    taken[value] = (plugin, opt)
                continue
            for flag in opt.flags:
                if flag in core:
                    raise ConfigError(f"plugin {plugin!r}: tile option {flag} clashes with the "
                                      f"core's {flag}")
                if flag in owner:
                    raise ConfigError(f"plugin {plugin!r}: tile option {flag} clashes with "
                                      f"plugin {owner[flag]!r}'s {flag}")
                owner[flag] = plugin
            declared.append((plugin, opt))
    for i, (plugin, opt) in enumerate(declared):
        out.new[f"plugin_option_{i}"] = (plugin, opt)
    out.params = _typer_params(out.new)
    for flag, values in out.values.items():  # the core flag's help lists the plugins' values
        param = core[flag]
        by_option: dict[int, tuple[str, TileOption, list[str]]] = {}
        for value, (plugin, opt) in values.items():
            by_option.setdefault(id(opt), (plugin, opt, []))[2].append(value)
        extra = "; ".join(f"{' | '.join(vs)} ({o.domain or p}){': ' + o.help if o.help else ''}"
                          for p, o, vs in by_option.values())
        param.help = f"{(param.help or '').rstrip('.')}. Plugin values: {extra}".lstrip(". ")
    return out


def _typer_params(new: Mapping[str, tuple[str, TileOption]]) -> list[Any]:
    """The click parameters of the new flags, built by typer from a function signature like the
    core's own (so the help shows them the same way)."""
    if not new:
        return []
    from typer.main import get_command

    params = []
    for name, (plugin, opt) in new.items():
        help_text = opt.help
        if opt.choices:
            help_text = f"{help_text} ({', '.join(opt.choices)})".strip()
        info = typer.Option(*opt.flags, help=help_text, metavar=opt.metavar,
                            rich_help_panel=f"{opt.domain or plugin} options (plugin {plugin})")
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[Optional[str], info]))  # noqa: UP045

    def options(**kwargs: Any) -> None:  # pragma: no cover - never called
        """The plugins' flags."""

    options.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    holder = typer.Typer(add_completion=False)
    holder.command()(options)
    return [p for p in get_command(holder).params if p.name in new]


class TileCommand(TyperCommand):
    """``gigapatch tile`` with the plugins' flags (see the module docstring)."""

    _plugin_flags: PluginFlags | None = None

    def plugin_flags(self) -> PluginFlags:
        """The plugins' options, asked for once and added to this command's parameters."""
        if self._plugin_flags is None:
            core: dict[str, Any] = {name: p for p in self.params
                                    for name in (*p.opts, *p.secondary_opts)}
            core["--help"] = None
            flags = collect_plugin_flags(core)
            self.params.extend(flags.params)
            self._plugin_flags = flags
        return self._plugin_flags

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        flags = self.plugin_flags()
        given: dict[str, list[str]] = {}
        args = take_flag_values(args, flags.values, self.params, given)
        ctx.meta[META] = GivenFlags(values=given, known=flags.values)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        flags = self.plugin_flags()
        got: GivenFlags = ctx.meta.setdefault(META, GivenFlags(known=flags.values))
        for name, (plugin, opt) in flags.new.items():  # typer's callback knows only the core's
            text = ctx.params.pop(name, None)
            if text is not None:
                got.new.append((plugin, opt, text))
        return super().invoke(ctx)


def take_flag_values(args: list[str], values: Mapping[str, Mapping[str, Any]], params: list[Any],
                     given: dict[str, list[str]]) -> list[str]:
    """``args`` without the plugin values of the core's boolean flags (``--geojson wgs84``,
    ``--geojson=wgs84``), which go into ``given`` (flag -> values). A bare flag stays."""
    from gigapatch.errors import ConfigError

    switches = {name for p in params if getattr(p, "is_flag", False) for name in p.opts}
    taken = {f: v for f, v in values.items() if f in switches}
    if not taken:
        return args
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        flag, eq, value = arg.partition("=")
        if flag in taken and eq:
            if value not in taken[flag]:
                raise ConfigError(f"{flag} takes no value, or one of: {', '.join(taken[flag])}")
            given.setdefault(flag, []).append(value)
        elif arg in taken and i + 1 < len(args) and args[i + 1] in taken[arg]:
            given.setdefault(arg, []).append(args[i + 1])
            i += 1
        else:
            out.append(arg)
        i += 1
    return out


def _merge(into: dict[str, Any], over: Mapping[str, Any]) -> None:
    """``into.update(over)``, but two lists under one key are joined (``--geojson native
    --geojson wgs84``: footprints [native, wgs84])."""
    for k, v in over.items():
        old = into.get(k)
        if isinstance(old, list) and isinstance(v, (list, tuple)):
            into[k] = old + [x for x in v if x not in old]
        else:
            into[k] = list(v) if isinstance(v, tuple) else v


@dataclass
class PluginOverrides:
    """The config overrides of the plugins' flags."""

    #: dotted key -> value, for options of no domain (every image)
    common: dict[str, Any] = field(default_factory=dict)
    #: domain -> dotted key -> value, for that domain's images only
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: dotted key -> the flag that set it (for error messages), per domain (None: common)
    sources: dict[tuple[str | None, str], str] = field(default_factory=dict)
    #: the domains whose options were given
    used: dict[str, str] = field(default_factory=dict)

    def target(self, domain: str | None) -> dict[str, Any]:
        return self.common if domain is None else self.domains.setdefault(domain, {})

    def add(self, domain: str | None, over: Mapping[str, Any], source: str) -> None:
        _merge(self.target(domain), over)
        for k in over:
            self.sources[(domain, k)] = source
        if domain is not None:
            self.used.setdefault(domain, source)


def plugin_overrides(given: GivenFlags | None, fmt: str | None,
                     extracting: Callable[[str | None], bool]) -> tuple[PluginOverrides, str | None]:
    """The config overrides of the plugins' flags on one command line, and the ``--format``
    value left for the core (None when it was a plugin's).

    A new flag sets its key to its text read as YAML (``--set`` reads values the same way). A
    plugin value of ``--geojson`` applies its overrides. A plugin value of ``--format`` is its
    domain's extraction instead of the core's: when ``extracting(domain)`` (``--extract``, or
    ``output.extract`` in the config), its overrides apply and ``output.extract`` is off for
    that domain, so the core writes no image files beside the plugin's; without extraction it
    does nothing, as ``--format png`` alone does nothing.
    """
    from gigapatch.config import safe_yaml
    from gigapatch.errors import ConfigError

    out = PluginOverrides()
    if given is None:
        return out, fmt
    for _plugin, opt, text in given.new:
        if opt.choices is not None and text not in opt.choices:
            raise ConfigError(f"{opt.name} {text}: expected one of {', '.join(opt.choices)}")
        assert opt.key is not None
        out.add(opt.domain, {opt.key: safe_yaml(text, opt.name)}, f"{opt.name} {text}")
    for flag, values in given.values.items():
        for value in values:
            _plugin, opt = given.known[flag][value]
            out.add(opt.domain, opt.values[value], f"{flag} {value}")
    formats = given.known.get("--format", {})
    if fmt is not None and fmt in formats:
        _plugin, opt = formats[fmt]
        if extracting(opt.domain):
            out.add(opt.domain, {**opt.values[fmt], "output.extract": False}, f"--format {fmt}")
        elif opt.domain is not None:
            out.used.setdefault(opt.domain, f"--format {fmt}")
        fmt = None
    elif fmt is not None and fmt not in _core_values("--format"):
        choices = [*_core_values("--format"),
                   *(f"{v} ({o.domain or p})" for v, (p, o) in formats.items())]
        raise ConfigError(f"--format {fmt}: config key 'output.format': expected one of "
                          f"{', '.join(choices)}")
    return out, fmt


def check_plugin_settings(over: PluginOverrides, resolve: Callable[[str], Any]) -> None:
    """Validate, before any work, the settings of every domain a plugin flag set: the core's
    keys through ``resolve(domain)`` (a :class:`~gigapatch.Config`), the domain's own
    ``plugin.<domain>`` keys through the settings model it declares. One line naming the flag.
    """
    from pydantic import ValidationError

    from gigapatch.errors import ConfigError
    from gigapatch.plugin.manager import list_domains

    domains = list_domains()
    for domain in over.domains:
        if domain not in domains:
            known = ", ".join(sorted(domains)) or "none"
            raise ConfigError(f"{over.used.get(domain, 'a plugin flag')}: unknown domain "
                              f"{domain!r} (installed: {known})")
        cfg = resolve(domain)
        model = domains[domain].get("settings")
        if model is None:
            continue
        try:
            model.model_validate((cfg.plugin or {}).get(domain) or {})
        except ValidationError as e:
            first = e.errors()[0]
            where = f"plugin.{domain}." + ".".join(str(p) for p in first["loc"])
            source = next((s for (d, k), s in over.sources.items()
                           if d == domain and (where == k or where.startswith(k + "."))), None)
            raise ConfigError(f"{source + ': ' if source else ''}config key {where!r}: "
                              f"{first['msg']}") from None


__all__ = ["GivenFlags", "PluginFlags", "PluginOverrides", "TileCommand", "check_plugin_settings",
           "collect_plugin_flags", "plugin_overrides", "take_flag_values"]
