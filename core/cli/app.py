"""The ``gigapatch`` command: the typer app, logging set-up and the one-line error contract.

Bad input never shows a traceback: a :class:`GigapatchError` becomes one line on stderr and exit
code 2; anything unexpected becomes one line and exit code 1 (``GIGAPATCH_DEBUG=1`` shows the
traceback). Progress bars appear only on a terminal and never with ``--quiet``. Commands import
what they use inside their bodies, so ``gigapatch tile`` never loads torch.
"""

import logging
import os
import sys

import typer

app = typer.Typer(
    name="gigapatch",
    help="Turn gigapixel images into the few thousand patches that matter.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

log = logging.getLogger("gigapatch")


def rich_console(stderr: bool = True):  # -> rich.console.Console
    """A rich console on stderr (or stdout)."""
    from rich.console import Console

    return Console(stderr=stderr)


def setup_logging(quiet: bool) -> None:
    """Warnings always reach stderr; rich formats them on a terminal (plain text otherwise)."""
    if quiet or not sys.stderr.isatty():
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    else:
        from rich.logging import RichHandler

        handler = RichHandler(console=rich_console(), show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    # a library's own chatter about a broken file would be a second line: our error names it
    for noisy in ("tifffile", "rasterio", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logging.getLogger("gigapatch").setLevel(logging.WARNING)


def show_progress(quiet: bool) -> bool:
    """Progress bars only on a terminal, and never with ``--quiet``."""
    return not quiet and sys.stderr.isatty()


def main(argv: list[str] | None = None) -> None:
    """Run the app on ``argv`` (default: the command line) and turn errors into one line."""
    from gigapatch.errors import GigapatchError

    try:
        from gigapatch.cli.plugin_commands import add_plugin_commands

        add_plugin_commands(app)  # the plugins' own commands (gigapatch_cli_commands)
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except GigapatchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        rich_console().print("interrupted")
        sys.exit(130)
    except Exception as e:
        # usage errors (unknown option, bad value): click's ClickException, which typer >= 0.29
        # bundles as its own copy, so recognise it by what it offers rather than by its class
        show, code = getattr(e, "show", None), getattr(e, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        if isinstance(e, typer.Abort) or type(e).__name__ == "Abort":
            sys.exit(1)
        if os.environ.get("GIGAPATCH_DEBUG"):
            raise
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
