"""A learned model of defect-free texture: a Gaussian over cell statistics, PaDiM-style.

PaDiM models the features of normal images at each position with a Gaussian and scores a test
position by its Mahalanobis distance. Here the features are the cell statistics of
:mod:`.features` (a fixed multi-scale filter bank: nothing to download), and the model is fitted

* on the scan itself (the default): a strip is mostly normal steel, so a robust fit (median and
  MAD per feature, then the covariance of the cells within 4 MADs on every feature) describes
  its normal texture. The texture of a rolled strip changes across the strip (edge fall-off,
  roll marks) but not along it, so the centre and scale are taken per row of cells, along the
  rolling direction, when the rows are long enough;
* or on defect-free images (``gigapatch fit-normal --domain metal_surface IMAGES --out
  model.npz``), then given as ``plugin.metal_surface.normal_model: model.npz``.

A cell's ``normal`` score is its distance from the model (in standard deviations, a
Mahalanobis distance); 0-3 is ordinary texture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .features import FEATURES

#: a row of cells is normalised on its own when it holds at least this many cells
MIN_ROW_CELLS = 48
#: cells within this many MADs on every feature make the covariance
TRIM = 4.0
_MAD = 1.4826  # MAD of a unit normal
FORMAT = "gigapatch-metal-normal/1"


@dataclass
class NormalModel:
    """A Gaussian model of normal cell statistics.

    Attributes
    ----------
    cell : cell side (px) the statistics were taken on.
    center, scale : (F,) robust centre and scale of each feature.
    precision : (F, F) inverse covariance of the standardised features.
    """

    cell: int
    center: np.ndarray
    scale: np.ndarray
    precision: np.ndarray

    def save(self, path: str | Path) -> Path:
        """Write the model as ``.npz`` (through a temporary name)."""
        from gigapatch import atomic_path

        p = Path(path)
        with atomic_path(p) as tmp, open(tmp, "wb") as f:
            np.savez(f, format=FORMAT, features=np.array(FEATURES), cell=self.cell,
                     center=self.center, scale=self.scale, precision=self.precision)
        return p

    @classmethod
    def load(cls, path: str | Path) -> NormalModel:
        """Read a model written by :meth:`save`.

        Raises
        ------
        ConfigError : missing, not a model file, or made for other features (one line).
        """
        from gigapatch import ConfigError

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: normal model not found")
        try:
            with np.load(p, allow_pickle=False) as z:
                if str(z["format"]) != FORMAT or tuple(z["features"].tolist()) != FEATURES:
                    raise ConfigError(f"{p}: not a metal_surface normal model ({FORMAT})")
                return cls(int(z["cell"]), z["center"].astype(np.float64),
                           z["scale"].astype(np.float64), z["precision"].astype(np.float64))
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(f"{p}: not a readable normal model ({type(e).__name__})") from None


def _robust(f: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    center = np.median(f, axis=axis, keepdims=True)
    scale = _MAD * np.median(np.abs(f - center), axis=axis, keepdims=True)
    return center, np.maximum(scale, 1e-3)


def _precision(z: np.ndarray) -> np.ndarray:
    """Inverse covariance of (N, F) standardised features, from the cells within TRIM."""
    inside = z[np.all(np.abs(z) < TRIM, axis=1)]
    if len(inside) < 4 * z.shape[1]:
        inside = z
    cov = np.cov(inside, rowvar=False) if len(inside) > 1 else np.eye(z.shape[1])
    cov = np.atleast_2d(cov) + 1e-3 * np.eye(z.shape[1])
    return np.linalg.inv(cov)


def fit_normal(features: list[np.ndarray], cell: int) -> NormalModel:
    """A global model from the cell statistics of defect-free images.

    Parameters
    ----------
    features : (rows, cols, F) maps of :func:`.features.feature_map`, one per image.
    cell : their cell side (px).
    """
    f = np.concatenate([m.reshape(-1, m.shape[-1]) for m in features]).astype(np.float64)
    center, scale = _robust(f, 0)
    z = (f - center) / scale
    return NormalModel(cell, center[0], scale[0], _precision(z))


def standardise(features: np.ndarray, model: NormalModel | None, valid: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols, F) cell statistics -> standardised (rows, cols, F) and the precision.

    Without a model (the scan's own): each row of cells is centred and scaled on its own valid
    cells (on all the valid cells when rows are short), and the covariance comes from the cells
    within :data:`TRIM`. With a model: its centre, scale and precision.
    """
    f = features.astype(np.float32)
    if model is not None:
        return ((f - model.center) / model.scale).astype(np.float32), model.precision
    rows, cols, nf = f.shape
    ok = np.ones((rows, cols), bool) if valid is None else valid
    if not ok.any():
        ok = np.ones((rows, cols), bool)
    gc, gs = _robust(f[ok], 0)
    z = ((f - gc[0]) / gs[0]).astype(np.float32)
    if cols >= MIN_ROW_CELLS:
        import warnings

        masked = np.where(ok[..., None], f, np.nan)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # rows off the surface: all NaN
            rc = np.nanmedian(masked, axis=1, keepdims=True)
            rs = _MAD * np.nanmedian(np.abs(masked - rc), axis=1, keepdims=True)
        good = (ok.sum(axis=1) >= MIN_ROW_CELLS)[:, None, None]
        rc = np.where(good & np.isfinite(rc), rc, gc)
        rs = np.where(good & np.isfinite(rs), np.maximum(rs, 1e-3), gs)
        z = ((f - rc) / rs).astype(np.float32)
    return z, _precision(z[ok].astype(np.float64))


def distance_map(features: np.ndarray, model: NormalModel | None = None,
                 valid: np.ndarray | None = None) -> np.ndarray:
    """(rows, cols) float32 Mahalanobis distance of each cell from normal texture.

    Parameters
    ----------
    features : (rows, cols, F) cell statistics (:func:`.features.feature_map`).
    model : a model of normal texture; None fits one on these cells (see
        :func:`standardise`).
    valid : (rows, cols) bool cells that are the surface (None: all); only they make the fit.
    """
    z, precision = standardise(features, model, valid)
    d2 = np.einsum("...i,ij,...j->...", z, precision.astype(np.float32), z)
    return np.sqrt(np.maximum(d2, 0.0)).astype(np.float32)


def model_for(path: Any) -> NormalModel | None:
    """The model in ``path`` (None: no path, fit on each scan)."""
    return None if path is None else NormalModel.load(path)


__all__ = ["NormalModel", "distance_map", "fit_normal", "model_for", "standardise"]
