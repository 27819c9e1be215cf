"""Artefacts of stained slides: marker ink (pen), out-of-focus patches, glass/dark/grey areas,
and a small learned tissue mask.

Pen ink is found on the low-resolution view by colour: H&E and IHC stains are pink, purple and
brown (red above green), while blue and green markers have green at or above red, and black ink
absorbs all channels alike. Over tissue the ink is translucent, so the rules are ratios.

Blur is judged per block (4 x 4 per patch) and relative to the slide itself: fine detail over
coarse structure (:func:`block_focus`), against the median of the slide's tissue-dense blocks.
The ``blur`` score is the fraction of a patch's tissue that is out of focus;
selection rejects ``blur >= score.max_blur`` with reason ``"blur"``. The per-block focus comes
from the full-resolution pass (``gigapatch_score_pixels``), so candidates are read only once.

Settings: ``score.blur_relative`` (0 turns the blur score off) and ``score.max_blur``;
``config.plugin``: ``pen_colors`` (default blue, green, black; add ``red`` for red markers),
``pen_grow``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from pathlib import Path
from typing import Any

import numpy as np

from gigapatch import hookimpl

DOMAINS = ("pathology",)
DEFAULT_PEN_COLORS = ("blue", "green", "black")
DEFAULT_PEN_GROW = 0
#: block focus (:func:`block_focus`) below which a block is out of focus whatever the slide;
#: such blocks never set the slide's reference (in-focus H&E at 0.5 um/px: median ~2)
FOCUS_FLOOR = 0.3
#: candidates at least this dense in tissue set the slide's reference sharpness
REFERENCE_FOREGROUND = 0.9


def _same_view(fn):
    """Remember ``fn``'s last result for the same pixels and arguments.

    The tissue, pen and score hooks of one slide all look at the same low-resolution view; this
    computes its channels and ink once instead of four and two times. The key is a hash of the
    pixels (not the array's id, which Python reuses), and results are read-only so no caller can
    change what the next one gets.
    """
    last: dict[str, Any] = {}

    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(rgb: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        a = np.ascontiguousarray(rgb)
        bound = signature.bind(a, *args, **kwargs)  # f(x, 1) and f(x, b=1) are one call
        bound.apply_defaults()
        params = tuple((k, v) for k, v in bound.arguments.items() if v is not a)
        key = (hashlib.blake2b(a.data, digest_size=16).digest(), a.shape, a.dtype.str, params)
        if last.get("key") != key:
            out = fn(a, *args, **kwargs)
            for arr in out if isinstance(out, tuple) else (out,):
                arr.setflags(write=False)
            last.update(key=key, value=out)
        return last["value"]

    return wrapper


@_same_view
def _channels(rgb: np.ndarray, balance: bool = True) -> tuple[np.ndarray, ...]:
    """r, g, b, saturation (0-1) and grey (luma) float32 planes of a 3 x 3 median-filtered view,
    white-balanced on the glass colour (:func:`glass_rgb`) so a tinted background reads as white."""
    import cv2

    a = np.ascontiguousarray(np.asarray(rgb)[:, :, :3])
    if min(a.shape[:2]) >= 3:
        a = cv2.medianBlur(a, 3)
    f = a.astype(np.float32)
    if balance and f.size:
        f *= 255.0 / glass_rgb(a)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    # in place, one plane at a time: a 4096^2 view must not cost a gigabyte
    mx = np.maximum(r, g)  # element-wise beats a reduction over a length-3 last axis
    np.maximum(mx, b, out=mx)
    sat = np.minimum(r, g)
    np.minimum(sat, b, out=sat)
    np.subtract(mx, sat, out=sat)
    np.maximum(mx, 1.0, out=mx)
    np.divide(sat, mx, out=sat)
    del mx
    grey = f @ np.array([0.299, 0.587, 0.114], np.float32)
    return r, g, b, sat, grey


def glass_rgb(rgb: np.ndarray) -> np.ndarray:
    """(3,) float32 colour of the glass: per-channel median of the brightest 10 % of pixels,
    at least 200 (a slide filled with tissue then falls back to near white)."""
    a = np.asarray(rgb)[:, :, :3]
    step = max(1, int(np.sqrt(a.shape[0] * a.shape[1] / 1e6)))  # ~1 M samples are plenty
    a = a[::step, ::step].reshape(-1, 3).astype(np.float32)
    if len(a) == 0:
        return np.full(3, 255.0, np.float32)
    grey = a @ np.array([0.299, 0.587, 0.114], np.float32)
    bright = a[grey >= percentile(grey, 90)]
    return np.clip(np.median(bright, axis=0), 200.0, 255.0).astype(np.float32)


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) through one ``np.partition``: the same
    number, without the ``np.unique`` inside numpy's version that imports ``numpy.ma`` (~60 ms
    of a 1 s command)."""
    v = np.asarray(values).ravel()
    pos = q / 100.0 * (len(v) - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    part = np.partition(v, [lo, hi])
    return float(part[lo] + (part[hi] - part[lo]) * (pos - lo))


def _drop_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    import cv2

    _n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels]


@_same_view
def pen_mask(
    rgb: np.ndarray, colors: tuple[str, ...] = DEFAULT_PEN_COLORS, min_area: int = 3,
    grow: int = DEFAULT_PEN_GROW,
) -> np.ndarray:
    """Marker ink on a low-resolution RGB view.

    Rules (after a 3 x 3 median; ``sat`` = (max - min) / max; ``od`` = optical density of each
    channel against the glass colour, :func:`glass_rgb`):

    - blue: ``b - r > 40``, ``g - r > -12``, ``sat > 0.25`` (stains keep red well above
      green; bluish IHC haematoxylin has ``b - r`` of about 25)
    - green (and teal tissue-marking dye): ``g - r > 10``, ``g - b > -5``, ``sat > 0.15``
    - black (neutral density, unlike any stain; bluish IHC haematoxylin comes close, so faint
      ink must be very neutral): ``min(od) / max(od)`` above 0.88 with ``max(od) > 0.45``, above
      0.8 with ``max(od) > 0.75``, or, over tissue, above 0.75 with ``min(od) > 0.8``
    - red (opt-in, red blood cells look alike): ``r - g > 90``, ``b - g < 0.2 (r - g)``,
      ``sat > 0.6``

    Weaker evidence (each threshold relaxed) counts where it is connected to strong evidence, so
    a stroke is followed over dark tissue. Components smaller than ``min_area`` px are dropped, the rest grown by ``grow`` px (1 also
    takes the soft edges of a stroke; 0, the default, keeps per-patch pen fractions unbiased).

    Parameters
    ----------
    rgb : (h, w, 3) uint8.
    colors : which inks to look for.
    min_area : smallest ink component kept (px).
    grow : dilation radius (px).

    Returns
    -------
    (h, w) bool.
    """
    import cv2

    r, g, b, sat, _grey = _channels(rgb)
    m = np.zeros(r.shape, bool)  # strong evidence
    weak = np.zeros(r.shape, bool)  # weaker evidence, kept where connected to strong
    if "blue" in colors:
        m |= (b - r > 40) & (g - r > -12) & (sat > 0.25)
        weak |= (b - r > 30) & (g - r > -25) & (sat > 0.18)
    if "green" in colors:
        m |= (g - r > 10) & (g - b > -5) & (sat > 0.15)
        weak |= (g - r > 0) & (g - b > -12) & (sat > 0.1)
    if "black" in colors:
        # optical density against the balanced glass (= 255); max/min OD = OD of min/max channel
        cmax = np.maximum(np.maximum(r, g), b)
        cmin = np.minimum(np.minimum(r, g), b)
        odmin = np.log(256.0 / (np.maximum(cmax, 0.0) + 1.0))
        odmax = np.log(256.0 / (np.maximum(cmin, 0.0) + 1.0))
        del cmax, cmin
        ratio = odmin / np.maximum(odmax, 1e-3)
        m |= ((ratio > 0.88) & (odmax > 0.45)) | ((ratio > 0.8) & (odmax > 0.75))
        m |= (ratio > 0.75) & (odmin > 0.8)
        weak |= (ratio > 0.71) & (odmax > 1.0)
    if "red" in colors:
        m |= (r - g > 90) & (b - g < 0.2 * (r - g)) & (sat > 0.6)
        weak |= (r - g > 70) & (b - g < 0.3 * (r - g)) & (sat > 0.5)
    if m.any() and min_area > 1:  # specks are no seeds
        m = _drop_small(m, min_area)
    if m.any():  # hysteresis: ink continues where the evidence weakens (dark tissue under it)
        n, labels = cv2.connectedComponents((weak | m).view(np.uint8), connectivity=8)
        seeded = np.zeros(n, bool)
        seeded[labels[m]] = True
        seeded[0] = False
        m = seeded[labels]
    if not m.any():
        return m
    u8 = m.view(np.uint8)
    if grow > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        u8 = cv2.dilate(u8, k)
    return u8.astype(bool)


def glass_dark_grey(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pixel classes of a low-resolution view that are not stained tissue.

    ``white``: bright and unsaturated (glass); ``dark``: grey < 60 (debris, thick folds, black
    ink); ``grey``: unsaturated mid-grey (dust, shadows, out-of-coverslip areas).
    """
    _r, _g, _b, sat, grey = _channels(rgb)
    white = (grey > 215) & (sat < 0.08)
    dark = grey < 60
    greyish = ~white & ~dark & (sat < 0.08)
    return {"white": white, "dark": dark, "grey": greyish}


def _plugin(config: Any, key: str, default: Any) -> Any:
    return (getattr(config, "plugin", None) or {}).get(key, default)


@hookimpl
def gigapatch_exclusion_masks(rgb: np.ndarray, domain: str | None, config: Any) -> dict[str, np.ndarray] | None:
    """``{"pen": ink mask}`` for the pathology domain (None elsewhere)."""
    if domain not in DOMAINS:
        return None
    colors = tuple(_plugin(config, "pen_colors", DEFAULT_PEN_COLORS))
    return {"pen": pen_mask(rgb, colors, grow=int(_plugin(config, "pen_grow", DEFAULT_PEN_GROW)))}


def block_focus(patches: np.ndarray, blocks: int = 4) -> np.ndarray:
    """Contrast-normalised focus of each block of each patch.

    Per patch (grey, 2 x 2 binned to quiet sensor noise): the mean squared 4-neighbour Laplacian
    of each of ``blocks`` x ``blocks`` blocks (fine detail, which defocus removes) divided by the
    mean squared gradient of the 8 x 8-binned image in that block (coarse structure, which
    defocus keeps) + 1. Faint or pale tissue scales both alike, so the ratio tells blur from low
    contrast; flat glass scores high (noise, no structure), i.e. never "blurred".

    Parameters
    ----------
    patches : (N, s, s, 3) uint8 RGB (or (N, s, s) grey); ``s`` is cropped to a multiple of
        ``8 * blocks``.

    Returns
    -------
    (N, blocks, blocks) float32.
    """
    p = np.asarray(patches)
    g = p[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) if p.ndim == 4 \
        else p.astype(np.float32)
    n = len(g)
    s = min(g.shape[1], g.shape[2]) // (8 * blocks) * (8 * blocks)
    if n == 0 or s == 0:
        return np.zeros((n, blocks, blocks), np.float32)
    g = g[:, :s, :s]
    h2 = s // 2
    g2 = g.reshape(n, h2, 2, h2, 2).mean(axis=(2, 4))
    c = g2[:, 1:-1, 1:-1]
    lap = (g2[:, :-2, 1:-1] + g2[:, 2:, 1:-1] + g2[:, 1:-1, :-2] + g2[:, 1:-1, 2:] - 4.0 * c) ** 2
    lap = np.pad(lap, ((0, 0), (1, 1), (1, 1)), mode="edge")
    b2 = h2 // blocks
    fine = lap.reshape(n, blocks, b2, blocks, b2).mean(axis=(2, 4))
    h8 = s // 8
    g8 = g.reshape(n, h8, 8, h8, 8).mean(axis=(2, 4))
    gx = np.diff(g8, axis=2)[:, :-1, :]
    gy = np.diff(g8, axis=1)[:, :, :-1]
    grad = np.pad(gx**2 + gy**2, ((0, 0), (0, 1), (0, 1)), mode="edge")
    b8 = h8 // blocks
    coarse = grad.reshape(n, blocks, b8, blocks, b8).mean(axis=(2, 4))
    return (fine / (coarse + 1.0)).astype(np.float32)


def blur_fraction(
    focus: np.ndarray, tissue: np.ndarray, relative: float,
    reference_foreground: float = REFERENCE_FOREGROUND,
) -> np.ndarray:
    """Fraction of each patch's tissue blocks that are out of focus relative to the slide.

    Parameters
    ----------
    focus : (N, B, B) from :func:`block_focus`.
    tissue : (N, B, B) tissue fraction of each block (from the low-resolution mask).
    relative : a tissue block (tissue >= 0.5) is blurred when its focus is below ``relative``
        x the slide's reference: the median focus of its dense blocks (tissue >=
        ``reference_foreground``; all tissue blocks when fewer than 16 are dense), leaving out
        blocks below :data:`FOCUS_FLOOR` (plainly out of focus at any contrast).

    Returns
    -------
    (N,) float32 in [0, 1] (0 for patches without tissue blocks).
    """
    f = np.asarray(focus, np.float64)
    t = np.asarray(tissue, np.float64)
    tis = t >= 0.5
    out = np.zeros(len(f), np.float32)
    if relative <= 0 or not tis.any():
        return out
    # the reference ignores blocks that are out of focus beyond doubt, so that a slide mostly
    # out of focus is still measured against its sharp part
    usable = tis & (f >= FOCUS_FLOOR)
    dense = usable & (t >= reference_foreground)
    pool = dense if dense.sum() >= 16 else (usable if usable.any() else tis)
    ref = np.median(f[pool])
    blurred = tis & (f < relative * ref)
    n_t = tis.reshape(len(f), -1).sum(axis=1)
    n_b = blurred.reshape(len(f), -1).sum(axis=1)
    np.divide(n_b, n_t, out=out, where=n_t > 0, casting="unsafe")
    return out


def block_tissue(coords: np.ndarray, context: Any, blocks: int = 4) -> np.ndarray:
    """(N, blocks, blocks) tissue fraction of each block of each patch, from the context's mask."""
    from gigapatch import mask_fraction

    c = np.asarray(coords, np.int64).reshape(-1, 2)
    step = context.geometry.size_level0 / blocks
    off = np.stack(np.meshgrid(np.arange(blocks), np.arange(blocks)), -1).reshape(-1, 2) * step
    bc = (c[:, None, :] + off[None]).reshape(-1, 2)
    return mask_fraction(context.mask, bc, step, context.mask_downsample).reshape(len(c), blocks, blocks)


@hookimpl
def gigapatch_score_pixels(patches: np.ndarray, context: Any) -> dict[str, np.ndarray] | None:
    """Per-block focus of each full-resolution candidate (turned into ``blur`` once the whole
    slide has been seen, in :func:`gigapatch_score_patches`)."""
    if context.domain not in DOMAINS or context.config.score.blur_relative <= 0:
        return None
    return {"block_focus": block_focus(patches)}


@hookimpl
def gigapatch_score_patches(image: Any, coords: np.ndarray, context: Any) -> dict[str, np.ndarray] | None:
    """Adds ``white``/``dark``/``grey`` fractions (low-res view) and, with
    ``score.blur_relative`` > 0, ``blur``: the fraction of each patch's tissue that is out of
    focus relative to the slide (>= ``score.max_blur`` is rejected as ``"blur"``)."""
    if context.domain not in DOMAINS or len(coords) == 0:
        return None
    from gigapatch import mask_fraction

    geom = context.geometry
    extra: dict[str, np.ndarray] = {}
    for name, m in glass_dark_grey(context.rgb).items():
        extra[name] = mask_fraction(m, coords, geom.size_level0, context.mask_downsample)
    focus = context.extra.get("pixels", {}).get("block_focus")
    if focus is not None:
        tissue = block_tissue(coords, context, focus.shape[1])
        extra["blur"] = blur_fraction(focus, tissue, context.config.score.blur_relative)
    return extra


# ------------------------------------------------------------------------- learned mask
def pixel_features(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 RGB -> (h * w, 9) float32 features: RGB, HSV and optical density /
    scaled to ~[0, 1] (3 x 3 median first, like the rule-based masks)."""
    import cv2

    a = np.ascontiguousarray(np.asarray(rgb)[:, :, :3])
    if min(a.shape[:2]) >= 3:
        a = cv2.medianBlur(a, 3)
    hsv = cv2.cvtColor(a, cv2.COLOR_RGB2HSV).astype(np.float32) / np.array([180, 255, 255], np.float32)
    f = a.astype(np.float32)
    od = -np.log((f + 1.0) / 256.0) / np.log(256.0)
    feats = np.concatenate([f / 255.0, hsv, od], axis=2)
    return feats.reshape(-1, 9)


def save_pixel_classifier(path: str | Path, coef: np.ndarray, intercept: float,
                          threshold: float = 0.5) -> Path:
    """Write logistic-regression weights for :func:`learned_mask` as a ``.npz`` file."""
    path = Path(path)
    with open(path, "wb") as f:
        np.savez(f, kind=np.array("gigapatch-pixel-logreg"), coef=np.asarray(coef, np.float32).ravel(),
                 intercept=np.float32(intercept), threshold=np.float32(threshold))
    return path


def learned_mask(rgb: np.ndarray, weights: str | Path) -> np.ndarray | None:
    """Apply a pixel classifier (logistic regression on :func:`pixel_features`) from a local
    ``.npz`` (keys ``kind="gigapatch-pixel-logreg"``, ``coef`` (9,), ``intercept``,
    ``threshold``). Returns an (h, w) bool mask, or None when the file is not of this kind."""
    from gigapatch import ConfigError

    p = Path(weights)
    if p.suffix != ".npz":
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            if "kind" not in z or str(z["kind"]) != "gigapatch-pixel-logreg":
                return None
            coef = z["coef"].astype(np.float32).ravel()
            intercept = float(z["intercept"])
            threshold = float(z["threshold"]) if "threshold" in z else 0.5
    except FileNotFoundError:
        raise ConfigError(f"{p}: mask weights file not found") from None
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{p}: not a readable weights file ({e})") from None
    if coef.shape != (9,):
        raise ConfigError(f"{p}: expected 9 coefficients, found {coef.size}")
    h, w = np.asarray(rgb).shape[:2]
    z = pixel_features(rgb) @ coef + intercept
    prob = 1.0 / (1.0 + np.exp(-z))
    return (prob >= threshold).reshape(h, w)


@hookimpl
def gigapatch_learned_mask(rgb: np.ndarray, weights: Path, domain: str | None, config: Any) -> np.ndarray | None:
    """A small learned tissue mask: logistic regression on pixel colour features (local .npz)."""
    return learned_mask(rgb, weights)
