"""``gigapatch demo``: a domain's own demo, end to end, through the ``gigapatch_demo`` hook."""

from pathlib import Path
from typing import Annotated

import typer

from gigapatch.cli.app import app, rich_console, setup_logging


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("gigapatch-demo"),
    domain: Annotated[str | None, typer.Option(
        help="whose demo (default: the installation's default demo)")] = None,
    size: Annotated[int | None, typer.Option(help="side of the generated image in px")] = None,
    seed: Annotated[int, typer.Option(help="random seed of the generated image")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Generate a sample image with known content, tile it and say where the outputs are."""
    setup_logging(quiet)
    from gigapatch.errors import ConfigError
    from gigapatch.plugin.manager import get_plugin_manager, list_domains

    if domain is not None and domain not in list_domains():
        known = ", ".join(sorted(list_domains()))
        raise ConfigError(f"unknown domain {domain!r} (installed: {known})")
    paths = get_plugin_manager().hook.gigapatch_demo(out=out, domain=domain, size=size, seed=seed)
    if paths is None:
        raise ConfigError(f"domain {domain!r} has no demo" if domain else "no plugin offers a demo")
    shown = rich_console(stderr=False)
    shown.print(f"demo image: {paths['image']}", highlight=False, soft_wrap=True)
    for key, value in paths.items():
        if key not in ("image", "n_patches"):
            shown.print(f"{key:>8}: {value}", highlight=False, soft_wrap=True)
    shown.print(f"{paths['n_patches']} patches kept", highlight=False)
