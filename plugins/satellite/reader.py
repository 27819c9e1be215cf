"""A rasterio reader: GeoTIFF / COG (and any raster GDAL opens) as a :class:`gigapatch.Image`.

* Level 0 is the full-resolution raster; a COG's internal (or ``.ovr``) overviews are the further
  pyramid levels (opened with rasterio's ``overview_level``).
* Band roles (red, green, blue, near infrared, SWIR1) come from the user, a sensor preset, the
  file's colour interpretation or band descriptions, or a product id in the file name
  (:mod:`.bands`); R, G, B are shown, and every role is read for the masks.
* 8-bit bands are shown as they are; 16-bit / float bands are stretched to uint8 between their
  2nd and 98th percentiles of the valid pixels of a small overview (recorded in
  ``properties["stretch"]``). The stretch is for display and masks only: :meth:`read_bands`
  gives the raw values of any bands (the chips).
* No-data comes from the user (``plugin.satellite.nodata``), else the file (its nodata value,
  alpha band or internal mask), else the sensor's fill value when a preset is in force; never
  assumed 0 otherwise (``properties["nodata_source"]`` says which). NaN is never valid. No-data
  pixels read as black ``(0, 0, 0)`` and a valid pixel never does, so the RGB view alone tells
  valid from no-data; pixels outside the raster read as white, as for every :class:`Image`.
* Reads of several threads run in parallel: every thread borrows its own dataset handle
  (GDAL handles are not thread-safe), instead of one lock serialising every read. GDAL's block
  cache is capped at 16 MB (unless ``GDAL_CACHEMAX`` is set), so memory stays flat.
* ``mpp`` is None (no microscope): ``properties["pixel_size_m"]`` is the pixel size in metres
  (and ``mpp_x`` / ``mpp_y`` the pitch in microns, the core's physical pixel size), with
  ``crs``, ``transform`` and ``bounds``.

Which files it opens: :mod:`.opening`.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from gigapatch import Image, ImageError

from .bands import BandRoles, choose_roles, reflectance_scale
from .handles import Handles, first_line, quiet_open
from .stretch import stretch_lut, to_rgb8

#: longer side of the view the stretch percentiles are computed from
STATS_SIDE = 1024
#: a low-resolution pixel is no-data in :meth:`RasterioImage.nodata_mask` when less than this
#: fraction of it is valid
VALID_FRACTION = 0.5


#: patches of a group the core's reader hands one thread (:meth:`RasterioImage.patch_groups`)
PATCH_GROUP = 32


#: GDAL's block cache (MB) while no GDAL_CACHEMAX is set: GDAL's own default, 5 % of the RAM,
#: lets a 40,000 px COG's decoded tiles grow a process by a gigabyte; reads go tile by tile, so
#: 16 MB (eight 512 px 4-band uint16 tiles) reads chips as fast as 64 MB did (10k COG, 1031
#: GeoTIFF chips: 34 s vs 36 s) with a peak RSS of 315 MB instead of 405
GDAL_CACHE_MB = 16


def bound_gdal_cache() -> None:
    """Cap GDAL's (process-wide) block cache at :data:`GDAL_CACHE_MB` unless the environment
    sets ``GDAL_CACHEMAX``: reads go tile by tile, so a few tiles per thread is all it needs."""
    if "GDAL_CACHEMAX" not in os.environ:
        from rasterio.env import set_gdal_config

        set_gdal_config("GDAL_CACHEMAX", GDAL_CACHE_MB << 20)  # bytes (a small number is too)


class RasterioImage(Image):
    """A georeferenced raster read by region through rasterio (GDAL).

    Parameters
    ----------
    path : any raster GDAL opens (GeoTIFF, COG, JPEG2000, VRT...).
    bands : ``(R, G, B[, NIR[, SWIR1]])`` 1-based band indexes (one index: grey), or None for the
        file's own roles (see :mod:`.bands`).
    sensor : a sensor preset (``"landsat8"``, ``"landsat7"``, ``"sentinel2"``) or None.
    nodata : the no-data value, overriding the file's; None: the file's (see the module notes).
    stretch : stretch to uint8 by percentiles; None = only when the bands are not 8-bit.
    percentiles : (low, high) percentiles of the stretch.
    crs : read the raster reprojected to this CRS (e.g. ``"EPSG:4326"``, through a GDAL warped
        VRT: one level, no overviews); None reads it in its own CRS.

    Raises
    ------
    ImageError : rasterio cannot open the file, or a band index is out of range.
    """

    reader_name = "rasterio"

    def __init__(
        self,
        path: str | Path,
        bands: tuple[int, ...] | list[int] | None = None,
        sensor: str | None = None,
        nodata: float | None = None,
        stretch: bool | None = None,
        percentiles: tuple[float, float] = (2.0, 98.0),
        crs: str | None = None,
    ) -> None:
        super().__init__(path)
        try:
            import rasterio  # noqa: F401
        except ImportError as e:  # pragma: no cover - the extra is installed with the plugin
            raise ImageError(self.path, "rasterio is not installed (pip install "
                             "'gigapatch[satellite]')") from e
        self._handles: Handles | None = None
        self._settings: tuple[Any, ...] | None = None
        self._view: tuple[Any, dict[str, np.ndarray]] | None = None
        self.configure(bands=bands, sensor=sensor, nodata=nodata, stretch=stretch,
                       percentiles=percentiles, crs=crs)

    # ------------------------------------------------------------------ set-up
    def configure(
        self,
        bands: tuple[int, ...] | list[int] | None = None,
        sensor: str | None = None,
        nodata: float | None = None,
        stretch: bool | None = None,
        percentiles: tuple[float, float] = (2.0, 98.0),
        crs: str | None = None,
        reflectance: tuple[float | None, float | None] = (None, None),
    ) -> None:
        """(Re)decide band roles, no-data, stretch and CRS (the arguments are those of the
        constructor; ``reflectance`` is the user's ``(scale, offset)`` to reflectance). Nothing
        is redone when they are the ones in force."""
        bound_gdal_cache()
        key = (tuple(bands) if bands else None, sensor, nodata, stretch,
               tuple(percentiles), crs, tuple(reflectance))
        if key == self._settings:
            return
        self.close()
        self._view = None
        ds = self._open(0, crs)
        self._handles = Handles(lambda level: self._open(level, crs), ds)
        self._settings = key
        try:
            self._levels = self._level_shapes(ds, crs)
            ci = [c.name for c in ds.colorinterp]
            try:
                self._roles = choose_roles(ds.count, ci, list(ds.descriptions),
                                           self.path.name if self.path else "", bands, sensor)
            except ValueError as e:
                raise ImageError(self.path, str(e)) from None
            self._dtype = np.dtype(ds.dtypes[self._roles.red - 1])
            self._nodata_policy(ds, nodata)
            gdal = (float(ds.scales[self._roles.red - 1]), float(ds.offsets[self._roles.red - 1]))
            self._refl = reflectance_scale(self._roles, str(self._dtype), gdal, reflectance)
            self._stretch_on = (self._dtype != np.uint8) if stretch is None else bool(stretch)
            self._percentiles = (float(percentiles[0]), float(percentiles[1]))
            self._stretch: np.ndarray | None = None  # (3, 2) low, high per shown band
            if self._stretch_on:
                self._stretch = self._compute_stretch()
            self._lut = stretch_lut(self._stretch, self._dtype)
            self._properties = self._read_properties(ds, ci)
        except ImageError:
            self.close()
            raise
        except Exception as e:  # any GDAL failure while looking at the file: a broken file
            self.close()
            raise ImageError(self.path, f"rasterio cannot read it ({first_line(e)})") from e

    def _open(self, level: int, crs: str | None) -> Any:
        import rasterio

        try:
            if crs is not None:
                from rasterio.vrt import WarpedVRT

                return WarpedVRT(quiet_open(self.path), crs=crs)
            if level == 0:
                return quiet_open(self.path)
            return quiet_open(self.path, overview_level=level - 1)
        except (rasterio.errors.RasterioError, OSError) as e:
            raise ImageError(self.path, f"rasterio cannot read it ({first_line(e)})") from e

    def _level_shapes(self, ds: Any, crs: str | None) -> list[tuple[int, int]]:
        shapes = [(int(ds.width), int(ds.height))]
        if crs is None and ds.count:
            for f in ds.overviews(1):
                shapes.append((math.ceil(ds.width / f), math.ceil(ds.height / f)))
            if len(shapes) > 1:  # the true sizes (GDAL rounds its own way)
                for k in range(1, len(shapes)):
                    with self.borrow(k) as ov:
                        shapes[k] = (int(ov.width), int(ov.height))
        return shapes

    def _nodata_policy(self, ds: Any, nodata: float | None) -> None:
        """``self._nodata_value`` / ``self._nodata_mask`` and where they come from."""
        from rasterio.enums import MaskFlags

        self._nodata_value: float | None = None
        self._nodata_mask = False
        flags = ds.mask_flag_enums[0] if ds.count else []
        if nodata is not None:
            self._nodata_value, source = float(nodata), "plugin.satellite.nodata"
        elif ds.nodata is not None:
            self._nodata_value, source = float(ds.nodata), "file nodata value"
        elif self._roles.alpha:
            self._nodata_mask, source = True, "alpha band"
        elif MaskFlags.per_dataset in flags and MaskFlags.all_valid not in flags:
            self._nodata_mask, source = True, "internal mask"
        elif self._roles.sensor is not None:
            from .bands import SENSOR_NODATA

            self._nodata_value = SENSOR_NODATA[self._roles.sensor]
            source = f"sensor {self._roles.sensor} fill value"
        else:
            source = "none"
        self._nodata_source = source

    @contextmanager
    def borrow(self, level: int) -> Iterator[Any]:
        """A rasterio dataset of ``level`` for this thread's exclusive use while the block runs."""
        if self._handles is None:
            raise ImageError(self.path, "the image is closed")
        with self._handles.borrow(level) as ds:
            yield ds

    def _compute_stretch(self) -> np.ndarray:
        """Per shown band (low, high) percentiles of the valid pixels of a small view."""
        from rasterio.enums import Resampling

        level = len(self._levels) - 1
        w, h = self._levels[level]
        scale = max(1.0, max(w, h) / STATS_SIDE)
        shape = (max(1, round(h / scale)), max(1, round(w / scale)))
        with self.borrow(level) as ds:
            raw = ds.read(list(self._roles.rgb), out_shape=(3, *shape),
                          resampling=Resampling.nearest)
            mask = (ds.dataset_mask(out_shape=shape, resampling=Resampling.nearest) > 0
                    if self._nodata_mask else None)
        valid = self._valid(raw, mask)
        out = np.zeros((3, 2), np.float64)
        for i in range(3):
            v = raw[i][valid].astype(np.float64)
            lo, hi = np.percentile(v, self._percentiles) if v.size else (0.0, 1.0)
            out[i] = (lo, hi if hi > lo else lo + 1.0)
        return out

    def _valid(self, raw: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """(h, w) bool valid pixels of raw bands (C, h, w): finite, not all equal to the
        no-data value, and inside the file's mask when it has one."""
        ok = np.isfinite(raw).all(axis=0) if raw.dtype.kind == "f" else np.ones(raw.shape[1:], bool)
        if self._nodata_value is not None:
            ok &= (raw != raw.dtype.type(self._nodata_value)).any(axis=0)
        if mask is not None:
            ok &= mask
        return ok

    def _read_properties(self, ds: Any, ci: list[str]) -> dict[str, Any]:
        crs = ds.crs
        res = (abs(float(ds.res[0])), abs(float(ds.res[1])))
        metres = None
        factor = 1.0
        if crs is not None and crs.is_projected:
            try:
                factor = float(crs.linear_units_factor[1])
                metres = (res[0] + res[1]) / 2 * factor
            except Exception:  # a CRS without linear units
                metres = None
        t = ds.transform
        return {
            "crs": crs.to_string() if crs is not None else None,
            "crs_wkt": crs.to_wkt() if crs is not None else None,
            "epsg": crs.to_epsg() if crs is not None else None,
            "transform": tuple(float(v) for v in tuple(t)[:6]),
            "bounds": tuple(float(v) for v in ds.bounds),
            "res": res,
            "pixel_size_m": metres,
            # the pixel pitch in microns (the core's pixel size; not an mpp: no microscope)
            "mpp_x": res[0] * factor * 1e6 if metres is not None else None,
            "mpp_y": res[1] * factor * 1e6 if metres is not None else None,
            "rotated": bool(t.b != 0 or t.d != 0),
            "nodata": self._nodata_value,
            "nodata_source": self._nodata_source,
            "dtype": str(self._dtype),
            "count": ds.count,
            "bands": self._roles.rgb,
            "nir_band": self._roles.nir,
            "band_roles": self._roles.as_dict(),
            "reflectance": {"scale": self._refl[0], "offset": self._refl[1],
                            "source": self._refl[2]},
            "colorinterp": ci,
            "descriptions": list(ds.descriptions),
            "overviews": list(ds.overviews(1)) if ds.count and len(self._levels) > 1 else [],
            "stretch": None if self._stretch is None else self._stretch.tolist(),
            "percentiles": list(self._percentiles) if self._stretch is not None else None,
            "driver": ds.driver,
            "datetime": ds.tags().get("TIFFTAG_DATETIME"),
            "mpp_sources": {},
        }

    # ------------------------------------------------------------------ metadata
    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple(self._levels)

    @property
    def vendor(self) -> str | None:
        return self._properties.get("driver")

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self._properties)

    @property
    def transform(self) -> Any:
        """The level-0 pixel -> CRS :class:`affine.Affine` transform."""
        from affine import Affine

        return Affine(*self._properties["transform"])

    @property
    def crs(self) -> Any:
        """The :class:`rasterio.crs.CRS` of the raster (None when not georeferenced)."""
        from rasterio.crs import CRS

        wkt = self._properties.get("crs_wkt")
        return CRS.from_wkt(wkt) if wkt else None

    @property
    def roles(self) -> BandRoles:
        return self._roles

    @property
    def bands(self) -> tuple[int, int, int]:
        return self._roles.rgb

    @property
    def nir_band(self) -> int | None:
        return self._roles.nir

    @property
    def count(self) -> int:
        return int(self._properties["count"])

    @property
    def dtype(self) -> np.dtype:
        """The data type of the bands shown (raw values, see :meth:`read_bands`)."""
        return self._dtype

    def block_shape(self, level: int) -> tuple[int, int]:
        """(height, width) of the stored tiles (or strips) of ``level``."""
        with self.borrow(level) as ds:
            h, w = ds.block_shapes[0] if ds.count else (1, 1)
        return int(h), int(w)

    tile_shape = block_shape  # the core reads patches tile row by tile row with it

    def patch_groups(self, coords: np.ndarray, geometry: Any) -> list[list[int]]:
        """How the core's ``read_patches`` deals patches to its threads: by row of stored
        tiles, tile by tile, at most about :data:`PATCH_GROUP` patches a group (cut between tile
        columns), each group read by one thread on its own dataset handle, whose GDAL block
        cache then serves a tile shared by neighbouring patches (dealt one by one, two threads
        decoded it twice)."""
        from .chips import tile_groups

        return tile_groups(self, coords, geometry.level, most=PATCH_GROUP)

    @property
    def channels(self) -> int:
        """Samples per pixel of :meth:`read_region_raw`: the red, green and blue bands."""
        return 3

    def read_region_raw(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """The red, green and blue bands as stored: (h, w, 3) of :attr:`dtype`, never
        stretched; outside the raster the type's maximum (the core's "white"; chips use
        :meth:`read_bands`, whose outside is the no-data value)."""
        raw, _, inside = self.read_bands(location, level, size, self._roles.rgb)
        out = np.ascontiguousarray(raw.transpose(1, 2, 0))
        top = np.finfo(out.dtype).max if out.dtype.kind == "f" else np.iinfo(out.dtype).max
        out[~inside] = top
        return out

    @property
    def nodata(self) -> float | None:
        """The no-data value in force (None: none, or a mask / alpha band)."""
        return self._nodata_value

    @property
    def reflectance(self) -> tuple[float, float]:
        """``(scale, offset)``: reflectance = value x scale + offset."""
        return self._refl[0], self._refl[1]

    # ------------------------------------------------------------------ pixels
    def read_bands(
        self, location: tuple[int, int], level: int, size: tuple[int, int],
        indexes: tuple[int, ...] | list[int] | None = None, out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw band values of a window that may overhang the raster.

        Parameters
        ----------
        location : (x, y) top-left in level-0 px; level : pyramid level; size : (w, h) at it.
        indexes : 1-based bands (default: every band).
        out : a C-contiguous (C, h, w) array of the file's dtype that a window wholly inside the
            raster is read into (and returned as ``raw``); others get a new array.

        Returns
        -------
        raw : (C, h, w) values at the file's dtype; outside the raster the no-data value (0
            when there is none).
        valid : (h, w) bool, False for no-data and outside.
        inside : (h, w) bool, True inside the raster.
        """
        from rasterio.windows import Window

        ds = self.level_downsamples[level]
        col, row = math.floor(location[0] / ds), math.floor(location[1] / ds)
        w, h = int(size[0]), int(size[1])
        idx = list(indexes) if indexes else list(range(1, self.count + 1))
        lw, lh = self._levels[level]
        c0, r0, c1, r1 = max(0, col), max(0, row), min(lw, col + w), min(lh, row + h)
        whole = (c0, r0, c1, r1) == (col, row, col + w, row + h)
        fill = self._nodata_value if self._nodata_value is not None else 0
        if whole and out is not None and out.shape == (len(idx), h, w) and \
                out.dtype == self._dtype and out.flags.c_contiguous:
            raw = out
        elif whole:
            raw = np.empty((len(idx), h, w), self._dtype)
        else:
            raw = np.full((len(idx), h, w), fill, self._dtype)
        valid = np.zeros((h, w), bool)
        inside = np.zeros((h, w), bool)
        if c1 <= c0 or r1 <= r0:
            return raw, valid, inside
        win = Window(c0, r0, c1 - c0, r1 - r0)
        sl = (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))
        data, mask = self._read_window(level, idx, win, out=raw if whole else None)
        if not whole:
            raw[(slice(None), *sl)] = data
        rgb_pos = [idx.index(b) for b in self._roles.rgb if b in idx]
        check = data[rgb_pos] if len(rgb_pos) == 3 else data
        valid[sl] = self._valid(check, mask)
        inside[sl] = True
        return raw, valid, inside

    def read_valid(self, level: int, window: tuple[int, int, int, int]) -> np.ndarray:
        """(h, w) bool valid pixels (see :meth:`read_bands`) of ``window`` = (col, row, w, h) in
        ``level``'s own pixels, which must lie inside the level: the same pixels as
        :meth:`read_bands`' ``valid`` over that window, in one read."""
        from rasterio.windows import Window

        col, row, w, h = (int(v) for v in window)
        data, mask = self._read_window(level, list(self._roles.rgb), Window(col, row, w, h))
        return self._valid(data, mask)

    def _read_window(self, level: int, bands: list[int], window: Any,
                     out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``bands`` (1-based) of the rasterio ``window`` of ``level``, into ``out`` when given,
        and the file's valid-data mask there when no-data comes from a mask (else None); any
        GDAL failure is one :class:`ImageError` naming the file."""
        try:
            with self.borrow(level) as src:
                data = src.read(bands, window=window, out=out)
                mask = src.dataset_mask(window=window) > 0 if self._nodata_mask else None
        except ImageError:
            raise
        except Exception as e:  # any GDAL failure here is a broken file
            raise ImageError(self.path, f"rasterio read failed ({first_line(e)})") from e
        return data, mask

    def to_rgb8(self, raw3: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(3, h, w) shown bands -> (h, w, 3) uint8; no-data black, valid never all zero."""
        return to_rgb8(raw3, valid, self._stretch, self._lut)

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        raw, valid, inside = self.read_bands(location, level, size, self._roles.rgb)
        rgb = self.to_rgb8(raw, valid)
        rgb[~inside] = 255
        return rgb

    def read_level_downsampled(self, downsample: float) -> np.ndarray:
        """The whole raster at ``downsample`` (see :meth:`Image.read_level_downsampled`).

        No-data pixels (no valid level pixel under them) are black; the image remembers the
        returned array, so that the satellite mask hooks can find its valid fraction and the
        reflectance of every band role (:meth:`view_extras`).
        """
        from .view import lowres_view

        rgb, extras = lowres_view(self, downsample)
        self._view = (weakref.ref(rgb), extras)
        return rgb

    def view_extras(self, rgb: np.ndarray) -> dict[str, np.ndarray] | None:
        """What this image knows about a low-resolution view it returned last.

        When ``rgb`` is the very array :meth:`read_level_downsampled` returned last:
        ``{"valid": (h, w) float32 valid fraction, "nodata": (h, w) bool (no valid pixel),
        "red", "green", "blue"[, "nir"][, "swir1"]: (h, w) float32 reflectance}``; else None.
        """
        view = self._view
        if view is None or view[0]() is not rgb:
            return None
        return view[1]

    def nodata_mask(self, downsample: float = 1.0, min_valid: float = VALID_FRACTION) -> np.ndarray:
        """(ceil(H0 / downsample), ceil(W0 / downsample)) bool, True where a pixel is no-data
        (less than ``min_valid`` of the level-0 pixels under it are valid)."""
        from .view import lowres_view

        _, extras = lowres_view(self, downsample)
        return extras["valid"] < min_valid

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        handles = getattr(self, "_handles", None)
        if handles is not None:
            handles.close()
        self._handles = None
        self._settings = None
