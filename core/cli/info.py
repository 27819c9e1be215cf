"""``gigapatch info``: levels, downsamples, mpp, vendor and the reader of each image."""

from typing import Annotated

import typer

from gigapatch.cli.app import app, rich_console
from gigapatch.cli.tile import Paths


@app.command()
def info(
    paths: Paths,
    domain: Annotated[str | None, typer.Option(help="domain plugin")] = None,
) -> None:
    """Show levels, downsamples, mpp, vendor and the reader used."""
    from rich.table import Table

    from gigapatch.io.readers import find_images, open_image
    from gigapatch.io.resolution import check_mpp

    out = rich_console(stderr=False)
    for path in find_images(paths):
        with open_image(path, domain=domain) as img:
            mpp, warnings = check_mpp(img)
            t = Table(title=f"{path}", title_justify="left")
            for col in ("level", "width", "height", "downsample", "mpp"):
                t.add_column(col, justify="right")
            for i, ((lw, lh), d) in enumerate(zip(img.level_dimensions, img.level_downsamples)):
                t.add_row(str(i), str(lw), str(lh), f"{d:.3f}",
                          f"{img.mpp * d:.4f}" if img.mpp else "-")
            out.print(t)
            out.print(
                f"reader: {img.reader_name}  vendor: {img.vendor or '-'}  "
                f"mpp: {img.mpp if img.mpp is not None else 'unknown'}  "
                f"magnification: {img.magnification or '-'}", highlight=False,
            )
            for w in warnings:
                out.print(f"[yellow]warning[/yellow] {w}", highlight=False)
