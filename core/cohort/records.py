"""Per-image done records and the cohort summary rebuilt from them.

A record is the last file written for an image (see :mod:`gigapatch.cohort` for the layout and
every field). ``summary.csv`` (and ``summary.parquet`` when pyarrow is installed) is never
appended to: every run rebuilds it from all the records in the folder, under a lock, so shards,
concurrent runs and reruns into one folder never lose a row.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gigapatch.io.atomic import atomic_path, file_lock, write_text_atomic

SCHEMA = 1
#: hidden folder of the run's bookkeeping inside ``<out>``
STATE_DIR = ".gigapatch"
RECORDS = f"{STATE_DIR}/records"
#: statuses of a record; every one of them means "done" for that config
STATUSES = ("ok", "empty", "error")

#: summary.csv columns, in order (``message`` is the record's ``reason``)
SUMMARY_COLUMNS = (
    "image_id", "path", "status", "message", "n_patches", "n_regions", "foreground_fraction",
    "coverage", "overlap", "seconds", "warnings", "domain", "label", "split", "config_hash",
    "worker", "started", "finished",
)


@dataclass
class ImageRecord:
    """What happened to one image (the JSON record; see :mod:`gigapatch.cohort`)."""

    image_id: str
    path: str
    status: str
    reason: str = ""
    input_bytes: int | None = None
    n_patches: int = 0
    n_regions: int | None = None
    foreground_fraction: float | None = None
    coverage: float | None = None
    overlap: float | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    domain: str | None = None
    label: str | None = None
    split: str | None = None
    config_hash: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    #: the overlay's thumbnail (``data:image/jpeg;base64,...``) for the cohort report, or None
    thumbnail: str | None = None
    started: str = ""
    finished: str = ""
    worker: str = ""
    run: str = ""
    schema: int = SCHEMA

    @property
    def message(self) -> str:
        """The one-line reason (the name summary.csv gives it)."""
        return self.reason

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRecord:
        """A record from its JSON mapping; unknown keys (a newer schema) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds (the records' ``started``/``finished``)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def jpeg_uri(jpeg: bytes) -> str:
    """``data:image/jpeg;base64,...`` of JPEG bytes."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def parse_iso(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 time (``-inf`` for an empty or bad one)."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return float("-inf")


# ---------------------------------------------------------------------------- one record
def record_path(out_dir: Path, image_id: str) -> Path:
    """``<out>/.gigapatch/records/<image_id>.json``."""
    return Path(out_dir) / RECORDS / f"{image_id}.json"


def write_record(out_dir: Path, record: ImageRecord) -> Path:
    """Write ``record`` atomically (temporary file, then rename): it exists whole or not at all."""
    path = record_path(out_dir, record.image_id)
    write_text_atomic(path, record.to_json())
    return path


def read_record(out_dir: Path, image_id: str) -> ImageRecord | None:
    """The record of ``image_id``, or None when there is none (or it cannot be read)."""
    return _load(record_path(out_dir, image_id))


def remove_record(out_dir: Path, image_id: str) -> None:
    """Delete the record of ``image_id`` (the image is no longer done)."""
    record_path(out_dir, image_id).unlink(missing_ok=True)


def _load(path: Path) -> ImageRecord | None:
    try:
        data = json.loads(path.read_text())
        rec = ImageRecord.from_dict(data)
    except (OSError, ValueError, TypeError):
        return None
    return rec if rec.status in STATUSES else None


def read_records(out_dir: Path) -> list[ImageRecord]:
    """Every record under ``<out>``, sorted by image id (unreadable ones are left out)."""
    folder = Path(out_dir) / RECORDS
    if not folder.is_dir():
        return []
    found = (_load(folder / name) for name in os.listdir(folder)
             if name.endswith(".json") and not name.startswith("."))
    return sorted((r for r in found if r is not None), key=lambda r: r.image_id)


# ---------------------------------------------------------------------------- outputs
def describe_outputs(out_dir: Path, paths: dict[str, Path]) -> list[dict[str, Any]]:
    """The ``outputs`` of a record: kind, path relative to ``out_dir``, bytes (and ``files`` of a
    folder, whose path ends in ``/``). Paths that do not exist are left out."""
    out_dir = Path(out_dir)
    rows: list[dict[str, Any]] = []
    for kind, p in paths.items():
        p = Path(p)
        try:
            rel = p.relative_to(out_dir).as_posix()
        except ValueError:
            rel = str(p)
        if p.is_dir():
            sizes = [e.stat().st_size for e in _walk_files(p)]
            rows.append({"kind": kind, "path": rel + "/", "bytes": sum(sizes), "files": len(sizes)})
        elif p.is_file():
            rows.append({"kind": kind, "path": rel, "bytes": p.stat().st_size})
    return rows


def _walk_files(folder: Path) -> Iterator[os.DirEntry[str]]:
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_files(Path(entry.path))
        elif not entry.name.startswith("."):  # temporary files of an atomic write
            yield entry


def outputs_intact(out_dir: Path, record: ImageRecord) -> bool:
    """True when every output the record lists is there: files with their recorded size,
    folders with their recorded number of files."""
    for row in record.outputs:
        p = Path(out_dir) / row["path"]
        try:
            if row["path"].endswith("/"):
                if sum(1 for _ in _walk_files(p)) != row.get("files"):
                    return False
            elif p.stat().st_size != row["bytes"]:
                return False
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------- summary
def summary_rows(records: list[ImageRecord]) -> list[dict[str, Any]]:
    """One row per record with the :data:`SUMMARY_COLUMNS`."""
    rows = []
    for r in records:
        rows.append({
            "image_id": r.image_id, "path": r.path, "status": r.status, "message": r.reason,
            "n_patches": r.n_patches, "n_regions": r.n_regions,
            "foreground_fraction": r.foreground_fraction, "coverage": r.coverage,
            "overlap": r.overlap, "seconds": r.seconds, "warnings": " | ".join(r.warnings),
            "domain": r.domain, "label": r.label, "split": r.split,
            "config_hash": r.config_hash, "worker": r.worker, "started": r.started,
            "finished": r.finished,
        })
    return rows


def _csv_text(rows: list[dict[str, Any]]) -> str:
    def cell(key: str, v: Any) -> Any:
        if v is None:
            return ""
        if key in ("foreground_fraction", "coverage", "overlap"):
            return f"{v:.6f}"
        if key == "seconds":
            return f"{v:.3f}"
        return v

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(SUMMARY_COLUMNS)
    for row in rows:
        w.writerow([cell(k, row[k]) for k in SUMMARY_COLUMNS])
    return buf.getvalue()


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    """``summary.parquet`` of ``rows``, typed; built by pyarrow's JSON reader from one JSON line
    per row with an explicit schema (nulls kept apart from empty strings): ``pa.array`` of
    Python lists imports pandas, which costs more than the rest of the summary."""
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    types = {"n_patches": pa.int64(), "n_regions": pa.int64(), "seconds": pa.float64(),
             "foreground_fraction": pa.float64(), "coverage": pa.float64(),
             "overlap": pa.float64()}
    schema = pa.schema([(k, types.get(k, pa.string())) for k in SUMMARY_COLUMNS])
    lines = "\n".join(json.dumps({k: r[k] for k in SUMMARY_COLUMNS}) for r in rows)
    table = pj.read_json(io.BytesIO(lines.encode()),
                         parse_options=pj.ParseOptions(explicit_schema=schema))
    with atomic_path(path) as tmp:
        pq.write_table(table.select(list(SUMMARY_COLUMNS)), tmp)


def _summary_lock(out_dir: Path) -> AbstractContextManager[None]:
    """An exclusive advisory lock on ``<out>/.gigapatch/summary.lock`` (released with the
    process), so that the last run to rebuild the summary reads every record written before."""
    return file_lock(Path(out_dir) / STATE_DIR / "summary.lock")


#: the summary lock, for every writer of the run's own files (the summary, the report)
summary_lock = _summary_lock


def remove_run_temporaries(out_dir: Path) -> None:
    """Delete the temporary files of the run's own files (``.summary.csv.<tag>.tmp``,
    ``.summary.parquet.<tag>.tmp``, ``.report.html.<tag>.tmp``) that a run killed while
    writing them left. Only under :data:`summary_lock`: every writer of those files holds it,
    so none of them is being written."""
    for name in ("summary.csv", "summary.parquet", "report.html"):
        for stale in Path(out_dir).glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


def write_summary(out_dir: Path) -> list[Path]:
    """Rebuild ``<out>/summary.csv`` from every record in ``<out>``, atomically, and
    ``summary.parquet`` beside it when pyarrow is installed and the folder holds more than one
    image (a one-image run would pay pyarrow's import for a one-row table). Returns the files
    written."""
    from importlib.util import find_spec

    out_dir = Path(out_dir)
    written = [out_dir / "summary.csv"]
    with _summary_lock(out_dir):
        remove_run_temporaries(out_dir)
        rows = summary_rows(read_records(out_dir))
        write_text_atomic(written[0], _csv_text(rows))
        if len(rows) > 1 and find_spec("pyarrow") is not None:
            written.append(out_dir / "summary.parquet")
            _write_parquet(written[1], rows)
    return written


__all__ = [
    "RECORDS",
    "STATE_DIR",
    "SUMMARY_COLUMNS",
    "ImageRecord",
    "describe_outputs",
    "jpeg_uri",
    "now_iso",
    "outputs_intact",
    "parse_iso",
    "read_record",
    "read_records",
    "record_path",
    "remove_record",
    "remove_run_temporaries",
    "summary_lock",
    "summary_rows",
    "write_record",
    "write_summary",
]
