"""The cohort report: one self-contained ``<out>/report.html`` of a run's images.

Everything is inline (CSS, the small sorting script, every overlay thumbnail as a base64 JPEG), so
the file opens from disk, from an e-mail or a shared drive, with no server and no network. Each
thumbnail links to its full ``<image_id>_overlay.png`` by a path relative to the report, so the
link works wherever the output folder is moved.

The rows come from the per-image done records (:func:`gigapatch.cohort.records.read_records`);
an output folder written before records existed (``summary.csv`` only) is read from its summary.
:func:`write_report` is what a cohort run calls at its end and ``gigapatch report OUT`` calls to
rebuild it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gigapatch.cohort.records import ImageRecord, jpeg_uri, read_records
from gigapatch.errors import GigapatchError
from gigapatch.io.atomic import write_text_atomic
from gigapatch.outputs.write import PREVIEW_QUALITY, PREVIEW_WIDTH, preview_jpeg
from gigapatch.version import __version__

#: the report's file name inside the output folder
REPORT_NAME = "report.html"
#: thumbnail width in px (the overlay is downscaled, aspect kept) and JPEG quality: those of
#: the preview a worker makes of the overlay it wrote
THUMB_WIDTH = PREVIEW_WIDTH
THUMB_QUALITY = PREVIEW_QUALITY
#: statuses in the order the counts and the default sort show them (others follow, by name)
STATUS_ORDER = ("error", "empty", "ok")


@dataclass
class ReportRow:
    """One image of the report.

    Attributes
    ----------
    image_id : output name of the image.
    path : its input file, as the run was given it.
    status : ``"ok"``, ``"empty"`` or ``"error"`` (any other string is shown as is).
    reason : one line: why it failed or is empty (``""`` when ok).
    n_patches, n_regions : kept patches and regions (None when unknown).
    foreground, coverage : share of the image that is foreground, share of the foreground inside
        the kept patches (None when unknown).
    seconds : wall time of the image (None when unknown).
    warnings : the warning lines logged while it was tiled.
    overlay : the overlay PNG, relative to the output folder (None: no overlay).
    thumbnail : the overlay's thumbnail URI its worker made (None: made from the PNG).
    """

    image_id: str
    path: str = ""
    status: str = "ok"
    reason: str = ""
    n_patches: int | None = None
    n_regions: int | None = None
    foreground: float | None = None
    coverage: float | None = None
    seconds: float | None = None
    warnings: list[str] = field(default_factory=list)
    overlay: str | None = None
    thumbnail: str | None = None


# ---------------------------------------------------------------------- rows
def rows_from_records(records: Iterable[ImageRecord]) -> list[ReportRow]:
    """Report rows from done records (:func:`gigapatch.cohort.records.read_records`)."""
    rows = []
    for r in records:
        overlay = next((str(o["path"]) for o in r.outputs if o.get("kind") == "overlay"), None)
        rows.append(ReportRow(
            image_id=r.image_id, path=r.path, status=r.status, reason=r.reason,
            n_patches=r.n_patches, n_regions=r.n_regions,
            foreground=_float(r.foreground_fraction), coverage=_float(r.coverage),
            seconds=_float(r.seconds), warnings=list(r.warnings), overlay=overlay,
            thumbnail=r.thumbnail if overlay else None,
        ))
    return rows


def rows_from_summary(summary_csv: Path) -> list[ReportRow]:
    """Report rows from a ``summary.csv`` (an output folder without records): the image id is
    the input's file name without its extension(s), the overlay ``<image_id>_overlay.png`` when
    that file exists."""
    with summary_csv.open(newline="") as f:
        table = list(csv.DictReader(f))
    rows = []
    for r in table:
        path = r.get("path") or ""
        image_id = r.get("image_id") or _image_id(path)
        overlay = f"{image_id}_overlay.png"
        status = r.get("status") or "?"
        failed = status == "error"  # old summaries wrote 0 for the unknown figures of a failure
        rows.append(ReportRow(
            image_id=image_id, path=path, status=status,
            reason=r.get("reason") or r.get("message") or "",
            n_patches=_int(r.get("n_patches")), n_regions=_int(r.get("n_regions")),
            foreground=None if failed else _float(r.get("foreground_fraction")),
            coverage=_float(r.get("coverage")), seconds=_float(r.get("seconds")),
            warnings=[w for w in (r.get("warnings") or "").split(" | ") if w],
            overlay=overlay if (summary_csv.parent / overlay).exists() else None,
        ))
    return rows


def read_rows(out_dir: Path) -> list[ReportRow]:
    """The rows of the run in ``out_dir``: its records, else its ``summary.csv``.

    Raises
    ------
    GigapatchError : ``out_dir`` is not a folder, or holds neither records nor a summary.
    """
    if not out_dir.is_dir():
        raise GigapatchError(f"{out_dir}: no such output folder")
    records = read_records(out_dir)
    if records:
        return rows_from_records(records)
    if (out_dir / "summary.csv").is_file():
        return rows_from_summary(out_dir / "summary.csv")
    raise GigapatchError(f"{out_dir}: not the output folder of a gigapatch run "
                         "(no .gigapatch/records/, no summary.csv)")


# ---------------------------------------------------------------------- thumbnails
def thumbnail_uri(png: Path, width: int = THUMB_WIDTH) -> str | None:
    """The image ``png`` downscaled to ``width`` px wide (aspect kept; never enlarged) as a
    ``data:image/jpeg;base64,...`` URI; None when it is missing or unreadable."""
    import cv2

    bgr = cv2.imread(str(png), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        return None
    return jpeg_uri(preview_jpeg(bgr[:, :, ::-1], width, THUMB_QUALITY))


def thumbnails(out_dir: Path, rows: Sequence[ReportRow], threads: int | None = None
               ) -> list[str | None]:
    """The thumbnail URI of every row's overlay (None without one): the one its worker made
    from the picture in memory (:attr:`ReportRow.thumbnail`) while the overlay is there, else
    the overlay PNG decoded and shrunk, on ``threads`` threads (default: the cores, at most 8;
    OpenCV releases the GIL)."""
    def one(row: ReportRow) -> str | None:
        if not row.overlay:
            return None
        if row.thumbnail:
            return row.thumbnail if (out_dir / row.overlay).is_file() else None
        return thumbnail_uri(out_dir / row.overlay)

    if all(r.thumbnail or not r.overlay for r in rows):
        return [one(r) for r in rows]
    threads = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        return list(pool.map(one, rows))


# ---------------------------------------------------------------------- html
#: (header, key, numeric) of the table's sortable columns, after the thumbnail
COLUMNS = (("image", "image_id", False), ("status", "status", False),
           ("reason", "reason", False), ("patches", "n_patches", True),
           ("regions", "n_regions", True), ("foreground", "foreground", True),
           ("coverage", "coverage", True), ("seconds", "seconds", True),
           ("warnings", "warnings", True))

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2430}
h1{font-size:22px;margin:0 0 4px}.sub{color:#5b6573;margin:0 0 16px}
.counts{display:flex;gap:10px;flex-wrap:wrap;margin:0 0 16px}
.count{border-radius:6px;padding:6px 12px;background:#eef1f5;font-weight:600}
.count.ok{background:#e3f4e6;color:#1d6b30}.count.empty{background:#fff2d6;color:#8a5a00}
.count.error{background:#fde2e1;color:#a4161a}
.failures{border:2px solid #d64545;background:#fff5f5;border-radius:6px;padding:8px 14px;
margin:0 0 16px}.failures h2{font-size:15px;color:#a4161a;margin:4px 0}
.failures li{margin:2px 0}.failures a{color:#a4161a}
table{border-collapse:collapse;width:100%}
th{position:sticky;top:0;background:#273142;color:#fff;text-align:left;padding:7px 8px;
cursor:pointer;user-select:none;white-space:nowrap}
th.nosort{cursor:default}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td{padding:6px 8px;border-bottom:1px solid #dde2e8;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.status-error td{background:#fde8e8}tr.status-error td.status{color:#a4161a;font-weight:700}
tr.status-error td.reason{color:#a4161a}
tr.status-empty td{background:#fff8e6}tr.status-empty td.status{color:#8a5a00;font-weight:700}
td.status{font-weight:600;color:#1d6b30}td.image{min-width:200px;max-width:340px}
.path{color:#6b7583;font-size:12px;overflow-wrap:anywhere}
td.thumb img{display:block;width:240px;height:auto;border:1px solid #c9d0d8}
td.thumb .none{display:block;width:240px;color:#8a94a3;font-size:12px}
td.reason{min-width:200px}td.warnings{min-width:180px;max-width:300px}
ul.warn{margin:0;padding-left:16px;font-size:12px;color:#8a5a00;text-align:left;white-space:normal}
footer{margin-top:16px;color:#6b7583;font-size:12px}
"""

#: click a header: sort by it (again: reverse); numbers by their data-v value, empty cells last
JS = """
(function(){
const tbody=document.querySelector('#images tbody');
document.querySelectorAll('#images th[data-key]').forEach(function(th){
 th.addEventListener('click',function(){
  const idx=Array.prototype.indexOf.call(th.parentNode.children,th);
  const asc=th.getAttribute('aria-sort')!=='ascending';
  const num=th.dataset.type==='num';
  document.querySelectorAll('#images th').forEach(function(o){o.removeAttribute('aria-sort');});
  th.setAttribute('aria-sort',asc?'ascending':'descending');
  const val=function(tr){const v=tr.cells[idx].dataset.v;
   if(v===undefined||v===''){return null;} return num?parseFloat(v):v.toLowerCase();};
  const rows=Array.prototype.slice.call(tbody.rows);
  rows.sort(function(a,b){const x=val(a),y=val(b);
   if(x===null||y===null){return (x===null)-(y===null);}
   const c=x<y?-1:x>y?1:0; return asc?c:-c;});
  rows.forEach(function(r){tbody.appendChild(r);});
 });
});
})();
"""


def render_report(rows: Sequence[ReportRow], thumbs: Sequence[str | None], title: str,
                  note: str = "") -> str:
    """The report's HTML: counts per status, the failures listed, and the sortable table.

    Parameters
    ----------
    rows : the images (shown failures first, then empty, then ok; by image id within each).
    thumbs : per row, its thumbnail as a data URI, or None.
    title : the page's title (e.g. the output folder's name).
    note : a line under the title (what the run was).
    """
    order = sorted(range(len(rows)), key=lambda i: (_status_rank(rows[i].status), rows[i].image_id))
    counts = Counter(r.status for r in rows)
    statuses = sorted(counts, key=lambda s: (_status_rank(s), s))
    count_html = "".join(
        f'<span class="count {_cls(s)}" data-status="{html.escape(s)}">{counts[s]} '
        f"{html.escape(s)}</span>" for s in statuses)
    patches = sum(r.n_patches or 0 for r in rows)
    count_html += f'<span class="count">{len(rows)} images, {patches} patches kept</span>'
    failed = [rows[i] for i in order if rows[i].status == "error"]
    fail_html = ""
    if failed:
        items = "".join(f'<li><a href="#{_anchor(r.image_id)}">{html.escape(r.image_id)}</a>: '
                        f"{html.escape(r.reason or 'failed')}</li>" for r in failed)
        fail_html = (f'<section class="failures" id="failures"><h2>{len(failed)} failed</h2>'
                     f"<ul>{items}</ul></section>")
    head = '<th class="nosort">overlay</th>' + "".join(
        f'<th data-key="{key}"{" data-type=num" if num else ""}>{name}</th>'
        for name, key, num in COLUMNS)
    body = "".join(_row_html(rows[i], thumbs[i]) for i in order)
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class=\"sub\">{html.escape(note)}</p>"
        f'<div class="counts">{count_html}</div>{fail_html}'
        f'<table id="images"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        f"<footer>gigapatch {__version__}, {when}. Click a column header to sort; click a "
        "thumbnail for the full overlay.</footer>"
        f"<script>{JS}</script></body></html>\n"
    )


def _row_html(r: ReportRow, thumb: str | None) -> str:
    esc = html.escape
    if thumb and r.overlay:
        href = esc(quote(r.overlay))
        pic = (f'<a href="{href}"><img src="{thumb}" alt="overlay of {esc(r.image_id)}" '
               f'title="{esc(r.overlay)}"></a>')
    elif r.overlay:
        pic = f'<a class="none" href="{esc(quote(r.overlay))}">overlay (no thumbnail)</a>'
    else:
        pic = '<span class="none">no overlay</span>'
    warn = "".join(f"<li>{esc(w)}</li>" for w in r.warnings)
    cells = [
        f'<td class="thumb">{pic}</td>',
        f'<td class="image" data-v="{esc(r.image_id)}"><b>{esc(r.image_id)}</b>'
        f'<div class="path">{esc(r.path)}</div></td>',
        f'<td class="status" data-v="{esc(r.status)}">{esc(r.status)}</td>',
        f'<td class="reason" data-v="{esc(r.reason)}">{esc(r.reason)}</td>',
        _num(r.n_patches, "{:d}"), _num(r.n_regions, "{:d}"),
        _num(r.foreground, "{:.1%}"), _num(r.coverage, "{:.1%}"), _num(r.seconds, "{:.2f}"),
        f'<td class="warnings" data-v="{len(r.warnings)}">'
        f'{f"<ul class=warn>{warn}</ul>" if warn else "0"}</td>',
    ]
    return (f'<tr id="{_anchor(r.image_id)}" class="status-{_cls(r.status)}" '
            f'data-image="{esc(r.image_id)}">{"".join(cells)}</tr>')


def _num(v: float | None, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return '<td class="num" data-v="">-</td>'
    return f'<td class="num" data-v="{v!r}">{fmt.format(v)}</td>'


# ---------------------------------------------------------------------- the file
def write_report(out_dir: str | Path, rows: Sequence[ReportRow] | None = None,
                 note: str = "") -> Path:
    """Write ``<out_dir>/report.html`` (atomically) from the run's records, or from ``rows``.

    Parameters
    ----------
    out_dir : the output folder of a run.
    rows : the images (default: :func:`read_rows` of ``out_dir``).
    note : a line under the title (default: the image count and the folder).

    Returns
    -------
    The report's path.
    """
    out_dir = Path(out_dir)
    rows = read_rows(out_dir) if rows is None else rows
    thumbs = thumbnails(out_dir, rows)
    title = f"gigapatch report: {out_dir.resolve().name}"
    text = render_report(rows, thumbs, title, note or f"{len(rows)} images in {out_dir.resolve()}")
    path = out_dir / REPORT_NAME
    write_text_atomic(path, text)
    return path


# ---------------------------------------------------------------------- helpers
def _status_rank(status: str) -> int:
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)


def _cls(status: str) -> str:
    """A CSS-safe form of a status."""
    return "".join(c if c.isalnum() else "-" for c in status) or "unknown"


def _anchor(image_id: str) -> str:
    return "img-" + quote(image_id, safe="")


def _image_id(path: str) -> str:
    """An image's output name from its path (as :attr:`gigapatch.Image.image_id`)."""
    name = Path(path).name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _int(v: Any) -> int | None:
    if v is None or v == "":
        return None
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return None


def _float(v: Any) -> float | None:
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


__all__ = ["REPORT_NAME", "ReportRow", "read_rows", "render_report", "rows_from_records",
           "rows_from_summary", "thumbnail_uri", "write_report"]
