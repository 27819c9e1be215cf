"""PatchSet: the coordinates and per-patch scores of one image, and their files.

On disk, per image (every file written to a temporary name, then renamed):

``<out>/<image_id>.h5``
    ``coords``            (N, 2) int64 level-0 top-left x, y of the kept patches. Its attributes
                          are read by CLAM and TRIDENT as they read their own (see
                          :func:`gigapatch.io.geometry.interop_attrs`): ``patch_level`` and
                          ``patch_size`` (the px a consumer reads at that level, numbered as
                          ``level_numbering`` says: ``"any"`` for level 0, else ``"openslide"``),
                          downsample, level_dim, patch_size_level0, level0_magnification,
                          target_magnification (of the pixels ``patch_size`` counts), overlap,
                          level0_width, level0_height, name; then gigapatch's own:
                          target_patch_size (output side), output_magnification, reader,
                          read_level, read_downsample and read_size (gigapatch's read, in
                          its reader's numbering), resize_factor, stride, stride_level0, mpp, target_mpp,
                          effective_mpp, gigapatch_version, config_hash... An unknown value (no
                          mpp...) is left out, never NaN; :meth:`PatchSet.read` gives None.
    ``region``            (N,) int32 region index of each kept patch (-1: none).
    ``columns/<name>``    (N,) per-patch data that is not a score (a plugin's labels, bounds), at
                          its own dtype; ``rejected/columns/<name>`` (M,).
    ``scores/<name>``     (N,) float32, one per score column (``foreground`` always).
    ``rejected/coords``   (M, 2) int64 candidates that were scored and dropped,
    ``rejected/reason``   (M,) str, why (e.g. ``"foreground"``, ``"pen"``, ``"keep"``, ``"top_n"``),
    ``rejected/region``   (M,) int32, ``rejected/scores/<name>`` (M,) float32.
    ``regions``           one row per region: ``region``, ``area_level0``, ``n_patches``,
                          ``coverage`` (datasets of equal length).
    ``mask``              (h, w) uint8 refined foreground mask, attribute ``downsample``.
``<out>/<image_id>.yaml``   the resolved config.
``<out>/<image_id>.csv``    (or ``.parquet``) table: image_id, x, y, level, size, size_level0,
                          region, then the plugins' columns and the scores (with ``kept`` and
                          ``reason`` when the rejected are included); ``level`` and ``size`` are
                          the h5's ``patch_level`` and ``patch_size``.
``<out>/<image_id>_regions.csv``  patches and coverage per region.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gigapatch.io.atomic import atomic_path

if TYPE_CHECKING:
    from gigapatch.io.geometry import PatchGeometry
    from gigapatch.tiling.segment import Region

#: attributes that may be unknown (left out of the h5 then): read back as None when absent
OPTIONAL_ATTRS = (
    "mpp", "target_mpp", "effective_mpp", "level0_magnification", "target_magnification",
    "output_magnification",
)


@dataclass
class PatchSet:
    """Kept patches of one image (coords + score columns), the rejected ones, and metadata.

    Attributes
    ----------
    image_id : output name of the image.
    coords : (N, 2) int64 level-0 top-left x, y of the kept patches.
    scores : name -> (N,) float32 score column (``foreground`` always present).
    attrs : geometry and provenance (see module docstring).
    rejected_coords : (M, 2) int64; rejected_reason : (M,) str; rejected_scores : name -> (M,).
    region : (N,) int32 region index of each kept patch (-1: none); rejected_region : (M,).
    mask : (h, w) bool refined foreground mask or None; mask_downsample : level-0 px per mask px.
    regions : segmented regions (level-0 px), not stored in the h5 (see GeoJSON export).
    region_summary : one dict per region (``region``, ``area_level0``, ``n_patches``,
        ``coverage``).
    columns : name -> (N,) per-patch data that is not a score (``gigapatch_patch_columns``);
        rejected_columns : name -> (M,).
    """

    image_id: str
    coords: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    rejected_coords: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    rejected_reason: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype="U32"))
    rejected_scores: dict[str, np.ndarray] = field(default_factory=dict)
    mask: np.ndarray | None = None
    mask_downsample: float = 1.0
    regions: list[Region] = field(default_factory=list)
    region: np.ndarray | None = None
    rejected_region: np.ndarray | None = None
    region_summary: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    rejected_columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.coords = np.asarray(self.coords, dtype=np.int64).reshape(-1, 2)
        self.rejected_coords = np.asarray(self.rejected_coords, dtype=np.int64).reshape(-1, 2)
        if self.region is None:
            self.region = np.full(len(self.coords), -1, np.int32)
        if self.rejected_region is None:
            self.rejected_region = np.full(len(self.rejected_coords), -1, np.int32)
        self.region = np.asarray(self.region, np.int32).reshape(-1)
        self.rejected_region = np.asarray(self.rejected_region, np.int32).reshape(-1)
        for name, col in {**self.scores, **self.columns}.items():
            if len(col) != len(self.coords):
                raise ValueError(f"score {name!r} has {len(col)} values for {len(self.coords)} patches")

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def patch_size_level0(self) -> int:
        return int(self.attrs.get("patch_size_level0", self.attrs.get("patch_size", 0)))

    @property
    def geometry(self) -> PatchGeometry:
        """How gigapatch read these patches (its reader's level, read size, output size), from
        the attributes: what :func:`gigapatch.read_patches`, :func:`gigapatch.contact_sheet` and
        :func:`gigapatch.extract_patches` take with the image the PatchSet was made from.

        Raises
        ------
        ConfigError : the attributes do not describe the read (no ``patch_size_level0``).
        """
        from gigapatch.errors import ConfigError
        from gigapatch.io.geometry import PatchGeometry

        a = self.attrs
        if "patch_size_level0" not in a:
            raise ConfigError(f"{self.image_id}: the PatchSet's attributes hold no patch geometry "
                              "(no patch_size_level0)")
        size0 = int(a["patch_size_level0"])
        size = int(a.get("target_patch_size", a.get("patch_size", size0)))
        read_size = int(a.get("read_size", size))
        level = int(a.get("read_level", a.get("patch_level", 0)))
        stride0 = int(a.get("stride_level0", size0))
        return PatchGeometry(
            size=size,
            stride=int(a.get("stride", size)),
            level=level,
            downsample=float(a.get("read_downsample", a.get("downsample", 1.0))),
            read_size=read_size,
            size_level0=size0,
            stride_level0=stride0,
            resize_factor=float(a.get("resize_factor", read_size / size)),
            slide_mpp=a.get("mpp"),
            target_mpp=a.get("target_mpp"),
            effective_mpp=a.get("effective_mpp"),
            target_magnification=a.get("output_magnification"),
            level0_magnification=a.get("level0_magnification"),
        )

    # ------------------------------------------------------------------ tables
    def table(self, include_rejected: bool = False) -> dict[str, np.ndarray]:
        """Column dict: image_id, x, y, level, size, size_level0, region, kept, reason, the
        plugins' columns, then every score (``level`` and ``size``: the h5's ``patch_level`` and
        ``patch_size``, what CLAM reads)."""
        assert self.region is not None and self.rejected_region is not None
        n = len(self.coords)
        cols: dict[str, np.ndarray] = {
            "x": self.coords[:, 0],
            "y": self.coords[:, 1],
        }
        names = list(self.scores)
        if include_rejected:
            m = len(self.rejected_coords)
            cols = {
                "x": np.concatenate([self.coords[:, 0], self.rejected_coords[:, 0]]),
                "y": np.concatenate([self.coords[:, 1], self.rejected_coords[:, 1]]),
            }
            for k in self.rejected_scores:
                if k not in names:
                    names.append(k)
        else:
            m = 0
        total = n + m
        cols = {"image_id": np.full(total, self.image_id), **cols}
        cols["level"] = np.full(total, int(self.attrs.get("patch_level", 0)))
        cols["size"] = np.full(total, int(self.attrs.get("patch_size", 0)))
        cols["size_level0"] = np.full(total, self.patch_size_level0)
        cols["region"] = (np.concatenate([self.region, self.rejected_region]) if include_rejected
                          else self.region)
        if include_rejected:
            cols["kept"] = np.r_[np.ones(n, bool), np.zeros(m, bool)]
            cols["reason"] = np.r_[np.full(n, "", dtype="U32"), self.rejected_reason.astype("U32")]
        for k, v in self.columns.items():
            cols[k] = np.concatenate([v, self.rejected_columns[k]]) if include_rejected else v
        for k in names:
            kept = self.scores.get(k, np.full(n, np.nan, np.float32))
            if include_rejected:
                rej = self.rejected_scores.get(k, np.full(m, np.nan, np.float32))
                cols[k] = np.concatenate([kept, rej])
            else:
                cols[k] = kept
        return cols

    def write_table(self, path: str | Path, include_rejected: bool = False) -> Path:
        """Write the table as CSV, or Parquet when ``path`` ends in ``.parquet`` (needs pyarrow)."""
        path = Path(path)
        cols = self.table(include_rejected)
        with atomic_path(path) as tmp:
            if path.suffix == ".parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.table({k: np.asarray(v) for k, v in cols.items()}), tmp)
            else:
                with open(tmp, "w", newline="") as f:
                    f.writelines(_csv_chunks(cols))
        return path

    # ------------------------------------------------------------------ h5
    def write_h5(self, path: str | Path) -> Path:
        """Write the h5 file atomically (see module docstring for the layout)."""
        import h5py

        path = Path(path)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            d = f.create_dataset("coords", data=self.coords, dtype=np.int64)
            f.create_dataset("region", data=np.asarray(self.region, np.int32))
            for k, v in self.attrs.items():
                if not _unknown(v):  # h5 has no None: an unknown value is left out (never NaN)
                    d.attrs[k] = v
            g = f.create_group("scores")
            for k, v in self.scores.items():
                g.create_dataset(k, data=np.asarray(v, np.float32))
            r = f.create_group("rejected")
            r.create_dataset("coords", data=self.rejected_coords, dtype=np.int64)
            r.create_dataset("region", data=np.asarray(self.rejected_region, np.int32))
            r.create_dataset(
                "reason", data=np.asarray(self.rejected_reason, dtype=object),
                dtype=h5py.string_dtype(),
            )
            rs = r.create_group("scores")
            for k, v in self.rejected_scores.items():
                rs.create_dataset(k, data=np.asarray(v, np.float32))
            for group, columns in ((f, self.columns), (r, self.rejected_columns)):
                if columns:
                    gc = group.create_group("columns")
                    for k, v in columns.items():
                        a = np.asarray(v)
                        if a.dtype.kind == "U":
                            gc.create_dataset(k, data=a.astype(object), dtype=h5py.string_dtype())
                        else:
                            gc.create_dataset(k, data=a)
            if self.region_summary:
                rg = f.create_group("regions")
                for key in self.region_summary[0]:
                    rg.create_dataset(key, data=np.asarray([row[key] for row in self.region_summary]))
            if self.mask is not None:
                md = f.create_dataset(
                    "mask", data=self.mask.astype(np.uint8), compression="gzip", compression_opts=4
                )
                md.attrs["downsample"] = self.mask_downsample
        return path

    @classmethod
    def read(cls, path: str | Path) -> PatchSet:
        """Read a PatchSet back from its h5 file (regions are not stored there)."""
        import h5py

        path = Path(path)
        with h5py.File(path, "r") as f:
            coords = f["coords"][()]
            attrs: dict[str, Any] = {k: None for k in OPTIONAL_ATTRS}
            attrs.update({k: _py(v) for k, v in f["coords"].attrs.items()})
            attrs = {k: None if _unknown(v) else v for k, v in attrs.items()}  # older files: NaN
            scores = {k: f["scores"][k][()] for k in f["scores"]} if "scores" in f else {}
            region = f["region"][()] if "region" in f else None
            rej_g = f["rejected/region"][()] if "rejected/region" in f else None
            summary: list[dict[str, Any]] = []
            if "regions" in f:
                keys = list(f["regions"])
                cols = {k: f["regions"][k][()].tolist() for k in keys}
                summary = [dict(zip(keys, row)) for row in zip(*cols.values())]
            rej_c = np.zeros((0, 2), np.int64)
            rej_r = np.zeros((0,), "U32")
            rej_s: dict[str, np.ndarray] = {}
            columns = _read_columns(f.get("columns"))
            rej_cols = _read_columns(f.get("rejected/columns"))
            if "rejected" in f:
                rej_c = f["rejected/coords"][()]
                rej_r = np.asarray([_py(s) for s in f["rejected/reason"][()]], dtype="U32")
                rej_s = {k: f["rejected/scores"][k][()] for k in f["rejected/scores"]}
            mask = None
            mds = 1.0
            if "mask" in f:
                mask = f["mask"][()].astype(bool)
                mds = float(f["mask"].attrs.get("downsample", 1.0))
        return cls(
            image_id=str(attrs.get("name", path.stem)),
            coords=coords,
            scores=scores,
            attrs=attrs,
            rejected_coords=rej_c,
            rejected_reason=rej_r,
            rejected_scores=rej_s,
            mask=mask,
            mask_downsample=mds,
            region=region,
            rejected_region=rej_g,
            region_summary=summary,
            columns=columns,
            rejected_columns=rej_cols,
        )


def _read_columns(group: Any) -> dict[str, np.ndarray]:
    """The ``columns/`` datasets of an h5 group (strings back as str arrays)."""
    out: dict[str, np.ndarray] = {}
    for k in group or []:
        a = group[k][()]
        out[k] = np.asarray([_py(s) for s in a], dtype=str) if a.dtype.kind == "O" else a
    return out


def _csv_text(cols: dict[str, np.ndarray]) -> str:
    """The text ``csv.writer`` writes for the header and the rows of ``cols`` (n,) each."""
    return "".join(_csv_chunks(cols))


#: rows per piece of CSV text (the table is written in pieces, never held whole)
CSV_CHUNK_ROWS = 4096


def _csv_chunks(cols: dict[str, np.ndarray]) -> Iterator[str]:
    """:func:`_csv_text` in pieces: the header, then :data:`CSV_CHUNK_ROWS` rows at a time
    (memory bounded by a piece, whatever the number of patches).

    In each piece, each column's distinct values (bitwise for numbers: -0.0 and NaN stay
    themselves) are formatted once, as csv formats them (``str`` of the Python value), instead
    of once per row; a table with a value that csv would quote, or a column of other kinds, goes
    through ``csv.writer`` itself.
    """
    import csv
    import io

    def written(rows: Any) -> str:
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        return buf.getvalue()

    yield written([list(cols)])
    arrays = [np.asarray(c) for c in cols.values()]
    n = len(arrays[0]) if arrays else 0
    fast = len(arrays) > 1 and n > 0  # (csv quotes the empty field of a one-field row)
    for c in arrays:
        if c.dtype.kind == "U":
            # (its distinct values: a column of labels or region names holds few)
            if any(ch in v for v in set(c.tolist()) for ch in ',"\r\n'):
                fast = False  # csv quotes it
        elif not (c.dtype.kind in "biuf" and c.dtype.itemsize in (1, 2, 4, 8)):
            fast = False
    for i in range(0, n, CSV_CHUNK_ROWS):
        part = [c[i : i + CSV_CHUNK_ROWS] for c in arrays]
        if not fast:
            yield written(zip(*[c.tolist() for c in part]))
            continue
        columns: list[list[str]] = []
        for c in part:
            if c.dtype.kind == "U":
                u, inv = np.unique(c, return_inverse=True)
                text = u.tolist()
            else:
                _, first, inv = np.unique(c.view(f"u{c.dtype.itemsize}"), return_index=True,
                                          return_inverse=True)
                text = [str(v) for v in c[first].tolist()]
            columns.append(np.array(text, dtype=object)[inv.ravel()].tolist())
        yield "\r\n".join(map(",".join, zip(*columns))) + "\r\n"


def _unknown(v: Any) -> bool:
    """None or a float NaN (how older files marked an unknown attribute)."""
    return v is None or (isinstance(v, float | np.floating) and bool(np.isnan(v)))


def _py(v: Any) -> Any:
    """h5 attribute -> plain Python (bytes -> str, numpy scalars -> Python, NaN stays float)."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
