"""Plots of the spectra posteriors on the test split: accuracy, coverage, accuracy vs S/N, reconstruction (seed sections 4, 5, 7)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .style import label_title, panel_grid, save, use_style


def plot_posterior_accuracy(
    true, mean, std, names, metrics: dict, path, title: str = "", max_points: int = 1500
) -> Path:
    """Posterior mean (error bar: posterior std) vs truth per label, with R², bias, scatter, outliers."""
    use_style()
    true, mean, std = np.asarray(true), np.asarray(mean), np.asarray(std)
    idx = np.random.default_rng(0).permutation(len(true))[:max_points]
    fig, axes = panel_grid(len(names))
    for i, (ax, name) in enumerate(zip(axes, names)):
        m = metrics[name]
        lo, hi = min(true[:, i].min(), mean[:, i].min()), max(true[:, i].max(), mean[:, i].max())
        pad = 0.05 * (hi - lo) if hi > lo else 0.1
        ax.errorbar(
            true[idx, i], mean[idx, i], yerr=std[idx, i], fmt="o", ms=2, lw=0.4, alpha=0.35, color="C0", elinewidth=0.4
        )
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1)
        ax.set(
            xlim=(lo - pad, hi + pad),
            ylim=(lo - pad, hi + pad),
            title=label_title(name),
            xlabel="true" + (" (Gyr)" if name.startswith("t") else " (dex)"),
            ylabel="posterior mean",
        )
        ax.text(
            0.03,
            0.97,
            f"R² = {m['r2']:.3f}\nbias = {m['bias']:+.3f}\nσ_NMAD = {m['scatter_nmad']:.3f}\n"
            f"outliers = {100 * m['outlier_fraction']:.1f} %",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox=dict(fc="white", ec="0.8", alpha=0.85),
        )
    fig.suptitle(title or "posterior mean ± std vs truth (test split)")
    return save(fig, path)


def plot_posterior_coverage(
    levels, coverage: dict, band, n: int, path, title: str = "", band_sfh=None, n_sfh: int | None = None
) -> Path:
    """Empirical vs nominal coverage, one line per label and the joint HPD, with the binomial 95 % band of n
    independent spectra and, when given, the wider 95 % band from resampling whole SFHs."""
    use_style()
    levels = np.asarray(levels)
    fig, ax = plt.subplots(figsize=(5.6, 5.0), layout="constrained")
    if band_sfh is not None:
        ax.fill_between(
            levels, band_sfh[0], band_sfh[1], color="0.93", label=f"95 % band, SFH bootstrap ({n_sfh} SFHs)"
        )
    ax.fill_between(levels, band[0], band[1], color="0.82", label=f"95 % band, {n} independent spectra")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    for sign in (-1, 1):
        ax.plot(
            [0, 1], [sign * 0.05, 1 + sign * 0.05], color="0.45", lw=0.8, ls=":", label="± 0.05" if sign > 0 else None
        )
    cmap = plt.get_cmap("viridis")
    keys = [k for k in coverage if k != "joint"]
    for j, k in enumerate(keys):
        ax.plot(levels, coverage[k], color=cmap(j / max(len(keys) - 1, 1)), lw=1.2, label=label_title(k))
    if "joint" in coverage:
        ax.plot(levels, coverage["joint"], color="C3", lw=2.5, label="joint (HPD)")
    ax.set(
        xlabel="nominal credibility",
        ylabel="empirical coverage",
        xlim=(0, 1),
        ylim=(0, 1),
        title=title or "coverage on the test split (above the diagonal: conservative)",
    )
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return save(fig, path)


def plot_accuracy_vs_snr(snr_metrics: dict, names, path, title: str = "") -> Path:
    """R² per label and max coverage deviation against S/N (inf = clean spectra)."""
    use_style()
    keys = list(snr_metrics)
    xs = np.arange(len(keys))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0), layout="constrained")
    cmap = plt.get_cmap("viridis")
    for j, name in enumerate(names):
        r2 = [snr_metrics[k]["labels"][name]["r2"] for k in keys]
        axes[0].plot(xs, r2, "o-", color=cmap(j / max(len(names) - 1, 1)), label=label_title(name))
    axes[0].set(
        xticks=xs,
        xticklabels=keys,
        xlabel="S/N per pixel at the median flux",
        ylabel="R² of the posterior mean",
        title="accuracy vs S/N",
    )
    axes[0].legend(fontsize=7, ncol=2)
    dev = [snr_metrics[k]["coverage"]["max_abs_deviation_all"] for k in keys]
    axes[1].plot(xs, dev, "o-", color="C3")
    axes[1].axhline(0.05, color="k", ls="--", lw=1)
    axes[1].set(
        xticks=xs,
        xticklabels=keys,
        xlabel="S/N",
        ylabel="max |empirical − nominal| coverage",
        title="calibration vs S/N",
        ylim=(0, None),
    )
    fig.suptitle(
        textwrap.fill(title, 110), fontsize=10
    )  # the title carries the NPE's training note: wrap to the figure
    return save(fig, path)


def plot_degraded_grid(settings: list[dict], names, path, title: str = "", bar: float = 0.05) -> Path:
    """Heat maps over (fixed degradation x label): R² of the posterior mean, and the largest coverage deviation,
    the cells within the bar outlined."""
    import seaborn as sns

    use_style()
    rows = [s["name"] for s in settings]
    cols = [label_title(n) for n in names]
    r2 = np.array([[s["labels"][n]["r2"] for n in names] for s in settings])
    dev = np.array([[s["coverage_max_abs_deviation"].get(n, np.nan) for n in names] for s in settings])
    fig, axes = plt.subplots(1, 2, figsize=(3.0 + 1.2 * len(names), 1.4 + 0.4 * len(rows)), layout="constrained")
    common = {"annot": True, "linewidths": 0.5, "linecolor": "white", "xticklabels": cols, "annot_kws": {"size": 7}}
    sns.heatmap(r2, ax=axes[0], cmap="viridis", vmin=0.0, vmax=1.0, fmt=".2f", yticklabels=rows, **common)
    axes[0].set_title("R² of the posterior mean (colour clipped at 0)")
    sns.heatmap(
        dev, ax=axes[1], cmap="Reds", vmin=0.0, vmax=max(0.3, np.nanmax(dev)), fmt=".2f", yticklabels=False, **common
    )
    for i, j in zip(*np.nonzero(dev <= bar)):
        axes[1].add_patch(plt.Rectangle((j, i), 1, 1, fill=False, edgecolor="k", lw=1.5))
    axes[1].set_title(f"max |empirical − nominal| coverage (outlined: ≤ {bar:g})")
    for ax in axes:
        ax.tick_params(axis="x", rotation=0, labelsize=8)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_conditioning(study: dict, path, title: str = "", bar: float = 0.05) -> Path:
    """Per fixed degradation: the largest coverage deviation and R²(t50) of the amortised, matched and conditioned
    posteriors, their training compute in the legend."""
    use_style()
    rows = study["settings"]
    xs = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained", sharex=True)
    styles = {"amortised": ("0.5", "o"), "matched": ("C0", "s"), "conditioned": ("C3", "D")}
    for kind, (color, marker) in styles.items():
        label = kind
        if kind in study and "compute_s" in study[kind]:
            label += f" ({study[kind]['compute_s'] / 60:.1f} min to train)"
        dev = [r[kind]["coverage_max_abs_deviation_all"] for r in rows]
        r2 = [r[kind]["r2"]["t50"] for r in rows]
        axes[0].plot(xs, dev, marker=marker, color=color, ls="-", lw=1, label=label)
        axes[1].plot(xs, r2, marker=marker, color=color, ls="-", lw=1, label=kind)
    axes[0].axhline(bar, color="k", ls="--", lw=1)
    axes[0].set(ylabel="max |empirical − nominal| coverage (all labels)", ylim=(0, None), title="calibration")
    axes[1].set(ylabel="R² of the posterior mean, t50", title="accuracy")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ticks = [r["name"].split(", <")[0] + (" + blue mask" if r.get("blue_mask") else "") for r in rows]
        ax.set_xticks(xs, ticks, rotation=30, ha="right", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_reconstruction(wavelength, examples: list[dict], path, title: str = "") -> Path:
    """Input vs reconstructed spectra (posterior mean + 16-84 % band), residuals below each."""
    use_style()
    k = len(examples)
    fig, axes = plt.subplots(
        2 * k,
        1,
        figsize=(11, 2.6 * k),
        layout="constrained",
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1.2] * k},
        squeeze=False,
    )
    axes = axes.ravel()
    for j, ex in enumerate(examples):
        ax, rx = axes[2 * j], axes[2 * j + 1]
        ax.fill_between(
            wavelength, ex["band"][0], ex["band"][1], color="C1", alpha=0.35, lw=0, label="posterior 16–84 %"
        )
        ax.plot(wavelength, ex["flux"], color="k", lw=0.6, label="input")
        ax.plot(wavelength, ex["model"], color="C1", lw=0.6, label="reconstructed (posterior mean)")
        ax.set(ylabel="flux / median")
        ax.text(
            0.01,
            0.95,
            ex["text"],
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox=dict(fc="white", ec="0.8", alpha=0.85),
        )
        if j == 0:
            ax.legend(fontsize=8, loc="lower right", ncol=3)
        res = ex["flux"] - ex["model"]
        rx.fill_between(
            wavelength, ex["band"][0] - ex["model"], ex["band"][1] - ex["model"], color="C1", alpha=0.35, lw=0
        )
        rx.plot(wavelength, res, color="k", lw=0.5)
        rx.axhline(0, color="C1", lw=0.8)
        lim = max(0.02, 1.2 * np.percentile(np.abs(res), 99.5))
        rx.set(ylabel="residual", ylim=(-lim, lim))
    axes[-1].set(xlabel="wavelength (Å)")
    fig.suptitle(title)
    return save(fig, path)


def plot_reconstruction_rms(rms: np.ndarray, rms_true: np.ndarray | None, path, title: str = "") -> Path:
    use_style()
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    vals = [np.asarray(rms)] + ([np.asarray(rms_true)] if rms_true is not None else [])
    hi = max(np.percentile(v, 99.5) for v in vals)
    bins = np.linspace(0, hi * 1.05, 40)
    ax.hist(
        100 * np.asarray(rms),
        bins=100 * bins,
        color="C1",
        alpha=0.7,
        label=f"posterior mean (median {100 * np.median(rms):.2f} %)",
    )
    if rms_true is not None:
        ax.hist(
            100 * np.asarray(rms_true),
            bins=100 * bins,
            histtype="step",
            color="k",
            lw=1.5,
            label=f"true percentiles (median {100 * np.median(rms_true):.2f} %)",
        )
    ax.set(
        xlabel="residual rms (% of the median flux)", ylabel="test spectra", title=title or "reconstruction residuals"
    )
    ax.legend(fontsize=8)
    return save(fig, path)
