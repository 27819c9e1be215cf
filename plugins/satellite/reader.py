"""A rasterio reader: GeoTIFF / COG (and any raster GDAL opens) as a :class:`gigapatch.Image`.

* Level 0 is the full-resolution raster; a COG's internal (or ``.ovr``) overviews are the further
  pyramid levels (opened with rasterio's ``overview_level``).
* Three bands are shown as RGB: the bands whose colour interpretation is red, green, blue, else
  the first three (a single band is shown as grey). ``bands=(3, 2, 1)`` picks others (1-based).
* 8-bit bands are shown as they are; 16-bit / float bands are stretched to uint8 between their
  2nd and 98th percentiles, computed once per band from a small overview of the valid pixels.
* No-data comes from the file: its nodata value, alpha band or internal mask (GDAL's dataset
  mask), plus, by default, pixels whose shown bands are all 0 (Landsat-style fill in files that
  declare no nodata). No-data pixels read as black ``(0, 0, 0)``, and a valid pixel is never all
  zero, so the RGB view alone tells valid from no-data; pixels outside the raster read as white,
  as for every :class:`gigapatch.Image`. :meth:`RasterioImage.nodata_mask` gives the mask itself.
* ``mpp`` is None (a satellite pixel is metres, not microns): the pixel size in metres is in
  ``properties["pixel_size_m"]``, with ``crs``, ``transform`` and ``bounds``.

The ``gigapatch_open_image`` hook takes a file when ``domain == "satellite"``, and a GeoTIFF (told
by its header's GeoTIFF tags, without rasterio) when the run names no domain, so pathology TIFFs
never go through rasterio; ``open_image(path, reader="rasterio")`` forces it for any file.
"""

from __future__ import annotations

import math
import struct
import threading
import warnings
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from gigapatch import Image, ImageError, hookimpl

#: longer side of the view the stretch percentiles are computed from
STATS_SIDE = 1024
#: a low-resolution pixel is no-data when less than this fraction of it is valid
VALID_FRACTION = 0.5

def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class RasterioImage(Image):
    """A georeferenced raster read by region through rasterio (GDAL).

    Parameters
    ----------
    path : any raster GDAL opens (GeoTIFF, COG, JPEG2000, VRT...).
    bands : three 1-based band indexes shown as R, G, B (default: the red / green / blue bands
        by colour interpretation, else the first three; one band is shown as grey).
    nir_band : 1-based index of a near-infrared band, ``"auto"`` (the one band left over when a
        4-band file has three colour bands and no alpha) or None.
    stretch : stretch to uint8 by percentiles; None = only when the bands are not 8-bit.
    percentiles : (low, high) percentiles of the stretch.
    zero_is_nodata : also treat pixels whose shown bands are all 0 as no-data.

    Raises
    ------
    ImageError : rasterio cannot open the file, or a band index is out of range.
    """

    reader_name = "rasterio"

    def __init__(
        self,
        path: str | Path,
        bands: tuple[int, ...] | None = None,
        nir_band: int | str | None = "auto",
        stretch: bool | None = None,
        percentiles: tuple[float, float] = (2.0, 98.0),
        zero_is_nodata: bool = True,
    ) -> None:
        super().__init__(path)
        try:
            import rasterio
            from rasterio.enums import ColorInterp
        except ImportError as e:  # pragma: no cover - the extra is installed with the plugin
            raise ImageError(self.path, "rasterio is not installed (pip install "
                             "'gigapatch[satellite]')") from e
        self._lock = threading.Lock()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                ds = rasterio.open(self.path)
        except (rasterio.errors.RasterioError, OSError) as e:
            raise ImageError(self.path, f"rasterio cannot read it ({_first_line(e)})") from e
        self._datasets = [ds]
        try:
            ci = list(ds.colorinterp)
            alpha = [i + 1 for i, c in enumerate(ci) if c == ColorInterp.alpha]
            self._bands = self._choose_bands(ds.count, ci, bands, alpha)
            self._nir = self._choose_nir(ds.count, ci, nir_band, alpha)
            for k in range(len(ds.overviews(1)) if ds.count else 0):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                    self._datasets.append(rasterio.open(self.path, overview_level=k))
        except ImageError:
            self.close()
            raise
        except (rasterio.errors.RasterioError, OSError) as e:
            self.close()
            raise ImageError(self.path, f"rasterio cannot read it ({_first_line(e)})") from e
        self._dtype = np.dtype(ds.dtypes[self._bands[0] - 1])
        self._zero_is_nodata = zero_is_nodata
        self._stretch_on = (self._dtype != np.uint8) if stretch is None else bool(stretch)
        self._percentiles = (float(percentiles[0]), float(percentiles[1]))
        self._stretch: np.ndarray | None = None  # (3, 2) low, high per shown band
        if self._stretch_on:
            self._stretch = self._compute_stretch()
        self._properties = self._read_properties(ds, ci)

    # ------------------------------------------------------------------ set-up
    def _choose_bands(
        self, count: int, ci: list[Any], bands: tuple[int, ...] | None, alpha: list[int]
    ) -> tuple[int, int, int]:
        from rasterio.enums import ColorInterp

        if bands is not None:
            chosen = tuple(int(b) for b in bands)
            if len(chosen) == 1:
                chosen = chosen * 3
            if len(chosen) != 3 or not all(1 <= b <= count for b in chosen):
                raise ImageError(
                    self.path, f"bands {tuple(bands)} do not name 3 of its {count} bands"
                )
            return chosen
        if count == 0:
            raise ImageError(self.path, "raster has no bands")
        colour = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        if all(c in ci for c in colour):
            return tuple(ci.index(c) + 1 for c in colour)  # type: ignore[return-value]
        data = [b for b in range(1, count + 1) if b not in alpha]
        if len(data) >= 3:
            return (data[0], data[1], data[2])
        return (data[0],) * 3 if data else (1, 1, 1)

    def _choose_nir(
        self, count: int, ci: list[Any], nir_band: int | str | None, alpha: list[int]
    ) -> int | None:
        if nir_band is None:
            return None
        if nir_band == "auto":
            rest = [b for b in range(1, count + 1) if b not in self._bands and b not in alpha]
            return rest[0] if count == 4 and len(set(self._bands)) == 3 and len(rest) == 1 else None
        b = int(nir_band)
        if not 1 <= b <= count:
            raise ImageError(self.path, f"nir_band {b} is not one of its {count} bands")
        return b

    def _compute_stretch(self) -> np.ndarray:
        """Per shown band (low, high) percentiles of the valid pixels of a small view."""
        from rasterio.enums import Resampling

        ds = self._datasets[-1]
        scale = max(1.0, max(ds.width, ds.height) / STATS_SIDE)
        shape = (max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
        with self._lock:
            raw = ds.read(list(self._bands), out_shape=(3, *shape), resampling=Resampling.nearest)
            mask = ds.dataset_mask(out_shape=shape, resampling=Resampling.nearest) > 0
        valid = mask & self._finite(raw)
        if self._zero_is_nodata:
            valid &= (raw != 0).any(axis=0)
        out = np.zeros((3, 2), np.float64)
        for i in range(3):
            v = raw[i][valid].astype(np.float64)
            lo, hi = np.percentile(v, self._percentiles) if v.size else (0.0, 1.0)
            out[i] = (lo, hi if hi > lo else lo + 1.0)
        return out

    @staticmethod
    def _finite(raw: np.ndarray) -> np.ndarray:
        if np.issubdtype(raw.dtype, np.floating):
            return np.isfinite(raw).all(axis=0)
        return np.ones(raw.shape[1:], bool)

    def _read_properties(self, ds: Any, ci: list[Any]) -> dict[str, Any]:
        crs = ds.crs
        res = (abs(float(ds.res[0])), abs(float(ds.res[1])))
        metres = None
        if crs is not None and crs.is_projected:
            try:
                factor = float(crs.linear_units_factor[1])
            except Exception:  # a CRS without linear units
                factor = None
            if factor is not None:
                metres = (res[0] + res[1]) / 2 * factor
        return {
            "crs": crs.to_string() if crs is not None else None,
            "crs_wkt": crs.to_wkt() if crs is not None else None,
            "epsg": crs.to_epsg() if crs is not None else None,
            "transform": tuple(float(v) for v in tuple(ds.transform)[:6]),
            "bounds": tuple(float(v) for v in ds.bounds),
            "res": res,
            "pixel_size_m": metres,
            "nodata": ds.nodata,
            "dtype": str(self._dtype),
            "count": ds.count,
            "bands": self._bands,
            "nir_band": self._nir,
            "colorinterp": [c.name for c in ci],
            "stretch": None if self._stretch is None else self._stretch.tolist(),
            "driver": ds.driver,
            "mpp_sources": {},
        }

    # ------------------------------------------------------------------ metadata
    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((d.width, d.height) for d in self._datasets)

    @property
    def vendor(self) -> str | None:
        return self._properties.get("driver")

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self._properties)

    @property
    def transform(self) -> Any:
        """The level-0 pixel -> CRS :class:`affine.Affine` transform."""
        return self._datasets[0].transform

    @property
    def crs(self) -> Any:
        """The :class:`rasterio.crs.CRS` of the raster (None when not georeferenced)."""
        return self._datasets[0].crs

    @property
    def bands(self) -> tuple[int, int, int]:
        return self._bands

    @property
    def nir_band(self) -> int | None:
        return self._nir

    # ------------------------------------------------------------------ pixels
    def _read_raw(
        self, level: int, col: int, row: int, w: int, h: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw shown bands (+ NIR) of a window that may overhang the raster.

        Returns
        -------
        raw : (3 or 4, h, w) band values (0 outside the raster).
        valid : (h, w) bool, False for no-data and outside.
        inside : (h, w) bool, True inside the raster.
        """
        from rasterio.windows import Window

        ds = self._datasets[level]
        indexes = list(self._bands) + ([self._nir] if self._nir else [])
        raw = np.zeros((len(indexes), h, w), self._dtype)
        valid = np.zeros((h, w), bool)
        inside = np.zeros((h, w), bool)
        c0, r0 = max(0, col), max(0, row)
        c1, r1 = min(ds.width, col + w), min(ds.height, row + h)
        if c1 <= c0 or r1 <= r0:
            return raw, valid, inside
        win = Window(c0, r0, c1 - c0, r1 - r0)
        try:
            with self._lock:
                data = ds.read(indexes, window=win)
                mask = ds.dataset_mask(window=win) > 0
        except Exception as e:  # any GDAL failure here is a broken file
            raise ImageError(self.path, f"rasterio read failed ({_first_line(e)})") from e
        ok = mask & self._finite(data[:3])
        if self._zero_is_nodata:
            ok &= (data[:3] != 0).any(axis=0)
        sl = (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))
        raw[(slice(None), *sl)] = data
        valid[sl] = ok
        inside[sl] = True
        return raw, valid, inside

    def _to_uint8(self, raw3: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(3, h, w) shown bands -> (h, w, 3) uint8; no-data black, valid never all zero."""
        if self._stretch is not None:
            lo = self._stretch[:, 0].reshape(3, 1, 1)
            hi = self._stretch[:, 1].reshape(3, 1, 1)
            f = (raw3.astype(np.float32) - lo.astype(np.float32)) * (
                255.0 / (hi - lo)).astype(np.float32)
            rgb = np.clip(np.nan_to_num(f, nan=0.0) + 0.5, 0, 255).astype(np.uint8)
        elif raw3.dtype == np.uint8:
            rgb = raw3.copy()
        else:
            rgb = np.clip(np.nan_to_num(raw3.astype(np.float32)), 0, 255).astype(np.uint8)
        rgb = np.ascontiguousarray(rgb.transpose(1, 2, 0))
        rgb[~valid] = 0
        rgb[valid & (rgb.max(axis=2) == 0)] = 1
        return rgb

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        ds = self.level_downsamples[level]
        col = math.floor(location[0] / ds)
        row = math.floor(location[1] / ds)
        raw, valid, inside = self._read_raw(level, col, row, int(size[0]), int(size[1]))
        rgb = self._to_uint8(raw[:3], valid)
        rgb[~inside] = 255
        return rgb

    def _lowres(self, downsample: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The whole raster at ``downsample``: RGB, valid fraction and raw (green, NIR).

        Read in row bands from the best level and area-averaged over the valid pixels only
        (no-data never darkens a valid edge pixel). Returns (h, w, 3) uint8, (h, w) float32 and
        (2, h, w) float32 or None.
        """
        import cv2

        w0, h0 = self.dimensions
        out_w = max(1, math.ceil(w0 / downsample))
        out_h = max(1, math.ceil(h0 / downsample))
        level = self.get_best_level_for_downsample(downsample)
        lds = self.level_downsamples[level]
        lw, lh = self.level_dimensions[level]
        rgb = np.zeros((out_h, out_w, 3), np.uint8)
        frac = np.zeros((out_h, out_w), np.float32)
        gn = np.zeros((2, out_h, out_w), np.float32) if self._nir else None
        # ~32 MB of source per band: raw + float32 working copies, ~32 bytes per source pixel
        rows_per_band = max(1, int(1e6 / max(1, lw * (downsample / lds))))
        for oy in range(0, out_h, rows_per_band):
            oh = min(rows_per_band, out_h - oy)
            y0 = round(oy * downsample / lds)
            y1 = max(y0 + 1, min(lh, round((oy + oh) * downsample / lds)))
            raw, valid, _ = self._read_raw(level, 0, y0, lw, y1 - y0)
            band = self._to_uint8(raw[:3], valid).astype(np.float32)
            vf = valid.astype(np.float32)
            stack = [band * vf[..., None], vf[..., None]]
            if gn is not None:
                stack.append(raw[[1, 3]].transpose(1, 2, 0).astype(np.float32) * vf[..., None])
            both = np.concatenate(stack, axis=2)
            if both.shape[:2] != (oh, out_w):  # cv2 area-resizes at most 4 channels at once
                both = np.concatenate([
                    cv2.resize(both[..., k : k + 4], (out_w, oh), interpolation=cv2.INTER_AREA)
                    .reshape(oh, out_w, -1) for k in range(0, both.shape[2], 4)
                ], axis=2)
            f = both[..., 3]
            safe = np.maximum(f, 1e-6)[..., None]
            rgb[oy : oy + oh] = np.clip(both[..., :3] / safe + 0.5, 0, 255).astype(np.uint8)
            frac[oy : oy + oh] = f
            if gn is not None:
                gn[:, oy : oy + oh] = (both[..., 4:6] / safe).transpose(2, 0, 1)
        ok = frac >= VALID_FRACTION
        rgb[~ok] = 0
        rgb[ok & (rgb.max(axis=2) == 0)] = 1
        return rgb, frac, gn

    def read_level_downsampled(self, downsample: float) -> np.ndarray:
        """The whole raster at ``downsample`` (see :meth:`Image.read_level_downsampled`).

        No-data pixels (less than half valid) are black; the image remembers the returned array,
        so that the satellite mask hooks can find its no-data mask and NIR band
        (:meth:`view_extras`).
        """
        rgb, frac, gn = self._lowres(downsample)
        extras: dict[str, np.ndarray] = {"nodata": frac < VALID_FRACTION}
        if gn is not None:
            extras["green"], extras["nir"] = gn[0], gn[1]
        self._view = (weakref.ref(rgb), extras)
        return rgb

    def view_extras(self, rgb: np.ndarray) -> dict[str, np.ndarray] | None:
        """What this image knows about a low-resolution view it returned last.

        When ``rgb`` is the very array :meth:`read_level_downsampled` returned last, this is
        ``{"nodata": (h, w) bool}`` plus, when the file has a near-infrared band,
        ``{"green": ..., "nir": ...}`` (h, w) float32 raw values at the same scale; else None.
        """
        view = getattr(self, "_view", None)
        if view is None or view[0]() is not rgb:
            return None
        return view[1]

    def nodata_mask(self, downsample: float = 1.0) -> np.ndarray:
        """(ceil(H0 / downsample), ceil(W0 / downsample)) bool, True where a pixel is no-data
        (less than half of the level-0 pixels under it are valid)."""
        _, frac, _ = self._lowres(downsample)
        return frac < VALID_FRACTION

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        for ds in getattr(self, "_datasets", []):
            ds.close()
        self._datasets = []


def open_rasterio(path: str | Path) -> RasterioImage:
    """Open ``path`` with rasterio, whatever the domain (the ``reader="rasterio"`` opener)."""
    return RasterioImage(path)


#: reader name -> opener, offered through ``gigapatch_readers``
READERS = {"rasterio": open_rasterio}


@hookimpl
def gigapatch_readers() -> dict:
    """Let ``open_image(path, reader="rasterio")`` force this reader for any file."""
    return READERS


#: TIFF tags only GeoTIFFs carry: GeoKeyDirectory, ModelTransformation, ModelTiepoint
GEOTIFF_TAGS = frozenset({34735, 34264, 33922})


def is_geotiff(path: str | Path) -> bool:
    """Whether ``path`` is a TIFF whose first image carries GeoTIFF tags.

    Reads the header and the first IFD's tag numbers only (a few hundred bytes, classic TIFF or
    BigTIFF, either byte order) and imports nothing, so deciding costs a pathology run nothing.
    False for anything that is not a readable TIFF.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            order = {b"II": "<", b"MM": ">"}.get(head[:2])
            if order is None or len(head) < 16:
                return False
            version = struct.unpack(order + "H", head[2:4])[0]
            if version == 42:
                offset, count_fmt, entry = struct.unpack(order + "I", head[4:8])[0], "H", 12
            elif version == 43:
                offset, count_fmt, entry = struct.unpack(order + "Q", head[8:16])[0], "Q", 20
            else:
                return False
            f.seek(offset)
            raw = f.read(struct.calcsize(count_fmt))
            if len(raw) < struct.calcsize(count_fmt):
                return False
            count = min(struct.unpack(order + count_fmt, raw)[0], 4096)
            table = f.read(count * entry)
    except OSError:
        return False
    n = len(table) // entry
    tags = {struct.unpack_from(order + "H", table, k * entry)[0] for k in range(n)}
    return not tags.isdisjoint(GEOTIFF_TAGS)


@hookimpl(tryfirst=True)
def gigapatch_open_image(path: Path, domain: str | None) -> Image | None:
    """A :class:`RasterioImage` for any raster rasterio opens when ``domain == "satellite"``,
    and for a GeoTIFF (:func:`is_geotiff`) when the run names no domain; None otherwise (and for
    files rasterio does not recognise), so other TIFFs never import rasterio."""
    if domain != "satellite" and not (domain is None and is_geotiff(path)):
        return None
    try:
        import rasterio
    except ImportError:  # pragma: no cover
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path):
                pass
    except (rasterio.errors.RasterioError, OSError):
        return None
    return RasterioImage(path)
