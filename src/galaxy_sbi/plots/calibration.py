"""SBC rank histograms and TARP curves, one plot of each for both graphs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .style import label_title, panel_grid, save, use_style


def plot_sbc(ranks, n_samples: int, names, path, bins: int = 20, title: str = "") -> Path:
    """SBC rank histograms (N cases, D parameters) with the 99 % band of a uniform histogram (both graphs)."""
    use_style()
    from scipy import stats

    ranks = np.asarray(ranks)
    fig, axes = panel_grid(len(names), size=(3.0, 2.4))
    n = len(ranks)
    lo, hi = stats.binom.ppf([0.005, 0.995], n, 1.0 / bins)
    for i, (ax, name) in enumerate(zip(axes, names)):
        ax.axhspan(lo, hi, color="0.85")
        ax.axhline(n / bins, color="k", lw=0.8)
        ax.hist(ranks[:, i], bins=np.linspace(0, n_samples, bins + 1), color="C0")
        ax.set(title=label_title(name), xlabel="rank", yticks=[])
    fig.suptitle(title or f"SBC ranks of {n} cases (grey: 99 % band of a uniform histogram)")
    return save(fig, path)


def plot_tarp(ecp, alpha, atc: float, path, title: str = "", extra: dict | None = None, label: str = "clean") -> Path:
    """TARP expected coverage against credibility (both graphs); ``extra``: name -> (ecp, alpha, atc) of more sets."""
    use_style()
    fig, ax = plt.subplots(figsize=(4.8, 4.6), layout="constrained")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    ax.plot(np.asarray(alpha), np.asarray(ecp), lw=2, label=f"{label} (ATC {atc:+.3f})")
    for k, (e, a, t) in (extra or {}).items():
        ax.plot(np.asarray(a), np.asarray(e), lw=1.2, label=f"{k} (ATC {t:+.3f})")
    ax.set(
        xlabel="credibility level",
        ylabel="expected coverage",
        xlim=(0, 1),
        ylim=(0, 1),
        title=title or "TARP on the test split",
    )
    ax.legend(fontsize=8)
    return save(fig, path)
