"""Plots of the encoder and its latents (seed section 3)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..inference.metrics import r2_scores
from .style import LABEL_NAMES, SPECTRAL_FEATURES, mark_features, save, use_style


def plot_latent_distributions(latents: np.ndarray, split: np.ndarray, path: str | Path, title: str = "") -> Path:
    """One histogram per latent component, train / validation / test overlaid (density)."""
    use_style()
    k = latents.shape[1]
    ncols = 4
    nrows = int(np.ceil(k / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(12, 2.3 * nrows), constrained_layout=True, squeeze=False)
    colors = {"train": "C0", "validation": "C1", "test": "C2"}
    for i, ax in enumerate(axes.flat[:k]):
        z = latents[:, i]
        bins = np.linspace(*np.percentile(z, [0.1, 99.9]), 41) if np.ptp(z) > 0 else 10
        for s, c in colors.items():
            sel = split == s
            if sel.any():
                ax.hist(z[sel], bins=bins, density=True, histtype="step", color=c, lw=1.1, label=s)
        ax.set_title(f"z{i}: mean {z.mean():+.2f}, sd {z.std():.2f}", fontsize=8.5, loc="left")
        ax.set_yticks([])
        ax.tick_params(labelsize=8)
    for ax in axes.flat[k:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_latent_correlation(corr: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Heatmap of the latent-latent correlation matrix with the values written in."""
    import seaborn as sns

    use_style()
    k = len(corr)
    fig, ax = plt.subplots(figsize=(8.5, 7.2), constrained_layout=True)
    sns.heatmap(
        corr,
        vmin=-1,
        vmax=1,
        cmap="RdBu_r",
        annot=True,
        fmt=".1f",
        annot_kws={"fontsize": 6.5},
        square=True,
        cbar_kws={"label": "Pearson r", "shrink": 0.8},
        ax=ax,
        xticklabels=[f"z{i}" for i in range(k)],
        yticklabels=[f"z{i}" for i in range(k)],
    )
    ax.tick_params(labelsize=8)
    ax.set_title(title, fontsize=10)
    return save(fig, path)


def plot_latent_flux_correlation(
    fcorr: np.ndarray, wavelength: np.ndarray, mean_flux: np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """Correlation of each latent (rows) with the flux at each wavelength (columns), the mean spectrum above."""
    use_style()
    k = fcorr.shape[0]
    fig, (ax0, ax) = plt.subplots(
        2,
        1,
        figsize=(13, 2.2 + 0.32 * k + 1.6),
        sharex=True,
        constrained_layout=True,
        gridspec_kw={"height_ratios": [1.0, max(2.0, 0.2 * k)]},
    )
    ax0.plot(wavelength, mean_flux, color="0.2", lw=0.6)
    ax0.set_ylabel("mean flux\n/ median", fontsize=8)
    ax0.set_xlim(wavelength[0], wavelength[-1])
    mark_features(ax0)
    vmax = max(0.2, float(np.nanmax(np.abs(fcorr))))
    mesh = ax.pcolormesh(
        wavelength,
        np.arange(k),
        np.nan_to_num(fcorr),
        cmap="RdBu_r",
        vmin=-vmax,
        vmax=vmax,
        shading="nearest",
        rasterized=True,
    )
    ax.set_yticks(np.arange(k), [f"z{i}" for i in range(k)], fontsize=7.5)
    ax.set_ylim(k - 0.5, -0.5)
    mark_features(ax, label=False)
    for wave in SPECTRAL_FEATURES.values():
        if wavelength[0] < wave < wavelength[-1]:
            ax.axvline(wave, color="k", lw=0.5, ls=":", alpha=0.7)
    ax.set_xlabel("air wavelength [Å]")
    fig.colorbar(mesh, ax=ax, label="Pearson r (latent, flux)", shrink=0.9, pad=0.01)
    fig.suptitle(title, fontsize=10)
    return save(fig, path, dpi=130)


def plot_latent_umap(embedding: np.ndarray, colours: dict[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """The 2-D UMAP of the latents, one panel per colouring (line strengths, percentiles, [M/H], [alpha/Fe])."""
    use_style()
    n = len(colours)
    ncols = 4
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(15, 3.5 * nrows), constrained_layout=True, squeeze=False)
    size = float(np.clip(3000 / len(embedding), 0.5, 12))
    for ax, (name, values) in zip(axes.flat, colours.items()):
        order = np.argsort(values, kind="stable")  # extreme values on top
        lo, hi = np.nanpercentile(values, [1, 99])
        sc = ax.scatter(
            embedding[order, 0],
            embedding[order, 1],
            c=values[order],
            s=size,
            cmap="viridis",
            vmin=lo,
            vmax=hi if hi > lo else lo + 1e-6,
            linewidths=0,
            rasterized=True,
        )
        fig.colorbar(sc, ax=ax, shrink=0.85, pad=0.01)
        ax.set_title(name, fontsize=9.5, loc="left")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_predicted_vs_true(
    true: np.ndarray, pred: np.ndarray, names: list[str], path: str | Path, history=None, title: str = ""
) -> Path:
    """Predicted vs true label per parameter (with R^2), and the training curves from history.csv."""
    import pandas as pd

    use_style()
    r2_all = r2_scores(true, pred)
    n = len(names) + (history is not None)
    ncols = 4
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(13, 3.1 * nrows), constrained_layout=True, squeeze=False)
    for ax, (i, name) in zip(axes.flat, enumerate(names)):
        t, p, r2 = true[:, i], pred[:, i], r2_all[i]
        ax.scatter(t, p, s=4, alpha=0.5, linewidths=0, rasterized=True)
        lo, hi = min(t.min(), p.min()), max(t.max(), p.max())
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8, ls="--")
        pretty = LABEL_NAMES.get(name, name)
        ax.set_title(f"{pretty}: R² = {r2:.3f}", fontsize=9, loc="left")
        ax.set_xlabel("true", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
        ax.tick_params(labelsize=7.5)
    if history is not None:
        ax = axes.flat[len(names)]
        frame = pd.read_csv(history)
        for col, label in (("train_loss", "train"), ("val_loss", "validation")):
            if col in frame:
                rows = frame.dropna(subset=[col])
                ax.plot(rows["epoch"], rows[col], marker="o", ms=3, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("loss (standardised labels)", fontsize=8)
        ax.legend(fontsize=7, frameon=False)
        ax.set_title("training curves", fontsize=9, loc="left")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)
