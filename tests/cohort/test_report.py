"""The cohort report renders in a real browser: headless Chromium opens ``report.html`` of a tiled
cohort (five synthetic SVS slides, one of bare glass and one truncated file), takes a screenshot,
and a probe script in the page reports what a reader would see: every image, the failure in red,
the empty image and its warning, decoded thumbnails, and the table sorted by a click on a
header.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it where missing); without it the
browser tests skip, saying so. The page is never fetched from a server: ``file://`` only.
"""

from __future__ import annotations

import html.parser
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_cli import run_cli
from helpers_paths import BENCHMARKS

#: slide sides: patch counts from under 10 to over 40, so that a text sort ("10" < "9") shows
SIDES = {"slide-a": 1000, "slide-b": 3000, "slide-c": 2600, "slide-d": 2000, "slide-e": 4000}
BROKEN, BLANK = "broken", "blank"

#: run on the page's load event: what is on the page, as JSON in <pre id="probe">
PROBE = """<script>
window.addEventListener('load', function () {
  const rows = () => Array.from(document.querySelectorAll('#images tbody tr'));
  const th = (key) => document.querySelector('#images th[data-key="' + key + '"]');
  const order = () => rows().map((r) => r.dataset.image);
  const out = {text: document.body.innerText, initial: order(), rows: {}};
  rows().forEach(function (r) {
    const img = r.querySelector('td.thumb img');
    out.rows[r.dataset.image] = {
      status: r.querySelector('td.status').innerText,
      reason: r.querySelector('td.reason').innerText,
      warnings: r.querySelector('td.warnings').innerText,
      background: getComputedStyle(r.querySelector('td.status')).backgroundColor,
      natural: img ? [img.naturalWidth, img.naturalHeight] : null,
      complete: img ? img.complete : null,
      href: img ? img.parentNode.getAttribute('href') : null,
    };
  });
  th('n_patches').click(); out.patches_up = order();
  th('n_patches').click(); out.patches_down = order();
  th('image_id').click(); out.image_up = order();
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str:
    """The Chromium executable (skips the test without one)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium; .ci/run "
                "installs it), so the report cannot be opened in a real browser here")


def headless(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--hide-scrollbars", "--no-first-run", "--allow-file-access-from-files", *args],
        capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiled cohort folder: five synthetic SVS slides of mixed sizes, one of bare glass and one
    truncated file, tiled by ``gigapatch tile`` (overlays on; it writes the report at its end),
    the report then deleted and rebuilt by ``gigapatch report``."""
    sys.path.insert(0, str(BENCHMARKS))
    from synthetic_slide import make_slide

    src = tmp_path_factory.mktemp("slides")
    for seed, (name, side) in enumerate(SIDES.items()):
        make_slide(src / f"{name}.svs", side, seed=seed)
    make_slide(src / f"{BLANK}.svs", 2000, tissue_fraction=0.0, seed=9)
    (src / f"{BROKEN}.svs").write_bytes((src / "slide-b.svs").read_bytes()[:5000])
    out = tmp_path_factory.mktemp("cohort") / "out"
    res = run_cli("tile", str(src), "--out", str(out), "--domain", "pathology", "--quiet")
    assert res.returncode == 1, res.stderr[-2000:]  # one image failed, the others finished
    assert (out / "report.html").is_file()
    (out / "report.html").unlink()
    res = run_cli("report", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith(str(out / "report.html"))
    assert "7 images, 1 failed" in res.stdout
    return out


class _Page(html.parser.HTMLParser):
    """Every tag's attributes and the page's external references."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_report_is_self_contained(cohort: Path) -> None:
    text = (cohort / "report.html").read_text()
    page = _Page()
    page.feed(text)
    tags = page.tags
    # nothing fetched: no stylesheet, script or image from anywhere but the page itself
    assert not [t for t, a in tags if t == "link" or (t == "script" and a.get("src"))]
    imgs = [a for t, a in tags if t == "img"]
    assert len(imgs) == len(SIDES) + 1  # the blank slide has an overlay too
    assert all((a.get("src") or "").startswith("data:image/jpeg;base64,") for a in imgs)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    # every thumbnail links to its image's full overlay, by a path relative to the report
    links = [a["href"] for t, a in tags if t == "a" and (a.get("href") or "").endswith(".png")]
    assert sorted(links) == sorted(f"{k}_overlay.png" for k in [*SIDES, BLANK])
    assert all((cohort / h).is_file() for h in links)


def test_thumbnails_are_downscaled_overlays(cohort: Path) -> None:
    import base64

    import cv2

    from gigapatch.cohort.report import THUMB_WIDTH, thumbnail_uri

    overlay = cohort / "slide-b_overlay.png"
    uri = thumbnail_uri(overlay)
    assert uri is not None
    thumb = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8),
                         cv2.IMREAD_COLOR)
    full = cv2.imread(str(overlay), cv2.IMREAD_COLOR)
    assert thumb.shape[1] == THUMB_WIDTH
    assert abs(thumb.shape[0] / thumb.shape[1] - full.shape[0] / full.shape[1]) < 0.01
    # the same picture: the full overlay shrunk the same way is close to it (JPEG aside)
    ref = cv2.resize(full, thumb.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(thumb.astype(int) - ref).mean() < 5  # JPEG q80 of the overlay's sharp outlines
    assert thumbnail_uri(cohort / "missing_overlay.png") is None


def test_the_workers_thumbnail_is_the_one_made_from_the_png(cohort: Path) -> None:
    """Each worker keeps the overlay's thumbnail in its record (made from the picture in
    memory): the report's bytes are those of the PNG decoded and shrunk again, and a record
    whose overlay has gone shows none."""
    from gigapatch.cohort.records import read_records
    from gigapatch.cohort.report import rows_from_records, thumbnail_uri, thumbnails

    records = [r for r in read_records(cohort) if r.status != "error"]
    assert len(records) == len(SIDES) + 1  # every slide and the blank one
    for r in records:
        assert r.thumbnail is not None
        assert r.thumbnail == thumbnail_uri(cohort / f"{r.image_id}_overlay.png"), r.image_id
    rows = rows_from_records(records)
    rows[0].overlay = "gone_overlay.png"
    assert thumbnails(cohort, rows) == [None, *(r.thumbnail for r in records[1:])]


@pytest.mark.slow
def test_report_renders_in_headless_chromium(cohort: Path) -> None:
    # the page as a reader sees it, plus the probe that reads it back
    probe = cohort / "report-probe.html"
    probe.write_text((cohort / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    res = headless("--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, (res.stdout[-1000:], res.stderr[-2000:])
    import html as html_mod

    seen = json.loads(html_mod.unescape(found.group(1)))
    ids = {*SIDES, BLANK, BROKEN}
    assert set(seen["rows"]) == ids
    assert all(i in seen["text"] for i in ids)
    # the failure: first in the table, listed above it, its reason shown, its row red
    bad = seen["rows"][BROKEN]
    assert seen["initial"][0] == BROKEN
    assert bad["status"] == "error" and "truncated" in bad["reason"]
    for count in ("1 failed", "1 error", "1 empty", "5 ok", "7 images"):
        assert count in seen["text"]
    r, g, b = map(int, re.findall(r"\d+", bad["background"])[:3])
    assert r > 200 and r - g > 10 and r - b > 10, bad["background"]
    assert bad["natural"] is None  # a failed image has no overlay
    # the empty image: second, amber, its reason and its warning shown, its overlay there
    blank = seen["rows"][BLANK]
    assert seen["initial"][1] == BLANK and blank["status"] == "empty"
    assert "almost no foreground" in blank["reason"] and "almost no foreground" in blank["warnings"]
    r, g, b = map(int, re.findall(r"\d+", blank["background"])[:3])
    assert r > 240 and r - b > 15, blank["background"]
    assert blank["natural"][0] == 240
    # every good image: a decoded thumbnail (non-zero natural size) linking to its overlay
    for name in SIDES:
        row = seen["rows"][name]
        assert row["status"] == "ok"
        assert row["complete"] and row["natural"][0] == 240 and row["natural"][1] > 100, row
        assert row["href"] == f"{name}_overlay.png"
    # sorting: a click on "patches" orders by the number (the failure's 0 first), again reverses
    patches = _patch_counts(cohort)
    up = [patches[i] for i in seen["patches_up"]]
    down = [patches[i] for i in seen["patches_down"]]
    assert up == sorted(up) and down == sorted(up, reverse=True)
    assert min(v for v in up if v) < 10 <= max(up)  # numbers, not text, were compared
    assert seen["image_up"] == sorted(ids)

    # the screenshot: the page as a user sees it, failure box and thumbnails drawn
    shot = cohort / "report.png"
    headless("--window-size=1400,1000", f"--screenshot={shot}", (cohort / "report.html").as_uri())
    import cv2

    png = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert png is not None and png.shape[:2] == (1000, 1400)
    rgb = png[..., ::-1].astype(int)
    red = (rgb[..., 0] > 180) & (rgb[..., 1] < 110) & (rgb[..., 2] < 110)
    assert red.sum() > 500  # the failures' box border and the error's reason
    pink = (rgb[..., 0] > 180) & (rgb[..., 2] > 140) & (rgb[..., 1] < 150)
    assert pink.sum() > 2000  # H&E tissue in the thumbnails


def _patch_counts(out: Path) -> dict[str, int]:
    """Kept patches per image id, from the h5 files (0 for an image without one)."""
    from gigapatch import PatchSet

    counts = {BROKEN: 0, BLANK: 0}
    for name in SIDES:
        counts[name] = len(PatchSet.read(out / f"{name}.h5"))
    return counts


def test_report_command_errors_are_one_line(tmp_path: Path) -> None:
    res = run_cli("report", str(tmp_path / "nowhere"))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {tmp_path / 'nowhere'}: no such output folder"
    res = run_cli("report", str(tmp_path))
    assert res.returncode == 2 and "not the output folder of a gigapatch run" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "report.html").exists()
