"""The satellite domain's ``gigapatch tile`` flags (``gigapatch_tile_options``).

Each flag is one ``plugin.satellite`` setting (``--bands 3,2,1`` is ``--set
plugin.satellite.bands=3,2,1``) and sets the config of satellite images only. Imports nothing
heavy: every ``gigapatch tile`` asks for these.
"""

from __future__ import annotations

from gigapatch import TileOption, hookimpl

from .bands import SENSORS

DOMAIN = "satellite"


@hookimpl
def gigapatch_tile_options() -> list[TileOption]:
    """``--bands``, ``--sensor``, ``--nodata``, ``--crs``, ``--stac DIR``; ``--geojson
    native|wgs84`` (footprints) and ``--format geotiff`` (chips)."""
    key = "plugin.satellite."
    return [
        TileOption(("--bands",), key=key + "bands", metavar="R,G,B[,NIR[,SWIR1]]",
                   domain=DOMAIN, help="1-based band numbers shown as red, green, blue (and "
                   "used as NIR, SWIR1 by the masks), e.g. 3,2,1 for a file stored "
                   "blue-green-red; default: the file's colour interpretation, band names or "
                   "sensor"),
        TileOption(("--sensor",), key=key + "sensor", metavar="SENSOR", choices=SENSORS,
                   domain=DOMAIN, help="band layout, fill value and reflectance scale of this "
                   "sensor's products"),
        TileOption(("--nodata",), key=key + "nodata", metavar="VALUE", domain=DOMAIN,
                   help="no-data value (default: the file's nodata, alpha band or mask; never "
                   "assumed 0)"),
        TileOption(("--crs",), key=key + "crs", metavar="EPSG:N", domain=DOMAIN,
                   help="tile every scene in this CRS through a warped VRT (default: each in "
                   "its own CRS, no reprojection)"),
        TileOption(("--stac",), key=key + "stac_dir", metavar="DIR", domain=DOMAIN,
                   help="a STAC catalog of the kept patches (one Item each; the GeoTIFF chip "
                   "as asset with --format geotiff), DIR/<image_id>/catalog.json"),
        TileOption(("--geojson",), domain=DOMAIN, values={
            "native": {key + "footprints": ["native"]},
            "wgs84": {key + "footprints": ["wgs84"]},
        }, help="kept patches' footprints: <id>_footprints.geojson in the raster's CRS, or "
            "<id>_footprints_wgs84.geojson, RFC 7946 lon/lat"),
        TileOption(("--format",), domain=DOMAIN, values={
            "geotiff": {key + "chips": "geotiff"},
        }, help="with --extract, every kept patch as a GeoTIFF chip (raw bands, own "
            "transform, CRS, no-data) in <id>_chips/, and no image files"),
    ]


__all__ = ["gigapatch_tile_options"]
