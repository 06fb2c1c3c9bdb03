"""Figures a person browses in results/: shared style and one function per plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

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


def _style():
    import seaborn as sns

    sns.set_theme(context="notebook", style="ticks", font_scale=0.95)


def mark_features(ax, features=SPECTRAL_FEATURES, label=True):
    """Dotted lines at the classic absorption features; names above the axes (where no data hides them)."""
    lo, hi = ax.get_xlim()
    for name, wave in features.items():
        if lo < wave < hi:
            ax.axvline(wave, color="0.6", lw=0.6, ls=":", zorder=0)
            if label:
                ax.text(wave, 1.02, name, transform=ax.get_xaxis_transform(), rotation=90, ha="center",
                        va="bottom", fontsize=7, color="0.3")


def _nearest(values: np.ndarray, wanted) -> list[float]:
    return list(dict.fromkeys(float(values[np.argmin(np.abs(values - w))]) for w in wanted))


def plot_ssp_overview(library: xr.Dataset, ages_gyr, metallicities, path: str | Path) -> Path:
    """SSPs of several ages (one panel per metallicity) and metallicities at the oldest requested age.

    Spectra are divided by their median (the forward model's normalisation) so shapes can be compared.
    When the library has an [alpha/Fe] axis a last panel shows the alpha-enhanced / scaled-solar ratio.
    """
    _style()
    flux = library["flux"]
    if "alpha" in flux.dims:
        flux_by_alpha = flux
        flux = flux.sel(alpha=float(flux.alpha.min()))
    else:
        flux_by_alpha = None
    wave = library["wavelength"].values
    ages = _nearest(library["age"].values, ages_gyr)
    mets = _nearest(library["metallicity"].values, metallicities)
    n_panels = len(mets) + 1 + (flux_by_alpha is not None)
    fig, axes = plt.subplots(n_panels, 1, figsize=(13, 2.9 * n_panels + 0.6), sharex=True, constrained_layout=True)
    legend_kw = dict(frameon=False, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, title_fontsize=8)
    cmap = plt.get_cmap("plasma_r")
    log_ages = np.log10(ages)
    norm = plt.Normalize(log_ages.min() - 0.1, log_ages.max() + 0.1)

    for ax, met in zip(axes, mets):
        for age in ages:
            f = flux.sel(metallicity=met, age=age).values
            ax.plot(wave, f / np.median(f), lw=0.7, color=cmap(norm(np.log10(age))), label=f"{age:g} Gyr")
        ax.set_ylabel("flux / median")
        ax.legend(title=f"[M/H] = {met:+.2f}\nage", **legend_kw)

    ax = axes[len(mets)]
    old = ages[-1]
    met_colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(library["metallicity"])))
    for color, met in zip(met_colors, library["metallicity"].values):
        f = flux.sel(metallicity=met, age=old).values
        ax.plot(wave, f / np.median(f), lw=0.6, color=color, label=f"{met:+.2f}")
    ax.set_ylabel("flux / median")
    ax.legend(title=f"age = {old:g} Gyr\n[M/H]", **legend_kw)

    if flux_by_alpha is not None:
        ax = axes[-1]
        lo, hi = float(flux_by_alpha.alpha.min()), float(flux_by_alpha.alpha.max())
        for age in ages:
            ratio = (flux_by_alpha.sel(alpha=hi, metallicity=mets[-1], age=age)
                     / flux_by_alpha.sel(alpha=lo, metallicity=mets[-1], age=age)).values
            ax.plot(wave, ratio / np.median(ratio), lw=0.7, color=cmap(norm(np.log10(age))), label=f"{age:g} Gyr")
        ax.set_ylabel(f"[α/Fe]={hi:+.1f} / {lo:+.1f}")
        ax.legend(title=f"[M/H] = {mets[-1]:+.2f}\nage", **legend_kw)

    for i, ax in enumerate(axes):
        ax.set_xlim(wave[0], wave[-1])
        mark_features(ax, label=i == 0)
    axes[-1].set_xlabel("air wavelength [Å]")
    attrs = library.attrs
    imf = str(attrs.get("imf", "")).split(" (")[0]
    fig.suptitle(
        f"SSP library: source {attrs.get('source', '?')}, {imf} IMF, {attrs.get('isochrones', '')}, "
        f"FWHM {attrs.get('resolution_fwhm_angstrom', '?')} Å; spectra divided by their median",
        fontsize=10,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
