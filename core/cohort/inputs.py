"""A cohort's inputs: files, folders, globs or a manifest, validated before any work starts.

A manifest is a CSV (or Parquet: ``.parquet`` / ``.pq``) table, one row per image:

``image_id``   output name (default: the file name without its extension, made unique)
``path``       the image file (required); a relative path is taken from the manifest's folder
               (else from the working directory) and may not climb out of it (``../``)
``label``, ``split``   carried into the image's record and the summary
``domain``     the domain to tile it as (default: the run's ``--domain``, else its own)
``slide_mpp``, ``mpp``, ``magnification``, ``level``   short for ``patch.<name>``
any config key (``patch.size``, ``score.top_n``, ``plugin.pathology.pen``...): a per-image
override; CSV cells are read as YAML (``0.25``, ``true``, ``[a, b]``); an empty cell overrides
nothing.

Every problem (an unknown column, a duplicate image id, a missing file, a bad value) is found
before any work and reported as one :class:`~gigapatch.errors.ConfigError` line naming the rows.
"""

from __future__ import annotations

import csv
import glob
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gigapatch.config import Config
from gigapatch.errors import ConfigError, GigapatchError, ImageError
from gigapatch.io.readers import IMAGE_SUFFIXES, find_images

#: manifest columns that are not config keys
PLAIN_COLUMNS = ("image_id", "path", "label", "split", "domain")
#: short manifest names of patch keys (the first manifest format had ``path,slide_mpp``)
SHORT_KEYS = {k: f"patch.{k}" for k in ("slide_mpp", "mpp", "magnification", "level")}
#: problems listed in the one error line before "(and N more)"
MAX_LISTED = 3


@dataclass(frozen=True)
class ImageTask:
    """One image of a cohort.

    Attributes
    ----------
    image_id : output name (unique in the cohort; file names ``<image_id>.h5`` ...).
    path : the image file.
    overrides : dotted config keys -> values for this image only.
    label, split : carried into the record (from a manifest).
    domain : the domain to tile it as (None: the run's, else the image's own).
    """

    image_id: str
    path: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    split: str | None = None
    domain: str | None = None


# ---------------------------------------------------------------------------- plain paths
def default_image_id(path: Path) -> str:
    """The file name without its extension (``.ome.tif(f)`` counts as one), as
    :attr:`gigapatch.Image.image_id`."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


#: image ids that would name the run's own files (``summary.csv``, ``summary.parquet``)
RESERVED_IDS = frozenset({"summary"})


def safe_image_id(image_id: str) -> str:
    """``image_id`` made fit to name output files: leading dots become ``_`` (a stem ``.`` or
    ``..`` would name the output folder or its parent, a stem ``.x`` a hidden file), path
    separators and NUL become ``_``, an empty id is ``image``, and an id that names the run's
    own files (``summary``) gets ``_image`` appended."""
    out = "".join("_" if c in "/\\\0" else c for c in image_id)
    stripped = out.lstrip(".")
    out = "_" * (len(out) - len(stripped)) + stripped
    if not out.strip():
        out = "image"
    return f"{out}_image" if out.lower() in RESERVED_IDS else out


def unique_image_ids(paths: list[Path]) -> list[str]:
    """One id per path: its :func:`default_image_id`, and where several paths share one, the
    shortest tail of their folders (and their suffix, when only it differs) that tells them
    apart, joined by ``_`` (``a/x.svs``, ``b/x.svs`` -> ``a_x``, ``b_x``). Deterministic: it
    depends on the paths, not on their order."""
    ids = [safe_image_id(default_image_id(p)) for p in paths]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, image_id in enumerate(ids):
        groups[image_id].append(i)
    for image_id, members in groups.items():
        if len(members) < 2:
            continue
        full = [paths[i].resolve() for i in members]
        same_suffix = len({p.suffix.lower() for p in full}) == 1
        base = image_id if same_suffix else None
        for depth in range(max(len(p.parts) for p in full)):
            names = [
                "_".join([*p.parent.parts[len(p.parent.parts) - depth:],
                          base or f"{image_id}_{p.suffix.lstrip('.')}"]).lstrip("_/")
                for p in full
            ]
            if len(set(names)) == len(names):
                break
        for i, name in zip(members, names):
            ids[i] = name
    seen: set[str] = set()
    for i, image_id in enumerate(ids):  # a made-up id that met a real one: number it
        k, new = 2, image_id
        while new in seen:
            new, k = f"{image_id}-{k}", k + 1
        ids[i] = new
        seen.add(new)
    return ids


def expand_inputs(items: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders as their images (:func:`gigapatch.find_images`), and glob
    patterns (``slides/*.svs``, ``data/**/*.tiff``) as the image files they match, sorted.
    Duplicates dropped, order kept. ImageError for a path that is missing or matches nothing."""
    out: list[Path] = []
    for item in items:
        text = str(item)
        if not Path(text).exists() and glob.has_magic(text):
            found = sorted(Path(p) for p in glob.glob(text, recursive=True)
                           if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError(text, "no image file matches this pattern")
            out.extend(found)
        else:
            out.extend(find_images([text]))
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------- manifest
def read_table(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The column names and rows of a CSV or Parquet manifest (CSV cells as stripped strings)."""
    if not path.is_file():
        raise ConfigError(f"{path}: " + ("a folder, not a manifest" if path.is_dir() else
                                         "not a regular file (a pipe or device?)"
                                         if path.exists() else "manifest not found"))
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError(f"{path}: reading a Parquet manifest needs pyarrow "
                              "(pip install 'gigapatch[table]'), or give a CSV") from None
        try:
            table = pq.read_table(path)
        except Exception as e:
            raise ConfigError(f"{path}: not a readable Parquet file ({e})") from None
        return list(table.column_names), table.to_pylist()
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            rows = [dict(zip(header, (c.strip() for c in cells))) for cells in reader
                    if any(c.strip() for c in cells)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{path}: not a readable CSV file ({e})") from None
    return header, rows


def config_key(column: str) -> str | None:
    """The dotted config key a manifest column names, or None when it names none."""
    key = SHORT_KEYS.get(column, column)
    parts = key.split(".")
    if parts[0] == "plugin":
        return key if len(parts) >= 3 and all(parts) else None
    model: Any = Config
    for part in parts:
        fields_ = getattr(model, "model_fields", None)
        if fields_ is None or part not in fields_:
            return None
        model = fields_[part].annotation
    return None if hasattr(model, "model_fields") else key  # a leaf, not a whole section


def _cell(value: Any, is_csv: bool) -> Any:
    """A cell as a value: None when empty; CSV text read as YAML."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if not is_csv:
        return value
    if value == "":
        return None
    from gigapatch.config import safe_yaml

    try:
        return safe_yaml(value, "cell")
    except ConfigError as e:
        if "aliases" in str(e):
            raise
        return value


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _resolve(raw: str, folder: Path, given: dict[str, Path]) -> Path:
    p = Path(raw).expanduser()
    if p.is_absolute():
        return p
    for cand in (folder / p, p):
        if cand.exists():
            return cand
    return given.get(p.name, folder / p)  # the first manifests matched file names


def _escapes(raw: str, folder: Path) -> bool:
    """True when the relative manifest path ``raw`` climbs (``..``) out of ``folder``."""
    p = Path(raw.strip()).expanduser()
    if p.is_absolute() or ".." not in p.parts:
        return False
    return not (folder / p).resolve().is_relative_to(folder.resolve())


def bad_image_id(image_id: str) -> str | None:
    """Why ``image_id`` cannot name output files, or None when it can."""
    if not image_id.strip():
        return "empty image_id"
    if any(c in image_id for c in "/\\\0") or image_id.startswith("."):
        return f"image_id {image_id!r} cannot name a file (no /, \\ or leading dot)"
    if image_id.lower() in RESERVED_IDS:
        return f"image_id {image_id!r} would overwrite the run's summary.csv; give another"
    return None


def tasks_from_manifest(
    manifest: Path, check: Callable[[str | None, dict[str, Any]], object] | None = None,
    given: Iterable[Path] = (),
) -> list[ImageTask]:
    """The tasks of a manifest, every row validated (see the module docstring).

    ``check(domain, overrides)`` validates a row's overrides (raises ConfigError); ``given``
    are the paths named on the command line (a manifest path that exists nowhere else may name
    one of them by its file name).
    """
    header, rows = read_table(manifest)
    is_csv = manifest.suffix.lower() not in (".parquet", ".pq")
    problems: list[str] = []
    unknown = [c for c in header if c not in PLAIN_COLUMNS and config_key(c) is None]
    dupes = sorted({c for c in header if header.count(c) > 1})
    if "path" not in header:
        problems.append("a manifest needs a 'path' column")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(map(repr, unknown))} (known: "
                        f"{', '.join(PLAIN_COLUMNS + tuple(SHORT_KEYS))}, or a config key "
                        "such as patch.size)")
    if dupes:
        problems.append(f"column(s) {', '.join(map(repr, dupes))} given twice")
    if not rows and not problems:
        problems.append("no rows")
    if problems:
        raise ConfigError(f"{manifest}: " + "; ".join(problems))
    by_name = {p.name: p for p in given}
    tasks, row_of = _manifest_rows(manifest, rows, is_csv, by_name, check, problems)
    first_row: dict[str, int] = {}
    for task, row in zip(tasks, row_of):
        if task.image_id in first_row:
            problems.append(f"rows {first_row[task.image_id]} and {row}: duplicate image_id "
                            f"{task.image_id!r}")
        first_row.setdefault(task.image_id, row)
    if problems:
        more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
        raise ConfigError(f"{manifest}: " + "; ".join(problems[:MAX_LISTED]) + more)
    return tasks


def _manifest_rows(
    manifest: Path, rows: list[dict[str, Any]], is_csv: bool, by_name: dict[str, Path],
    check: Callable[[str | None, dict[str, Any]], object] | None, problems: list[str],
) -> tuple[list[ImageTask], list[int]]:
    """The tasks of the rows (spreadsheet numbering: the header is row 1); each row's problems
    appended to ``problems``."""
    from gigapatch.plugin.manager import list_domains

    domains = list_domains()
    paths = [_resolve(str(r.get("path") or ""), manifest.parent, by_name) for r in rows]
    default_ids = unique_image_ids(paths)
    tasks: list[ImageTask] = []
    row_of: list[int] = []
    for i, (row, path) in enumerate(zip(rows, paths)):
        where = f"row {i + 2}"
        if not str(row.get("path") or "").strip():
            problems.append(f"{where}: empty path")
            continue
        if _escapes(str(row.get("path")), manifest.parent):
            problems.append(f"{where}: path {row.get('path')!r} leaves the manifest's folder "
                            "(a relative path stays inside it; give an absolute path)")
            continue
        if not path.is_file():
            problems.append(f"{where}: {path}: {'is a folder' if path.is_dir() else 'no such file'}")
            continue
        image_id = _text(row.get("image_id")) or default_ids[i]
        domain = _text(row.get("domain"))
        overrides: dict[str, Any] = {}
        for column, value in row.items():
            key = None if column in PLAIN_COLUMNS else config_key(column)
            if key is not None and _cell(value, is_csv) is not None:
                overrides[key] = _cell(value, is_csv)
        why = bad_image_id(image_id)
        if why is None and domain is not None and domain not in domains:
            why = f"unknown domain {domain!r} (installed: {', '.join(sorted(domains))})"
        if why is None and check is not None:
            try:
                check(domain, overrides)
            except GigapatchError as e:
                why = str(e)
        if why is not None:
            problems.append(f"{where} ({image_id}): {why}")
            continue
        tasks.append(ImageTask(image_id, path, overrides, _text(row.get("label")),
                               _text(row.get("split")), domain))
        row_of.append(i + 2)
    return tasks, row_of


# ---------------------------------------------------------------------------- both
def collect_tasks(
    items: Iterable[str | Path] = (),
    manifest: Path | None = None,
    check: Callable[[str | None, dict[str, Any]], object] | None = None,
) -> list[ImageTask]:
    """The cohort: the manifest's rows, then every image of ``items`` (files, folders, globs)
    that no row names. Image ids are unique; every problem is raised before any work.

    Parameters
    ----------
    items : files, folders or glob patterns.
    manifest : CSV or Parquet manifest (see the module docstring).
    check : ``check(domain, overrides)`` raises ConfigError for a bad per-image override.

    Raises
    ------
    ConfigError : a bad manifest (one line naming the rows), or no image at all.
    ImageError : a path that is missing or matches nothing.
    """
    paths = expand_inputs(items)
    tasks = tasks_from_manifest(manifest, check, paths) if manifest is not None else []
    named = {t.path.resolve() for t in tasks}
    rest = [p for p in paths if p.resolve() not in named]
    taken = {t.image_id for t in tasks}
    for path, image_id in zip(rest, unique_image_ids(rest)):
        if image_id in taken:
            raise ConfigError(f"{path}: its image id {image_id!r} is also a manifest row's; "
                              "list it in the manifest with its own image_id")
        tasks.append(ImageTask(image_id, path))
    if not tasks:
        raise ConfigError("no images given (files, folders, glob patterns or --manifest)")
    return tasks


__all__ = [
    "ImageTask",
    "bad_image_id",
    "collect_tasks",
    "config_key",
    "default_image_id",
    "expand_inputs",
    "read_table",
    "tasks_from_manifest",
    "unique_image_ids",
]
