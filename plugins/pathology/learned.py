"""A small learned tissue mask: logistic regression on pixel colour features, from a local
``.npz`` file (``mask.model_weights``); nothing is ever downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gigapatch import hookimpl


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
def gigapatch_learned_mask(rgb: np.ndarray, weights: Path) -> np.ndarray | None:
    """A small learned tissue mask: logistic regression on pixel colour features (local .npz)."""
    return learned_mask(rgb, weights)
