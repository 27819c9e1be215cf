"""Plugins' own ``gigapatch tile`` flags (``gigapatch_tile_options``): listed by ``--help``,
clashes refused in one line naming both, values read as ``--set`` reads them, each option's
overrides for its domain only, ``--geojson VALUE`` taken off the command line before click."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gigapatch import ConfigError, ConfigRecipe, TileOption, hookimpl
from gigapatch.cli.app import main
from gigapatch.cli.tile_options import GivenFlags, plugin_overrides, take_flag_values
from gigapatch.plugin.manager import get_plugin_manager


class _Plugin:
    """A plugin whose ``gigapatch_tile_options`` answers ``options``."""

    def __init__(self, options: list[Any] | None) -> None:
        self.options = options

    @hookimpl
    def gigapatch_tile_options(self) -> list[Any] | None:
        return self.options


@pytest.fixture
def register():
    """Register fake plugins in the process-wide manager for one test."""
    pm = get_plugin_manager()
    names: list[str] = []

    def add(name: str, *options: Any) -> None:
        pm.register(_Plugin(list(options)), name=name)
        names.append(name)

    yield add
    for name in names:
        pm.unregister(name=name)


def one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    return err


def test_help_lists_plugin_flags_and_values(register, capsys: pytest.CaptureFixture) -> None:
    register("leafy", TileOption(("--max-brown", "--brown"), key="plugin.leafy.max_brown",
                                 metavar="F", domain="generic", help="browner patches go"),
             TileOption(("--format",), values={"leafzip": {"output.table": "none"}},
                        domain="generic", help="leaves zipped"))
    main(["tile", "--help"])  # (exit code 0: main returns)
    out = capsys.readouterr().out
    for text in ("--max-brown", "--brown", "browner patches go", "leafzip", "leaves zipped",
                 "generic options (plugin leafy)"):
        assert text in out, text


@pytest.mark.parametrize("option, names", [
    (TileOption(("--workers",), key="plugin.x.w"), ["'clashy'", "core's --workers"]),
    (TileOption(("--quiet-please", "--no-geojson"), key="plugin.x.g"),
     ["'clashy'", "core's --no-geojson"]),
    (TileOption(("--format",), values={"png": {}}), ["'clashy'", "core's --format png"]),
    (TileOption(("--patch-size",), values={"huge": {}}), ["'clashy'", "--patch-size", "config key"]),
])
def test_a_clash_is_one_line_naming_both(register, capsys: pytest.CaptureFixture, option,
                                         names: list[str], tmp_path: Path) -> None:
    register("clashy", option)
    err = one_line_error(capsys, ["tile", str(tmp_path), "--out", str(tmp_path / "o")])
    for name in names:
        assert name in err, err
    assert not (tmp_path / "o").exists()  # refused before any work
    # --help is refused the same way
    assert one_line_error(capsys, ["tile", "--help"]) == err


@pytest.mark.parametrize("first, second, flag", [
    (TileOption(("--leaf-size",), key="plugin.first.size"),
     TileOption(("--leaf-size",), key="plugin.second.size"), "--leaf-size"),
    (TileOption(("--format",), values={"leafzip": {}}),
     TileOption(("--format",), values={"leafzip": {}}), "--format leafzip"),
])
def test_two_plugins_with_one_flag(register, capsys: pytest.CaptureFixture, first, second,
                                   flag: str) -> None:
    register("first", first)
    register("second", second)
    err = one_line_error(capsys, ["tile", "--help"])
    assert "'first'" in err and "'second'" in err and flag in err, err


def test_a_bad_answer_is_one_line(register, capsys: pytest.CaptureFixture) -> None:
    register("wrong", {"--x": "y"})
    err = one_line_error(capsys, ["tile", "--help"])
    assert "plugin 'wrong'" in err and "TileOption" in err


def test_option_descriptions_are_checked() -> None:
    with pytest.raises(ConfigError, match="--name"):
        TileOption(("bands",), key="a.b")
    with pytest.raises(ConfigError, match="not both or neither"):
        TileOption(("--bands",))
    with pytest.raises(ConfigError, match="not both or neither"):
        TileOption(("--format",), key="a.b", values={"x": {}})
    opt = TileOption("--one", key="a.b", choices=["x", "y"])  # type: ignore[arg-type]
    assert opt.flags == ("--one",) and opt.choices == ("x", "y") and opt.name == "--one"


def test_geojson_values_are_taken_off_the_command_line() -> None:
    from typer.main import get_command

    from gigapatch.cli import app

    params = get_command(app).commands["tile"].params  # type: ignore[attr-defined]
    values = {"--geojson": {"wgs84": {}, "native": {}}}
    given: dict[str, list[str]] = {}
    args = ["a.tif", "--geojson", "wgs84", "--geojson=native", "--geojson", "b.tif", "--",
            "--geojson", "wgs84"]
    assert take_flag_values(args, values, params, given) == [
        "a.tif", "--geojson", "b.tif", "--", "--geojson", "wgs84"]
    assert given == {"--geojson": ["wgs84", "native"]}
    with pytest.raises(ConfigError, match="--geojson takes no value, or one of: wgs84, native"):
        take_flag_values(["--geojson=bogus"], values, params, {})


def _given(*new: tuple[TileOption, str], values: dict[str, list[str]] | None = None,
           known: dict[str, dict[str, tuple[str, TileOption]]] | None = None) -> GivenFlags:
    return GivenFlags(new=[("p", o, t) for o, t in new], values=values or {}, known=known or {})


def test_values_are_read_as_set_reads_them_for_their_domain_only() -> None:
    bands = TileOption(("--bands",), key="plugin.satellite.bands", domain="satellite")
    size = TileOption(("--tile-side",), key="patch.size")  # no domain: every image
    geo = TileOption(("--geojson",), domain="satellite", values={
        "native": {"plugin.satellite.footprints": ["native"]},
        "wgs84": {"plugin.satellite.footprints": ["wgs84"]}})
    fmt = TileOption(("--format",), domain="satellite",
                     values={"geotiff": {"plugin.satellite.chips": "geotiff"}})
    known = {"--geojson": {"native": ("s", geo), "wgs84": ("s", geo)},
             "--format": {"geotiff": ("s", fmt)}}
    given = _given((bands, "3,2,1"), (size, "128"), values={"--geojson": ["native", "wgs84"]},
                   known=known)
    over, core_fmt = plugin_overrides(given, "geotiff", lambda d: True)
    assert core_fmt is None
    assert over.common == {"patch.size": 128}  # YAML: an int, like --set patch.size=128
    assert over.domains == {"satellite": {
        "plugin.satellite.bands": "3,2,1", "plugin.satellite.footprints": ["native", "wgs84"],
        "plugin.satellite.chips": "geotiff", "output.extract": False}}
    # without extraction a plugin's --format does nothing (as --format png alone)
    over, core_fmt = plugin_overrides(_given(known=known), "geotiff", lambda d: False)
    assert core_fmt is None and over.domains == {}
    # a core format passes through; an unknown one is one line listing every value
    assert plugin_overrides(_given(known=known), "png", lambda d: True)[1] == "png"
    with pytest.raises(ConfigError, match=r"--format tif: config key 'output.format': "
                                          r"expected one of jpeg, png, tar, geotiff \(satellite\)"):
        plugin_overrides(_given(known=known), "tif", lambda d: True)
    # the recipe applies a domain's overrides to that domain only
    recipe = ConfigRecipe(overrides={"patch.size": 128}, domain_overrides=over.domains | {
        "satellite": {"plugin.satellite.bands": "3,2,1"}})
    assert recipe.resolve("satellite").plugin["satellite"]["bands"] == "3,2,1"
    generic = recipe.resolve("generic")
    assert "satellite" not in generic.plugin and generic.patch.size == 128
    assert generic.hash() == ConfigRecipe(overrides={"patch.size": 128}).resolve("generic").hash()


def test_choices_are_checked_before_any_work() -> None:
    opt = TileOption(("--sensor",), key="plugin.satellite.sensor", choices=("a", "b"))
    with pytest.raises(ConfigError, match="--sensor c: expected one of a, b"):
        plugin_overrides(_given((opt, "c")), None, lambda d: False)
