"""The benchmark table (:func:`make_table`) of :mod:`run`'s figures, one column per slide size."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _f(v: Any, fmt: str = "{:.2f}") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return fmt.format(v)


def _ratio(a: Any, b: Any) -> Any:
    return a / b if a is not None and b not in (None, 0) else None


def make_table(results: list[dict[str, Any]], python_start: float,
               hs2p_start: float | None = None) -> str:
    """One markdown table: a row per figure, a column per slide size, and the target."""
    cols = [f"{r['side'] // 1000}k" for r in results]
    rows: list[tuple[str, list[str], str]] = []
    n0 = "{:.0f}"

    def row(label: str, fn: Callable[[dict[str, Any]], str], target: str = "") -> None:
        rows.append((label, [fn(r) for r in results], target))

    def one(k: str, fmt: str = "{:.2f}") -> Callable[[dict[str, Any]], str]:
        return lambda r: _f(r.get(k), fmt)

    def two(k1: str, k2: str, fmt: str = "{:.2f}", fmt2: str | None = None
            ) -> Callable[[dict[str, Any]], str]:
        return lambda r: f"{_f(r.get(k1), fmt)} / {_f(r.get(k2), fmt2 or fmt)}"

    def ratio(k: str, ref: str = "adj_decode_2") -> Callable[[dict[str, Any]], str]:
        return lambda r: _f(_ratio(r.get(k), r.get(ref)))

    base = min(results, key=lambda r: r["side"])
    row("slide: level-0 tiles / with tissue / tissue fraction",
        lambda r: f"{r['tiles']} / {r['tissue_tiles']} / {r['tissue_fraction']:.2f}")
    row("slide: file MB / written in s", two("slide_mb", "slide_s", n0, "{:.1f}"))
    row("**mask + coords** gigapatch, whole process, s (median)", one("gp_wall"))
    row("hs2p 6.1.0 (OpenSlide, HSV), whole process, s (median)", one("hs2p_wall"))
    row("ratio gigapatch / hs2p", ratio("gp_wall", "hs2p_wall"), "<= 0.70 (40k)")
    row("CPU s (user + sys), gigapatch / hs2p", two("gp_cpu", "hs2p_cpu"))
    row("gigapatch peak RSS, MB", one("gp_rss", n0), "<= 150 (40k)")
    row("hs2p peak RSS, MB", one("hs2p_rss", n0))
    row(f"gigapatch peak RSS / {cols[0]}'s",
        lambda r: _f(_ratio(r.get("gp_rss"), base.get("gp_rss"))), "<= 1.2 (100k)")
    if any("fast_wall" in r for r in results):
        row("fast preset (`configs/pathology-fast.yaml`: mask at the 64 level, as hs2p's), s "
            "(median, interleaved with the runs above)", one("fast_wall"))
        row("  ratio fast preset / hs2p", ratio("fast_wall", "hs2p_wall"), "<= 0.70 (40k)")
        row("  CPU s / peak RSS, MB", two("fast_cpu", "fast_rss", "{:.2f}", n0))
    row("patches kept: gigapatch (config min_foreground) / hs2p (tissue >= 0.01)", two("gp_n", "hs2p_n", n0))
    row("gigapatch mask: downsample / longer side, px", two("gp_mask_ds", "gp_mask_side", "{:.1f}",
                                                          n0))
    row("gigapatch default flags (sharpness, overlay), s / MB",
        two("gp_default_wall", "gp_default_rss", "{:.2f}", n0))
    row("raw JPEG decode MP/s, 1 thread / 2 threads (tissue tiles decoded)",
        lambda r: f"{two('decode_1', 'decode_2', n0)(r)} ({_f(r.get('codec_tiles'), n0)})")
    row("raw JPEG encode MP/s (q90), 1 / 2 threads", two("encode_1", "encode_2", n0))
    row("OpenSlide read_region 256 px MP/s, 1 / 2 threads", two("openslide_1", "openslide_2", n0))
    row("raw decode MP/s of the kept patches' tiles, 2 threads, beside the extraction runs",
        one("adj_decode_2", n0))
    row("**extraction** MP/s, grid, JPEG passthrough (default)", one("extract_grid", n0))
    row("  / raw decode beside it", ratio("extract_grid"), ">= 0.60")
    row("file-system ceiling: only writing those bytes, one file per patch, MP/s",
        one("file_ceiling", n0))
    row("extraction MP/s, grid, decode + re-encode (no passthrough)",
        one("extract_grid_nopass", n0))
    row("  / raw decode beside it", ratio("extract_grid_nopass"), ">= 0.60")
    row("extraction MP/s, optimal placement (unaligned: decode + encode)", one("extract_opt", n0))
    row("extraction MP/s to tar shards, grid: passthrough / decode + re-encode",
        two("extract_grid_tar", "extract_grid_nopass_tar", n0))
    row("  / raw decode beside it",
        lambda r: f"{ratio('extract_grid_tar')(r)} / {ratio('extract_grid_nopass_tar')(r)}",
        ">= 0.60")
    row("`tile --extract` whole process, s / peak MB",
        two("gp_extract_wall", "gp_extract_rss", "{:.2f}", n0))
    row("placement at the config min_foreground: grid patches / coverage", two("grid_n", "grid_cov", n0, "{:.4f}"))
    row("  optimal placement: patches / coverage", two("opt_n", "opt_cov", n0, "{:.4f}"))
    row("  border placement (the default): patches / coverage",
        two("border_n", "border_cov", n0, "{:.4f}"))
    row("optimal: fewer patches than grid, %",
        lambda r: _f(100 * (1 - r["opt_n"] / r["grid_n"])
                     if r.get("grid_n") and r.get("opt_n") is not None else None, "{:.1f}"),
        ">= 5 at >= coverage")
    for mf in ("0.01", "0.5"):
        row(f"placement at min_foreground {mf}: grid / optimal patches (coverage)",
            lambda r, mf=mf: f"{_f(r.get(f'place{mf}_grid_n'), n0)} ({_f(r.get(f'place{mf}_grid_cov'), '{:.4f}')})"
            f" / {_f(r.get(f'place{mf}_opt_n'), n0)} ({_f(r.get(f'place{mf}_opt_cov'), '{:.4f}')})")
        row("  optimal saves, % / most ANY axis-aligned placement could save (line bound; tighter: placement.py --lp), % / CPU s",
            lambda r, mf=mf: f"{_f(r.get(f'place{mf}_saved_pct'), '{:.1f}')} / "
            f"{_f(r.get(f'place{mf}_bound_pct'), '{:.1f}')} / {_f(r.get(f'place{mf}_opt_cpu_s'))}",
            ">= 5 at >= coverage")
    row("pixels vs OpenSlide: read_region, max abs diff",
        lambda r: _f((r.get("extract_grid_pix") or {}).get("read_maxdiff"), n0), "0")
    row("written JPEGs vs OpenSlide: max abs diff / PSNR dB (passthrough)",
        lambda r: _pix(r.get("extract_grid_pix")))
    row("written JPEGs vs OpenSlide: max abs diff / PSNR dB (re-encoded q90)",
        lambda r: _pix(r.get("extract_grid_nopass_pix")), "JPEG tolerance")
    lines = ["| figure | " + " | ".join(cols) + " | target |",
             "|---|" + "---:|" * len(cols) + "---|"]
    lines += [f"| {lab} | " + " | ".join(v) + f" | {t} |" for lab, v, t in rows]
    errs = [f"- {r['side'] // 1000}k: {e}" for r in results for e in r.get("errors", [])]
    if errs:
        lines.append("\nErrors (their cells read n/a):\n" + "\n".join(errs))
    lines.append(f"\nPython start-up alone (`python -c pass`): {python_start:.3f} s"
                 + (f"; in hs2p's virtual environment: {hs2p_start:.3f} s (this machine's "
                    "interpreter also runs the site-packages' .pth hooks and gigapatch's "
                    "editable-install finder at every start)" if hs2p_start is not None else "")
                 + ".")
    return "\n".join(lines)


def _pix(d: dict[str, float] | None) -> str:
    if not d:
        return "n/a"
    psnr = "identical" if d["file_psnr"] == float("inf") else _f(d["file_psnr"], "{:.1f}")
    return f"{d['file_maxdiff']:.0f} / {psnr}"


def machine_line() -> str:
    import imagecodecs
    import tifffile

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import openslide

        osv = f"openslide {openslide.__library_version__}"
    except ImportError:
        osv = "no openslide"
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
            f"imagecodecs {imagecodecs.__version__}, tifffile {tifffile.__version__}, {osv}")
