"""A STAC catalog of the chips of one image (``<id>_stac/``), written with pystac.

One Item per kept patch: its WGS 84 footprint (RFC 7946) and bbox, the acquisition datetime
(from a Landsat / Sentinel-2 product id in the file name, else the file's ``TIFFTAG_DATETIME``,
else its modification time; ``gigapatch:datetime_source`` says which), the projection extension's
``proj:code``, ``proj:transform``, ``proj:shape`` and ``proj:bbox`` (the chip's own grid), the
patch's scores, and an asset: the GeoTIFF chip when chips are written (``chips: geotiff``),
else the source raster (with the patch's window in ``gigapatch:window``). The catalog is
self-contained (relative links) and written under a hidden name, then renamed whole.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .columns import BOUNDS, TRANSFORM
from .geo import patch_corners, to_wgs84
from .reader import RasterioImage

PROJECTION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
_DATE = re.compile(r"_(\d{8})(?:T\d{6})?_")


def acquisition_time(image: RasterioImage) -> tuple[dt.datetime, str]:
    """When the scene was taken, and where that came from (see the module docstring)."""
    name = image.path.name if image.path else ""
    m = _DATE.search(name)
    if m:
        try:
            return dt.datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=dt.timezone.utc), \
                "file name"
        except ValueError:
            pass
    tag = image.properties.get("datetime")
    if tag:
        try:
            return dt.datetime.strptime(tag, "%Y:%m:%d %H:%M:%S").replace(
                tzinfo=dt.timezone.utc), "TIFFTAG_DATETIME"
        except ValueError:
            pass
    mtime = os.path.getmtime(image.path) if image.path else 0.0
    return dt.datetime.fromtimestamp(mtime, dt.timezone.utc), "file modification time"


def write_stac(out_dir: Path, image: RasterioImage, patchset: Any, chips: list[Path] | None,
               edge: str) -> Path:
    """Write the catalog of ``patchset``'s kept patches into ``out_dir``; returns the path of
    its ``catalog.json``. ``chips``: the GeoTIFF chip of each patch (same order), or None.

    Raises
    ------
    ConfigError : pystac is not installed (one line).
    """
    try:
        import pystac
    except ImportError:
        from gigapatch import ConfigError

        raise ConfigError("plugin.satellite.stac needs pystac (pip install "
                          "'gigapatch[satellite]')") from None

    ps = patchset
    c = np.asarray(ps.coords, np.int64).reshape(-1, 2)
    when, source = acquisition_time(image)
    crs = image.crs
    lonlat = to_wgs84(patch_corners(c, ps.patch_size_level0, image.transform), crs) if len(c) \
        else np.zeros((0, 4, 2))
    size = int(ps.attrs.get("target_patch_size") or ps.attrs.get("patch_size") or 0)
    cat = pystac.Catalog(id=f"{ps.image_id}-chips", description=(
        f"gigapatch chips of {image.path.name if image.path else ps.image_id}: "
        f"{len(c)} patches of {ps.patch_size_level0} level-0 px, edge policy {edge}"))
    # absolute: pystac's normalize_hrefs takes a relative root's last folder for a file when
    # its name holds a dot (trailing slash or not), and the catalog landed beside the stage
    given, out_dir = Path(out_dir), Path(out_dir).absolute()
    stage = out_dir.parent / f".{out_dir.name}.{os.getpid()}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    for i in range(len(c)):
        ring = np.concatenate([lonlat[i], lonlat[i][:1]])
        ring = ring[::-1] if _signed_area(ring) < 0 else ring  # RFC 7946: counter-clockwise
        x, y = (int(v) for v in c[i])
        props: dict[str, Any] = {
            "gigapatch:x": x, "gigapatch:y": y, "gigapatch:datetime_source": source,
            "gigapatch:window": [x, y, ps.patch_size_level0, ps.patch_size_level0],
            "proj:code": f"EPSG:{crs.to_epsg()}" if crs.to_epsg() else None,
            "proj:transform": [float(ps.columns[k][i]) for k in TRANSFORM] + [0.0, 0.0, 1.0],
            "proj:shape": [size, size],
            "proj:bbox": [float(ps.columns[k][i]) for k in BOUNDS],
        }
        for k, v in ps.scores.items():
            val = float(v[i])
            props[f"gigapatch:{k}"] = val if np.isfinite(val) else None
        item = pystac.Item(
            id=f"{ps.image_id}_{x}_{y}", datetime=when, properties=props,
            geometry={"type": "Polygon", "coordinates": [ring.tolist()]},
            bbox=[float(ring[:, 0].min()), float(ring[:, 1].min()), float(ring[:, 0].max()),
                  float(ring[:, 1].max())],
            stac_extensions=[PROJECTION],
        )
        if chips is not None:
            href = os.path.relpath(chips[i], stage / item.id)
            asset = pystac.Asset(href=href, media_type=pystac.MediaType.COG, roles=["data"],
                                 title="chip: raw bands, own transform")
        else:
            assert image.path is not None
            asset = pystac.Asset(href=str(image.path.resolve()), media_type=pystac.MediaType.GEOTIFF,
                                 roles=["data"], title="source raster (window: gigapatch:window)")
        item.add_asset("data", asset)
        cat.add_item(item)
    cat.normalize_hrefs(str(stage) + "/")  # a directory (its name may hold dots)
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    try:
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return given / "catalog.json"


def write_root_catalog(root: Path) -> Path:
    """``root/catalog.json``: a catalog whose children are the image catalogs in ``root``
    (``root/<id>/catalog.json``, ``--stac DIR``), rewritten after each image under a lock, so
    images tiled at once by several workers all end up in it."""
    import json

    import pystac

    from gigapatch import file_lock, write_text_atomic

    with file_lock(root / ".catalog.lock"):
        children = sorted(p.parent.name for p in root.glob("*/catalog.json")
                          if not p.parent.name.startswith("."))
        links = [{"rel": "root", "href": "./catalog.json", "type": "application/json"},
                 *({"rel": "child", "href": f"./{c}/catalog.json", "type": "application/json",
                    "title": c} for c in children)]
        data = {"type": "Catalog", "id": "gigapatch-chips",
                "stac_version": pystac.get_stac_version(),
                "description": f"gigapatch chips of {len(children)} image(s), one child "
                "catalog each", "links": links}
        write_text_atomic(root / "catalog.json", json.dumps(data, indent=1))
    return root / "catalog.json"


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]) / 2)


__all__ = ["acquisition_time", "write_root_catalog", "write_stac"]
