"""Focus of full-resolution patches, block by block, and the blur score built on it.

Blur is judged per block (4 x 4 per patch) and relative to the slide itself: fine detail over
coarse structure (:func:`block_focus`), against the median of the slide's tissue-dense blocks
(:func:`blur_fraction`). The ``blur`` score is the fraction of a patch's tissue that is out of
focus; selection rejects ``blur >= max_blur`` with reason ``"blur"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: block focus (:func:`block_focus`) below which a block is out of focus whatever the slide;
#: such blocks never set the slide's reference (in-focus H&E at 0.5 um/px: median ~2)
FOCUS_FLOOR = 0.3
#: candidates at least this dense in tissue set the slide's reference sharpness
REFERENCE_FOREGROUND = 0.9


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

    Notes
    -----
    The patches go through OpenCV a few at a time (~64 K px, so every float32 plane stays in
    the CPU cache), each group stacked into one tall image: grey (``cvtColor``, the same float32
    weights), 2 x 2 and 8 x 8 binning and block means (``resize(INTER_AREA)``, exact at integer
    factors), ``Laplacian(ksize=1)`` (the rows where two patches meet are replaced by their
    neighbours, as the edge padding of the Laplacian's valid interior requires).
    """
    import cv2

    p = np.asarray(patches)
    if p.ndim not in (3, 4):
        raise ValueError(f"patches must be (N, s, s, 3) or (N, s, s), got {p.shape}")
    n = len(p)
    s = min(p.shape[1], p.shape[2]) // (8 * blocks) * (8 * blocks)
    if n == 0 or s == 0:
        return np.zeros((n, blocks, blocks), np.float32)
    h2, h8 = s // 2, s // 8
    step = max(1, (1 << 16) // (s * s))
    fine = np.empty((n * blocks, blocks), np.float32)
    g8 = np.empty((n * h8, h8), np.float32)
    for i in range(0, n, step):
        q = p[i : i + step, :s, :s]
        k = len(q)
        if p.ndim == 4:
            rgb = np.empty((k * s, s, 3), np.float32)
            np.copyto(rgb.reshape(k, s, s, 3), q[..., :3])
            g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        else:
            g = np.empty((k * s, s), np.float32)
            np.copyto(g.reshape(k, s, s), q)
        g2 = cv2.resize(g, (h2, k * h2), interpolation=cv2.INTER_AREA)
        lap = cv2.Laplacian(g2, cv2.CV_32F, ksize=1)
        cv2.multiply(lap, lap, dst=lap)
        edge = lap.reshape(k, h2, h2)  # edge padding of the valid interior, rows then columns
        edge[:, 0], edge[:, -1] = edge[:, 1], edge[:, -2]
        edge[:, :, 0], edge[:, :, -1] = edge[:, :, 1], edge[:, :, -2]
        area = cv2.INTER_AREA
        fine[i * blocks : (i + k) * blocks] = cv2.resize(lap, (blocks, k * blocks), interpolation=area)
        g8[i * h8 : (i + k) * h8] = cv2.resize(g2, (h8, k * h8), interpolation=area)
    g8 = g8.reshape(n, h8, h8)
    grad = np.empty((n, h8, h8), np.float32)  # coarse gradient, edge-padded at bottom and right
    np.square(np.diff(g8, axis=2)[:, :-1, :], out=grad[:, :-1, :-1])
    grad[:, :-1, :-1] += np.square(np.diff(g8, axis=1)[:, :, :-1])
    grad[:, -1, :-1] = grad[:, -2, :-1]
    grad[:, :, -1] = grad[:, :, -2]
    coarse = cv2.resize(
        grad.reshape(n * h8, h8), (blocks, n * blocks), interpolation=cv2.INTER_AREA
    )
    return (fine / (coarse + 1.0)).reshape(n, blocks, blocks)


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
