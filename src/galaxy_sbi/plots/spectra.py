"""Plots of the SSP library, the SFHs and the synthetic spectra (stages ssp, sfh, spectra)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .style import LABEL_NAMES, mark_features, save, use_style


def _nearest(values: np.ndarray, wanted) -> list[float]:
    return list(dict.fromkeys(float(values[np.argmin(np.abs(values - w))]) for w in wanted))


def plot_ssp_overview(library: xr.Dataset, ages_gyr, metallicities, path: str | Path) -> Path:
    """SSPs of several ages (one panel per metallicity) and metallicities at the oldest requested age.

    Spectra are divided by their median (the forward model's normalisation) so shapes can be compared.
    When the library has an [alpha/Fe] axis a last panel shows the alpha-enhanced / scaled-solar ratio.
    """
    use_style()
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
            ratio = (
                flux_by_alpha.sel(alpha=hi, metallicity=mets[-1], age=age)
                / flux_by_alpha.sel(alpha=lo, metallicity=mets[-1], age=age)
            ).values
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
    return save(fig, path, dpi=130)


def _pick_examples(values: np.ndarray, n: int) -> np.ndarray:
    """Indices of n examples spread over the range of `values` (quantiles of the sorted order)."""
    order = np.argsort(values, kind="stable")
    return order[np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int)]


def plot_sfh_examples(sfh: xr.Dataset, path: str | Path, n: int = 6) -> Path:
    """Example SFHs (spread in t50) with their cumulative mass curve and the percentiles t10...t90 marked."""
    use_style()
    time = sfh["time"].values
    perc = sfh["percentiles"].values
    names = [str(v) for v in sfh["label_name"].values]
    idx = _pick_examples(perc[:, len(names) // 2], n)
    ncols = 3
    nrows = int(np.ceil(len(idx) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(12, 3.0 * nrows), sharex=True, constrained_layout=True, squeeze=False
    )
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.95, len(names)))
    for ax, i in zip(axes.flat, idx):
        sfr = sfh["sfr"].values[i]
        ax.fill_between(time, sfr, color="C0", alpha=0.25, lw=0)
        ax.plot(time, sfr, color="C0", lw=1.0)
        ax.set_ylim(0, sfr.max() * 1.15)
        ax2 = ax.twinx()
        ax2.plot(time, sfh["cumulative_mass_fraction"].values[i], color="0.3", lw=0.9, ls="--")
        for k, (t_p, color) in enumerate(zip(perc[i], colors)):
            ax.axvline(t_p, color=color, lw=0.8, alpha=0.8)
            ax2.plot(t_p, sfh["percentile"].values[k] / 100, "o", ms=3.5, color=color)
        ax2.set_ylim(0, 1.05)
        ax2.set_yticks([0, 0.5, 1])
        ax2.tick_params(labelsize=8)
        title = f"SFH {int(sfh['sfh'].values[i])}:"
        if "t0" in sfh:
            title += f" t0 = {float(sfh['t0'].values[i]):.2f}, τ = {float(sfh['tau'].values[i]):.2f},"
        ax.set_title(title + f" t50 = {perc[i, len(names) // 2]:.2f} Gyr", loc="left", fontsize=9)
        ax.set_ylabel("SFR [M$_\\odot$/yr]", fontsize=9)
        ax2.set_ylabel("cumulative mass", fontsize=8, color="0.3")
    for ax in axes.flat[len(idx) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("cosmic time [Gyr]")
        ax.set_xlim(time[0], time[-1])
    handles = [plt.Line2D([], [], color=c, marker="o", ms=3.5, lw=0.8) for c in colors]
    fig.legend(handles, names, ncol=len(names), loc="outside lower center", fontsize=8, frameon=False)
    fig.suptitle(
        f"{sfh.attrs.get('family', '?')} SFHs ({sfh.sizes['sfh']} in total, observed at t = {sfh.attrs.get('t_obs_gyr', 0):.2f} Gyr, "
        f"M = {sfh.attrs.get('stellar_mass_msun', 0):.0e} M$_\\odot$): SFR (blue), cumulative mass (dashed), percentiles",
        fontsize=10,
    )
    return save(fig, path)


def plot_spectra_examples(cubes: list[xr.Dataset], path: str | Path, n: int = 5) -> Path:
    """Example spectra: several SFHs (spread in t50) in the middle cell, and one SFH across the cells' [M/H]."""
    use_style()
    middle = cubes[len(cubes) // 2]
    labels = middle["labels"].values
    params = [str(p) for p in middle["parameter"].values]
    i50 = params.index("t50") if "t50" in params else 0
    idx = _pick_examples(labels[:, i50], n)
    wave = middle["wavelength"].values
    fig, axes = plt.subplots(2, 1, figsize=(13, 7), sharex=True, constrained_layout=True)
    legend_kw = dict(frameon=False, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8)
    t50 = labels[idx, i50]
    cmap = plt.get_cmap("plasma")
    norm = plt.Normalize(t50.min() - 0.5, t50.max() + 0.5)
    for i, t in zip(idx, t50):
        axes[0].plot(wave, middle["flux"].values[i], lw=0.6, color=cmap(norm(t)), label=f"t50 = {t:.2f} Gyr")
    axes[0].set_title(
        f"{middle.attrs.get('family', '?')} spectra in cell {middle.attrs.get('cell', '?')}: "
        "SFHs of different t50 (cosmic time)",
        loc="left",
        fontsize=10,
        pad=34,
    )
    axes[0].legend(**legend_kw)

    i = int(idx[len(idx) // 2])
    alpha0 = [
        c for c in cubes if "alpha" not in c.coords or float(c["alpha"]) == float(cubes[0].coords.get("alpha", 0))
    ]
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(alpha0)))
    for color, cube in zip(colors, alpha0):
        axes[1].plot(
            wave, cube["flux"].values[i], lw=0.6, color=color, label=f"[M/H] = {float(cube['metallicity']):+.2f}"
        )
    title = f"SFH {int(middle['sample'].values[i])} (t50 = {labels[i, i50]:.2f} Gyr) across [M/H]"
    if "alpha" in cubes[0].coords:
        title += f" at [α/Fe] = {float(cubes[0]['alpha']):.2f}"
    axes[1].set_title(title, loc="left", fontsize=10, pad=34)
    axes[1].legend(**legend_kw)
    for ax in axes:
        ax.set_ylabel("flux / median")
        ax.set_xlim(wave[0], wave[-1])
        mark_features(ax)
    axes[-1].set_xlabel("air wavelength [Å]")
    return save(fig, path)


def plot_label_distributions(
    labels: np.ndarray, names: list[str], split: np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """One histogram per label, stacked by train / validation / test split."""
    import pandas as pd
    import seaborn as sns

    use_style()
    frame = pd.DataFrame(labels, columns=names)
    frame["split"] = split
    ncols = 4
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(12, 2.6 * nrows), constrained_layout=True, squeeze=False)
    order = [s for s in ("train", "validation", "test") if s in set(split)]
    for ax, name in zip(axes.flat, names):
        values = np.unique(frame[name])
        if len(values) <= 20:  # grid labels ([M/H], [alpha/Fe]): one bar per grid value
            width = np.min(np.diff(values)) if len(values) > 1 else 0.1
            binning = {"binwidth": width, "binrange": (values[0] - width / 2, values[-1] + width / 2)}
        else:
            binning = {"bins": 40}
        sns.histplot(
            frame,
            x=name,
            hue="split",
            hue_order=order,
            multiple="stack",
            ax=ax,
            **binning,
            legend=ax is axes.flat[0],
            element="bars",
            linewidth=0,
            shrink=0.9,
        )
        unit = " [dex]" if name in ("metallicity", "alpha") else " [Gyr]"
        pretty = LABEL_NAMES.get(name, name)
        ax.set_xlabel(pretty + unit)
        ax.set_ylabel("")
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_error_spectra(shapes: xr.Dataset, power_range, evaluation: str, path: str | Path) -> Path:
    """The error-spectrum shapes the synthetic noise takes: each source's (smoothed, median 1) with its covered range,
    the fixed evaluation settings' shape, and the training family's range of slopes (power_range) for one source."""
    from ..spectra.error_spectra import mean_shape, shaped_error

    use_style()
    wave = shapes["wavelength"].values
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.2), sharex=True, constrained_layout=True)
    for name, colour in zip(shapes.source.values, plt.get_cmap("tab10").colors):
        s = shapes["shape"].sel(source=name).values
        good = shapes["good"].sel(source=name).values.astype(bool)
        snr = shapes.attrs.get(f"{name}_snr_median", np.nan)
        axes[0].plot(wave, s, color=colour, lw=0.6, alpha=0.35)
        axes[0].plot(np.where(good, wave, np.nan), s, color=colour, lw=1.2, label=f"{name} (median S/N {snr:.0f})")
    if evaluation == "mean":
        axes[0].plot(
            wave, mean_shape(shapes["shape"].values), color="k", lw=1.4, ls="--", label="evaluation (geometric mean)"
        )
    axes[0].axhline(1.0, color="0.5", lw=0.8, ls=":")
    axes[0].set_ylabel("σ(λ) / median σ")
    axes[0].set_title(
        f"Observed error spectra in units of their median, averaged over {shapes.attrs['smooth_angstrom']:g} Å "
        "(faint: masked or uncovered, filled)"
    )
    axes[0].legend(frameon=False, fontsize=8, loc="upper right")
    first = shapes["shape"].isel(source=0).values
    lo, hi = power_range
    cmap = plt.get_cmap("viridis")
    for u in np.linspace(lo, hi, 5):
        colour = cmap((u - lo) / max(hi - lo, 1e-9))
        axes[1].plot(wave, shaped_error(first, u), color=colour, lw=1.0, label=f"u = {u:.2f}")
    axes[1].set_ylabel("σ(λ) / median σ")
    axes[1].set_xlabel("rest-frame wavelength (Å)")
    axes[1].set_title(
        f"Training noise: {shapes.source.values[0]}'s shape to a power u uniform in [{lo:g}, {hi:g}] (u = 0: white; "
        "one source and u per chunk of spectra)"
    )
    axes[1].legend(frameon=False, fontsize=8, ncol=5, loc="upper right")
    return save(fig, path)
