"""Point metrics of predictions against truths (any labels): R^2, bias, sigma_NMAD, RMSE, outliers."""

from __future__ import annotations

import numpy as np


def r2_scores(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column of (N, D) arrays; NaN where the truth is constant."""
    true, pred = np.asarray(true, float), np.asarray(pred, float)
    ss_res = np.sum((true - pred) ** 2, axis=0)
    ss_tot = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)


def point_metrics(true: np.ndarray, pred: np.ndarray, names) -> dict:
    """Per label: R^2, bias (median residual), scatter (1.4826 MAD = sigma_NMAD), RMSE, outlier fraction.

    Residual = pred - true. Outlier: |residual - bias| > 3 sigma_NMAD (for Gaussian residuals 0.27 %)."""
    true, pred = np.asarray(true, float), np.asarray(pred, float)
    out = {}
    r2s = r2_scores(true, pred)
    for i, name in enumerate(names):
        d = pred[:, i] - true[:, i]
        r2 = r2s[i]
        bias = float(np.median(d))
        nmad = float(1.4826 * np.median(np.abs(d - bias)))
        out[str(name)] = {
            "r2": float(r2),
            "bias": bias,
            "scatter_nmad": nmad,
            "rmse": float(np.sqrt(np.mean(d**2))),
            "outlier_fraction": float(np.mean(np.abs(d - bias) > 3 * nmad)) if nmad > 0 else 0.0,
        }
    return out
