"""The figures' shared style: seaborn theme, saving, absorption-feature marks, label names, panel grids."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Absorption features a spectroscopist looks for first (air wavelengths, Angstrom).
SPECTRAL_FEATURES = {
    "Ca H&K": 3950.0,
    "Hδ": 4101.7,
    "G band": 4300.0,
    "Hβ": 4861.3,
    "Mg b": 5175.0,
    "Fe5270": 5270.0,
    "Fe5335": 5335.0,
    "Na D": 5892.9,
    "Hα": 6562.8,
}

#: label -> its name on a plot (plain text) and as a panel title (the percentiles as t_{xx})
LABEL_NAMES = {"metallicity": "[M/H]", "alpha": "[α/Fe]"}


def label_title(name: str) -> str:
    return LABEL_NAMES.get(name, f"$t_{{{name[1:]}}}$" if name.startswith("t") else name)


def use_style():
    import seaborn as sns

    sns.set_theme(context="notebook", style="ticks", font_scale=0.95)


def save(fig, path, dpi=120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def mark_features(ax, features=SPECTRAL_FEATURES, label=True):
    """Dotted lines at the classic absorption features; names above the axes (where no data hides them)."""
    lo, hi = ax.get_xlim()
    for name, wave in features.items():
        if lo < wave < hi:
            ax.axvline(wave, color="0.6", lw=0.6, ls=":", zorder=0)
            if label:
                name_above(ax, wave, name)


def name_above(ax, wave: float, name: str):
    """A feature's name, vertical, just above the axes at its wavelength."""
    ax.text(
        wave,
        1.02,
        name,
        transform=ax.get_xaxis_transform(),
        rotation=90,
        ha="center",
        va="bottom",
        fontsize=7,
        color="0.3",
    )


def panel_grid(d: int, ncols: int = 4, size=(3.2, 3.0)):
    nrows = (d + ncols - 1) // ncols
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), layout="constrained", squeeze=False
    )
    for ax in axes.ravel()[d:]:
        ax.axis("off")
    return fig, axes.ravel()
