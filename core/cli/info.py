"""``gigapatch info``: levels, downsamples, mpp, vendor and the reader of each image.

File names are printed whole on one line (never wrapped at the terminal's width, so they can be
copied); a file that cannot be opened is one ``error:`` line and the others are still shown.
"""

import sys
from typing import Annotated

import typer

from gigapatch.cli.app import app, rich_console, setup_logging
from gigapatch.cli.tile import Paths


@app.command()
def info(
    paths: Paths,
    domain: Annotated[str | None, typer.Option(help="domain plugin")] = None,
) -> None:
    """Show levels, downsamples, mpp, vendor and the reader used."""
    from rich.table import Table

    from gigapatch.errors import ImageError
    from gigapatch.io.readers import find_images, open_image
    from gigapatch.io.resolution import check_mpp
    from gigapatch.plugin.manager import get_plugin_manager

    setup_logging(quiet=False)
    out = rich_console(stderr=False)
    images = find_images(paths)
    bad = 0
    for path in images:
        try:
            img = open_image(path, domain=domain)
        except ImageError as e:
            print(f"error: {e}", file=sys.stderr)
            bad += 1
            continue
        with img:
            mpp, warnings = check_mpp(img)
            out.print(str(path), soft_wrap=True, highlight=False, markup=False)
            t = Table()
            for col in ("level", "width", "height", "downsample", "mpp"):
                t.add_column(col, justify="right", no_wrap=True)
            for i, ((lw, lh), d) in enumerate(zip(img.level_dimensions, img.level_downsamples)):
                t.add_row(str(i), str(lw), str(lh), f"{d:.3f}",
                          f"{img.mpp * d:.4f}" if img.mpp else "-")
            out.print(t)
            out.print(
                f"reader: {img.reader_name}  vendor: {img.vendor or '-'}  "
                f"mpp: {img.mpp if img.mpp is not None else 'unknown'}  "
                f"magnification: {img.magnification or '-'}",
                soft_wrap=True, highlight=False, markup=False,
            )
            pixel = img.pixel_size
            out.print(
                f"samples: {img.dtype} x {img.channels} ({img.bits}-bit)  pixel size: "
                f"{pixel.to('mm') if pixel is not None else 'unknown'}",
                soft_wrap=True, highlight=False, markup=False,
            )
            for facts in get_plugin_manager().hook.gigapatch_describe_image(image=img):
                for label, text in (facts or {}).items():  # a reader's own: CRS, bands...
                    out.print(f"{label}: {text}", soft_wrap=True, highlight=False, markup=False)
            for w in warnings:
                out.print(f"warning: {w}", soft_wrap=True, highlight=False, markup=False,
                          style="yellow")
    if bad:
        raise typer.Exit(2 if bad == len(images) else 1)
